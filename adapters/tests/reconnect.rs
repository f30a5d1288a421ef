//! The reconnecting client against real loopback servers (tether on smol,
//! on their own threads), on smol and on tokio: which failures are
//! retried, with which delays, and the events the application sees.
//! Jitter is off so every delay is exact. Every event is stamped with the
//! client runtime's clock: the wait between `Waiting { delay }` and the
//! next attempt is at least `delay`, and on tokio's paused clock exactly
//! `delay`. The clock is held during each attempt (real I/O with a
//! server thread), and runs by itself during the backoff waits.

#![cfg(feature = "smol")]

mod common;
#[cfg(feature = "tokio")]
mod paused;

use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::core::handshake::HandshakeError;
use tether::reconnect::{
    BackoffConfig, Failure, ReconnectEvent, ReconnectOptions, Reconnector, RetryPolicy,
};
use tether::{ClientOptions, CloseCode, Config, Decision, Error, Message, ServerOptions};

use common::{bounded, closed_port, listener, serve, session_end, url, Hold, TestRt};
use ReconnectEvent::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// 10 ms doubling to 100 ms, no jitter; reset after 5 s up.
fn options() -> ReconnectOptions {
    ReconnectOptions::default()
        .with_backoff(
            BackoffConfig::default()
                .with_initial(ms(10))
                .with_factor(2.0)
                .with_max(ms(100))
                .with_jitter(0.0)
                .with_reset_after(Duration::from_secs(5))
                .with_max_attempts(None),
        )
        .with_retry(RetryPolicy::default())
        .with_connect_timeout(Duration::from_secs(5))
}

fn client() -> ClientOptions {
    ClientOptions::default().with_config(Config::without_keepalive())
}

/// Events as they happened, with the client runtime's clock.
type Events = Arc<Mutex<Vec<(Instant, ReconnectEvent)>>>;

/// An observer that records events into `events`, holding the clock
/// during attempts when `hold` (an attempt that must time out needs it
/// running).
fn observer<R: TestRt>(events: &Events, hold: bool) -> impl FnMut(&ReconnectEvent) + Send {
    let events = events.clone();
    // A guard: holding it is its use.
    let mut _held: Option<Hold> = None;
    move |e| {
        match e {
            Attempt { .. } if hold => _held = Some(R::hold()),
            Connected { .. } | Failed { .. } => _held = None,
            _ => {}
        }
        events.lock().unwrap().push((R::now(), e.clone()));
    }
}

fn recorder<R: TestRt>(url: &str, options: ReconnectOptions) -> (Reconnector<R>, Events) {
    let events = Events::default();
    let rc = Reconnector::<R>::new(url, client(), options).on_event(observer::<R>(&events, true));
    (rc, events)
}

/// The events so far, after checking that each backoff wait lasted its
/// delay (exactly, on a virtual clock).
fn take<R: TestRt>(events: &Events) -> Vec<ReconnectEvent> {
    let timed = std::mem::take(&mut *events.lock().unwrap());
    for pair in timed.windows(2) {
        if let [(waited, Waiting { delay, .. }), (at, Attempt { .. })] = pair {
            let took = at.saturating_duration_since(*waited);
            assert!(took >= *delay, "waited {took:?} of a {delay:?} backoff");
            if R::VIRTUAL {
                assert!(
                    took <= *delay + ms(1),
                    "waited {took:?} of a {delay:?} backoff on a virtual clock"
                );
            }
        }
    }
    timed.into_iter().map(|(_, e)| e).collect()
}

/// The events with `up_for` zeroed (it depends on the scheduler), after
/// checking it is plausible.
fn without_up_for(events: Vec<ReconnectEvent>) -> Vec<ReconnectEvent> {
    events
        .into_iter()
        .map(|e| match e {
            Disconnected {
                failure,
                up_for,
                retry,
            } => {
                assert!(up_for < Duration::from_secs(5), "{up_for:?}");
                Disconnected {
                    failure,
                    up_for: Duration::ZERO,
                    retry,
                }
            }
            e => e,
        })
        .collect()
}

/// Accepts and echoes data messages until the client closes.
async fn echo(stream: smol::net::TcpStream) {
    let Ok(mut ws) = tether::smol::accept(stream).await else {
        return;
    };
    while let Some(Ok(m)) = ws.next().await {
        if matches!(m, Message::Text(_) | Message::Binary(_)) && ws.send(m).await.is_err() {
            return;
        }
    }
}

