//! tether on tokio.
//!
//! ```no_run
//! use futures_util::{SinkExt, StreamExt};
//! use tether::{tokio::accept, Message};
//!
//! # async fn serve() -> Result<(), tether::Error> {
//! // Sets TCP_NODELAY, and waits out EMFILE instead of failing.
//! let mut listener = tether::tokio::Listener::bind("127.0.0.1:9001").await?;
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
//!
//! With feature `rustls`, `connect("wss://…")` opens TLS and
//! `accept_tls` serves it (see [`tls`](crate::tls)); TLS runs through
//! futures-rustls here too, behind a shim, and a stream you made with
//! tokio-rustls works with [`client`] and [`accept`].

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::accept::AcceptLoop;
use crate::handshake::{self, ClientOptions, ServerOptions};
use crate::tls::ClientTls;
use crate::transport::{Runtime, Transport};
use crate::{Decision, Error, SocketOptions};

#[cfg(feature = "rustls")]
mod compat;
mod stream;
pub use stream::ClientStream;
#[cfg(feature = "rustls")]
pub use stream::TlsStream;

/// Adapts a tokio stream (`TcpStream`, tokio-rustls, ...).
#[derive(Debug)]
pub struct TokioIo<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin> Transport for TokioIo<S> {
    /// `UnexpectedEof` is read as end of stream (a TLS peer that closed
    /// without close_notify): the close handshake tells clean from cut.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => crate::tls_eof(Poll::Ready(Err(e))),
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

/// A WebSocket on tokio, by default over what [`connect`] opens (TCP, or
/// TLS over TCP); a server's is `WebSocket<TcpStream>` (or
/// `WebSocket<TlsStream>` from `accept_tls`).
pub type WebSocket<S = ClientStream> = crate::WebSocket<TokioIo<S>, Tokio>;

/// A graceful shutdown of a server on tokio: see [`crate::shutdown`].
pub type Shutdown = crate::shutdown::Shutdown<Tokio>;

/// Connects to a `ws://` or `wss://` URL with default options.
pub async fn connect(url: &str) -> Result<WebSocket, Error> {
    connect_with(url, ClientOptions::default()).await
}

/// Connects to a `ws://` or `wss://` URL, through the proxy
/// `options.proxy` chooses (by default the environment's: see
/// [`crate::proxy`]). TLS (feature `rustls`) and the opening handshake are
/// due together within `options.limits.timeout`, after the tunnel.
pub async fn connect_with(url: &str, options: ClientOptions) -> Result<WebSocket, Error> {
    let request = crate::client_request(url, &options)?;
    let tls = ClientTls::prepare(&request, &options)?;
    // TCP to the server, or to the proxy and a tunnel through it.
    let stream = crate::tunnel::open::<Tokio>(&request, &options, tls.is_some()).await?;
    let started = Tokio::now();
    let deadline = tether_core::time::deadline_after(started, options.limits.timeout);
    let stream = ClientStream::open(stream, tls, deadline).await?;
    handshake::client::<_, Tokio>(TokioIo(stream), &request, &options, started).await
}

/// Runs the client handshake over an already connected stream (a TLS
/// stream, a proxy tunnel).
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: &tether_core::handshake::ClientRequest,
    options: &ClientOptions,
) -> Result<WebSocket<S>, Error> {
    handshake::client::<_, Tokio>(TokioIo(stream), request, options, Tokio::now()).await
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
    handshake::server::<_, Tokio>(TokioIo(stream), options, decide, Tokio::now()).await
}

/// Accepts a WebSocket over TLS on a freshly accepted stream, with default
/// options: see [`accept_tls_with`].
#[cfg(feature = "rustls")]
pub async fn accept_tls<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    tls: &std::sync::Arc<rustls::ServerConfig>,
) -> Result<WebSocket<TlsStream<S>>, Error> {
    accept_tls_with(stream, tls, &ServerOptions::default(), |_| {
        Ok(Default::default())
    })
    .await
}

