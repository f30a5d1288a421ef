//! tokio-websockets: `feed` every message already received, `flush` once
//! when the stream has nothing more ready.

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_websockets::{Limits, ServerBuilder};

pub async fn echo(stream: TcpStream) {
    let Ok((_request, mut ws)) = ServerBuilder::new()
        .limits(Limits::default().max_payload_len(Some(super::MAX_MESSAGE)))
        .accept(stream)
        .await
    else {
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
