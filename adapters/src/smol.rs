//! tether on smol / async-io.
//!
//! ```no_run
//! use futures_util::{SinkExt, StreamExt};
//! use tether::{smol::connect, Message};
//!
//! smol::block_on(async {
//!     let mut ws = connect("ws://127.0.0.1:9001/").await?;
//!     ws.send(Message::text("hello")).await?;
//!     if let Some(reply) = ws.next().await {
//!         println!("{:?}", reply?);
//!     }
//!     ws.close(tether::CloseCode::NORMAL, "done").await
//! })
//! # ; Ok::<(), tether::Error>(())
//! ```

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_net::TcpStream;
use futures_io::{AsyncRead, AsyncWrite};

use crate::handshake::{self, ClientOptions, ServerOptions};
use crate::transport::{Runtime, Transport};
use crate::Decision;
use crate::Error;

/// Adapts a futures-io stream (async-net's `TcpStream`, async-tls, ...).
#[derive(Debug)]
pub struct FuturesIo<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin> Transport for FuturesIo<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// async-io's timer, boxed like tokio's: a connection without timers then
/// holds a pointer's worth of room for one, not the whole timer.
#[derive(Debug)]
pub struct Smol;

impl Runtime for Smol {
    type Sleep = Box<async_io::Timer>;
    /// async-io's timers follow the wall clock (it has no paused clock).
    fn now() -> Instant {
        Instant::now()
    }
    fn sleep_until(at: Instant) -> Self::Sleep {
        Box::new(async_io::Timer::at(at))
    }
    fn reset(sleep: &mut Self::Sleep, at: Instant) {
        sleep.set_at(at);
    }
}

/// A WebSocket on smol, over a TCP stream by default.
pub type WebSocket<S = TcpStream> = crate::WebSocket<FuturesIo<S>, Smol>;

/// Connects to a `ws://` URL with default options.
pub async fn connect(url: &str) -> Result<WebSocket, Error> {
    connect_with(url, ClientOptions::default()).await
}

/// Connects to a `ws://` URL.
pub async fn connect_with(url: &str, options: ClientOptions) -> Result<WebSocket, Error> {
    let request = crate::client_request(url, &options)?;
    let stream = TcpStream::connect(crate::host_port(&request)?).await?;
    options.socket.apply(&stream)?;
    client(stream, &request, &options).await
}

/// Runs the client handshake over an already connected stream (a TLS
/// stream, a proxy tunnel).
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: &tether_core::handshake::ClientRequest,
    options: &ClientOptions,
) -> Result<WebSocket<S>, Error> {
    handshake::client::<_, Smol>(FuturesIo(stream), request, options).await
}

/// Accepts a WebSocket on a freshly accepted stream, with default options.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<WebSocket<S>, Error> {
    accept_with(
        stream,
        &ServerOptions::default(),
        |_| Ok(Default::default()),
    )
    .await
}

/// Accepts a WebSocket, letting `decide` accept (choose a subprotocol, add
/// headers) or reject the request, for authentication and Origin checks.
pub async fn accept_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    options: &ServerOptions,
    decide: impl FnOnce(&http::Request<()>) -> Decision,
) -> Result<WebSocket<S>, Error> {
    handshake::server::<_, Smol>(FuturesIo(stream), options, decide).await
}
