//! Broadcast with `PreparedMessage` over real sockets: one publisher, N
//! clients, every client receives every message, the same bytes in the
//! same order. Half the clients negotiate permessage-deflate (the
//! publisher then compresses the larger messages per connection) and half
//! do not (the shared frame is written as it is). On smol, tokio (the
//! unsplit `WebSocket` and the `WsSink` half) and the mio event loop.

#![cfg(any(feature = "smol", feature = "tokio", feature = "mio"))]

use std::thread;

use tether::{ClientOptions, Message, PreparedMessage, ServerOptions};

#[cfg(any(feature = "smol", feature = "tokio"))]
mod runtimes;

/// Clients per test.
const CLIENTS: usize = 6;
/// Messages broadcast.
const MESSAGES: usize = 300;

/// Message `i`: text or binary, sizes from a few bytes to above the
/// 64 KiB length form and the deflate threshold, content unique to `i`.
fn message(i: usize) -> Message {
    let len = [5, 200, 3000, 70_000][i % 4];
    let body: String = format!("message {i}: ")
        .chars()
        .chain(std::iter::repeat('x'))
        .take(len)
        .collect();
    if i % 3 == 0 {
        Message::binary(body.into_bytes())
    } else {
        Message::text(body)
    }
}

/// Client `k`'s options: deflate offered by every other client.
fn client_options(k: usize) -> ClientOptions {
    #[allow(unused_mut)]
    let mut options = ClientOptions::default();
    #[cfg(feature = "deflate")]
    if k % 2 == 1 {
        options.deflate.clear();
    }
    let _ = k;
    options
}

/// Starts the clients, each on its own thread, returning what each
/// received; `connect_and_read(url, options)` connects and reads
/// `MESSAGES` messages.
fn clients<F>(url: &str, connect_and_read: F) -> Vec<thread::JoinHandle<Vec<Message>>>
where
    F: Fn(String, ClientOptions) -> Vec<Message> + Send + Clone + 'static,
{
    (0..CLIENTS)
        .map(|k| {
            let (url, f) = (url.to_owned(), connect_and_read.clone());
            thread::spawn(move || f(url, client_options(k)))
        })
        .collect()
}

fn check(received: Vec<thread::JoinHandle<Vec<Message>>>) {
    let expected: Vec<Message> = (0..MESSAGES).map(message).collect();
    for (k, h) in received.into_iter().enumerate() {
        let got = h.join().expect("client thread");
        assert_eq!(got.len(), MESSAGES, "client {k}");
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(g == e, "client {k}, message {i} differs");
        }
    }
}

#[cfg(any(feature = "smol", feature = "tokio"))]
mod on_runtimes {
    use std::net::TcpListener;

    use futures_util::{SinkExt, StreamExt};

    use super::runtimes::{Rt, Ws};
    use super::*;

