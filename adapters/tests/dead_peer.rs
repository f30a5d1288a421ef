//! A peer that goes silent without closing TCP (a crashed host, a dropped
//! NAT mapping, a stuck proxy) is found by the keepalive, on both ends.
//!
//! Client and server talk through a TCP relay in this test that can be
//! frozen: it stops reading and writing but keeps both sockets open, so no
//! FIN or RST ever arrives and only the missing pongs tell. With
//! `ping_interval` and `ping_timeout` of 1 s each, a side pings at most
//! 1 s after the freeze and fails 1 s later: detection must land in
//! `[TIMEOUT - IN_FLIGHT, INTERVAL + TIMEOUT + MARGIN]` after the freeze
//! (the lower bound allows for a ping sent just before the freeze whose
//! pong the freeze swallowed). Before the freeze, several intervals of
//! traffic with pings answered must raise nothing.
//!
//! Run on smol and tokio (the shared driver) and on the mio event loop.
//! smol and mio run on the wall clock, with the margins above. tokio runs
//! on its paused clock (see `paused/mod.rs`): the exchange before the
//! freeze takes no virtual time, and the detection instant is exact.

// The wall-clock helpers below serve the smol and mio tests; a build
// without those runtimes (tokio alone) leaves them unused.
#![cfg_attr(not(all(feature = "smol", feature = "mio")), allow(dead_code))]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use futures_util::{SinkExt, StreamExt};
use tether::{ClientOptions, Config, Error, Message, ServerOptions};

#[cfg(feature = "tokio")]
mod paused;
mod runtimes;
use runtimes::{Rt, Ws};

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(1);
/// Allowance above interval + timeout for a loaded 2-core machine: timer
/// and scheduling delays on both sides.
const MARGIN: Duration = Duration::from_millis(1500);
/// How much earlier than `TIMEOUT` after the freeze a side may fail: a
/// ping written just before the freeze may have lost its pong to it.
const IN_FLIGHT: Duration = Duration::from_millis(100);
/// Echo round trips before the freeze, `PAUSE` apart: about 3 s, three
/// keepalive intervals each way.
const ROUNDS: usize = 12;
const PAUSE: Duration = Duration::from_millis(250);
/// A side that reports nothing by then has missed the dead peer.
const GIVE_UP: Duration = Duration::from_secs(30);

fn keepalive() -> Config {
    Config::default()
        .with_ping_interval(Some(INTERVAL))
        .with_ping_timeout(Some(TIMEOUT))
}

// ---- the relay ----

const RUNNING: u8 = 0;
const FROZEN: u8 = 1;
const STOPPED: u8 = 2;

/// Forwards one TCP connection to `target`, both ways, until frozen.
/// Frozen, it neither reads nor writes, and keeps both sockets open.
/// Dropping it closes both.
struct Relay {
    addr: SocketAddr,
    state: Arc<AtomicU8>,
}

impl Relay {
    fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay: bind");
        let addr = listener.local_addr().expect("relay: local_addr");
        let state = Arc::new(AtomicU8::new(RUNNING));
        let st = state.clone();
        thread::spawn(move || {
            let Ok((down, _)) = listener.accept() else {
                return;
            };
            let up = TcpStream::connect(target).expect("relay: connect to the server");
            for s in [&down, &up] {
                s.set_nodelay(true).expect("nodelay");
                // Reads wake up now and then to see a freeze or a stop.
                s.set_read_timeout(Some(Duration::from_millis(10)))
                    .expect("read timeout");
            }
            let (down2, up2) = (
                down.try_clone().expect("clone"),
                up.try_clone().expect("clone"),
            );
            let st2 = st.clone();
            thread::spawn(move || pump(down, up, &st));
            thread::spawn(move || pump(up2, down2, &st2));
        });
        Self { addr, state }
    }
}

