//! The broadcast servers (`bench-server --broadcast`): every data message
//! any connection sends goes to every connection, the sender's included
//! (a chat room that echoes to its author). Each library does what its
//! users do for fan-out on one thread: the async ones subscribe every
//! connection to one `tokio::sync::broadcast` channel (runtime-agnostic,
//! so smol's tasks use it too) and give each a task that writes what
//! arrives, every message already in the channel queued before one flush;
//! the mio loop has no tasks and queues each message on every connection
//! in the callback that received it.
//!
//! What each channel carries is the cheapest shareable form the library
//! takes: tether a `PreparedMessage` (framed once, shared bytes), the
//! others a message whose payload is a shared `Bytes` that each
//! connection frames (and copies into its write buffer) itself.

use std::io;
use std::net::SocketAddr;

use ::tether::{Message, PreparedMessage, Runtime, Transport, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, Sender};

use super::{serve_tether_smol, serve_tokio, IMPLS};

/// Messages the channel holds; a subscriber further behind is dropped
/// (`Lagged`). The load generator keeps at most 16 undelivered.
const CAPACITY: usize = 1024;

/// The implementations with a broadcast server.
pub const BROADCAST_IMPLS: &[&str] = &[
    "tether-smol",
    "tether-tokio",
    "tether-mio",
    "tokio-tungstenite",
    "fastwebsockets",
    "tokio-websockets",
];

pub fn run(name: &str, addr: SocketAddr) -> io::Result<()> {
    match name {
        "tether-smol" => {
            let hub = broadcast::channel(CAPACITY).0;
            serve_tether_smol(addr, move |s| tether_smol(s, hub.clone()))
        }
        "tether-tokio" => {
            let hub = broadcast::channel(CAPACITY).0;
            serve_tokio(addr, move |s| tether_tokio(s, hub.clone()))
        }
        "tether-mio" => tether_mio(addr),
        "tokio-tungstenite" => {
            let hub = broadcast::channel(CAPACITY).0;
            serve_tokio(addr, move |s| tungstenite(s, hub.clone()))
        }
        "fastwebsockets" => {
            let hub = broadcast::channel(CAPACITY).0;
            serve_tokio(addr, move |s| fastws::serve(s, hub.clone()))
        }
        "tokio-websockets" => {
            let hub = broadcast::channel(CAPACITY).0;
            serve_tokio(addr, move |s| tokio_websockets(s, hub.clone()))
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{other} has no broadcast server; those that do: {} (of {})",
                BROADCAST_IMPLS.join(", "),
                IMPLS.len()
            ),
        )),
    }
}

async fn tether_smol(stream: tether::smol::TcpStream, hub: Sender<PreparedMessage>) {
    let options = &*super::tether::OPTIONS;
    if let Ok(ws) = ::tether::smol::accept_with(stream, options, |_| Ok(Default::default())).await {
        tether_member(ws, hub).await
    }
}

async fn tether_tokio(stream: TcpStream, hub: Sender<PreparedMessage>) {
    let options = &*super::tether::OPTIONS;
    if let Ok(ws) = ::tether::tokio::accept_with(stream, options, |_| Ok(Default::default())).await
    {
        tether_member(ws, hub).await
    }
}

