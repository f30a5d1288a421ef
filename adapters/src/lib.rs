//! # tether
//!
//! WebSocket (RFC 6455) for connections that stay up for hours and carry
//! millions of messages, on the async runtime you already use. The
//! protocol lives in [`tether_core`], a sans-IO state machine re-exported
//! here; this crate drives it on smol/async-io (feature `smol`, default)
//! and tokio (feature `tokio`) through one shared driver, and presents a
//! connection as a `Stream` and `Sink` of [`Message`]s. Feature `mio`
//! adds `tether::mio`, a single-threaded event loop with no futures.
//! Feature `rustls` adds TLS (`wss://` clients, `accept_tls` servers) on
//! smol and tokio: see [`tls`].
//!
//! ```no_run
//! # #[cfg(feature = "smol")]
//! # fn main() -> Result<(), tether::Error> {
//! use futures_util::{SinkExt, StreamExt};
//! use tether::Message;
//!
//! smol::block_on(async {
//!     // Sets TCP_NODELAY, and waits out EMFILE instead of failing.
//!     let mut listener = tether::smol::Listener::bind("127.0.0.1:9001").await?;
//!     let (stream, _) = listener.accept().await?;
//!     let mut ws = tether::smol::accept(stream).await?;
//!     while let Some(msg) = ws.next().await {
//!         if let m @ (Message::Text(_) | Message::Binary(_)) = msg? {
//!             ws.send(m).await?;
//!         }
//!     }
//!     Ok(())
//! })
//! # }
//! # #[cfg(not(feature = "smol"))] fn main() {}
//! ```

#![warn(missing_docs)]

#[cfg(any(feature = "smol", feature = "tokio", feature = "mio"))]
mod accept;
mod connector;
mod driver;
mod error;
mod handshake;
mod random;
mod socket;
mod transport;
#[cfg(any(feature = "smol", feature = "tokio"))]
mod tunnel;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "http2")]
pub mod http2;
#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "mio")]
pub mod mio;
pub mod pool;
pub mod proxy;
pub mod reconnect;
pub mod shutdown;
#[cfg(feature = "smol")]
pub mod smol;
pub mod tls;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use connector::Connector;
pub use driver::{Chunk, WebSocket, WsSink, WsStream};
pub use error::Error;
pub use handshake::{ClientOptions, ServerOptions};
pub use random::{os_rng, ThreadCsprng};
pub use socket::{SocketOptions, TcpKeepaliveOptions};
pub use transport::{Runtime, Transport};

pub use tether_core as core;
pub use tether_core::handshake::{Accept, ClientRequest, Decision, HandshakeLimits};
#[cfg(feature = "deflate")]
pub use tether_core::DeflateConfig;
pub use tether_core::{
    http, Bytes, CloseCode, CloseFrame, Config, DataKind, Message, PreparedMessage, Role, State,
    Text,
};

/// The request for `url` with the options' origin, subprotocols and headers.
#[cfg(any(feature = "smol", feature = "tokio", feature = "mio"))]
fn client_request(url: &str, options: &ClientOptions) -> Result<ClientRequest, Error> {
    let mut request = ClientRequest::from_url(url)?;
    #[cfg(feature = "deflate")]
    request.deflate.clone_from(&options.deflate);
    request.origin.clone_from(&options.origin);
    request.protocols.clone_from(&options.protocols);
    request.headers.clone_from(&options.headers);
    Ok(request)
}

/// The server's host and port for a request (port 80, or 443 for
/// `wss://`, when the URL has none), to connect to or to ask a proxy for.
/// A `wss://` request is refused unless the caller has made a TLS client
/// for it (`tls`): sending it in plain text would be worse than failing.
#[cfg(any(feature = "smol", feature = "tokio", feature = "mio"))]
fn target(request: &ClientRequest, tls: bool) -> Result<(tether_core::proxy::Host, u16), Error> {
    if request.secure && !tls {
        return Err(Error::TlsUnavailable);
    }
    let authority: http::uri::Authority = request.host.parse().map_err(|_| {
        tether_core::handshake::HandshakeError::Malformed(format!("host {:?}", request.host))
    })?;
    let port = authority
        .port_u16()
        .unwrap_or(if request.secure { 443 } else { 80 });
    Ok((authority.host().into(), port))
}

/// A read that fails with `UnexpectedEof` is end of stream. TLS stacks
/// (rustls through futures-rustls or tokio-rustls, and others) report so
/// a peer that closed TCP without a TLS close_notify, as Python's `ssl`
/// and many servers do right after the WebSocket close handshake.
/// WebSocket needs no close_notify to detect truncation: frames are
/// self-delimiting, and an end without the close handshake is already
/// an abnormal closure (1006) in the core, so nothing is lost by reading
/// it as EOF, and a completed close is not turned into an I/O error.
#[cfg(any(feature = "smol", feature = "tokio"))]
fn tls_eof(
    read: std::task::Poll<std::io::Result<usize>>,
) -> std::task::Poll<std::io::Result<usize>> {
    match read {
        std::task::Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            std::task::Poll::Ready(Ok(0))
        }
        other => other,
    }
}

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
