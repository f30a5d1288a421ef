//! The handshake deadline covers TLS: a peer that stalls mid-TLS is
//! dropped when the WebSocket handshake's time is up, on either side.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use tether::core::handshake::HandshakeError;
use tether::mio::Driver;
use tether::tls::rustls::pki_types::ServerName;
use tether::tls::rustls::ClientConnection;
use tether::{HandshakeLimits, Message};

use crate::certs::Ca;
use crate::run::*;

fn short() -> HandshakeLimits {
    HandshakeLimits::default().with_timeout(Duration::from_millis(300))
}

fn timed_out(events: &[Seen]) -> bool {
    matches!(
        errors(events)[..],
        [e] if matches!(e.handshake_error(), Some(HandshakeError::TimedOut))
    )
}

/// The first half of a real ClientHello.
fn half_a_client_hello(ca: &Ca) -> Vec<u8> {
    let config = tether::tls::client_config(ca.cert_pem.as_bytes()).expect("client config");
    let name = ServerName::try_from("localhost").expect("name");
    let mut conn = ClientConnection::new(config, name).expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("hello");
    hello.truncate(hello.len() / 2);
    hello
}

/// A client that says nothing, and one that stops halfway through its
/// ClientHello: each gets the server's `TimedOut`, then its socket is
/// closed (the raw client reads to the end, and fails if it never comes).
#[test]
fn the_server_drops_a_client_stalled_in_tls() {
    let ca = Ca::new("CA");
    let id = ca.server();
    let tls = tether::tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes())
        .expect("server config");
    let mut driver = Driver::new().expect("driver");
    let options = server_options().with_limits(short());
    let addr = driver
        .listen_tls_with("127.0.0.1:0", tls, options, |_| Ok(Default::default()))
        .expect("listen");
    for bytes in [Vec::new(), half_a_client_hello(&ca)] {
        let sent = bytes.len();
        let events = raw_client(&mut driver, addr, bytes);
        assert!(timed_out(&events), "{sent} bytes sent: {events:?}");
        assert!(matches!(events.last(), Some(Seen::Closed)));
    }
    assert!(driver.is_empty());
}

/// A server that accepts and never answers the ClientHello: the client's
/// own deadline ends it.
#[test]
fn the_client_gives_up_on_a_server_stalled_in_tls() {
    let ca = Ca::new("CA");
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("wss://{}/", silent.local_addr().expect("address"));
    let mut driver = Driver::new().expect("driver");
    let client_tls: Arc<_> =
        tether::tls::client_config(ca.cert_pem.as_bytes()).expect("client config");
    let options = client_options(client_tls).with_limits(short());
    let client = driver.connect_with(&url, options).expect("connect");
    let log = echo_session(&mut driver, client, &[Message::text("never")], 0);
    let events = &log[&client];
    assert!(timed_out(events), "{events:?}");
    assert!(matches!(events.last(), Some(Seen::Closed)));
    drop(silent);
}

/// A client that opens and then stops reading while the server sends it
/// more than the socket buffers hold: the server's close times out (its
/// close timeout), and what rustls still holds then is given up by the
/// same bound, so the connection ends instead of waiting for a reader
/// that never comes.
#[test]
fn a_client_that_stops_reading_cannot_hold_a_closing_server() {
    let ca = Ca::new("CA");
    let id = ca.server();
    let tls = tether::tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes())
        .expect("server config");
    let mut driver = Driver::new().expect("driver");
    // Fixed small buffers: once full they stay full (no autotuning).
    let small = tether::SocketOptions::default()
        .with_send_buffer_size(Some(16 << 10))
        .with_recv_buffer_size(Some(16 << 10));
    driver.set_socket_options(small.clone());
    let config = tether::Config::without_keepalive().with_close_timeout(Duration::from_millis(300));
    let addr = driver
        .listen_tls_with(
            "127.0.0.1:0",
            tls,
            server_options().with_config(config),
            |_| Ok(Default::default()),
        )
        .expect("listen");
    let client_tls = tether::tls::client_config(ca.cert_pem.as_bytes()).expect("client config");
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    let url = format!("wss://{addr}/");
    let client = std::thread::spawn(move || {
        smol::block_on(async {
            let options = client_options(client_tls).with_socket(small);
            let ws = tether::smol::connect_with(&url, options)
                .await
                .expect("connect");
            // Holds the connection without reading until the server is done.
            let _ = done.recv_timeout(DEADLINE);
            drop(ws);
        })
    });
    let mut events = Vec::new();
    run_until(
        &mut driver,
        &mut events,
        |events, conns, id, event| {
            if let tether::mio::Event::Open = event {
                conns
                    .send(id, Message::binary(vec![7u8; 32 << 20]))
                    .expect("send");
                conns
                    .close(id, tether::CloseCode::NORMAL, "bye")
                    .expect("close");
            }
            events.push(matches!(event, tether::mio::Event::Closed));
        },
        |events| events.last() == Some(&true),
    );
    let _ = done_tx.send(());
    client.join().expect("client");
    assert!(driver.is_empty());
}
