//! Graceful shutdown on smol and on tokio, with real sockets: a server
//! drains (its accept loop ends and the listener closes, in-flight work
//! finishes), every client sees close 1001, the wait returns when all
//! have closed, a client that never answers the close is cut at the
//! deadline and reported, and a reconnecting client comes back to the
//! next server without its backoff counting the drain as a failure.
//!
//! Server and clients run on the runtime under test (tokio multi-threaded
//! on the real clock). No timing is asserted: drain periods either outlast
//! the test (the application ends the drain by closing) or only order
//! events, and deadlines are what the counts check.

#![cfg(any(feature = "smol", feature = "tokio"))]

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use futures_util::{SinkExt, StreamExt};
use tether::reconnect::{BackoffConfig, Failure, ReconnectEvent, ReconnectOptions, RetryPolicy};
use tether::shutdown::{DrainPhase, Drained, GOING_AWAY, GOING_AWAY_REASON};
use tether::{ClientOptions, Config, Decision, Message};

mod raw_peer;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What a client saw, one line per message, then how the stream ended.
fn line(item: &Result<Message, tether::Error>) -> String {
    match item {
        Ok(Message::Text(t)) => t.to_string(),
        Ok(Message::Close(Some(f))) => format!("close {} {}", f.code.0, f.reason),
        Ok(Message::Close(None)) => "close".into(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("error {e}"),
    }
}

fn going_away() -> String {
    format!("close {} {GOING_AWAY_REASON}", GOING_AWAY.0)
}

/// Reads everything until the server closes the socket; fails after 10 s.
fn read_to_eof(tcp: &mut std::net::TcpStream) -> Vec<u8> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut all = Vec::new();
    tcp.read_to_end(&mut all).expect("the server closes");
    all
}

/// Polls `cond` every 5 ms until it holds; fails after 10 s.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(ms(5));
    }
}

/// 10 ms doubling, no jitter, so each delay says how the backoff stands.
fn reconnect_options() -> ReconnectOptions {
    ReconnectOptions::default()
        .with_backoff(
            BackoffConfig::default()
                .with_initial(ms(10))
                .with_factor(2.0)
                .with_max(Duration::from_secs(1))
                .with_jitter(0.0)
                .with_reset_after(Duration::from_secs(60))
                .with_max_attempts(None),
        )
        .with_retry(RetryPolicy::default())
        .with_connect_timeout(Duration::from_secs(10))
}

/// An upgrade the server refuses with 503 (retried by the client).
fn busy(_: &tether::http::Request<()>) -> Decision {
    let mut busy = tether::http::Response::new("busy\n".into());
    *busy.status_mut() = tether::http::StatusCode::SERVICE_UNAVAILABLE;
    Err(Box::new(busy))
}

/// How the server's connection tasks behave.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Each job (a text message) is in-flight work: the task reports it
    /// started and waits for the test's release before answering. On
    /// the drain signal the task finishes the job under way, then closes
    /// with 1001 itself; an idle one closes at once.
    Cooperative,
    /// A plain echo loop that knows nothing of the shutdown: the driver
    /// closes it when the drain period ends.
    Echo,
}