async fn roundtrip<S>(ws: &mut S)
where
    S: futures_util::Sink<Message, Error = Error>
        + futures_core::Stream<Item = Result<Message, Error>>
        + Unpin,
{
    ws.send(Message::text("ping?")).await.unwrap();
    assert_eq!(
        ws.next().await.transpose().unwrap(),
        Some(Message::text("ping?"))
    );
}

/// Refused twice (nothing listens), then the port is bound from the
/// observer when the second attempt fails: the third attempt connects.
async fn retries_refused_connections<R: TestRt>() {
    let addr = closed_port();
    let events = Events::default();
    let mut record = observer::<R>(&events, true);
    let mut pending = Some(addr);
    let mut rc = Reconnector::<R>::new(&url(addr), client(), options()).on_event(move |e| {
        record(e);
        if let Failed { attempt: 2, .. } = e {
            if let Some(addr) = pending.take() {
                let l = std::net::TcpListener::bind(addr).expect("rebind the port");
                serve(l, |_, s| echo(s));
            }
        }
    });
    let mut ws = rc.connect().await.expect("connects on the third attempt");
    R::io(roundtrip(&mut ws)).await;
    let refused = Failure::Connect(ErrorKind::ConnectionRefused);
    assert_eq!(
        take::<R>(&events),
        [
            Attempt { attempt: 1 },
            Failed {
                attempt: 1,
                failure: refused,
                retry: true
            },
            Waiting {
                attempt: 2,
                delay: ms(10)
            },
            Attempt { attempt: 2 },
            Failed {
                attempt: 2,
                failure: refused,
                retry: true
            },
            Waiting {
                attempt: 3,
                delay: ms(20)
            },
            Attempt { attempt: 3 },
            Connected { attempt: 3 },
        ]
    );
    assert_eq!(rc.backoff().attempts(), 2);
    R::io(ws.close(CloseCode::NORMAL, "done")).await.unwrap();
}

/// HTTP 503 on the first upgrade, accepted on the second.
async fn retries_503<R: TestRt>() {
    let (l, addr) = listener();
    serve(l, |n, stream| async move {
        let decide = |_: &tether::http::Request<()>| -> Decision {
            if n == 0 {
                let mut busy = tether::http::Response::new("busy\n".into());
                *busy.status_mut() = tether::http::StatusCode::SERVICE_UNAVAILABLE;
                Err(Box::new(busy))
            } else {
                Ok(Default::default())
            }
        };
        if let Ok(mut ws) =
            tether::smol::accept_with(stream, &ServerOptions::default(), decide).await
        {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(_) = m {
                    let _ = ws.send(m).await;
                }
            }
        }
    });
    let (mut rc, events) = recorder::<R>(&url(addr), options());
    let mut ws = rc.connect().await.expect("connects after a 503");
    R::io(roundtrip(&mut ws)).await;
    assert_eq!(
        take::<R>(&events),
        [
            Attempt { attempt: 1 },
            Failed {
                attempt: 1,
                failure: Failure::HttpStatus(503),
                retry: true
            },
            Waiting {
                attempt: 2,
                delay: ms(10)
            },
            Attempt { attempt: 2 },
            Connected { attempt: 2 },
        ]
    );
}

