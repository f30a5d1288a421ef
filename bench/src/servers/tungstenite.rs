//! tokio-tungstenite: `feed` every message already received, `flush` once
//! when the stream has nothing more ready. Over TLS, as its users serve
//! `wss://`: tokio-rustls's `TlsAcceptor`, then the same loop on the TLS
//! stream (tokio-tungstenite's own TLS features are for clients).

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub async fn echo_tls(stream: TcpStream, tls: &'static TlsAcceptor) {
    if let Ok(stream) = tls.accept(stream).await {
        echo(stream).await
    }
}

pub async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(super::MAX_MESSAGE))
        .max_frame_size(Some(super::MAX_MESSAGE));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    loop {
        let next = match ws.next().now_or_never() {
            Some(next) => next,
            None => {
                if ws.flush().await.is_err() {
                    return;
                }
                ws.next().await
            }
        };
        match next {
            Some(Ok(m)) if m.is_binary() || m.is_text() => {
                if ws.feed(m).await.is_err() {
                    return;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}
