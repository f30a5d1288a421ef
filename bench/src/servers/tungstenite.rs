//! tokio-tungstenite: `feed` every message already received, `flush` once
//! when the stream has nothing more ready. Over TLS, as its users serve
//! `wss://`: tokio-rustls's `TlsAcceptor`, then the same loop on the TLS
//! stream (tokio-tungstenite's own TLS features are for clients).

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
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    super::feed_flush_echo(ws, |m| m.is_binary() || m.is_text()).await;
}
