//! fastwebsockets, as its echo example and docs show: a hyper HTTP/1
//! connection performs the upgrade, then a `FragmentCollector` reads whole
//! messages and `write_frame` writes each one. The library has no write
//! buffer of its own: `fastwebsockets` gives it the stream behind a 64 KiB
//! buffer written out when a read would block ([`FlushOnIdleRead`]), the
//! batched loop a user would build; `fastwebsockets-unbuffered` is its
//! example as written, one write per message.

use fastwebsockets::{upgrade, FragmentCollector, OpCode, Role, WebSocket, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::write_buffer::FlushOnIdleRead;

pub async fn serve(stream: TcpStream) {
    serve_with(stream, true).await
}

pub async fn serve_unbuffered(stream: TcpStream) {
    serve_with(stream, false).await
}

async fn serve_with(stream: TcpStream, buffered: bool) {
    let service = service_fn(move |req| upgrade_request(req, buffered));
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

async fn upgrade_request(
    mut req: Request<Incoming>,
    buffered: bool,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::task::spawn_local(tokio::task::unconstrained(async move {
        let Ok(ws) = fut.await else { return };
        let _ = if buffered {
            // Nothing has been read through the WebSocket yet (hyper's
            // `Upgraded` keeps any bytes that came with the request).
            let io = FlushOnIdleRead::new(ws.into_inner());
            echo(WebSocket::after_handshake(io, Role::Server)).await
        } else {
            echo(ws).await
        };
    }));
    Ok(response)
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocket<S>,
) -> Result<(), WebSocketError> {
    ws.set_auto_pong(true);
    ws.set_max_message_size(super::MAX_MESSAGE);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => {
                // The close answer auto_close queued may sit in the buffer.
                return ws
                    .into_inner()
                    .flush()
                    .await
                    .map_err(WebSocketError::IoError);
            }
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}