/// One task per connection: what it receives is prepared once and
/// published; what the channel holds is fed (a reference to the shared
/// frame) and flushed once.
async fn tether_member<S: Transport, R: Runtime>(
    ws: WebSocket<S, R>,
    hub: Sender<PreparedMessage>,
) {
    let mut rx = hub.subscribe();
    let (mut tx, mut messages) = ws.split();
    loop {
        tokio::select! {
            m = messages.next() => match m {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    if let Ok(p) = PreparedMessage::new(m) {
                        let _ = hub.send(p);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            p = rx.recv() => {
                let Ok(mut p) = p else { return };
                loop {
                    if tx.feed_prepared(&p).await.is_err() {
                        return;
                    }
                    match rx.try_recv() {
                        Ok(next) => p = next,
                        Err(_) => break,
                    }
                }
                if tx.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The mio loop: a message is prepared once and queued on every open
/// connection from the callback; each connection's share leaves in the
/// pass's one vectored write.
fn tether_mio(addr: SocketAddr) -> io::Result<()> {
    use ::tether::mio::{ConnectionId, Driver, Event};
    let mut driver = Driver::new()?;
    driver.listen_with(addr, super::tether::options(), |_| Ok(Default::default()))?;
    super::announce(addr);
    let mut members: Vec<ConnectionId> = Vec::new();
    loop {
        driver.poll_with(None, |conns, id, event| match event {
            Event::Open => members.push(id),
            Event::Closed => {
                if let Some(i) = members.iter().position(|m| *m == id) {
                    members.swap_remove(i);
                }
            }
            Event::Message(m) => {
                if let Ok(p) = PreparedMessage::new(m) {
                    for &member in &members {
                        // Fails only for a connection already closing.
                        let _ = conns.send_prepared(member, &p);
                    }
                }
            }
            _ => {}
        })?;
        let _ = driver.take_accept_error();
    }
}

/// tokio-tungstenite's fan-out, as its own server example does it: split
/// the stream, a task per connection; the channel carries the `Message`,
/// whose `Bytes` payload a clone shares; `feed` each, `flush` once.
async fn tungstenite(stream: TcpStream, hub: Sender<tokio_tungstenite::tungstenite::Message>) {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(super::MAX_MESSAGE));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (tx, messages) = ws.split();
    member(tx, messages, hub, |m| m.is_binary() || m.is_text()).await;
}

/// tokio-websockets: the same loop with its `Message` (a shared payload).
async fn tokio_websockets(stream: TcpStream, hub: Sender<tokio_websockets::Message>) {
    let Ok((_request, ws)) = tokio_websockets::ServerBuilder::new()
        .limits(tokio_websockets::Limits::default().max_payload_len(Some(super::MAX_MESSAGE)))
        .accept(stream)
        .await
    else {
        return;
    };
    let (tx, messages) = ws.split();
    member(tx, messages, hub, |m| m.is_binary() || m.is_text()).await;
}

/// One subscriber of a library whose split halves are a `Sink` and a
/// `Stream` of its `Message`: data it receives goes to the hub, and what
/// the hub carries is fed (every message already there) and flushed once.
async fn member<M: Clone, E, F>(
    mut tx: impl futures_util::Sink<M, Error = E> + Unpin,
    mut messages: impl futures_util::Stream<Item = Result<M, F>> + Unpin,
    hub: Sender<M>,
    is_data: impl Fn(&M) -> bool,
) {
    let mut rx = hub.subscribe();
    loop {
        tokio::select! {
            m = messages.next() => match m {
                Some(Ok(m)) if is_data(&m) => {
                    let _ = hub.send(m);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            m = rx.recv() => {
                let Ok(mut m) = m else { return };
                loop {
                    if tx.feed(m).await.is_err() {
                        return;
                    }
                    match rx.try_recv() {
                        Ok(next) => m = next,
                        Err(_) => break,
                    }
                }
                if tx.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// fastwebsockets: its `read_frame` is not cancel-safe, so a connection
/// is split (`unstable-split`, tokio's `io::split`) into a reading task
/// and a writing task; the write half goes through a 64 KiB `BufWriter`,
/// flushed once the channel is empty. The channel carries the payload as
/// `Bytes`; each connection frames it (`Frame::binary`, borrowed
/// payload). The reader ignores what it would be obliged to send (pongs,
/// the close answer): the load generator sends neither pings nor closes.
mod fastws {
    use fastwebsockets::{upgrade, Frame, OpCode, Payload, WebSocketError};
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use tokio::io::BufWriter;

    use super::*;

    pub async fn serve(stream: TcpStream, hub: Sender<(OpCode, Bytes)>) {
        let service = service_fn(move |req| upgrade_request(req, hub.clone()));
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
    }

    async fn upgrade_request(
        mut req: Request<Incoming>,
        hub: Sender<(OpCode, Bytes)>,
    ) -> Result<Response<Empty<Bytes>>, WebSocketError> {
        let (response, fut) = upgrade::upgrade(&mut req)?;
        tokio::task::spawn_local(tokio::task::unconstrained(async move {
            let Ok(ws) = fut.await else { return };
            let (mut read, mut write) = ws.split(|io| {
                let (r, w) = tokio::io::split(io);
                (r, BufWriter::with_capacity(64 << 10, w))
            });
            read.set_max_message_size(super::super::MAX_MESSAGE);
            let mut rx = hub.subscribe();
            tokio::task::spawn_local(tokio::task::unconstrained(async move {
                while let Ok(mut m) = rx.recv().await {
                    loop {
                        let frame = match m.0 {
                            OpCode::Text => Frame::text(Payload::Borrowed(&m.1)),
                            _ => Frame::binary(Payload::Borrowed(&m.1)),
                        };
                        if write.write_frame(frame).await.is_err() {
                            return;
                        }
                        match rx.try_recv() {
                            Ok(next) => m = next,
                            Err(_) => break,
                        }
                    }
                    if write.flush().await.is_err() {
                        return;
                    }
                }
            }));
            let mut ignore = |_: Frame<'_>| async { Ok::<(), WebSocketError>(()) };
            while let Ok(frame) = read.read_frame(&mut ignore).await {
                match frame.opcode {
                    OpCode::Text | OpCode::Binary => {
                        let payload = Bytes::copy_from_slice(&frame.payload);
                        let _ = hub.send((frame.opcode, payload));
                    }
                    OpCode::Close => return,
                    _ => {}
                }
            }
        }));
        Ok(response)
    }
}
