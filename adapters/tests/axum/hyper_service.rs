//! `tether::hyper::upgrade` in a plain hyper service (no axum): plain
//! requests and WebSockets on one port, the accept hook's refusal, and the
//! pending WebSocket run by the shared driver.

use std::convert::Infallible;

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tether::{Bytes, ClientOptions, CloseCode, Message, ServerOptions};

use crate::http1::{header, raw};
use crate::within;

async fn service(
    mut request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    if !tether::hyper::is_upgrade_request(&request) {
        return Ok(http::Response::new(Full::new(Bytes::from("plain"))));
    }
    let decide = |head: &http::Request<()>| {
        if head.headers().contains_key("authorization") {
            Ok(tether::Accept::default())
        } else {
            let mut no = http::Response::new(Bytes::from_static(b"who are you?\n"));
            *no.status_mut() = http::StatusCode::UNAUTHORIZED;
            Err(Box::new(no))
        }
    };
    match tether::hyper::upgrade(&mut request, &ServerOptions::default(), decide) {
        Ok((response, pending)) => {
            assert_eq!(pending.mode(), tether::core::handshake::Mode::Upgrade);
            tokio::spawn(async move {
                let mut ws = pending.await.expect("hyper hands the connection over");
                while let Some(Ok(m)) = ws.next().await {
                    if matches!(m, Message::Text(_) | Message::Binary(_)) {
                        ws.send(m).await.unwrap();
                    }
                }
            });
            Ok(response.map(|()| Full::default()))
        }
        Err(refusal) => Ok(refusal.response.map(Full::new)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hyper_service_upgrades_and_refuses() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(service))
                    .with_upgrades(),
            );
        }
    });
    let (head, body) = raw(addr, &format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "plain");

    let refused = tether::tokio::connect(&format!("ws://{addr}/")).await;
    assert_eq!(refused.err().and_then(|e| e.http_status()), Some(401));
    let (head, body) = raw(
        addr,
        &format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert_eq!(body, "who are you?\n");
    assert_eq!(header(&head, "upgrade"), None);

    let options = ClientOptions::default().with_headers(
        [(http::header::AUTHORIZATION, "Bearer x".parse().unwrap())]
            .into_iter()
            .collect(),
    );
    let mut ws = tether::tokio::connect_with(&format!("ws://{addr}/"), options)
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        within("the echo", ws.next()).await.unwrap().unwrap(),
        Message::text("hello")
    );
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    server.abort();
}
