//! Echoes over TLS, of every frame-length edge up to 1 MiB, each closed
//! with 1000: mio with mio, and mio against smol and tokio.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tether::mio::Driver;
use tether::tls::rustls::{ClientConfig, ServerConfig};
use tether::{CloseCode, Error, Message, Runtime, Transport, WebSocket};

use crate::certs::Ca;
use crate::run::*;

/// A CA, a server configuration for 127.0.0.1 and localhost, and a
/// client configuration trusting the CA.
fn pki() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let ca = Ca::new("mio-tls echo CA");
    let id = ca.server();
    let server = tether::tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes())
        .expect("server config");
    let client = tether::tls::client_config(ca.cert_pem.as_bytes()).expect("client config");
    (server, client)
}

/// `events` is an open connection's whole life without an error: ALPN
/// `http/1.1`, `count` messages, the peer's 1000, the end.
fn clean(events: &[Seen], count: usize) {
    assert!(errors(events).is_empty(), "{events:?}");
    match &events[0] {
        Seen::Open { alpn, .. } => assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..])),
        other => panic!("first event: {other:?}"),
    }
    let messages = events
        .iter()
        .filter(|e| matches!(e, Seen::Message(_)))
        .count();
    assert_eq!(messages, count);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Seen::Close(Some(CloseCode::NORMAL)))),
        "{events:?}"
    );
    assert!(matches!(events.last(), Some(Seen::Closed)), "{events:?}");
}

/// Client and server in one loop; the server sees the client's close
/// with 1000 and the client the answer, neither an error.
#[test]
fn mio_client_and_server_in_one_loop() {
    let (server_tls, client_tls) = pki();
    let mut driver = Driver::new().expect("driver");
    let addr = driver
        .listen_tls_with("127.0.0.1:0", server_tls, server_options(), |_| {
            Ok(Default::default())
        })
        .expect("listen");
    let url = format!("wss://{addr}/echo");
    let client = driver
        .connect_with(&url, client_options(client_tls))
        .expect("connect");
    let messages = messages();
    let mut log = echo_session(&mut driver, client, &messages, 1);
    let server = server_side(&mut log, client);
    clean(&log[&client], messages.len());
    clean(&server, messages.len());
    // An IP address is no server name: no SNI.
    assert!(matches!(server[0], Seen::Open { sni: None, .. }));
    assert!(driver.is_empty(), "{} connections left", driver.len());
}

/// The URL's host name is the SNI the server sees (and the name the
/// certificate is checked against).
#[test]
fn the_url_host_is_the_server_name() {
    let (server_tls, client_tls) = pki();
    let mut driver = Driver::new().expect("driver");
    let addr = driver
        .listen_tls("localhost:0", server_tls)
        .expect("listen");
    let url = format!("wss://localhost:{}/", addr.port());
    let client = driver
        .connect_with(&url, client_options(client_tls))
        .expect("connect");
    let mut log = echo_session(&mut driver, client, &[Message::text("by name")], 1);
    let server = server_side(&mut log, client);
    match &server[0] {
        Seen::Open { sni, .. } => assert_eq!(sni.as_deref(), Some("localhost")),
        other => panic!("{other:?}"),
    }
    clean(&log[&client], 1);
}

/// mio's client against smol's `accept_tls` (futures-rustls).
#[test]
fn mio_client_against_a_smol_server() {
    let (server_tls, client_tls) = pki();
    let server = SmolServer::start(server_tls);
    let mut driver = Driver::new().expect("driver");
    let url = format!("wss://{}/", server.addr);
    let client = driver
        .connect_with(&url, client_options(client_tls))
        .expect("connect");
    let messages = messages();
    let log = echo_session(&mut driver, client, &messages, 0);
    clean(&log[&client], messages.len());
    assert_eq!(server.next().expect("smol server"), messages.len());
}

/// smol's and tokio's `wss://` clients against the mio server. Their
/// `close` fails if the server ends TCP without TLS's close_notify.
#[test]
fn smol_and_tokio_clients_against_a_mio_server() {
    let (server_tls, client_tls) = pki();
    let server = MioServer::start(server_tls, server_options());
    let url = format!("wss://{}/", server.addr);
    let messages = messages();

    smol::block_on(async {
        let ws = tether::smol::connect_with(&url, client_options(client_tls.clone())).await?;
        assert!(ws.get_ref().0.is_tls());
        round_trips(ws, &messages).await
    })
    .expect("smol client");
    clean(&server.next(), messages.len());

    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(async {
            let ws = tether::tokio::connect_with(&url, client_options(client_tls)).await?;
            round_trips(ws, &messages).await
        })
        .expect("tokio client");
    clean(&server.next(), messages.len());
}

async fn round_trips<S: Transport, R: Runtime>(
    mut ws: WebSocket<S, R>,
    messages: &[Message],
) -> Result<(), Error> {
    for (i, m) in messages.iter().enumerate() {
        ws.send(m.clone()).await?;
        let back = loop {
            if let m @ (Message::Text(_) | Message::Binary(_)) = ws.next().await.expect("open")? {
                break m;
            }
        };
        assert!(back == *m, "echo {i} differs ({} bytes sent)", m.len());
    }
    ws.close(CloseCode::NORMAL, "done").await
}