/// HTTP 401 is not retried: one attempt, then the handshake error.
async fn does_not_retry_401<R: TestRt>() {
    let (l, addr) = listener();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    serve(l, move |_, stream| {
        count.fetch_add(1, Ordering::SeqCst);
        async move {
            let _ = tether::smol::accept_with(stream, &ServerOptions::default(), |_| {
                let mut no = tether::http::Response::new("who are you?\n".into());
                *no.status_mut() = tether::http::StatusCode::UNAUTHORIZED;
                Err(Box::new(no))
            })
            .await;
        }
    });
    let (mut rc, events) = recorder::<R>(&url(addr), options());
    let Err(err) = rc.connect().await else {
        panic!("401 is final")
    };
    assert!(
        matches!(
            err,
            Error::WebSocket(tether::core::Error::Handshake(HandshakeError::Rejected(
                401
            )))
        ),
        "{err:?}"
    );
    assert_eq!(
        take::<R>(&events),
        [
            Attempt { attempt: 1 },
            Failed {
                attempt: 1,
                failure: Failure::HttpStatus(401),
                retry: false
            },
            GaveUp {
                attempts: 1,
                failure: Failure::HttpStatus(401)
            },
        ]
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// The server ends the first session with 1012 (restart): retried after
/// the first backoff delay. It ends the second with 1008 (policy): not.
async fn session_close_codes<R: TestRt>() {
    let (l, addr) = listener();
    serve(l, |n, stream| async move {
        let mut ws = tether::smol::accept(stream).await.expect("accept");
        let code = if n == 0 {
            CloseCode::SERVICE_RESTART
        } else {
            CloseCode::POLICY_VIOLATION
        };
        let _ = ws.close(code, "bye").await;
    });
    let (mut rc, events) = recorder::<R>(&url(addr), options());

    let mut ws = rc.connect().await.expect("first connection");
    let end = R::io(bounded::<R, _>("the session's end", session_end(&mut ws))).await;
    assert_eq!(end, Failure::Close(1012));
    rc.session_ended(end).expect("1012 is retried");

    let mut ws = rc.connect().await.expect("second connection");
    let end = R::io(bounded::<R, _>("the session's end", session_end(&mut ws))).await;
    assert_eq!(end, Failure::Close(1008));
    let err = rc.session_ended(end).expect_err("1008 is final");
    assert!(
        matches!(err, Error::NotRetried(Failure::Close(1008))),
        "{err:?}"
    );

    assert_eq!(
        without_up_for(take::<R>(&events)),
        [
            Attempt { attempt: 1 },
            Connected { attempt: 1 },
            Disconnected {
                failure: Failure::Close(1012),
                up_for: Duration::ZERO,
                retry: true
            },
            Waiting {
                attempt: 1,
                delay: ms(10)
            },
            Attempt { attempt: 1 },
            Connected { attempt: 1 },
            Disconnected {
                failure: Failure::Close(1008),
                up_for: Duration::ZERO,
                retry: false
            },
            GaveUp {
                attempts: 0,
                failure: Failure::Close(1008)
            },
        ]
    );
}

/// A server that accepts and then drops TCP without a close frame (1006)
/// each time: retried, and since no session lasts `reset_after`, the delay
/// keeps growing across sessions.
async fn short_sessions_keep_backing_off<R: TestRt>() {
    let (l, addr) = listener();
    serve(l, |_, stream| async move {
        let ws = tether::smol::accept(stream).await.expect("accept");
        drop(ws);
    });
    let (mut rc, events) = recorder::<R>(&url(addr), options());
    let mut delays = Vec::new();
    for _ in 0..4 {
        let mut ws = rc.connect().await.expect("connects");
        let end = R::io(bounded::<R, _>("the session's end", session_end(&mut ws))).await;
        assert_eq!(end, Failure::Close(1006));
        rc.session_ended(end).expect("1006 is retried");
        for e in take::<R>(&events) {
            if let Waiting { delay, .. } = e {
                delays.push(delay);
            }
        }
    }
    assert_eq!(delays, [ms(10), ms(20), ms(40)]);
}

/// The same short sessions, but each one delivers a message the client
/// counts as progress: the reconnect after it waits only the first delay,
/// while one after a session with nothing delivered waits longer.
async fn productive_short_sessions_reset_the_backoff<R: TestRt>() {
    let (l, addr) = listener();
    let served = Arc::new(AtomicUsize::new(0));
    serve(l, {
        let served = served.clone();
        move |_, stream| {
            let n = served.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut ws = tether::smol::accept(stream).await.expect("accept");
                if n < 4 {
                    ws.send(Message::text("work")).await.expect("send");
                }
                drop(ws);
            }
        }
    });
    let (mut rc, events) = recorder::<R>(&url(addr), options());
    let mut delays = Vec::new();
    for _ in 0..6 {
        let mut ws = rc.connect().await.expect("connects");
        let first = R::io(bounded::<R, _>("the first message", ws.next())).await;
        if matches!(first, Some(Ok(Message::Text(_)))) {
            rc.progressed();
        }
        let end = R::io(bounded::<R, _>("the session's end", session_end(&mut ws))).await;
        rc.session_ended(end).expect("1006 is retried");
        for e in take::<R>(&events) {
            if let Waiting { delay, .. } = e {
                delays.push(delay);
            }
        }
    }
    // Sessions 1-4 delivered: each reconnect after them waits the first
    // delay. Session 5 did not: the wait after it has grown.
    assert_eq!(delays, [ms(10), ms(10), ms(10), ms(10), ms(20)]);
}

/// `max_attempts` retries, then the last attempt's error.
async fn gives_up_after_max_attempts<R: TestRt>() {
    let addr = closed_port();
    let mut opts = options();
    opts.backoff.max_attempts = Some(2);
    let (mut rc, events) = recorder::<R>(&url(addr), opts);
    let Err(err) = rc.connect().await else {
        panic!("nothing listens")
    };
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::ConnectionRefused),
        "{err:?}"
    );
    let refused = Failure::Connect(ErrorKind::ConnectionRefused);
    let failed = |attempt| Failed {
        attempt,
        failure: refused,
        retry: true,
    };
    assert_eq!(
        take::<R>(&events),
        [
            Attempt { attempt: 1 },
            failed(1),
            Waiting {
                attempt: 2,
                delay: ms(10)
            },
            Attempt { attempt: 2 },
            failed(2),
            Waiting {
                attempt: 3,
                delay: ms(20)
            },
            Attempt { attempt: 3 },
            failed(3),
            GaveUp {
                attempts: 3,
                failure: refused
            },
        ]
    );
    // Giving up starts afresh: the next connect tries at once.
    let _ = rc.connect().await;
    assert_eq!(take::<R>(&events)[0], Attempt { attempt: 1 });
}

