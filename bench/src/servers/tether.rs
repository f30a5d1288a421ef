//! tether on smol and on tokio: the batched echo (`next_batch`, then
//! `send_batch`), the split halves forwarding with `send_all` (the
//! Stream/Sink way), and the naive loop (await `send` per message) for
//! comparison; over TLS, `accept_tls_with` and the same echo.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether::tls::rustls::ServerConfig;
use tether::{Config, Message, Runtime, ServerOptions, Transport, WebSocket};

/// Keepalive off: none of the other servers pings, and the load generator
/// never answers pings. permessage-deflate keeps tether's defaults (used
/// when the client offers it). Built once and shared by every connection,
/// as a server would: a temporary would sit in each connection's task.
pub static OPTIONS: LazyLock<ServerOptions> = LazyLock::new(options);
static KEEPALIVE_OPTIONS: LazyLock<ServerOptions> = LazyLock::new(keepalive_options);

pub(super) fn options() -> ServerOptions {
    ServerOptions::default().with_config(
        Config::without_keepalive()
            .with_max_message_size(super::MAX_MESSAGE)
            .with_max_frame_size(super::MAX_MESSAGE),
    )
}

/// Keepalive on, pinging every 2 s so that the idle scenario's hold
/// includes at least one ping and pong per connection.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);

pub(super) fn keepalive_options() -> ServerOptions {
    let mut options = options();
    options.config.ping_interval = Some(KEEPALIVE_INTERVAL);
    options.config.ping_timeout = Config::default().ping_timeout;
    options
}

pub async fn echo_smol_keepalive(stream: tether::smol::TcpStream) {
    if let Ok(ws) =
        tether::smol::accept_with(stream, &KEEPALIVE_OPTIONS, |_| Ok(Default::default())).await
    {
        echo(ws).await
    }
}

pub async fn echo_tokio_keepalive(stream: tokio::net::TcpStream) {
    if let Ok(ws) =
        tether::tokio::accept_with(stream, &KEEPALIVE_OPTIONS, |_| Ok(Default::default())).await
    {
        echo(ws).await
    }
}

pub async fn echo_smol(stream: tether::smol::TcpStream) {
    if let Ok(ws) = tether::smol::accept_with(stream, &OPTIONS, |_| Ok(Default::default())).await {
        echo(ws).await
    }
}

pub async fn echo_smol_split(stream: tether::smol::TcpStream) {
    if let Ok(ws) = tether::smol::accept_with(stream, &OPTIONS, |_| Ok(Default::default())).await {
        echo_split(ws).await
    }
}

pub async fn echo_smol_naive(stream: tether::smol::TcpStream) {
    if let Ok(ws) = tether::smol::accept_with(stream, &OPTIONS, |_| Ok(Default::default())).await {
        echo_naive(ws).await
    }
}

pub async fn echo_tokio(stream: tokio::net::TcpStream) {
    if let Ok(ws) = tether::tokio::accept_with(stream, &OPTIONS, |_| Ok(Default::default())).await {
        echo(ws).await
    }
}

/// `tls` comes from `tether::tls::server_config`, built once.
pub async fn echo_smol_tls(stream: tether::smol::TcpStream, tls: &'static Arc<ServerConfig>) {
    let accepted =
        tether::smol::accept_tls_with(stream, tls, &OPTIONS, |_| Ok(Default::default())).await;
    if let Ok(ws) = accepted {
        echo(ws).await
    }
}

pub async fn echo_tokio_tls(stream: tokio::net::TcpStream, tls: &'static Arc<ServerConfig>) {
    let accepted =
        tether::tokio::accept_tls_with(stream, tls, &OPTIONS, |_| Ok(Default::default())).await;
    if let Ok(ws) = accepted {
        echo(ws).await
    }
}

/// The README's echo: every message already read taken at once, the data
/// messages sent back as one batch and flushed once, so a burst costs one
/// write and one pass through the driver.
pub async fn echo<S: Transport, R: Runtime>(mut ws: WebSocket<S, R>) {
    let mut batch = Vec::new();
    while let Some(Ok(_)) = ws.next_batch(&mut batch).await {
        batch.retain(|m| matches!(m, Message::Text(_) | Message::Binary(_)));
        if ws.send_batch(&mut batch).await.is_err() {
            return;
        }
    }
}

/// Split halves, forwarding the data messages with `send_all`, which
/// queues every message already received and flushes once when the
/// stream has nothing ready: the Stream/Sink way, a lock per call.
async fn echo_split<S: Transport, R: Runtime>(ws: WebSocket<S, R>) {
    let (mut tx, rx) = ws.split();
    let mut data =
        rx.filter(|m| std::future::ready(matches!(m, Ok(Message::Text(_) | Message::Binary(_)))));
    let _ = tx.send_all(&mut data).await;
}

/// What the README's first example does: one write and flush per message.
async fn echo_naive<S: Transport, R: Runtime>(mut ws: WebSocket<S, R>) {
    while let Some(Ok(msg)) = ws.next().await {
        if let m @ (Message::Text(_) | Message::Binary(_)) = msg {
            if ws.send(m).await.is_err() {
                return;
            }
        }
    }
}
