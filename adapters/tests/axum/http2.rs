//! The axum route over HTTP/2 with TLS (ALPN `h2`): hyper's HTTP/2
//! client opens WebSockets as extended CONNECT streams (RFC 8441) next to
//! plain requests on the same connection; the frames on each stream are
//! run by a tether client connection.

use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tether::core::handshake::Mode;
use tether::core::Connection;
use tether::tls::rustls;
use tether::{Bytes, Config, Role, Runtime};

use crate::app::Server;
use crate::certs::Ca;
use crate::http1::echo_all;
use crate::within;

type Send = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// An HTTP/2 connection over TLS to `server`, trusting `ca`.
async fn h2_connect(server: &Server, ca: &Ca) -> Send {
    let mut config = (*tether::tls::client_config(ca.cert_pem.as_bytes()).unwrap()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

/// A plain GET on the HTTP/2 connection: its status and body.
async fn get(send: &mut Send, port: u16, path: &str) -> (http::StatusCode, String) {
    let request = http::Request::get(format!("https://localhost:{port}{path}"))
        .body(Empty::new())
        .unwrap();
    let response = within("a GET", send.send_request(request)).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// An extended CONNECT for `/echo` with `headers`.
fn connect_request(port: u16, headers: &[(&str, &str)]) -> http::Request<Empty<Bytes>> {
    let mut request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("https://localhost:{port}/echo"))
        .version(http::Version::HTTP_2);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Empty::new()).unwrap();
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    request
}

/// Over one HTTP/2 connection: plain GETs answered as HTTP/2, then two
/// WebSockets opened as extended CONNECT streams (200, the subprotocol
/// chosen, no Sec-WebSocket-Accept), both echoing every message at once
/// while a GET goes through between them; the server saw each as an
/// extended CONNECT over HTTP/2 that ended with the client's 1000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_as_http2_streams_next_to_plain_requests() {
    let ca = Ca::new("tether axum test CA");
    let server = Server::start_tls(&ca, &[b"h2", b"http/1.1"]).await;
    let port = server.addr.port();
    let mut send = h2_connect(&server, &ca).await;
    // The first response comes after the server's SETTINGS, so from here
    // on the client knows ENABLE_CONNECT_PROTOCOL.
    assert_eq!(
        get(&mut send, port, "/").await,
        (http::StatusCode::OK, "hello over HTTP/2.0".into())
    );
    assert_eq!(get(&mut send, port, "/echo").await.1, "plain HTTP/2.0");

    let mut sockets = Vec::new();
    for _ in 0..2 {
        let request = connect_request(
            port,
            &[
                ("sec-websocket-version", "13"),
                ("sec-websocket-protocol", "echo.v1, echo.v2"),
            ],
        );
        let response = within("the CONNECT", send.send_request(request))
            .await
            .unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        let h = response.headers();
        assert_eq!(h["sec-websocket-protocol"], "echo.v2");
        assert!(!h.contains_key("sec-websocket-accept"));
        let stream = within("the stream", hyper::upgrade::on(response))
            .await
            .unwrap();
        let conn = Connection::new(
            Role::Client,
            Config::default().with_max_message_size(4 << 20),
            tether::os_rng(),
            tether::tokio::Tokio::now(),
        );
        sockets.push(tether::WebSocket::<_, tether::tokio::Tokio>::from_parts(
            tether::tokio::TokioIo(TokioIo::new(stream)),
            conn,
            Some("echo.v2".into()),
        ));
    }
    let mut b = sockets.pop().unwrap();
    let mut a = sockets.pop().unwrap();
    let (na, nb, plain) = tokio::join!(echo_all(&mut a), echo_all(&mut b), async {
        get(&mut send.clone(), port, "/").await
    });
    assert_eq!(plain.1, "hello over HTTP/2.0");

    let seen = server.seen(2).await;
    for s in &seen {
        assert_eq!(s.mode, Mode::ExtendedConnect);
        assert_eq!(s.version, http::Version::HTTP_2);
        assert_eq!(s.protocol.as_deref(), Some("echo.v2"));
        assert_eq!(s.end, "closed Some(1000)");
    }
    assert_eq!(seen[0].echoed + seen[1].echoed, na + nb);
}

/// A CONNECT that fails the RFC 8441 checks gets the core's refusal on
/// its stream, and the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_extended_connect_is_refused_on_its_stream() {
    let ca = Ca::new("tether axum test CA");
    let server = Server::start_tls(&ca, &[b"h2"]).await;
    let port = server.addr.port();
    let mut send = h2_connect(&server, &ca).await;
    get(&mut send, port, "/").await;
    let response = send
        .send_request(connect_request(port, &[("sec-websocket-version", "12")]))
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::UPGRADE_REQUIRED);
    assert_eq!(response.headers()["sec-websocket-version"], "13");
    assert_eq!(get(&mut send, port, "/").await.1, "hello over HTTP/2.0");
    assert!(server.log.take().is_empty());
}
