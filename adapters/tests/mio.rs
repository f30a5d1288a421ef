//! What only the mio driver has: many connections and their timers in one
//! loop, the `Vec` API, pause/resume and `Event::Writable`, connection
//! failures before `Open`. The shared scenarios (`tests/loopback/`) run on
//! mio too; these add the event-loop view. Every loop is bounded by
//! [`DEADLINE`].

#![cfg(feature = "mio")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tether::mio::{ConnectionId, Driver, Event};
use tether::{ClientOptions, CloseCode, Config, Error, Message, ServerOptions};

const DEADLINE: Duration = Duration::from_secs(60);

/// Polls, handing events to `on_event` with `state`, until `done(state)`;
/// panics after [`DEADLINE`].
fn run_until<S>(
    driver: &mut Driver,
    state: &mut S,
    mut on_event: impl FnMut(&mut S, &mut tether::mio::ConnectionSet, ConnectionId, Event),
    done: impl Fn(&S) -> bool,
) {
    let give_up = Instant::now() + DEADLINE;
    while !done(state) {
        assert!(Instant::now() < give_up, "no result after {DEADLINE:?}");
        driver
            .poll_with(Some(Duration::from_millis(100)), |conns, id, event| {
                on_event(state, conns, id, event)
            })
            .expect("poll");
    }
}

/// The README's example: a server and a client in one driver.
#[test]
fn one_driver_both_sides() {
    let mut driver = Driver::new().expect("driver");
    let addr = driver.listen("127.0.0.1:0").expect("listen");
    let client = driver.connect(&format!("ws://{addr}/")).expect("connect");
    // (the echo, the client is closed, the close codes the server saw)
    let mut st = (None, false, Vec::new());
    run_until(
        &mut driver,
        &mut st,
        |(echo, closed, server_saw), conns, id, event| match event {
            Event::Open if id == client => {
                conns.send(id, Message::text("hello")).expect("send");
            }
            Event::Message(m) if id == client => {
                *echo = Some(m);
                conns.close(id, CloseCode::NORMAL, "bye").expect("close");
            }
            Event::Message(m) => conns.send(id, m).expect("echo"),
            Event::Closed if id == client => *closed = true,
            Event::Close(frame) if id != client => server_saw.push(frame.map(|f| f.code)),
            _ => {}
        },
        |st| st.1,
    );
    let (echo, _, server_saw) = st;
    assert_eq!(echo, Some(Message::text("hello")));
    assert_eq!(server_saw, [Some(CloseCode::NORMAL)]);
}

/// Hundreds of connections in one loop, each with its own keepalive
/// interval, so the timer heap holds many deadlines that move all the
/// time; every client exchanges messages, sees pings, and closes.
#[test]
fn many_connections_and_timers_in_one_loop() {
    const CLIENTS: usize = 300;
    const MESSAGES: usize = 5;
    let mut driver = Driver::new().expect("driver");
    let server_options = ServerOptions::default()
        .with_config(Config::default().with_ping_interval(Some(Duration::from_millis(30))));
    let addr = driver
        .listen_with("127.0.0.1:0", server_options, |_| Ok(Default::default()))
        .expect("listen");
    let mut clients = HashMap::new();
    for i in 0..CLIENTS {
        let options = ClientOptions::default().with_config(
            Config::default()
                .with_ping_interval(Some(Duration::from_millis(20 + (i % 7) as u64 * 10))),
        );
        let id = driver
            .connect_with(&format!("ws://{addr}/{i}"), options)
            .expect("connect");
        clients.insert(id, (0usize, 0usize)); // (echoes, pings seen)
    }
    let started = Instant::now();
    // (clients, clients closed, server sides closed)
    let mut st = (clients, 0, 0);
    run_until(
        &mut driver,
        &mut st,
        |(clients, closed, server_closed), conns, id, event| {
            let Some((echoes, pings)) = clients.get_mut(&id) else {
                // The server side: echo.
                match event {
                    Event::Message(m) => conns.send(id, m).expect("echo"),
                    Event::Closed => *server_closed += 1,
                    Event::Error(e) => panic!("server {id}: {e}"),
                    _ => {}
                }
                return;
            };
            match event {
                Event::Open => {
                    for k in 0..MESSAGES {
                        conns
                            .send(id, Message::text(format!("{id} {k}")))
                            .expect("send");
                    }
                }
                Event::Message(Message::Text(t)) => {
                    assert_eq!(t.as_str(), format!("{id} {echoes}"), "echo order");
                    *echoes += 1;
                }
                Event::Ping(_) => {
                    *pings += 1;
                    // Keep the connection until it has seen a ping or two.
                }
                Event::Closed => *closed += 1,
                Event::Error(e) => panic!("client {id}: {e}"),
                _ => {}
            }
            if *echoes == MESSAGES && *pings >= 2 {
                *echoes += 1; // close once
                conns.close(id, CloseCode::NORMAL, "").expect("close");
            }
        },
        |st| st.1 == CLIENTS && st.2 == CLIENTS,
    );
    assert!(driver.is_empty(), "{} connections left", driver.len());
    eprintln!("{CLIENTS} connections in {:?}", started.elapsed());
}

