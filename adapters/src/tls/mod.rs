//! TLS (`wss://` clients and servers) on smol, tokio and the mio loop,
//! with rustls.
//!
//! Feature `rustls` turns it on; without it a `wss://` URL fails with
//! [`Error::TlsUnavailable`](crate::Error), never falls back to plain
//! text, and only the error types below exist.
//!
//! **Client.** `tether::smol::connect("wss://…")` and
//! `tether::tokio::connect` open TLS to the URL's host (port 443 by
//! default), verify its certificate for that name (an IP address host
//! is checked as an address) and offer ALPN `http/1.1`. The roots come
//! from feature `webpki-roots` (Mozilla's, compiled in) and/or
//! `rustls-native-certs` (the operating system's store); for a private
//! CA or a client certificate, give a configuration in
//! `ClientOptions::tls`:
//!
//! ```no_run
//! # #[cfg(all(feature = "smol", feature = "rustls"))]
//! # fn main() -> Result<(), tether::Error> {
//! use futures_util::{SinkExt, StreamExt};
//! use tether::{ClientOptions, Message};
//!
//! smol::block_on(async {
//!     let ca = std::fs::read("ca.pem")?;
//!     let options = ClientOptions::default().with_tls(tether::tls::client_config(&ca)?);
//!     let mut ws = tether::smol::connect_with("wss://feed.internal/v1", options).await?;
//!     ws.send(Message::text("hello")).await?;
//!     println!("{:?}", ws.next().await);
//!     ws.close(tether::CloseCode::NORMAL, "done").await
//! })
//! # }
//! # #[cfg(not(all(feature = "smol", feature = "rustls")))] fn main() {}
//! ```
//!
//! **Server.** Build a [`rustls::ServerConfig`] once (from PEM with
//! [`server_config`], or your own) and hand each accepted TCP stream to
//! the runtime's `accept_tls`, which runs the TLS handshake and then the
//! WebSocket one, together within `HandshakeLimits::timeout`, so a
//! client that never finishes either cannot hold the server:
//!
//! ```no_run
//! # #[cfg(all(feature = "tokio", feature = "rustls"))]
//! # async fn serve() -> Result<(), tether::Error> {
//! let tls = tether::tls::server_config(&std::fs::read("cert.pem")?, &std::fs::read("key.pem")?)?;
//! let mut listener = tether::tokio::Listener::bind("0.0.0.0:443").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let tls = tls.clone();
//!     tokio::spawn(async move {
//!         let ws = tether::tokio::accept_tls(stream, &tls).await?;
//!         // ... serve `ws` ...
//!         Ok::<_, tether::Error>(())
//!     });
//! }
//! # }
//! ```
//!
//! **The mio loop** takes the same configurations:
//! `Driver::connect("wss://…")` with `ClientOptions::tls`, and
//! `listen_tls`/`accept_tls` with a `ServerConfig`. It drives rustls's
//! own sans-IO connection from its event loop, no futures (see
//! `tether::mio`).
//!
//! **Crypto provider.** Configurations built here use the process-wide
//! provider when the application installed one, otherwise rustls's
//! `ring` ([`crypto_provider`]): ring needs only a C compiler to build,
//! where aws-lc-rs also needs cmake and builds longer. A configuration
//! you build yourself carries its own provider.
//!
//! **Versions.** [`rustls`] and [`futures_rustls`] are re-exported, so a
//! configuration built with `tether::tls::rustls` always fits. TLS runs
//! through futures-rustls on tokio too (behind a small shim), which keeps
//! a smol build from compiling tokio; a stream you made with tokio-rustls
//! still works with `tether::tokio::client` and `accept`.
//!
//! **Errors.** A failed TLS handshake is [`Error::Tls`](crate::Error)
//! with a [`TlsErrorKind`]: unknown issuer, expired, wrong name, no or
//! refused client certificate, an alert. The reconnect policy does not
//! retry them ([`Failure::Tls`](crate::reconnect::Failure::Tls)).

// The links above name what feature `rustls` adds.
#![cfg_attr(not(feature = "rustls"), allow(rustdoc::broken_intra_doc_links))]

mod error;
pub use error::{TlsError, TlsErrorKind};

#[cfg(feature = "rustls")]
mod client;
#[cfg(feature = "rustls")]
mod config;
#[cfg(all(feature = "rustls", any(feature = "smol", feature = "tokio")))]
mod handshake;

#[cfg(feature = "rustls")]
pub use config::{
    client_config, client_config_with_cert, crypto_provider, default_client_config, server_config,
    server_config_with_client_auth,
};
#[cfg(feature = "rustls")]
pub use futures_rustls;
#[cfg(feature = "rustls")]
pub use rustls;

#[cfg(all(
    feature = "rustls",
    any(feature = "smol", feature = "tokio", feature = "mio")
))]
pub(crate) use client::ClientTls;
#[cfg(all(feature = "rustls", any(feature = "smol", feature = "tokio")))]
pub(crate) use handshake::accept;

/// Without feature `rustls` no TLS client can be made: a `wss://` request
/// gets none, and `target` refuses it.
#[cfg(all(
    not(feature = "rustls"),
    any(feature = "smol", feature = "tokio", feature = "mio")
))]
pub(crate) enum ClientTls {}

#[cfg(all(
    not(feature = "rustls"),
    any(feature = "smol", feature = "tokio", feature = "mio")
))]
impl ClientTls {
    pub(crate) fn prepare(
        _: &tether_core::handshake::ClientRequest,
        _: &crate::ClientOptions,
    ) -> Result<Option<Self>, crate::Error> {
        Ok(None)
    }
}
