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
//!
//! With feature `rustls`, `connect("wss://…")` opens TLS and
//! `accept_tls` serves it (see [`tls`](crate::tls)).

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};

use crate::accept::AcceptLoop;
use crate::handshake::{self, ClientOptions, ServerOptions};
use crate::tls::ClientTls;
use crate::transport::{Runtime, Transport};
use crate::{Decision, Error, SocketOptions};

mod stream;
mod tcp;
mod tick;
pub use stream::ClientStream;
pub use tcp::TcpStream;

/// Adapts a futures-io stream (async-net's `TcpStream`, async-tls, ...).
#[derive(Debug)]
pub struct FuturesIo<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin> Transport for FuturesIo<S> {
    /// `UnexpectedEof` is read as end of stream (a TLS peer that closed
    /// without close_notify): the close handshake tells clean from cut.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        crate::tls_eof(Pin::new(&mut self.0).poll_read(cx, buf))
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
/// holds a pointer's worth of room for one, not the whole timer. Deadlines
/// are rounded up onto a shared 10 ms grid, so that timers due within the
/// same 10 ms fire in one wake of the reactor (see `tick`).
#[derive(Debug)]
pub struct Smol;

impl Runtime for Smol {
    type Sleep = Box<async_io::Timer>;
    /// async-io's timers follow the wall clock (it has no paused clock).
    fn now() -> Instant {
        Instant::now()
    }
    fn sleep_until(at: Instant) -> Self::Sleep {
        Box::new(async_io::Timer::at(tick::round_up(at)))
    }
    fn reset(sleep: &mut Self::Sleep, at: Instant) {
        sleep.set_at(tick::round_up(at));
    }
}

/// A WebSocket on smol, by default over what [`connect`] opens (TCP, or
/// TLS over TCP); a server's is `WebSocket<TcpStream>` (or
/// `WebSocket<TlsStream>` from `accept_tls`).
pub type WebSocket<S = ClientStream> = crate::WebSocket<FuturesIo<S>, Smol>;

/// A graceful shutdown of a server on smol: see [`crate::shutdown`].
pub type Shutdown = crate::shutdown::Shutdown<Smol>;

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
    let stream = crate::tunnel::open::<Smol>(&request, &options, tls.is_some()).await?;
    let started = Smol::now();
    let deadline = tether_core::time::deadline_after(started, options.limits.timeout);
    let stream = ClientStream::open(stream, tls, deadline).await?;
    handshake::client::<_, Smol>(FuturesIo(stream), &request, &options, started).await
}

/// Runs the client handshake over an already connected stream (a TLS
/// stream, a proxy tunnel).
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: &tether_core::handshake::ClientRequest,
    options: &ClientOptions,
) -> Result<WebSocket<S>, Error> {
    handshake::client::<_, Smol>(FuturesIo(stream), request, options, Smol::now()).await
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
    handshake::server::<_, Smol>(FuturesIo(stream), options, decide, Smol::now()).await
}

/// The stream a WebSocket accepted by `accept_tls` runs over.
#[cfg(feature = "rustls")]
pub type TlsStream<S = TcpStream> = futures_rustls::server::TlsStream<S>;

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
    let started = Smol::now();
    let deadline = tether_core::time::deadline_after(started, options.limits.timeout);
    let stream = crate::tls::accept::<_, Smol>(tls, stream, deadline).await?;
    handshake::server::<_, Smol>(FuturesIo(stream), options, decide, started).await
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
/// use futures_util::{SinkExt, StreamExt};
/// use tether::Message;
///
/// async fn serve() -> std::io::Result<()> {
///     let mut listener = tether::smol::Listener::bind("127.0.0.1:9001").await?;
///     loop {
///         // Waits out EMFILE and friends; an error here is the listener's own.
///         let (stream, _) = listener.accept().await?;
///         smol::spawn(async move {
///             let mut ws = tether::smol::accept(stream).await?;
///             while let Some(msg) = ws.next().await {
///                 if let m @ (Message::Text(_) | Message::Binary(_)) = msg? {
///                     ws.send(m).await?;
///                 }
///             }
///             Ok::<_, tether::Error>(())
///         })
///         .detach();
///     }
/// }
/// ```
pub struct Listener {
    inner: async_net::TcpListener,
    state: AcceptLoop,
}

impl Listener {
    /// Binds a listener to `addr` (the first address it resolves to that
    /// binds), with a backlog of 1,024 and SO_REUSEADDR.
    pub async fn bind(addr: impl async_net::AsyncToSocketAddrs) -> io::Result<Self> {
        let mut last = None;
        for addr in addr.to_socket_addrs().await? {
            match crate::socket::bind_listener(addr) {
                Ok(std) => return Ok(Self::new(async_net::TcpListener::try_from(std)?)),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind")))
    }

    /// Wraps a bound listener.
    pub fn new(listener: async_net::TcpListener) -> Self {
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
    pub fn get_ref(&self) -> &async_net::TcpListener {
        &self.inner
    }

    /// Unwraps the listener.
    pub fn into_inner(self) -> async_net::TcpListener {
        self.inner
    }

    /// The next connection, with the socket options applied. Waits while
    /// the process is out of descriptors; returns an error only when the
    /// listener is unusable (EBADF, EINVAL, ENOTSOCK, EOPNOTSUPP) or the
    /// error is one `accept` is not known to return. Cancel-safe: a wait
    /// under way goes on at the next call.
    pub async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let inner = &self.inner;
        self.state
            .accept::<Smol, _, _>(|| async {
                let (stream, addr) = inner.accept().await?;
                Ok((unshare(stream)?, addr))
            })
            .await
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

/// The `Async` stream inside a just-accepted async-net stream, which is
/// its only owner.
fn unshare(stream: async_net::TcpStream) -> io::Result<TcpStream> {
    let shared: std::sync::Arc<async_io::Async<std::net::TcpStream>> = stream.into();
    std::sync::Arc::try_unwrap(shared)
        .map(TcpStream::from)
        .map_err(|_| io::Error::other("an accepted stream shared before it was returned"))
}

impl From<async_net::TcpListener> for Listener {
    fn from(listener: async_net::TcpListener) -> Self {
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
