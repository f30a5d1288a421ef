//! tether's RFC 8441 client (`tether::http2`) against the axum
//! application: 100 WebSockets as streams of one TCP connection, each
//! echoing, one closed while the others go on; and the fallback to
//! HTTP/1.1 when the server does not offer extended CONNECT or HTTP/2.

use futures_util::{SinkExt, StreamExt};
use tether::core::handshake::Mode;
use tether::{ClientOptions, CloseCode, Message};

use crate::app::{tls_config, Listen, Server};
use crate::certs::Ca;
use crate::within;

fn options(ca: &Ca) -> ClientOptions {
    ClientOptions::default()
        .with_protocols(vec!["echo.v1".into()])
        .with_tls(tether::tls::client_config(ca.cert_pem.as_bytes()).unwrap())
}

async fn echo_once(ws: &mut tether::http2::WebSocket, text: String) {
    ws.send(Message::text(text.clone())).await.unwrap();
    let back = within("an echo", ws.next()).await.expect("open").unwrap();
    assert_eq!(back, Message::text(text));
}

async fn close(ws: &mut tether::http2::WebSocket) {
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    within("the close", async {
        while let Some(m) = ws.next().await {
            assert!(matches!(m, Ok(Message::Close(_))), "{m:?}");
        }
    })
    .await;
}

/// 100 WebSockets over one TCP connection, all open at once, each
/// echoing its own messages (a 1 MiB one among them, more than a
/// stream's window); then one is closed with 1000 and the other 99 go on
/// echoing; the server saw 100 extended CONNECTs over HTTP/2 and one TCP
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_websockets_over_one_http2_connection() {
    let ca = Ca::new("tether axum test CA");
    let server = Server::start_tls(&ca, &[b"h2", b"http/1.1"]).await;
    let port = server.addr.port();
    let client = tether::http2::connect(&format!("wss://localhost:{port}"), options(&ca))
        .await
        .unwrap();
    assert!(client.is_http2());

    let mut sockets = Vec::new();
    for _ in 0..100 {
        let ws = client.open("/echo").await.unwrap();
        assert!(ws.get_ref().is_http2_stream());
        assert_eq!(ws.protocol(), Some("echo.v1"));
        sockets.push(ws);
    }
    let big = "x".repeat(1 << 20);
    let round = |sockets: Vec<tether::http2::WebSocket>, tag: &'static str| {
        let big = big.clone();
        async move {
            let tasks: Vec<_> = sockets
                .into_iter()
                .enumerate()
                .map(|(i, mut ws)| {
                    let big = big.clone();
                    tokio::spawn(async move {
                        echo_once(&mut ws, format!("{tag} {i}")).await;
                        if i % 25 == 0 {
                            echo_once(&mut ws, big).await;
                        }
                        echo_once(&mut ws, format!("{tag} {i} again")).await;
                        ws
                    })
                })
                .collect();
            let mut back = Vec::new();
            for t in tasks {
                back.push(t.await.unwrap());
            }
            back
        }
    };
    let mut sockets = round(sockets, "first").await;

    let mut closed = sockets.remove(17);
    close(&mut closed).await;
    let seen = server.seen(1).await;
    assert_eq!(seen[0].end, "closed Some(1000)");
    assert_eq!(seen[0].mode, Mode::ExtendedConnect);

    let sockets = round(sockets, "after").await;
    assert_eq!(sockets.len(), 99);
    for mut ws in sockets {
        close(&mut ws).await;
    }
    let seen = server.seen(99).await;
    for s in &seen {
        assert_eq!(
            (s.mode, s.version),
            (Mode::ExtendedConnect, http::Version::HTTP_2)
        );
        assert_eq!(s.end, "closed Some(1000)");
    }
    assert_eq!(
        server.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one TCP connection for all of them"
    );
}

/// A server whose SETTINGS lack ENABLE_CONNECT_PROTOCOL, and one that
/// does not speak HTTP/2 at all: the client falls back to HTTP/1.1, one
/// connection per WebSocket, and the server sees upgrades.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_http1_without_extended_connect() {
    let ca = Ca::new("tether axum test CA");
    let identity = ca.server_for(&["localhost"]);
    let no_setting = Server::start_with(
        Listen::Tls(tls_config(&identity, &[b"h2", b"http/1.1"])),
        false,
    )
    .await;
    let no_h2 = Server::start(Listen::Tls(tls_config(&identity, &[b"http/1.1"]))).await;
    for server in [&no_setting, &no_h2] {
        let port = server.addr.port();
        let client = tether::http2::connect(&format!("wss://localhost:{port}"), options(&ca))
            .await
            .unwrap();
        assert!(!client.is_http2());
        let mut a = client.open("/echo").await.unwrap();
        let mut b = client.open("/echo").await.unwrap();
        assert!(!a.get_ref().is_http2_stream());
        echo_once(&mut a, "a".into()).await;
        echo_once(&mut b, "b".into()).await;
        close(&mut a).await;
        close(&mut b).await;
        let seen = server.seen(2).await;
        for s in &seen {
            assert_eq!((s.mode, s.version), (Mode::Upgrade, http::Version::HTTP_11));
            assert_eq!(s.end, "closed Some(1000)");
        }
        // The probe connection, then one per WebSocket.
        assert_eq!(
            server.connections.load(std::sync::atomic::Ordering::SeqCst),
            3
        );
    }
}

/// A refusal on a stream is the client's `Rejected` with the status, and
/// the connection serves the next WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_leaves_the_connection_usable() {
    let ca = Ca::new("tether axum test CA");
    let server = Server::start_tls(&ca, &[b"h2"]).await;
    let port = server.addr.port();
    let client = tether::http2::connect(&format!("wss://localhost:{port}"), options(&ca))
        .await
        .unwrap();
    let Err(err) = client.open("/private").await else {
        panic!("the route without a session accepted");
    };
    assert_eq!(err.http_status(), Some(401), "{err}");
    let mut ws = client.open("/echo").await.unwrap();
    echo_once(&mut ws, "still here".into()).await;
    close(&mut ws).await;
    assert_eq!(
        server.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}
