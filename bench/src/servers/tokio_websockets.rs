//! tokio-websockets: `feed` every message already received, `flush` once
//! when the stream has nothing more ready.

use tokio::net::TcpStream;
use tokio_websockets::{Limits, ServerBuilder};

pub async fn echo(stream: TcpStream) {
    let Ok((_request, ws)) = ServerBuilder::new()
        .limits(Limits::default().max_payload_len(Some(super::MAX_MESSAGE)))
        .accept(stream)
        .await
    else {
        return;
    };
    super::feed_flush_echo(ws, |m| m.is_binary() || m.is_text()).await;
}