/// `pause` stops a connection's events and, once the core's queue is
/// full, its reads: the sender's queue then grows until `is_writable`
/// says no; after `resume` everything arrives in order, and the sender
/// gets `Event::Writable`. Uses the `Vec` API.
#[test]
fn pause_resume_and_writable() {
    const COUNT: usize = 200;
    const SIZE: usize = 64 << 10;
    let mut driver = Driver::new().expect("driver");
    let addr = driver.listen("127.0.0.1:0").expect("listen");
    #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
    let mut options = ClientOptions::default();
    #[cfg(feature = "deflate")]
    options.deflate.clear();
    let client = driver
        .connect_with(&format!("ws://{addr}/"), options)
        .expect("connect");
    let mut events = Vec::new();
    let give_up = Instant::now() + DEADLINE;
    let poll = |driver: &mut Driver, events: &mut Vec<(ConnectionId, Event)>| {
        assert!(Instant::now() < give_up, "no result after {DEADLINE:?}");
        driver
            .poll(events, Some(Duration::from_millis(50)))
            .expect("poll");
    };

    // Both sides open; the server pauses its side at once.
    let mut server = None;
    let mut client_open = false;
    while server.is_none() || !client_open {
        poll(&mut driver, &mut events);
        for (id, ev) in events.drain(..) {
            match ev {
                Event::Open if id == client => client_open = true,
                Event::Open => {
                    driver.pause(id);
                    server = Some(id);
                }
                other => panic!("{id}: {other:?}"),
            }
        }
    }
    let server = server.expect("server side");

    // Send until the client may not queue more.
    let mut sent = 0;
    let mut blocked_at = None;
    while sent < COUNT {
        if !driver.is_writable(client) {
            blocked_at = Some(sent);
            break;
        }
        let payload = vec![sent as u8; SIZE];
        driver.send(client, Message::binary(payload)).expect("send");
        sent += 1;
        poll(&mut driver, &mut events);
        assert!(
            events.is_empty(),
            "no event while the server is paused: {:?}",
            events.iter().map(|(id, _)| id).collect::<Vec<_>>()
        );
    }
    let blocked_at = blocked_at.expect("the sender must hit its high-water mark");
    let queued = driver.connection(client).expect("open").buffered_amount();
    assert!(
        queued > Config::default().write_high_water,
        "{queued} bytes queued"
    );

    // Resume: every message arrives, in order; the client hears Writable.
    driver.resume(server);
    let (mut received, mut writable) = (0, false);
    while received < sent || !writable {
        poll(&mut driver, &mut events);
        for (id, ev) in events.drain(..) {
            match ev {
                Event::Message(Message::Binary(b)) if id == server => {
                    assert_eq!((b.len(), b[0]), (SIZE, received as u8));
                    received += 1;
                }
                Event::Writable if id == client => writable = true,
                other => panic!("{id}: {other:?}"),
            }
        }
    }
    assert!(driver.is_writable(client));
    eprintln!("blocked after {blocked_at} messages of {SIZE} bytes");
}

/// A connection that cannot be made: `Error` and `Closed`, no `Open`.
#[test]
fn failed_connect_reports_error_then_closed() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = unused.local_addr().expect("addr");
    drop(unused);
    let mut driver = Driver::new().expect("driver");
    let id = driver.connect(&format!("ws://{addr}/")).expect("connect");
    assert!(matches!(
        driver.send(id, Message::text("early")),
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotConnected
    ));
    let mut seen = Vec::new();
    run_until(
        &mut driver,
        &mut seen,
        |seen, _, at, event| {
            assert_eq!(at, id);
            seen.push(event);
        },
        |seen| matches!(seen.last(), Some(Event::Closed)),
    );
    assert!(
        matches!(&seen[..], [Event::Error(Error::Io(e)), Event::Closed] if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{seen:?}"
    );
    assert!(driver.is_empty());
    assert!(matches!(
        driver.send(id, Message::text("late")),
        Err(Error::WebSocket(tether::core::Error::Closed))
    ));
}
