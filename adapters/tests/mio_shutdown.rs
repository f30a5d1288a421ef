//! Graceful shutdown of the mio loop (`ConnectionSet::drain`), with real
//! sockets: the listener closes at once, in-flight work finishes during
//! the drain, every client sees close 1001, `drained` reports when all
//! are gone, a peer that never answers the close is cut at the deadline,
//! and a reconnecting client comes back to the next server without its
//! backoff counting the drain. The clients are tether on smol, each on
//! its own thread. No timing is asserted; every loop is bounded by
//! [`DEADLINE`].

#![cfg(all(feature = "mio", feature = "smol"))]

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::mio::{ConnectionId, ConnectionSet, Driver, Event};
use tether::shutdown::{DrainPhase, Drained, GOING_AWAY, GOING_AWAY_REASON};
use tether::{Error, Message};

mod raw_peer;

const DEADLINE: Duration = Duration::from_secs(60);

/// Polls, handing events to `on_event` with `state`, until `done`;
/// panics after [`DEADLINE`].
fn run_until<S>(
    driver: &mut Driver,
    state: &mut S,
    mut on_event: impl FnMut(&mut S, &mut ConnectionSet, ConnectionId, Event),
    done: impl Fn(&S, &ConnectionSet) -> bool,
) {
    let give_up = Instant::now() + DEADLINE;
    while !done(state, driver) {
        assert!(Instant::now() < give_up, "no result after {DEADLINE:?}");
        driver
            .poll_with(Some(Duration::from_millis(100)), |conns, id, event| {
                on_event(state, conns, id, event)
            })
            .expect("poll");
    }
}

fn going_away() -> String {
    format!("close {} {GOING_AWAY_REASON}", GOING_AWAY.0)
}

/// A tether client on its own thread: sends `job` (if any), then reads to
/// the end; what it saw, one line per message.
fn client(addr: SocketAddr, job: Option<&str>) -> JoinHandle<Vec<String>> {
    let job = job.map(str::to_owned);
    std::thread::spawn(move || {
        smol::block_on(async {
            let mut ws = tether::smol::connect(&format!("ws://{addr}/"))
                .await
                .expect("connect");
            if let Some(job) = job {
                ws.send(Message::text(job)).await.expect("send");
            }
            let mut seen = Vec::new();
            while let Some(item) = ws.next().await {
                seen.push(match item {
                    Ok(Message::Text(t)) => t.to_string(),
                    Ok(Message::Close(Some(f))) => format!("close {} {}", f.code.0, f.reason),
                    Ok(other) => format!("{other:?}"),
                    Err(e) => format!("error {e}"),
                });
            }
            seen
        })
    })
}

/// The server's view: who is open, which job each is working on, who
/// closed, and errors met.
#[derive(Default)]
struct Server {
    open: HashSet<ConnectionId>,
    jobs: HashMap<ConnectionId, String>,
    closed: usize,
    errors: Vec<(ConnectionId, Error)>,
}

impl Server {
    /// Records an event; an echo server answers text unless `hold_jobs`,
    /// which keeps each text as in-flight work instead.
    fn on(&mut self, conns: &mut ConnectionSet, id: ConnectionId, event: Event, hold_jobs: bool) {
        match event {
            Event::Open => {
                self.open.insert(id);
            }
            Event::Message(Message::Text(t)) if hold_jobs => {
                self.jobs.insert(id, t.to_string());
            }
            Event::Message(m) => {
                let _ = conns.send(id, m);
            }
            Event::Error(e) => self.errors.push((id, e)),
            Event::Closed => {
                self.open.remove(&id);
                self.closed += 1;
            }
            _ => {}
        }
    }
}

