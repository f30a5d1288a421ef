//! The axum route over HTTP/1.1, plain and TLS: tether clients upgrade
//! through `hyper::upgrade::on`, plain requests get plain answers on the
//! same port and route, and refusals are the core's.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tether::core::handshake::Mode;
use tether::{ClientOptions, CloseCode, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::{Listen, Server};
use crate::certs::Ca;
use crate::{messages, within};

/// Sends `request` on a fresh connection; returns the response head and
/// body (read by Content-Length).
pub async fn raw(addr: SocketAddr, request: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    within("a response", async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before a whole response: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let head = text[..end].to_owned();
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]);
                    return (head, body.into_owned());
                }
            }
        }
    })
    .await
}

/// The value of `name` in a response head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Exchanges every message of [`messages`] with the echo route, then
/// closes with 1000; returns how many came back.
pub async fn echo_all<S: tether::Transport, R: tether::Runtime>(
    ws: &mut tether::WebSocket<S, R>,
) -> usize {
    let sent = messages();
    for m in &sent {
        ws.send(m.clone()).await.unwrap();
        let back = within("an echo", ws.next()).await.expect("open").unwrap();
        assert_eq!(&back, m);
    }
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    let rest = within("the close", async {
        let mut rest = Vec::new();
        while let Some(m) = ws.next().await {
            rest.push(m.unwrap());
        }
        rest
    })
    .await;
    assert!(
        rest.iter().all(|m| matches!(m, Message::Close(_))),
        "{rest:?}"
    );
    sent.len()
}

fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// One port, one route: plain GETs are answered by the application, a
/// tether client upgrades (subprotocol chosen, permessage-deflate on)
/// and every message of every size comes back; the server saw an
/// HTTP/1.1 upgrade that ended with the client's 1000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_and_websockets_on_one_port() {
    let server = Server::start(Listen::Plain).await;
    let addr = server.addr;
    let (head, body) = raw(addr, &format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "hello over HTTP/1.1");
    let (head, body) = raw(addr, &format!("GET /echo HTTP/1.1\r\nHost: {addr}\r\n\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "plain HTTP/1.1");

    let options = ClientOptions::default()
        .with_protocols(vec!["echo.v1".into(), "other".into()])
        .with_config(tether::Config::default().with_max_message_size(4 << 20));
    let mut ws = tether::tokio::connect_with(&format!("ws://{addr}/echo"), options)
        .await
        .unwrap();
    assert_eq!(ws.protocol(), Some("echo.v1"));
    assert!(ws.connection().deflate_negotiated());
    let n = echo_all(&mut ws).await;

    let seen = server.seen(1).await;
    assert_eq!(seen[0].mode, Mode::Upgrade);
    assert_eq!(seen[0].version, http::Version::HTTP_11);
    assert_eq!(seen[0].protocol.as_deref(), Some("echo.v1"));
    assert!(seen[0].compressed);
    assert_eq!(seen[0].echoed, n);
    assert_eq!(seen[0].end, "closed Some(1000)");
}

/// The same over TLS, on a server that also offers `h2`: the tether
/// client asks for `http/1.1` by ALPN and gets an HTTP/1.1 upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_over_tls_http1() {
    let ca = Ca::new("tether axum test CA");
    let server = Server::start_tls(&ca, &[b"h2", b"http/1.1"]).await;
    let port = server.addr.port();
    let options = ClientOptions::default()
        .with_protocols(vec!["echo.v2".into()])
        .with_config(tether::Config::default().with_max_message_size(4 << 20))
        .with_tls(tether::tls::client_config(ca.cert_pem.as_bytes()).unwrap());
    let mut ws = tether::tokio::connect_with(&format!("wss://localhost:{port}/echo"), options)
        .await
        .unwrap();
    assert_eq!(ws.protocol(), Some("echo.v2"));
    assert_eq!(
        ws.get_ref().0.tls().unwrap().alpn_protocol(),
        Some(&b"http/1.1"[..])
    );
    let n = echo_all(&mut ws).await;
    let seen = server.seen(1).await;
    assert_eq!(seen[0].mode, Mode::Upgrade);
    assert_eq!(seen[0].version, http::Version::HTTP_11);
    assert_eq!(seen[0].echoed, n);
    assert_eq!(seen[0].end, "closed Some(1000)");
}

/// Broken attempts get the core's answers through axum (426 with the
/// version, 400 for a bad key, 405 for another method), the accept hook
/// refuses with the application's own response, and nothing reaches the
/// WebSocket handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_the_cores() {
    let server = Server::start(Listen::Plain).await;
    let addr = server.addr;
    let bad_version = upgrade_request(addr, "/echo", "")
        .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let (head, _) = raw(addr, &bad_version).await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert_eq!(header(&head, "sec-websocket-version"), Some("13"));

    let bad_key =
        upgrade_request(addr, "/echo", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=");
    let (head, body) = raw(addr, &bad_key).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(body.contains("Sec-WebSocket-Key"), "{body}");

    let post = upgrade_request(addr, "/echo", "Content-Length: 0\r\n").replacen("GET", "POST", 1);
    let (head, _) = raw(addr, &post).await;
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert_eq!(header(&head, "allow"), Some("GET"));

    let (head, body) = raw(addr, &upgrade_request(addr, "/private", "")).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert_eq!(body, "no session\n");

    let allowed = ClientOptions::default().with_headers(
        [(http::header::COOKIE, "session=ok".parse().unwrap())]
            .into_iter()
            .collect(),
    );
    let mut ws = tether::tokio::connect_with(&format!("ws://{addr}/private"), allowed)
        .await
        .unwrap();
    assert_eq!(
        within("the welcome", ws.next()).await.unwrap().unwrap(),
        Message::text("welcome")
    );
    assert!(server.log.take().is_empty());
}
