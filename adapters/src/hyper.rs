//! Upgrading a request of a hyper 1.x service to a tether WebSocket, on
//! the tokio runtime hyper runs on: an HTTP/1.1 `Upgrade` (hyper hands
//! over the connection after the 101) or an HTTP/2 extended CONNECT (RFC
//! 8441: the WebSocket is one stream of the connection; serve it with
//! hyper's HTTP/2 builder's `enable_connect_protocol()`).
//!
//! The checks, the negotiation and the accept hook are the core's
//! ([`ServerUpgrade`]); this module only carries the response head to
//! hyper and hyper's upgraded stream to the shared driver, so keepalive,
//! backpressure, streaming and the close handshake are those of every
//! other tether connection.
//!
//! ```no_run
//! use http_body_util::Full;
//! use tether::Bytes;
//!
//! async fn service(
//!     mut request: http::Request<hyper::body::Incoming>,
//! ) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
//!     if !tether::hyper::is_upgrade_request(&request) {
//!         return Ok(http::Response::new(Full::new(Bytes::from("plain HTTP"))));
//!     }
//!     let options = tether::ServerOptions::default();
//!     match tether::hyper::upgrade(&mut request, &options, |_| Ok(Default::default())) {
//!         Ok((response, pending)) => {
//!             tokio::spawn(async move {
//!                 if let Ok(ws) = pending.await {
//!                     // ... use ws ...
//!                 }
//!             });
//!             Ok(response.map(|()| Full::default()))
//!         }
//!         Err(refusal) => Ok(refusal.response.map(Full::new)),
//!     }
//! }
//! ```

use std::future::{Future, IntoFuture};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::rt::{Read, ReadBuf, Write};
use hyper::upgrade::{OnUpgrade, Upgraded};
use tether_core::handshake::{Decision, HandshakeError, Mode, ServerUpgrade};
use tether_core::Connection;

use crate::tokio::Tokio;
use crate::transport::{Runtime, Transport};
use crate::{Error, ServerOptions};

pub use tether_core::handshake::{Mode as UpgradeMode, Refusal};

/// A WebSocket on a connection (HTTP/1.1) or a stream (HTTP/2) hyper
/// handed over.
pub type WebSocket = crate::WebSocket<UpgradedIo, Tokio>;

/// hyper's upgraded connection or stream as a tether transport.
#[derive(Debug)]
pub struct UpgradedIo(Upgraded);

impl UpgradedIo {
    /// hyper's upgraded stream (`Upgraded::downcast` reaches the socket
    /// of an HTTP/1.1 upgrade).
    pub fn into_inner(self) -> Upgraded {
        self.0
    }
}

impl Transport for UpgradedIo {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, rb.unfilled()) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            // A TLS peer that left without close_notify: see `tls_eof`.
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

    /// Ends the write side: TCP FIN over HTTP/1.1, END_STREAM over HTTP/2.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Whether `request` asks for a WebSocket at all (an `Upgrade: websocket`
/// header, or a CONNECT with `:protocol websocket`), right or wrong: a
/// service that serves plain HTTP on the same route answers the others
/// itself, and [`upgrade`] refuses broken attempts with the right status.
pub fn is_upgrade_request<B>(request: &http::Request<B>) -> bool {
    tether_core::handshake::requests_websocket(
        request.method(),
        request.headers(),
        connect_protocol(request.extensions()),
    )
}

/// HTTP/2's `:protocol`, which hyper keeps in an extension.
pub(crate) fn connect_protocol(extensions: &http::Extensions) -> Option<&str> {
    extensions
        .get::<hyper::ext::Protocol>()
        .map(hyper::ext::Protocol::as_str)
}

/// Checks `request`, lets `decide` accept (choose a subprotocol, add
/// headers) or refuse it, and returns the response head to answer with
/// (101, or 200 for an extended CONNECT; give it an empty body) and the
/// WebSocket to come once hyper has sent it. `Err`: answer with the
/// refusal's response (the application's own, or the error response of
/// a failed check) and no WebSocket follows.
pub fn upgrade<B>(
    request: &mut http::Request<B>,
    options: &ServerOptions,
    decide: impl FnOnce(&http::Request<()>) -> Decision,
) -> Result<(http::Response<()>, PendingWebSocket), Box<Refusal>> {
    let protocol = connect_protocol(request.extensions());
    let checked = ServerUpgrade::new(request, protocol).map_err(refusal)?;
    let on_upgrade = request
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or_else(|| refusal(HandshakeError::NotUpgradable))?;
    let mut head = http::Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.version_mut() = request.version();
    *head.headers_mut() = request.headers().clone();
    let decision = decide(&head);
    accept(checked, on_upgrade, options, decision)
}

/// The failed check's refusal.
pub(crate) fn refusal(e: HandshakeError) -> Box<Refusal> {
    Box::new(Refusal::failed(e))
}

/// Applies `decision` to a checked request: the response head and the
/// pending WebSocket, on `options`.
pub(crate) fn accept(
    checked: ServerUpgrade,
    on_upgrade: OnUpgrade,
    options: &ServerOptions,
    decision: Decision,
) -> Result<(http::Response<()>, PendingWebSocket), Box<Refusal>> {
    #[cfg(feature = "deflate")]
    let checked = checked.with_deflate(options.deflate.clone());
    let mode = checked.mode();
    let now = Tokio::now();
    let upgraded = checked.accept(decision, options.config.clone(), crate::os_rng(), now)?;
    let pending = PendingWebSocket {
        on_upgrade,
        connection: upgraded.connection,
        protocol: upgraded.protocol,
        mode,
        deadline: tether_core::time::deadline_after(now, options.limits.timeout),
    };
    Ok((upgraded.response, pending))
}

/// The WebSocket of an accepted request, once hyper has sent the
/// response and handed over the connection (or stream): await it. Fails
/// when hyper cannot (the client went away first) or not within the
/// handshake timeout.
#[derive(Debug)]
#[must_use = "the WebSocket opens only when this is awaited"]
pub struct PendingWebSocket {
    on_upgrade: OnUpgrade,
    connection: Connection,
    protocol: Option<String>,
    mode: Mode,
    deadline: Instant,
}

impl PendingWebSocket {
    /// Whether the request was an HTTP/1.1 upgrade or an HTTP/2 extended
    /// CONNECT.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The subprotocol chosen, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    async fn open(self) -> Result<WebSocket, Error> {
        let Self {
            on_upgrade,
            connection,
            protocol,
            deadline,
            ..
        } = self;
        let upgraded = crate::handshake::before::<Tokio, _>(deadline, on_upgrade)
            .await?
            .map_err(|e| Error::Io(io::Error::other(e)))?;
        Ok(WebSocket::from_parts(
            UpgradedIo(upgraded),
            connection,
            protocol,
        ))
    }
}

impl IntoFuture for PendingWebSocket {
    type Output = Result<WebSocket, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.open())
    }
}