    /// The publisher accepts every client, then broadcasts: each message
    /// is prepared once and fed to every connection, flushed once per
    /// round (`feed_prepared` + `flush`), every fourth sent with
    /// `send_prepared`; with `split`, through the `WsSink` halves.
    fn broadcast<T: Rt>(split: bool) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("ws://{}/", listener.local_addr().expect("addr"));
        let received = clients(&url, |url, options| {
            T::block_on(async move {
                let mut ws: Ws<T> = T::connect(&url, options).await;
                let mut got = Vec::new();
                while got.len() < MESSAGES {
                    match ws.next().await {
                        Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => got.push(m),
                        Some(Ok(_)) => {}
                        other => panic!("client ended early: {other:?}"),
                    }
                }
                got
            })
        });
        T::block_on(async move {
            let mut conns = Vec::new();
            for _ in 0..CLIENTS {
                let (tcp, _) = listener.accept().expect("accept");
                conns.push(T::accept(tcp, ServerOptions::default()).await);
            }
            let deflated = conns
                .iter()
                .filter(|ws| ws.connection().deflate_negotiated())
                .count();
            let offered = if cfg!(feature = "deflate") {
                CLIENTS / 2
            } else {
                0
            };
            assert_eq!(deflated, offered, "every other client offers deflate");
            if split {
                let mut sinks: Vec<_> = conns.into_iter().map(|ws| ws.split()).collect();
                for i in 0..MESSAGES {
                    let p = PreparedMessage::new(message(i)).expect("data message");
                    for (tx, _) in &mut sinks {
                        if i % 4 == 0 {
                            tx.send_prepared(&p).await.expect("send");
                        } else {
                            tx.feed_prepared(&p).await.expect("feed");
                        }
                    }
                    for (tx, _) in &mut sinks {
                        tx.flush().await.expect("flush");
                    }
                }
                for (tx, _) in &mut sinks {
                    tx.close(tether::CloseCode::NORMAL, "done").await.ok();
                }
            } else {
                for i in 0..MESSAGES {
                    let p = PreparedMessage::new(message(i)).expect("data message");
                    for ws in &mut conns {
                        if i % 4 == 0 {
                            ws.send_prepared(&p).await.expect("send");
                        } else {
                            ws.feed_prepared(&p).await.expect("feed");
                        }
                    }
                    for ws in &mut conns {
                        ws.flush().await.expect("flush");
                    }
                }
                for ws in &mut conns {
                    ws.close(tether::CloseCode::NORMAL, "done").await.ok();
                }
            }
        });
        check(received);
    }

    #[cfg(feature = "smol")]
    #[test]
    fn broadcast_on_smol() {
        broadcast::<runtimes::SmolRt>(false);
    }

    #[cfg(feature = "smol")]
    #[test]
    fn broadcast_on_smol_split() {
        broadcast::<runtimes::SmolRt>(true);
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn broadcast_on_tokio() {
        broadcast::<runtimes::TokioRt>(false);
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn broadcast_on_tokio_split() {
        broadcast::<runtimes::TokioRt>(true);
    }
}

/// The mio loop: the clients connect to a `Driver`'s listener; once all
/// are open the publisher prepares each message once and queues it on
/// every connection, pausing a round while any is not writable.
#[cfg(feature = "mio")]
#[test]
fn broadcast_on_mio() {
    use std::time::{Duration, Instant};
    use tether::mio::{Driver, Event};

    let mut driver = Driver::new().expect("driver");
    let addr = driver
        .listen_with("127.0.0.1:0", ServerOptions::default(), |_| {
            Ok(Default::default())
        })
        .expect("listen");
    let url = format!("ws://{addr}/");
    let received = clients(&url, |url, options| {
        let mut d = Driver::new().expect("client driver");
        let id = d.connect_with(&url, options).expect("connect");
        let mut got = Vec::new();
        let give_up = Instant::now() + Duration::from_secs(120);
        while got.len() < MESSAGES {
            assert!(Instant::now() < give_up, "client timed out");
            d.poll_with(Some(Duration::from_millis(100)), |_, from, ev| {
                if let (true, Event::Message(m)) = (from == id, ev) {
                    got.push(m);
                }
            })
            .expect("poll");
        }
        got
    });
    let mut open = Vec::new();
    let mut sent = 0;
    let give_up = Instant::now() + Duration::from_secs(120);
    while sent < MESSAGES || !driver.is_empty() {
        assert!(Instant::now() < give_up, "publisher timed out");
        driver
            .poll_with(Some(Duration::from_millis(50)), |_, id, ev| match ev {
                Event::Open => open.push(id),
                Event::Closed => open.retain(|o| *o != id),
                _ => {}
            })
            .expect("poll");
        if open.len() < CLIENTS && sent == 0 {
            continue;
        }
        if sent == MESSAGES {
            // Everything queued: close each once the queue is written.
            for &id in &open {
                if driver
                    .connection(id)
                    .is_some_and(|c| c.state() == tether::State::Open)
                    && driver
                        .connection(id)
                        .is_some_and(|c| c.buffered_amount() == 0)
                {
                    driver.close(id, tether::CloseCode::NORMAL, "done").ok();
                }
            }
            continue;
        }
        if open.iter().all(|&id| driver.is_writable(id)) {
            let p = PreparedMessage::new(message(sent)).expect("data message");
            for &id in &open {
                driver.send_prepared(id, &p).expect("send");
            }
            sent += 1;
        }
    }
    check(received);
}