#[test]
fn a_drain_lets_in_flight_work_finish_then_every_client_sees_1001() {
    let mut driver = Driver::new().expect("driver");
    let addr = driver.listen("127.0.0.1:0").expect("listen");
    let busy = [client(addr, Some("job-0")), client(addr, Some("job-1"))];
    let idle = [client(addr, None), client(addr, None)];
    let mut server = Server::default();
    let on = |s: &mut Server, c: &mut ConnectionSet, id, ev| s.on(c, id, ev, true);
    run_until(&mut driver, &mut server, on, |s, _| {
        s.open.len() == 4 && s.jobs.len() == 2
    });

    // A drain longer than the test: only the work ends it.
    driver.drain(Duration::from_secs(600), Duration::from_secs(1200));
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    assert_eq!(driver.drain_phase(), Some(DrainPhase::Draining));

    // The application tells the idle connections at once.
    let idle_ids: Vec<_> = (server.open.iter())
        .filter(|id| !server.jobs.contains_key(id))
        .copied()
        .collect();
    for id in idle_ids {
        driver
            .close(id, GOING_AWAY, GOING_AWAY_REASON)
            .expect("close");
    }
    run_until(&mut driver, &mut server, on, |s, _| s.closed == 2);
    for c in idle {
        assert_eq!(c.join().unwrap(), [going_away()]);
    }
    assert_eq!(driver.drained(), None);
    assert_eq!(driver.drain_phase(), Some(DrainPhase::Draining));

    // The work finishes: its answer, then the close.
    for (id, job) in std::mem::take(&mut server.jobs) {
        driver
            .send(id, Message::text(format!("done {job}")))
            .expect("send");
        driver
            .close(id, GOING_AWAY, GOING_AWAY_REASON)
            .expect("close");
    }
    run_until(&mut driver, &mut server, on, |_, c| c.drained().is_some());
    assert_eq!(driver.drained(), Some(Drained { closed: 4, cut: 0 }));
    let mut answers: Vec<_> = busy.into_iter().map(|c| c.join().unwrap()).collect();
    answers.sort();
    assert_eq!(
        answers,
        [
            ["done job-0".to_string(), going_away()],
            ["done job-1".to_string(), going_away()]
        ]
    );
    assert!(server.errors.is_empty(), "{:?}", server.errors);
}

#[test]
fn after_the_drain_period_the_loop_closes_with_1001() {
    let mut driver = Driver::new().expect("driver");
    let addr = driver.listen("127.0.0.1:0").expect("listen");
    let clients: Vec<_> = (0..3).map(|_| client(addr, None)).collect();
    let mut server = Server::default();
    let on = |s: &mut Server, c: &mut ConnectionSet, id, ev| s.on(c, id, ev, false);
    run_until(&mut driver, &mut server, on, |s, _| s.open.len() == 3);

    driver.drain(Duration::from_millis(50), Duration::from_secs(600));
    run_until(&mut driver, &mut server, on, |_, c| c.drained().is_some());
    assert_eq!(driver.drained(), Some(Drained { closed: 3, cut: 0 }));
    assert!(driver.is_empty());
    for c in clients {
        assert_eq!(c.join().unwrap(), [going_away()]);
    }
    assert!(server.errors.is_empty(), "{:?}", server.errors);
}

#[test]
fn a_peer_that_never_answers_the_close_is_cut_at_the_deadline() {
    let mut driver = Driver::new().expect("driver");
    let addr = driver.listen("127.0.0.1:0").expect("listen");
    let good = client(addr, None);
    // Upgrades by hand, then never reads or writes again.
    let mut silent = std::net::TcpStream::connect(addr).expect("connect");
    raw_peer::send_upgrade_request(&mut silent, addr);
    let mut server = Server::default();
    let on = |s: &mut Server, c: &mut ConnectionSet, id, ev| s.on(c, id, ev, false);
    run_until(&mut driver, &mut server, on, |s, _| s.open.len() == 2);

    // The core's close timeout (10 s) outlasts the deadline.
    driver.drain(Duration::ZERO, Duration::from_secs(2));
    run_until(&mut driver, &mut server, on, |_, c| c.drained().is_some());
    assert_eq!(driver.drained(), Some(Drained { closed: 1, cut: 1 }));
    assert_eq!(driver.drain_phase(), Some(DrainPhase::Expired));
    assert_eq!(good.join().unwrap(), [going_away()]);
    match &server.errors[..] {
        [(_, Error::Io(e))] => assert_eq!(e.kind(), ErrorKind::TimedOut),
        other => panic!("{other:?}"),
    }

    // The silent peer got the 101, the close frame, then the end.
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut all = Vec::new();
    silent.read_to_end(&mut all).expect("the server closes");
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the response head")
        + 4;
    assert!(all.starts_with(b"HTTP/1.1 101"));
    let mut close = vec![0x88, 2 + GOING_AWAY_REASON.len() as u8];
    close.extend_from_slice(&GOING_AWAY.0.to_be_bytes());
    close.extend_from_slice(GOING_AWAY_REASON.as_bytes());
    assert_eq!(all[head_end..], close);
}