/// Runs the TLS handshake with `tls` (from
/// [`tls::server_config`](crate::tls::server_config) or your own), then
/// [`accept_with`]'s. Both are due within `options.limits.timeout` of the
/// call, so a client that stalls in either is dropped then
/// (`HandshakeError::TimedOut`). A refused client certificate is
/// [`Error::Tls`].
#[cfg(feature = "rustls")]
pub async fn accept_tls_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    tls: &std::sync::Arc<rustls::ServerConfig>,
    options: &ServerOptions,
    decide: impl FnOnce(&http::Request<()>) -> Decision,
) -> Result<WebSocket<TlsStream<S>>, Error> {
    let started = Tokio::now();
    let deadline = tether_core::time::deadline_after(started, options.limits.timeout);
    let stream = crate::tls::accept::<_, Tokio>(tls, compat::Compat(stream), deadline).await?;
    handshake::server::<_, Tokio>(TokioIo(TlsStream::new(stream)), options, decide, started).await
}

/// A TCP listener whose [`accept`](Self::accept) survives running out of
/// file descriptors and the other errors that concern one connection or a
/// passing shortage, and applies [`SocketOptions`] to each accepted socket.
///
/// `listener.accept().await?` on a plain listener ends the server the
/// first time the process hits its descriptor limit (EMFILE); retrying
/// at once spins, since the connection that could not be taken is still
/// waiting. This listener skips errors of one connection, waits 10 ms
/// doubling to 1 s while out of descriptors or memory (back to 10 ms
/// after the next success), and returns only errors that say the listener
/// itself is unusable, or that `accept` is not documented to return (no
/// retry is known to help), so the loop that gets one should end. Nothing
/// is logged; [`on_error`](Self::on_error) sees every skipped error.
///
/// ```no_run
/// # async fn serve() -> std::io::Result<()> {
/// let mut listener = tether::tokio::Listener::bind("127.0.0.1:9001")
///     .await?
///     .on_error(|e, wait| eprintln!("accept: {e}; next attempt in {wait:?}"));
/// loop {
///     // Waits out EMFILE and friends; an error here is the listener's own.
///     let (stream, _) = listener.accept().await?;
///     tokio::spawn(async move {
///         let ws = tether::tokio::accept(stream).await?;
///         // ... use ws ...
///         Ok::<_, tether::Error>(())
///     });
/// }
/// # }
/// ```
pub struct Listener {
    inner: tokio::net::TcpListener,
    state: AcceptLoop,
}

impl Listener {
    /// Binds a listener to `addr`.
    pub async fn bind(addr: impl tokio::net::ToSocketAddrs) -> io::Result<Self> {
        Ok(Self::new(tokio::net::TcpListener::bind(addr).await?))
    }

    /// Wraps a bound listener.
    pub fn new(listener: tokio::net::TcpListener) -> Self {
        Self {
            inner: listener,
            state: AcceptLoop::default(),
        }
    }

    /// Options for accepted sockets (default: TCP_NODELAY on). A socket
    /// they cannot be applied to (reset before it was accepted) is
    /// skipped like a failed accept.
    pub fn socket_options(mut self, options: SocketOptions) -> Self {
        self.state.socket = options;
        self
    }

    /// Calls `observe` with each error `accept` skips and the wait before
    /// the next attempt (zero: at once), to log or count them.
    pub fn on_error(mut self, observe: impl FnMut(&io::Error, Duration) + Send + 'static) -> Self {
        self.state.observer = Some(Box::new(observe));
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The listener inside.
    pub fn get_ref(&self) -> &tokio::net::TcpListener {
        &self.inner
    }

    /// Unwraps the listener.
    pub fn into_inner(self) -> tokio::net::TcpListener {
        self.inner
    }

    /// The next connection, with the socket options applied. Waits while
    /// the process is out of descriptors; returns an error only when the
    /// listener is unusable (EBADF, EINVAL, ENOTSOCK, EOPNOTSUPP) or the
    /// error is one `accept` is not known to return. Cancel-safe: a wait
    /// under way goes on at the next call.
    pub async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let inner = &self.inner;
        self.state.accept::<Tokio, _, _>(|| inner.accept()).await
    }

    /// Like [`accept`](Self::accept), until `shutdown` starts: then
    /// `Ok(None)`, and nothing more is accepted. The accept loop ends
    /// there; dropping the listener after it refuses new connections
    /// (see [`crate::shutdown`]).
    pub async fn accept_until(
        &mut self,
        shutdown: &Shutdown,
    ) -> io::Result<Option<(TcpStream, SocketAddr)>> {
        crate::shutdown::until(shutdown.signal(), self.accept())
            .await
            .transpose()
    }
}

impl From<tokio::net::TcpListener> for Listener {
    fn from(listener: tokio::net::TcpListener) -> Self {
        Self::new(listener)
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("inner", &self.inner)
            .field("state", &self.state)
            .finish()
    }
}
