//! The connection pool against a real loopback server (tether on smol, on
//! its own thread), on smol and on tokio. The server tells each client the
//! port it sees it on, so "the same connection" is checked from the
//! server's side, and counts the connections it accepted.
//!
//! On tokio the clock is paused: it is held while the client waits on the
//! server (`R::io`), and runs by itself, or is moved on explicitly, where
//! a pool timer is what the test waits for (see `common::TestRt`).

#![cfg(feature = "smol")]

mod common;
#[cfg(feature = "tokio")]
mod paused;

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether::pool::{Pool, PoolOptions, Pooled};
use tether::{ClientOptions, Config, Connector, Error, Message};

use common::{bounded, eventually, listener, serve, sleep, url, TestRt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the server saw: connections accepted, and how each one ended
/// (the client's close code, 1006 without one).
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    /// Echoes written to the socket.
    echoed: AtomicUsize,
    /// Connections that stopped reading ("freeze").
    frozen: AtomicUsize,
    /// "bye" closes only once this is set.
    may_close: AtomicBool,
    ended: Mutex<Vec<u16>>,
}

impl Seen {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    fn ended(&self) -> Vec<u16> {
        self.ended.lock().unwrap().clone()
    }
}

/// A server that answers "port" with the client's port, echoes other
/// text, stops reading and answering forever on "freeze", closes with
/// 1000 on "bye" (once `may_close` is set), and drops TCP without a close
/// frame on "drop".
fn server() -> (String, Arc<Seen>) {
    let (l, addr) = listener();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    serve(l, move |_, stream| {
        let seen = s.clone();
        seen.accepted.fetch_add(1, Ordering::SeqCst);
        async move {
            let port = stream.peer_addr().expect("peer").port();
            let mut ws = tether::smol::accept(stream).await.expect("accept");
            let mut code = 1006;
            while let Some(item) = ws.next().await {
                match item {
                    Ok(Message::Text(t)) => match t.as_str() {
                        "port" => {
                            let _ = ws.send(Message::text(port.to_string())).await;
                        }
                        "freeze" => {
                            seen.frozen.fetch_add(1, Ordering::SeqCst);
                            std::future::pending::<()>().await
                        }
                        "bye" => {
                            // Close once the test says so (its client has
                            // returned the connection by then), without
                            // waiting for the answer: the client is idle.
                            while !seen.may_close.load(Ordering::SeqCst) {
                                smol::Timer::after(Duration::from_millis(2)).await;
                            }
                            let bye = tether::CloseFrame {
                                code: tether::CloseCode::NORMAL,
                                reason: "bye".into(),
                            };
                            let _ = ws.send(Message::Close(Some(bye))).await;
                            code = 1000;
                            break;
                        }
                        "drop" => return,
                        _ => {
                            if ws.send(Message::Text(t)).await.is_ok() {
                                seen.echoed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    },
                    Ok(Message::Close(frame)) => code = frame.map_or(1005, |f| f.code.0),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            seen.ended.lock().unwrap().push(code);
        }
    });
    (url(addr), seen)
}

fn new_pool<R: Connector>(options: PoolOptions) -> Pool<R> {
    let client = ClientOptions::default().with_config(Config::without_keepalive());
    Pool::new(client, options)
}

fn options() -> PoolOptions {
    PoolOptions::default()
        .with_max_per_endpoint(2)
        .with_idle_timeout(Duration::from_secs(30))
        .with_health_check(Some(ms(200)))
        .with_checkout_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(5))
}

/// The port the server sees this connection on.
async fn port<R: TestRt>(ws: &mut Pooled<R>) -> u16 {
    R::io(bounded::<R, _>("the port", async {
        ws.send(Message::text("port")).await.expect("send");
        match ws.next().await {
            Some(Ok(Message::Text(t))) => t.as_str().parse().expect("a port"),
            other => panic!("expected a port, got {other:?}"),
        }
    }))
    .await
}

/// A checkout that connects or reuses, with the clock held.
async fn checkout<R: TestRt>(pool: &Pool<R>, url: &str) -> Result<Pooled<R>, Error> {
    R::io(pool.checkout(url)).await
}

/// A returned connection is reused: same port on the server, one accept.
async fn reuses_returned_connections<R: TestRt>() {
    let (url, seen) = server();
    let pool = new_pool::<R>(options());
    let mut a = checkout(&pool, &url).await.expect("checkout");
    let first = port(&mut a).await;
    assert_eq!((pool.open_count(&url), pool.idle_count(&url)), (1, 0));
    drop(a);
    assert_eq!((pool.open_count(&url), pool.idle_count(&url)), (1, 1));
    for _ in 0..3 {
        let mut b = checkout(&pool, &url).await.expect("checkout");
        assert_eq!(port(&mut b).await, first);
    }
    assert_eq!(seen.accepted(), 1);
}

/// With two open, a third checkout waits until one is returned, then gets
/// that one; with none returned it times out.
async fn max_size_is_enforced<R: TestRt>() {
    let (url, seen) = server();
    let pool = new_pool::<R>(options());
    let mut a = checkout(&pool, &url).await.expect("first");
    let mut b = checkout(&pool, &url).await.expect("second");
    let (pa, pb) = (port(&mut a).await, port(&mut b).await);
    assert_ne!(pa, pb);
    assert_eq!(pool.open_count(&url), 2);

    let returned = AtomicBool::new(false);
    let third = async {
        let mut c = pool.checkout(&url).await.expect("third, after a return");
        assert!(
            returned.load(Ordering::SeqCst),
            "third checkout did not wait"
        );
        port(&mut c).await
    };
    let give_back = async {
        sleep::<R>(ms(100)).await;
        returned.store(true, Ordering::SeqCst);
        // The third checkout health-checks it over the network next.
        let hold = R::hold();
        drop(a);
        hold
    };
    let started = R::now();
    let (pc, hold) = futures_util::future::join(third, give_back).await;
    drop(hold);
    assert_eq!(pc, pa, "the returned connection is the one handed out");
    assert_eq!(seen.accepted(), 2);
    if R::VIRTUAL {
        assert_eq!(R::now() - started, ms(100), "waited for the return");
    }

    // Both checked out again (b still is, c went back): a third times out.
    let short = new_pool::<R>(options().with_checkout_timeout(ms(100)));
    let _x = checkout(&short, &url).await.expect("x");
    let _y = checkout(&short, &url).await.expect("y");
    let started = R::now();
    match short.checkout(&url).await {
        Err(Error::Io(e)) => assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}"),
        other => panic!("expected a checkout timeout, got {:?}", other.map(|_| ())),
    }
    if R::VIRTUAL {
        let waited = R::now() - started;
        assert!(
            waited >= ms(100) && waited <= ms(101),
            "checkout timed out after {waited:?}"
        );
    }
    assert_eq!(short.open_count(&url), 2);
    drop(b);
}

/// Idle connections older than the idle timeout are closed with 1001 and
/// a checkout makes a new one; `evict_idle` does the same for all.
async fn idle_timeout_evicts<R: TestRt>() {
    let (url, seen) = server();
    let pool = new_pool::<R>(options().with_idle_timeout(ms(50)));
    let mut a = checkout(&pool, &url).await.expect("checkout");
    let first = port(&mut a).await;
    drop(a);
    if R::VIRTUAL {
        // A virtual clock shows the expiry is not early by a millisecond.
        sleep::<R>(ms(49)).await;
        assert_eq!(pool.evict_idle(), 0, "evicted before its idle timeout");
    }
    sleep::<R>(ms(120)).await;
    let mut b = checkout(&pool, &url).await.expect("checkout");
    assert_ne!(
        port(&mut b).await,
        first,
        "an expired connection was reused"
    );
    assert_eq!(seen.accepted(), 2);
    eventually::<R>("the evicted connection's close", || seen.ended() == [1001]).await;

    drop(b);
    assert_eq!(pool.idle_count(&url), 1);
    sleep::<R>(ms(120)).await;
    assert_eq!(pool.evict_idle(), 1);
    assert_eq!((pool.open_count(&url), pool.idle_count(&url)), (0, 0));
    eventually::<R>("the second close", || seen.ended() == [1001, 1001]).await;
}

/// An idle connection whose server stopped answering fails the ping
/// check; it is dropped and a fresh one is made.
async fn health_check_evicts_a_frozen_server<R: TestRt>() {
    let (url, seen) = server();
    let pool = new_pool::<R>(options());
    let mut a = checkout(&pool, &url).await.expect("checkout");
    let first = port(&mut a).await;
    R::io(a.send(Message::text("freeze"))).await.expect("send");
    drop(a);
    // A ping read in the same pass as "freeze" would still be answered:
    // check once the server has stopped reading.
    eventually::<R>("the freeze", || seen.frozen.load(Ordering::SeqCst) == 1).await;
    assert_eq!(pool.idle_count(&url), 1);
    // The check's ping is never answered: its timeout must pass. On a
    // paused clock, moved on once the checkout waits for the pong (its
    // first poll gets there), with the clock held for the connect after.
    let (b, ()) = R::io(futures_util::future::join(
        pool.checkout(&url),
        R::advance(options().health_check.expect("on")),
    ))
    .await;
    let mut b = b.expect("a fresh connection");
    assert_ne!(port(&mut b).await, first);
    assert_eq!(seen.accepted(), 2);
    assert_eq!((pool.open_count(&url), pool.idle_count(&url)), (1, 0));
}

/// An idle connection the server closed fails the check too.
async fn health_check_evicts_a_closed_connection<R: TestRt>() {
    let (url, seen) = server();
    let pool = new_pool::<R>(options());
    let mut a = checkout(&pool, &url).await.expect("checkout");
    let first = port(&mut a).await;
    // Returned before the close arrives: locally it still looks open.
    R::io(a.send(Message::text("bye"))).await.expect("send");
    drop(a);
    assert_eq!(pool.idle_count(&url), 1);
    seen.may_close.store(true, Ordering::SeqCst);
    eventually::<R>("the server's close", || seen.ended() == [1000]).await;
    let mut b = checkout(&pool, &url).await.expect("a fresh connection");
    assert_ne!(port(&mut b).await, first);
    assert_eq!(seen.accepted(), 2);
}

/// An idle connection with an unread message (an answer the last user
/// did not read) is not handed to the next user.
async fn health_check_evicts_unread_data<R: TestRt>() {
    let (url, seen) = server();
    let pool = new_pool::<R>(options());
    let mut a = checkout(&pool, &url).await.expect("checkout");
    let first = port(&mut a).await;
    R::io(a.send(Message::text("stale answer")))
        .await
        .expect("send");
    drop(a);
    // Once the server has written it, on loopback the answer sits in the
    // client's socket buffer. (One still in flight when the next checkout
    // pings cannot be told from a quiet connection: see the pool's docs.)
    eventually::<R>("the echo", || seen.echoed.load(Ordering::SeqCst) == 1).await;
    let mut b = checkout(&pool, &url).await.expect("a fresh connection");
    assert_ne!(port(&mut b).await, first);
    assert_eq!(seen.accepted(), 2);
}

/// A connection that got an error is not returned; `discard` drops one.
async fn failed_connections_are_not_returned<R: TestRt>() {
    let (url, seen) = server();
    let pool = new_pool::<R>(options());
    let mut a = checkout(&pool, &url).await.expect("checkout");
    let first = port(&mut a).await;
    R::io(a.send(Message::text("drop"))).await.expect("send");
    match R::io(a.next()).await {
        Some(Err(_)) => {}
        other => panic!("expected the abnormal end, got {other:?}"),
    }
    drop(a);
    assert_eq!((pool.open_count(&url), pool.idle_count(&url)), (0, 0));

    let mut b = checkout(&pool, &url).await.expect("checkout");
    let second = port(&mut b).await;
    assert_ne!(second, first);
    b.discard();
    assert_eq!((pool.open_count(&url), pool.idle_count(&url)), (0, 0));

    let mut c = checkout(&pool, &url).await.expect("checkout");
    assert_ne!(port(&mut c).await, second);
    assert_eq!(seen.accepted(), 3);
}

/// A checkout that fails to connect frees its place.
async fn failed_connects_free_their_place<R: TestRt>() {
    let url = url(common::closed_port());
    let pool = new_pool::<R>(options().with_max_per_endpoint(1));
    for _ in 0..3 {
        match checkout(&pool, &url).await {
            Err(Error::Io(e)) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused),
            other => panic!("expected refused, got {:?}", other.map(|_| ())),
        }
        assert_eq!(pool.open_count(&url), 0);
    }
}

on_each_runtime!(
    reuses_returned_connections,
    max_size_is_enforced,
    idle_timeout_evicts,
    health_check_evicts_a_frozen_server,
    health_check_evicts_a_closed_connection,
    health_check_evicts_unread_data,
    failed_connections_are_not_returned,
    failed_connects_free_their_place,
);

/// Checkouts from several tokio tasks at once share the pool's limit.
#[cfg(feature = "tokio")]
#[test]
fn concurrent_checkouts_from_tasks() {
    common::on_tokio(async {
        let (url, seen) = server();
        let pool = Pool::tokio(
            ClientOptions::default().with_config(Config::without_keepalive()),
            options(),
        );
        let mut tasks = Vec::new();
        for n in 0..8 {
            let (pool, url) = (pool.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut ws = pool.checkout(&url).await.expect("checkout");
                let text = format!("hello {n}");
                ws.send(Message::text(text.clone())).await.unwrap();
                assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(seen.accepted() <= 2, "{} connections", seen.accepted());
        assert!(pool.open_count(&url) <= 2);
    });
}
