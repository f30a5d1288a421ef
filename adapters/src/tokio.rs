//! tether on tokio.
//!
//! ```no_run
//! use futures_util::{SinkExt, StreamExt};
//! use tether::{tokio::accept, Message};
//!
//! # async fn serve() -> Result<(), tether::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     tokio::spawn(async move {
//!         let ws = accept(stream).await?;
//!         let (mut tx, rx) = ws.split();
//!         // Echo: forward every data message back, flushing in batches.
//!         let data = rx.filter_map(|m| async { match m { Ok(m @ (Message::Text(_) | Message::Binary(_))) => Some(Ok(m)), Ok(_) => None, Err(e) => Some(Err(e)) } });
//!         // `send_all` wants an `Unpin` stream; the async filter is not.
//!         tx.send_all(&mut std::pin::pin!(data)).await
//!     });
//! }
//! # }
//! ```

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::handshake::{self, ClientOptions, ServerOptions};
use crate::transport::{Runtime, Transport};
use crate::Decision;
use crate::Error;

/// Adapts a tokio stream (`TcpStream`, tokio-rustls, ...).
#[derive(Debug)]
pub struct TokioIo<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin> Transport for TokioIo<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
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
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// tokio's clock and timer.
#[derive(Debug)]
pub struct Tokio;

impl Runtime for Tokio {
    type Sleep = Pin<Box<tokio::time::Sleep>>;
    /// tokio's clock: the wall clock, or with tokio's `test-util` feature
    /// the runtime's clock, which `tokio::time::pause` and `advance`
    /// control. Every tether timer (keepalive, timeouts, backoff, pool
    /// expiry) then runs on the paused clock in tests.
    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }
    fn sleep_until(at: Instant) -> Self::Sleep {
        Box::pin(tokio::time::sleep_until(at.into()))
    }
    fn reset(sleep: &mut Self::Sleep, at: Instant) {
        sleep.as_mut().reset(at.into());
    }
}

/// A WebSocket on tokio, over a TCP stream by default.
pub type WebSocket<S = TcpStream> = crate::WebSocket<TokioIo<S>, Tokio>;

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
    handshake::client::<_, Tokio>(TokioIo(stream), request, options).await
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
    handshake::server::<_, Tokio>(TokioIo(stream), options, decide).await
}