/// Stops the relay whose state this is from forwarding; returns when.
fn freeze(relay_state: &AtomicU8) -> Instant {
    relay_state.store(FROZEN, Ordering::SeqCst);
    Instant::now()
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.state.store(STOPPED, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` while running; holds still while frozen (bytes
/// read just as the freeze came are kept, never delivered).
fn pump(mut from: TcpStream, mut to: TcpStream, state: &AtomicU8) {
    let mut buf = vec![0u8; 64 << 10];
    let wait_while_frozen = || loop {
        match state.load(Ordering::SeqCst) {
            RUNNING => return true,
            FROZEN => thread::sleep(Duration::from_millis(10)),
            _ => return false,
        }
    };
    loop {
        if !wait_while_frozen() {
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        };
        if !wait_while_frozen() || to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

// ---- the async runtimes ----

/// The next item that is not a ping or a pong (those only show that the
/// keepalive runs; the core answers pings by itself).
async fn next_data<T: Rt>(ws: &mut Ws<T>) -> Option<Result<Message, Error>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => return other,
        }
    }
}

/// Reads (so pings are answered) for `d`; nothing but pings and pongs may
/// arrive meanwhile.
async fn idle<T: Rt>(ws: &mut Ws<T>, d: Duration, who: &str) {
    // next_data skips pings and pongs itself, so anything it returns
    // before the timer is unexpected.
    if let Either::Left((item, _)) = select(pin!(next_data::<T>(ws)), pin!(T::sleep(d))).await {
        panic!("{who}: unexpected {item:?} before the freeze");
    }
}

/// What a side saw after the freeze: when, and what ended its stream.
type Report = (Instant, Option<Result<Message, Error>>, Option<Duration>);

fn dead_peer_on<T: Rt>(runtime: &str) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let relay = Relay::start(listener.local_addr().expect("addr"));
    let url = format!("ws://{}/", relay.addr);
    let state = relay.state.clone();
    let (report_tx, report) = mpsc::channel::<(&str, Report)>();

    let server_tx = report_tx.clone();
    thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        T::block_on(async move {
            let options = ServerOptions::default().with_config(keepalive());
            let mut ws = T::accept(tcp, options).await;
            // Echo until something other than a message comes; the client
            // freezes the relay after its last round, so anything here
            // but an echo request comes after the freeze.
            let end = loop {
                match next_data::<T>(&mut ws).await {
                    Some(Ok(m @ Message::Text(_))) => ws.send(m).await.expect("server: echo"),
                    other => break other,
                }
            };
            let _ = server_tx.send(("server", (Instant::now(), end, ws.latency())));
        });
    });

    let (freeze_tx, freeze_at) = mpsc::channel();
    thread::spawn(move || {
        T::block_on(async move {
            let options = ClientOptions::default().with_config(keepalive());
            let mut ws = T::connect(&url, options).await;
            for i in 0..ROUNDS {
                let m = Message::text(format!("round {i}"));
                ws.send(m.clone()).await.expect("client: send");
                match next_data::<T>(&mut ws).await {
                    Some(Ok(echo)) if echo == m => {}
                    other => panic!("client: round {i}: {other:?}"),
                }
                idle::<T>(&mut ws, PAUSE, "client").await;
            }
            let latency = ws.latency();
            let _ = freeze_tx.send(freeze(&state));
            let end = next_data::<T>(&mut ws).await;
            let _ = report_tx.send(("client", (Instant::now(), end, latency)));
        });
    });

    let freeze = freeze_at
        .recv_timeout(GIVE_UP)
        .unwrap_or_else(|_| panic!("{runtime}: the exchange before the freeze did not finish"));
    let mut reports = Vec::new();
    for _ in 0..2 {
        let r = report.recv_timeout(GIVE_UP).unwrap_or_else(|_| {
            panic!("{runtime}: {reports:?} reported, a side never noticed the dead peer")
        });
        reports.push(r);
    }
    check(runtime, freeze, reports);
    drop(relay);
}

/// Each side reports exactly the keepalive timeout, within the window.
fn check(runtime: &str, freeze: Instant, reports: Vec<(&str, Report)>) {
    let latest = INTERVAL + TIMEOUT + MARGIN;
    for (who, (when, end, latency)) in reports {
        let after = when.saturating_duration_since(freeze);
        eprintln!(
            "{runtime} {who}: dead peer detected {:.3} s after the freeze \
             (window {:.3}..{:.3} s; latency before: {latency:?}); it saw {end:?}",
            after.as_secs_f64(),
            (TIMEOUT - IN_FLIGHT).as_secs_f64(),
            latest.as_secs_f64(),
        );
        assert!(
            latency.is_some(),
            "{runtime} {who}: keepalive pings were answered before the freeze"
        );
        assert!(
            matches!(
                end,
                Some(Err(Error::WebSocket(tether::core::Error::KeepaliveTimeout)))
            ),
            "{runtime} {who}: expected the keepalive timeout, got {end:?}"
        );
        assert!(
            after >= TIMEOUT - IN_FLIGHT,
            "{runtime} {who}: failed {after:?} after the freeze: too early for a missing pong"
        );
        assert!(
            after <= latest,
            "{runtime} {who}: took {after:?} to notice (bound {latest:?})"
        );
    }
}

#[cfg(feature = "smol")]
#[test]
fn dead_peer_detected_on_smol() {
    dead_peer_on::<runtimes::SmolRt>("smol");
}

/// tokio, on its paused clock: client and server in one task, the relay
/// as before. Before the freeze the clock is held while bytes travel and
/// moved `PAUSE` at a time between round trips, so every keepalive ping
/// is answered in no virtual time; after it the clock runs by itself, as
/// nothing can arrive any more. Both sides were created at the same
/// instant and pinged on the same schedule, and the freeze falls between
/// two pings with none outstanding: each side must fail exactly one
/// `TIMEOUT` after its first ping past the freeze.
#[cfg(feature = "tokio")]
#[test]
fn dead_peer_detected_on_tokio() {
    use futures_util::future::join;
    use paused::held;

    /// Rounds before the freeze: 3.25 s, so it falls between pings.
    const PAUSED_ROUNDS: u32 = 13;
    /// tokio's timer wheel rounds a deadline up to its millisecond.
    const TICK: Duration = Duration::from_millis(2);

    paused::run("tokio dead peer", GIVE_UP, || async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let relay = Relay::start(listener.local_addr().expect("addr"));
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("async listener");
        let url = format!("ws://{}/", relay.addr);

        let accept = async {
            let (tcp, _) = listener.accept().await.expect("accept");
            let options = ServerOptions::default().with_config(keepalive());
            // One type for both ends, as in `runtimes`.
            let tcp = tether::tokio::ClientStream::from(tcp);
            tether::tokio::accept_with(tcp, &options, |_| Ok(Default::default()))
                .await
                .expect("server handshake")
        };
        let connect = async {
            let options = ClientOptions::default().with_config(keepalive());
            tether::tokio::connect_with(&url, options)
                .await
                .expect("client handshake")
        };
        let (mut server, mut client) = held(join(accept, connect)).await;
        let opened = paused::now();

        // Round trips through the relay, each answering the pings sent
        // since the last: the client's go out with its message, and the
        // server's before its echo (a ping is queued ahead of data).
        held(async {
            for i in 0..PAUSED_ROUNDS {
                tokio::time::advance(PAUSE).await;
                let m = Message::text(format!("round {i}"));
                client.send(m.clone()).await.expect("client: send");
                let echo = async {
                    match next_data::<runtimes::TokioRt>(&mut server).await {
                        Some(Ok(m @ Message::Text(_))) => server.send(m).await.expect("echo"),
                        other => panic!("server: round {i}: {other:?}"),
                    }
                };
                let back = next_data::<runtimes::TokioRt>(&mut client);
                match join(echo, back).await {
                    ((), Some(Ok(echo))) if echo == m => {}
                    (_, other) => panic!("client: round {i}: {other:?}"),
                }
            }
        })
        .await;
        let latencies = (client.latency(), server.latency());
        freeze(&relay.state);
        let frozen_at = paused::now();

        let watch = |ws: &'static str, mut side: Ws<runtimes::TokioRt>| async move {
            let end = next_data::<runtimes::TokioRt>(&mut side).await;
            (ws, paused::now(), end)
        };
        let (a, b) = join(watch("client", client), watch("server", server)).await;

        let pings_before = (frozen_at - opened).as_millis() / INTERVAL.as_millis();
        let first_ping_after = opened + INTERVAL * (pings_before as u32 + 1);
        let expected = first_ping_after + TIMEOUT;
        assert!(
            first_ping_after > frozen_at,
            "the freeze must fall between pings"
        );
        for (who, when, end) in [a, b] {
            eprintln!(
                "tokio {who}: dead peer detected {:.3} s (virtual) after the freeze \
                 (expected {:.3} s); it saw {end:?}",
                (when - frozen_at).as_secs_f64(),
                (expected - frozen_at).as_secs_f64(),
            );
            assert!(
                matches!(
                    end,
                    Some(Err(Error::WebSocket(tether::core::Error::KeepaliveTimeout)))
                ),
                "tokio {who}: expected the keepalive timeout, got {end:?}"
            );
            assert!(
                when >= expected && when <= expected + TICK,
                "tokio {who}: failed {:?} after the freeze, expected {:?}",
                when - frozen_at,
                expected - frozen_at
            );
        }
        assert!(
            latencies.0.is_some() && latencies.1.is_some(),
            "keepalive pings were answered before the freeze: {latencies:?}"
        );
        drop(relay);
    });
}

// ---- a dead peer while the server is pushing data ----

/// The close timeout of the server that pushes data.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the client reads the server's stream before the freeze.
const STREAMING: Duration = Duration::from_millis(2500);

/// The server is pushing 1 MiB messages when the peer dies, so its queue
/// sits behind a TCP window that never opens again. Its keepalive still
/// fails it, and the close timeout then drops what cannot be written and
/// ends the connection: the stream ends (`None`) instead of holding the
/// socket forever. The client notices the dead peer as before.
///
/// Only upper bounds here: a ping queued just before the freeze may sit
/// behind megabytes of data, so it can be lost well before the freeze.
fn dead_peer_while_sending_on<T: Rt>(runtime: &str) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let relay = Relay::start(listener.local_addr().expect("addr"));
    let url = format!("ws://{}/", relay.addr);
    let state = relay.state.clone();
    // (who, when it was done, what it saw, whether that was the keepalive
    // timeout, milestones on the way)
    type Done = (
        &'static str,
        Instant,
        String,
        bool,
        Vec<(&'static str, Instant)>,
    );
    let (report_tx, report) = mpsc::channel::<Done>();

    let server_tx = report_tx.clone();
    thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        T::block_on(async move {
            let options =
                ServerOptions::default().with_config(keepalive().with_close_timeout(CLOSE_TIMEOUT));
            // Compressed, the data would be a few bytes on the wire
            // and fit in the socket buffers for minutes.
            #[cfg(feature = "deflate")]
            let options = options.with_deflate(None);
            let mut ws = T::accept(tcp, options).await;
            let data = tether::Bytes::from(vec![7u8; 1 << 20]);
            let sent = loop {
                if let Err(e) = ws.send(Message::Binary(data.clone())).await {
                    break (e, Instant::now());
                }
            };
            // What is left to read: the pings and pongs that piled up
            // while sending, the failure, then the end.
            let mut failure = None;
            while let Some(item) = ws.next().await {
                if let Err(e) = item {
                    failure = Some((e, Instant::now()));
                }
            }
            let mut milestones = vec![("send failed", sent.1)];
            milestones.extend(failure.as_ref().map(|f| ("failure read", f.1)));
            let failure = failure.map(|f| f.0);
            let keepalive = matches!(
                failure,
                Some(Error::WebSocket(tether::core::Error::KeepaliveTimeout))
            );
            let what = format!(
                "send failed with {:?}, then {failure:?} and the end",
                sent.0
            );
            let _ = server_tx.send(("server", Instant::now(), what, keepalive, milestones));
        });
    });

    let (freeze_tx, freeze_at) = mpsc::channel();
    thread::spawn(move || {
        T::block_on(async move {
            let mut ws = T::connect(&url, ClientOptions::default().with_config(keepalive())).await;
            let start = Instant::now();
            let mut received = 0;
            while start.elapsed() < STREAMING {
                match next_data::<T>(&mut ws).await {
                    Some(Ok(Message::Binary(_))) => received += 1,
                    other => panic!("client: after {received} messages: {other:?}"),
                }
            }
            assert!(received > 0, "client: nothing arrived");
            let _ = freeze_tx.send(freeze(&state));
            // Drain what was already on its way, until the failure.
            let end = loop {
                match next_data::<T>(&mut ws).await {
                    Some(Ok(Message::Binary(_))) => {}
                    other => break other,
                }
            };
            let keepalive = matches!(
                end,
                Some(Err(Error::WebSocket(tether::core::Error::KeepaliveTimeout)))
            );
            let what = format!("{received} messages before the freeze, then {end:?}");
            let _ = report_tx.send(("client", Instant::now(), what, keepalive, Vec::new()));
        });
    });

    let frozen = freeze_at
        .recv_timeout(GIVE_UP)
        .unwrap_or_else(|_| panic!("{runtime}: the stream before the freeze did not finish"));
    for _ in 0..2 {
        let (who, when, what, keepalive, milestones) =
            report.recv_timeout(GIVE_UP).unwrap_or_else(|_| {
                panic!("{runtime}: a side still holds the connection {GIVE_UP:?} after the freeze")
            });
        let after = when.saturating_duration_since(frozen);
        let latest = match who {
            "server" => INTERVAL + TIMEOUT + CLOSE_TIMEOUT + MARGIN,
            _ => INTERVAL + TIMEOUT + MARGIN,
        };
        let steps: Vec<String> = milestones
            .iter()
            .map(|(what, at)| {
                let d = at.saturating_duration_since(frozen).as_secs_f64();
                format!("{what} at {d:.3} s")
            })
            .collect();
        eprintln!(
            "{runtime} while sending, {who}: done {:.3} s after the freeze (bound {:.3} s; {}): {what}",
            after.as_secs_f64(),
            latest.as_secs_f64(),
            steps.join(", ")
        );
        assert!(
            keepalive,
            "{runtime} {who}: expected the keepalive timeout: {what}"
        );
        assert!(
            after <= latest,
            "{runtime} {who}: done {after:?} after the freeze (bound {latest:?})"
        );
    }
}

#[cfg(feature = "smol")]
#[test]
fn dead_peer_while_sending_on_smol() {
    dead_peer_while_sending_on::<runtimes::SmolRt>("smol");
}

/// tokio, on its paused clock: the server pushes from a task of its own,
/// the client reads `STREAMED` messages with the clock held while bytes
/// travel and moved `STREAM_STEP` after each (so keepalive pings are sent
/// and answered while data streams), then freezes the relay. From there
/// the clock runs by itself: the bounds are the protocol's, with one step
/// of slack for a ping that fell due between two steps.
#[cfg(feature = "tokio")]
#[test]
fn dead_peer_while_sending_on_tokio() {
    use paused::held;

    /// Messages the client reads before the freeze, `STREAM_STEP` apart
    /// (2.5 s of virtual time, two keepalive intervals).
    const STREAMED: u32 = 125;
    const STREAM_STEP: Duration = Duration::from_millis(20);
    const SLACK: Duration = Duration::from_millis(25);

    paused::run("tokio dead peer while sending", GIVE_UP, || async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let relay = Relay::start(listener.local_addr().expect("addr"));
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("async listener");
        let url = format!("ws://{}/", relay.addr);

        let (server_ws, mut client) = held(futures_util::future::join(
            async {
                let (tcp, _) = listener.accept().await.expect("accept");
                let options = ServerOptions::default()
                    .with_config(keepalive().with_close_timeout(CLOSE_TIMEOUT));
                // Compressed, the data would be a few bytes on the wire
                // and fit in the socket buffers for minutes.
                #[cfg(feature = "deflate")]
                let options = options.with_deflate(None);
                tether::tokio::accept_with(tcp, &options, |_| Ok(Default::default()))
                    .await
                    .expect("server handshake")
            },
            async {
                let options = ClientOptions::default().with_config(keepalive());
                tether::tokio::connect_with(&url, options)
                    .await
                    .expect("client handshake")
            },
        ))
        .await;

        // (send failed, failure read, done), on the paused clock.
        let server = tokio::spawn(async move {
            let mut ws = server_ws;
            let data = tether::Bytes::from(vec![7u8; 1 << 20]);
            let sent = loop {
                if let Err(e) = ws.send(Message::Binary(data.clone())).await {
                    break (e, paused::now());
                }
            };
            let mut failure = None;
            while let Some(item) = ws.next().await {
                if let Err(e) = item {
                    failure = Some((e, paused::now()));
                }
            }
            (sent, failure, paused::now())
        });

        held(async {
            for n in 0..STREAMED {
                match next_data::<runtimes::TokioRt>(&mut client).await {
                    Some(Ok(Message::Binary(_))) => {}
                    other => panic!("client: after {n} messages: {other:?}"),
                }
                tokio::time::advance(STREAM_STEP).await;
            }
        })
        .await;
        freeze(&relay.state);
        let frozen_at = paused::now();

        let end = loop {
            match next_data::<runtimes::TokioRt>(&mut client).await {
                Some(Ok(Message::Binary(_))) => {}
                other => break other,
            }
        };
        let client_done = paused::now();
        let ((send_error, sent_at), failure, server_done) = server.await.expect("server task");

        let since = |t: std::time::Instant| (t - frozen_at).as_secs_f64();
        eprintln!(
            "tokio while sending: client saw {end:?} at {:.3} s; server send failed with \
             {send_error:?} at {:.3} s, read {:?}, done at {:.3} s (virtual, after the freeze)",
            since(client_done),
            since(sent_at),
            failure.as_ref().map(|(e, at)| (e, since(*at))),
            since(server_done),
        );
        assert!(
            matches!(
                end,
                Some(Err(Error::WebSocket(tether::core::Error::KeepaliveTimeout)))
            ),
            "client: expected the keepalive timeout, got {end:?}"
        );
        assert!(
            matches!(
                failure,
                Some((Error::WebSocket(tether::core::Error::KeepaliveTimeout), _))
            ),
            "server: expected the keepalive timeout, got {failure:?}"
        );
        let client_bound = INTERVAL + TIMEOUT + SLACK;
        assert!(
            client_done - frozen_at <= client_bound,
            "client: took {:?} (bound {client_bound:?})",
            client_done - frozen_at
        );
        let server_bound = INTERVAL + TIMEOUT + CLOSE_TIMEOUT + SLACK;
        assert!(
            server_done - frozen_at <= server_bound,
            "server: took {:?} to end (bound {server_bound:?})",
            server_done - frozen_at
        );
        drop(relay);
    });
}

// ---- mio ----

/// The same through the mio event loop: client and server in one driver.
#[cfg(feature = "mio")]
#[test]
fn dead_peer_detected_on_mio() {
    use tether::mio::{Driver, Event};

    let mut driver = Driver::new().expect("driver");
    let server_options = ServerOptions::default().with_config(keepalive());
    let addr = driver
        .listen_with("127.0.0.1:0", server_options, |_| Ok(Default::default()))
        .expect("listen");
    let relay = Relay::start(addr);
    let client_options = ClientOptions::default().with_config(keepalive());
    let client = driver
        .connect_with(&format!("ws://{}/", relay.addr), client_options)
        .expect("connect");

    let mut rounds = 0;
    let mut next_send: Option<Instant> = None;
    let mut frozen: Option<Instant> = None;
    let mut ends: Vec<(&str, Instant, Event, Option<Duration>)> = Vec::new();
    let give_up = Instant::now() + GIVE_UP;
    while ends.len() < 2 {
        assert!(
            Instant::now() < give_up,
            "mio: {ends:?}: a side never noticed"
        );
        if next_send.is_some_and(|at| Instant::now() >= at) {
            next_send = None;
            if rounds == ROUNDS {
                frozen = Some(freeze(&relay.state));
            } else {
                let m = Message::text(format!("round {rounds}"));
                driver.send(client, m).expect("send");
            }
        }
        driver
            .poll_with(Some(Duration::from_millis(20)), |conns, id, event| {
                let who = if id == client { "client" } else { "server" };
                match event {
                    Event::Open if id == client => next_send = Some(Instant::now()),
                    Event::Open | Event::Ping(_) | Event::Pong { .. } | Event::Writable => {}
                    Event::Message(m) if id != client && frozen.is_none() => {
                        conns.send(id, m).expect("echo");
                    }
                    Event::Message(m) if frozen.is_none() => {
                        assert_eq!(m, Message::text(format!("round {rounds}")));
                        rounds += 1;
                        next_send = Some(Instant::now() + PAUSE);
                    }
                    other => {
                        if !ends.iter().any(|e| e.0 == who) {
                            let latency = conns.connection(id).and_then(|c| c.latency());
                            ends.push((who, Instant::now(), other, latency));
                        }
                    }
                }
            })
            .expect("poll");
    }
    let frozen = frozen.unwrap_or_else(|| panic!("mio: ended before the freeze: {ends:?}"));
    let reports = ends
        .into_iter()
        .map(|(who, when, ev, latency)| {
            let end = match ev {
                Event::Error(e) => Some(Err(e)),
                other => panic!("mio {who}: expected the keepalive timeout, got {other:?}"),
            };
            (who, (when, end, latency))
        })
        .collect();
    check("mio", frozen, reports);
}