/// A reconnecting client (smol) on a mio server that drains for a
/// deploy: it comes back, to the next server on the same port, after the
/// first backoff delay, though two refusals had grown the backoff before.
#[test]
fn a_reconnecting_client_comes_back_to_the_next_server_without_a_failure() {
    use tether::reconnect::{BackoffConfig, Failure, ReconnectOptions, Reconnector};

    let mut a = Driver::new().expect("driver");
    let mut refusals = 2;
    let addr = a
        .listen_with("127.0.0.1:0", Default::default(), move |_| {
            if refusals == 0 {
                return Ok(Default::default());
            }
            refusals -= 1;
            let mut busy = tether::http::Response::new("busy\n".into());
            *busy.status_mut() = tether::http::StatusCode::SERVICE_UNAVAILABLE;
            Err(Box::new(busy))
        })
        .expect("listen");
    let options = ReconnectOptions::default().with_backoff(
        BackoffConfig::default()
            .with_initial(Duration::from_millis(10))
            .with_factor(2.0)
            .with_jitter(0.0)
            .with_reset_after(Duration::from_secs(60)),
    );
    let client = std::thread::spawn(move || {
        smol::block_on(async {
            let url = format!("ws://{addr}/");
            let mut rc = Reconnector::smol(&url, Default::default(), options);
            let mut ws = rc.connect().await.expect("connects after two 503s");
            let before = rc.backoff().attempts();
            let mut end = Failure::Close(1006);
            while let Some(item) = ws.next().await {
                if let Ok(Message::Close(frame)) = item {
                    end = Failure::from_close(frame.as_ref());
                }
            }
            rc.session_ended(end).expect("1001 is retried");
            let after_drain = rc.backoff().attempts();
            let mut ws = rc.connect().await.expect("reconnects to B");
            let greeting = ws.next().await.expect("a message").expect("no error");
            (before, end, after_drain, rc.backoff().attempts(), greeting)
        })
    });
    let mut server = Server::default();
    let on = |s: &mut Server, c: &mut ConnectionSet, id, ev| s.on(c, id, ev, false);
    run_until(&mut a, &mut server, on, |s, _| s.open.len() == 1);

    // A drains; B takes the port; then A's connection is told to go.
    a.drain(Duration::from_secs(600), Duration::from_secs(1200));
    let mut b = Driver::new().expect("driver");
    assert_eq!(b.listen(addr).expect("B binds A's port"), addr);
    let id = *server.open.iter().next().expect("the connection");
    a.close(id, GOING_AWAY, GOING_AWAY_REASON).expect("close");
    run_until(&mut a, &mut server, on, |_, c| c.drained().is_some());
    assert_eq!(a.drained(), Some(Drained { closed: 1, cut: 0 }));

    let mut greeted = false;
    run_until(
        &mut b,
        &mut greeted,
        |greeted, conns, id, event| {
            if let Event::Open = event {
                conns.send(id, Message::text("this is B")).expect("send");
                *greeted = true;
            }
        },
        |greeted, _| *greeted,
    );
    // B's loop runs until the client has read the greeting.
    let give_up = Instant::now() + DEADLINE;
    while !client.is_finished() {
        assert!(Instant::now() < give_up, "no result after {DEADLINE:?}");
        b.poll(&mut Vec::new(), Some(Duration::from_millis(10)))
            .expect("poll");
    }
    let (before, end, after_drain, after, greeting) = client.join().unwrap();
    assert_eq!(before, 2, "two 503s grew the backoff");
    assert_eq!(end, Failure::Close(1001));
    assert_eq!(after_drain, 0, "a drain is not a failure");
    assert_eq!(after, 1, "one delay, the first");
    assert_eq!(greeting, Message::text("this is B"));
}