/// The tests, written once for both runtimes. Each module defines
/// `block_on`, `spawn` (a future of the task's output), `detach`, the
/// runtime type `Rt` and `use tether::<runtime>::{...}`.
macro_rules! shutdown_tests {
    () => {
        use super::*;

        struct Server {
            addr: SocketAddr,
            shutdown: Shutdown,
            /// The accept loop: how many it accepted, once it has ended.
            accept_loop: std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send>>,
            started: smol::channel::Receiver<String>,
            release: smol::channel::Sender<()>,
        }

        /// A server on a free port; its first `refuse` upgrades get 503.
        async fn start(mode: Mode, refuse: usize) -> Server {
            let mut listener = Listener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let shutdown = Shutdown::new();
            let (started_tx, started) = smol::channel::unbounded();
            let (release, release_rx) = smol::channel::unbounded();
            let sd = shutdown.clone();
            let accept_loop = spawn(async move {
                let mut n = 0;
                while let Some((stream, _)) = listener.accept_until(&sd).await.expect("accept") {
                    let (sd, started, release) =
                        (sd.clone(), started_tx.clone(), release_rx.clone());
                    let refused = n < refuse;
                    detach(async move {
                        let options = tether::ServerOptions::default()
                            .with_config(Config::without_keepalive());
                        let accepted = if refused {
                            accept_with(stream, &options, busy).await
                        } else {
                            accept_with(stream, &options, |_| Ok(Default::default())).await
                        };
                        let Ok(mut ws) = accepted else { return };
                        ws.watch(&sd);
                        match mode {
                            Mode::Echo => {
                                while let Some(Ok(m)) = ws.next().await {
                                    if let Message::Text(_) = m {
                                        let _ = ws.send(m).await;
                                    }
                                }
                            }
                            Mode::Cooperative => {
                                let mut signal = sd.signal();
                                loop {
                                    match select(ws.next(), &mut signal).await {
                                        Either::Left((Some(Ok(Message::Text(job))), _)) => {
                                            let _ = started.send(job.to_string()).await;
                                            let _ = release.recv().await;
                                            let done = Message::text(format!("done {job}"));
                                            if ws.send(done).await.is_err() {
                                                return;
                                            }
                                            if sd.is_draining() {
                                                break; // the batch is finished: go
                                            }
                                        }
                                        Either::Left((Some(Ok(_)), _)) => {}
                                        Either::Left((Some(Err(_)) | None, _)) => return,
                                        Either::Right(_) => break, // draining, nothing in flight
                                    }
                                }
                                let _ = ws.close(GOING_AWAY, GOING_AWAY_REASON).await;
                            }
                        }
                    });
                    n += 1;
                }
                n // the listener is dropped here
            });
            Server {
                addr,
                shutdown,
                accept_loop: Box::pin(accept_loop),
                started,
                release,
            }
        }

        /// A client that sends `job` (if any) and reads to the end.
        fn client(
            addr: SocketAddr,
            job: Option<String>,
        ) -> impl std::future::Future<Output = Vec<String>> {
            spawn(async move {
                let mut ws = connect(&format!("ws://{addr}/")).await.expect("connect");
                if let Some(job) = job {
                    ws.send(Message::text(job)).await.expect("send");
                }
                let mut seen = Vec::new();
                while let Some(item) = ws.next().await {
                    seen.push(line(&item));
                }
                seen
            })
        }

        #[test]
        fn a_drain_lets_in_flight_work_finish_then_every_client_sees_1001() {
            block_on(async {
                let mut server = start(Mode::Cooperative, 0).await;
                let busy: Vec<_> = (0..2)
                    .map(|i| client(server.addr, Some(format!("job-{i}"))))
                    .collect();
                let idle: Vec<_> = (0..2).map(|_| client(server.addr, None)).collect();
                let mut started = vec![
                    server.started.recv().await.unwrap(),
                    server.started.recv().await.unwrap(),
                ];
                started.sort();
                assert_eq!(started, ["job-0", "job-1"]);
                let sd = server.shutdown.clone();
                eventually("4 connections watched", || sd.open() == 4);

                // A drain longer than the test: only the work ends it.
                let sd = server.shutdown.clone();
                let drained = spawn(async move {
                    sd.shutdown(Duration::from_secs(600), Duration::from_secs(1200))
                        .await
                });
                assert_eq!(server.accept_loop.as_mut().await, 4);
                let refused = std::net::TcpStream::connect(server.addr).unwrap_err();
                assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);

                // The idle clients are told at once; the busy ones wait.
                for c in idle {
                    assert_eq!(c.await, [going_away()]);
                }
                let sd = server.shutdown.clone();
                eventually("the idle connections to end", || sd.open() == 2);
                assert_eq!(server.shutdown.phase(), Some(DrainPhase::Draining));

                // The work finishes, its answers arrive, then the close.
                for _ in 0..2 {
                    server.release.send(()).await.unwrap();
                }
                let mut answers = Vec::new();
                for c in busy {
                    let seen = c.await;
                    assert_eq!(seen.len(), 2, "{seen:?}");
                    assert_eq!(seen[1], going_away());
                    answers.push(seen[0].clone());
                }
                answers.sort();
                assert_eq!(answers, ["done job-0", "done job-1"]);
                assert_eq!(drained.await, Drained { closed: 4, cut: 0 });
                assert_eq!(server.shutdown.open(), 0);
            })
        }

        #[test]
        fn after_the_drain_period_the_driver_closes_with_1001() {
            block_on(async {
                let mut server = start(Mode::Echo, 0).await;
                let clients: Vec<_> = (0..3).map(|_| client(server.addr, None)).collect();
                let sd = server.shutdown.clone();
                eventually("3 connections watched", || sd.open() == 3);
                // A second caller joins the shutdown under way.
                let sd = server.shutdown.clone();
                let joined =
                    spawn(async move { sd.shutdown(ms(50), Duration::from_secs(600)).await });
                let drained = server
                    .shutdown
                    .shutdown(ms(50), Duration::from_secs(600))
                    .await;
                assert_eq!(drained, Drained { closed: 3, cut: 0 });
                assert_eq!(joined.await, drained);
                assert_eq!(server.accept_loop.as_mut().await, 3);
                for c in clients {
                    assert_eq!(c.await, [going_away()]);
                }
            })
        }

        #[test]
        fn a_client_that_never_answers_the_close_is_cut_at_the_deadline() {
            block_on(async {
                let mut server = start(Mode::Echo, 0).await;
                let good = client(server.addr, None);
                let mut silent = raw_peer::upgraded(server.addr);
                let sd = server.shutdown.clone();
                eventually("2 connections watched", || sd.open() == 2);
                // The core's close timeout (10 s) outlasts the deadline.
                let drained = server.shutdown.shutdown(Duration::ZERO, ms(2000)).await;
                assert_eq!(drained, Drained { closed: 1, cut: 1 });
                assert_eq!(good.await, [going_away()]);
                assert_eq!(server.accept_loop.as_mut().await, 2);

                // The silent peer got the close frame, then the socket was
                // closed under it.
                let bytes = read_to_eof(&mut silent);
                let mut close = vec![0x88, 2 + GOING_AWAY_REASON.len() as u8];
                close.extend_from_slice(&GOING_AWAY.0.to_be_bytes());
                close.extend_from_slice(GOING_AWAY_REASON.as_bytes());
                assert_eq!(bytes, close);
                eventually("the cut connection to be dropped", || {
                    server.shutdown.open() == 0
                });
            })
        }

        #[test]
        fn a_reconnecting_client_comes_back_to_the_next_server_without_a_failure() {
            block_on(async {
                // Two 503s first, so the backoff has grown before the drain.
                let mut a = start(Mode::Cooperative, 2).await;
                let events: Arc<Mutex<Vec<ReconnectEvent>>> = Arc::default();
                let record = events.clone();
                let mut rc = tether::reconnect::Reconnector::<Rt>::new(
                    &format!("ws://{}/", a.addr),
                    ClientOptions::default().with_config(Config::without_keepalive()),
                    reconnect_options(),
                )
                .on_event(move |ev| record.lock().unwrap().push(ev.clone()));
                let mut ws = rc.connect().await.expect("connects after two 503s");
                assert_eq!(rc.backoff().attempts(), 2);

                // A drains: the listener goes, B takes the port, then A's
                // connection finishes and closes with 1001.
                let sd = a.shutdown.clone();
                eventually("the connection watched", || sd.open() == 1);
                let drained = spawn(async move {
                    sd.shutdown(Duration::from_secs(600), Duration::from_secs(1200))
                        .await
                });
                assert_eq!(a.accept_loop.as_mut().await, 3);
                let mut b = Listener::bind(a.addr).await.expect("B binds A's port");
                let b_loop = spawn(async move {
                    let (stream, _) = b.accept().await.expect("B accepts");
                    let mut ws = accept(stream).await.expect("B upgrades");
                    ws.send(Message::text("this is B")).await.expect("B greets");
                    ws
                });
                let mut end = Failure::Close(1006);
                while let Some(item) = ws.next().await {
                    if let Ok(Message::Close(frame)) = item {
                        end = Failure::from_close(frame.as_ref());
                    }
                }
                assert_eq!(end, Failure::Close(1001));
                assert_eq!(drained.await, Drained { closed: 1, cut: 0 });

                events.lock().unwrap().clear();
                rc.session_ended(end).expect("1001 is retried");
                assert_eq!(rc.backoff().attempts(), 0, "a drain is not a failure");
                let mut ws = rc.connect().await.expect("reconnects to B");
                let greeting = ws.next().await.expect("a message").expect("no error");
                assert_eq!(greeting, Message::text("this is B"));
                let _server_side = b_loop.await;
                let seen = events.lock().unwrap().clone();
                assert!(
                    matches!(
                        seen[0],
                        ReconnectEvent::Disconnected {
                            failure: Failure::Close(1001),
                            retry: true,
                            ..
                        }
                    ),
                    "{seen:?}"
                );
                // The first delay, not the 40 ms a third failure would wait.
                assert_eq!(
                    seen[1..],
                    [
                        ReconnectEvent::Waiting {
                            attempt: 1,
                            delay: ms(10)
                        },
                        ReconnectEvent::Attempt { attempt: 1 },
                        ReconnectEvent::Connected { attempt: 1 },
                    ]
                );
                assert_eq!(rc.backoff().attempts(), 1);
            })
        }
    };
}

#[cfg(feature = "smol")]
mod on_smol {
    use tether::smol::{accept, accept_with, connect, Listener, Shutdown};
    type Rt = tether::smol::Smol;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        smol::block_on(f)
    }

    fn spawn<T: Send + 'static>(
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> smol::Task<T> {
        smol::spawn(f)
    }

    fn detach(f: impl std::future::Future<Output = ()> + Send + 'static) {
        smol::spawn(f).detach();
    }

    shutdown_tests!();
}

#[cfg(feature = "tokio")]
mod on_tokio {
    use tether::tokio::{accept, accept_with, connect, Listener, Shutdown};
    type Rt = tether::tokio::Tokio;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(f)
    }

    fn spawn<T: Send + 'static>(
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> impl std::future::Future<Output = T> + Send {
        let task = tokio::spawn(f);
        async move { task.await.expect("task") }
    }

    fn detach(f: impl std::future::Future<Output = ()> + Send + 'static) {
        drop(tokio::spawn(f));
    }

    shutdown_tests!();
}