/// A server that accepts TCP but never answers the upgrade: each attempt
/// fails with a timeout after `connect_timeout`, and timeouts are retried.
async fn attempts_time_out<R: TestRt>() {
    let (l, addr) = listener();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s);
        }
    });
    let mut opts = options();
    opts.connect_timeout = ms(100);
    opts.backoff.max_attempts = Some(1);
    let events = Events::default();
    // The clock runs during attempts here: their timeout is the point.
    let mut rc =
        Reconnector::<R>::new(&url(addr), client(), opts).on_event(observer::<R>(&events, false));
    let started = Instant::now();
    let Err(err) = rc.connect().await else {
        panic!("never answered")
    };
    for pair in events.lock().unwrap().windows(2) {
        if let [(start, Attempt { .. }), (end, Failed { .. })] = pair {
            let took = end.saturating_duration_since(*start);
            assert!(took >= ms(100), "an attempt timed out after {took:?}");
            if R::VIRTUAL {
                assert!(took <= ms(101), "an attempt timed out after {took:?}");
            }
        }
    }
    // Functional bound: the attempt timeout fired, not the handshake's 10 s.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            err,
            Error::WebSocket(tether::core::Error::Handshake(HandshakeError::TimedOut))
        ),
        "{err:?}"
    );
    assert_eq!(
        take::<R>(&events),
        [
            Attempt { attempt: 1 },
            Failed {
                attempt: 1,
                failure: Failure::Timeout,
                retry: true
            },
            Waiting {
                attempt: 2,
                delay: ms(10)
            },
            Attempt { attempt: 2 },
            Failed {
                attempt: 2,
                failure: Failure::Timeout,
                retry: true
            },
            GaveUp {
                attempts: 2,
                failure: Failure::Timeout
            },
        ]
    );
}

/// A custom policy: with connect errors off, a refused connection is final.
async fn policy_is_configurable<R: TestRt>() {
    let mut opts = options();
    opts.retry = RetryPolicy::default().retry_connect(false);
    let (mut rc, events) = recorder::<R>(&url(closed_port()), opts);
    assert!(rc.connect().await.is_err());
    assert_eq!(
        take::<R>(&events),
        [
            Attempt { attempt: 1 },
            Failed {
                attempt: 1,
                failure: Failure::Connect(ErrorKind::ConnectionRefused),
                retry: false
            },
            GaveUp {
                attempts: 1,
                failure: Failure::Connect(ErrorKind::ConnectionRefused)
            },
        ]
    );
}

on_each_runtime!(
    retries_refused_connections,
    retries_503,
    does_not_retry_401,
    session_close_codes,
    short_sessions_keep_backing_off,
    productive_short_sessions_reset_the_backoff,
    gives_up_after_max_attempts,
    attempts_time_out,
    policy_is_configurable,
);

/// The reconnector's future can move to another tokio worker.
#[cfg(feature = "tokio")]
#[test]
fn connect_future_is_send() {
    common::on_tokio(async {
        let (l, addr) = listener();
        serve(l, |_, s| echo(s));
        let mut rc = Reconnector::tokio(&url(addr), client(), options());
        let ws = tokio::spawn(async move { rc.connect().await.map(|_| ()) })
            .await
            .unwrap();
        ws.unwrap();
    });
}
