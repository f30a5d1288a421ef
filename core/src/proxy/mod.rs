//! Reaching a WebSocket server through a proxy, sans-IO: HTTP `CONNECT`
//! and SOCKS5 as state machines that take the proxy's bytes and say what
//! to write, plus the choice of a proxy from the environment as a pure
//! function.
//!
//! A client that uses a proxy connects to the proxy (not the target),
//! runs one of these exchanges on the socket, and once it reports
//! [`Step::Done`] the socket is a tunnel to the target: TLS (for
//! `wss://`) and the WebSocket handshake run over it, starting with the
//! [`Tunnel::leftover`] bytes that came behind the proxy's last reply.
//!
//! * [`Proxy`]: a proxy parsed from a URL (`http://`, `socks5://`,
//!   `socks5h://`), with [`Credentials`] that are never printed.
//! * [`proxy_from_env`]: which proxy `wss_proxy`, `https_proxy`,
//!   `all_proxy`, `no_proxy` and friends choose for a target.
//! * [`ProxyHandshake`]: the exchange for a [`Proxy`], one of
//!   [`HttpConnect`] and [`Socks5`], which can also be used alone.
//!
//! Driving one (every exchange has the same shape):
//!
//! ```
//! use std::time::Instant;
//! use tether_core::handshake::HandshakeLimits;
//! use tether_core::proxy::{Proxy, ProxyHandshake, Step};
//!
//! let proxy: Proxy = "socks5h://proxy.example:1080".parse().unwrap();
//! let now = Instant::now();
//! let (mut hs, first) =
//!     ProxyHandshake::new(&proxy, &"example.com".into(), 443, HandshakeLimits::default(), now)
//!         .unwrap();
//! let mut written = vec![first]; // socket.write_all(&first)
//! let mut tunnel = None;
//! // What the proxy sends, as reads of the socket happen to cut it:
//! for read in [&[5u8][..], &[0], &[5, 0, 0, 1, 192, 0, 2, 1, 0x1f, 0x90, b'x']] {
//!     match hs.handle_read(read) {
//!         Ok(None) => {}                                       // read more
//!         Ok(Some(Step::Write(bytes))) => written.push(bytes), // write, then read
//!         Ok(Some(Step::Done(t))) => tunnel = Some(t),         // the socket is the tunnel
//!         Err(e) => panic!("{e}"), // close; e.is_retryable() says whether to try again
//!     }
//! }
//! // Meanwhile, on a timer: hs.handle_timeout(now) once hs.poll_timeout() passed.
//! assert_eq!(written.len(), 2); // the greeting, then CONNECT
//! assert_eq!(tunnel.unwrap().leftover, b"x"); // the tunnel's first bytes
//! ```

mod credentials;
mod env;
mod error;
mod host;
mod http_connect;
mod socks5;
mod url;

use std::time::Instant;

pub use credentials::Credentials;
pub use env::{proxy_from_env, NoProxy};
pub use error::{ProxyError, ProxyUrlError, Socks5Failure};
pub use host::Host;
pub use http_connect::HttpConnect;
pub use socks5::{Socks5, MAX_SOCKS5_REPLY_LEN};
pub use url::{Proxy, ProxyKind};

use crate::handshake::HandshakeLimits;

/// The longest `Proxy-Authenticate` text kept in
/// [`ProxyError::AuthenticationRequired`] (cut at a character boundary,
/// with `…` when cut).
pub const MAX_CHALLENGE_LEN: usize = 256;

/// What a proxy exchange wants after a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes to the proxy, then read its answer.
    Write(Vec<u8>),
    /// The tunnel is open.
    Done(Tunnel),
}

/// An open tunnel through a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tunnel {
    /// Bytes that came after the proxy's last reply: the target's, to be
    /// handed to what runs over the tunnel (TLS, the WebSocket handshake)
    /// before anything read later.
    pub leftover: Vec<u8>,
    /// The address and port the proxy connected from, as a SOCKS5 proxy
    /// reports them (often `0.0.0.0:0`); `None` for HTTP.
    pub bound: Option<(Host, u16)>,
}

/// The exchange with a [`Proxy`], whichever its kind: the one type an
/// adapter drives.
#[derive(Debug)]
pub enum ProxyHandshake {
    /// HTTP `CONNECT`.
    Http(HttpConnect),
    /// SOCKS5.
    Socks5(Socks5),
}

impl ProxyHandshake {
    /// Starts the exchange with `proxy` for a tunnel to `host:port` at
    /// `now`: the state and the bytes to write first. A `socks5://`
    /// proxy ([`ProxyKind::resolves_locally`]) needs `host` to be an
    /// address the caller resolved ([`ProxyError::UnresolvedTarget`]
    /// otherwise); `socks5h://` and `http://` send a name as it is.
    pub fn new(
        proxy: &Proxy,
        host: &Host,
        port: u16,
        limits: HandshakeLimits,
        now: Instant,
    ) -> Result<(Self, Vec<u8>), ProxyError> {
        let credentials = proxy.credentials.as_ref();
        match proxy.kind {
            ProxyKind::Http => HttpConnect::new(host, port, credentials, limits, now)
                .map(|(hs, out)| (Self::Http(hs), out)),
            ProxyKind::Socks5 if matches!(host, Host::Domain(_)) => {
                Err(ProxyError::UnresolvedTarget(host.to_string()))
            }
            ProxyKind::Socks5 | ProxyKind::Socks5h => {
                Socks5::new(host, port, credentials, limits, now)
                    .map(|(hs, out)| (Self::Socks5(hs), out))
            }
        }
    }

    /// Takes bytes from the proxy: `Ok(None)` to read more,
    /// [`Step::Write`] to write and then read, [`Step::Done`] once the
    /// tunnel is open.
    pub fn handle_read(&mut self, data: &[u8]) -> Result<Option<Step>, ProxyError> {
        match self {
            Self::Http(hs) => hs.handle_read(data),
            Self::Socks5(hs) => hs.handle_read(data),
        }
    }

    /// When the exchange times out.
    pub fn poll_timeout(&self) -> Instant {
        match self {
            Self::Http(hs) => hs.poll_timeout(),
            Self::Socks5(hs) => hs.poll_timeout(),
        }
    }

    /// Fails with [`ProxyError::TimedOut`] once the deadline has passed
    /// and the tunnel is not open.
    pub fn handle_timeout(&self, now: Instant) -> Result<(), ProxyError> {
        match self {
            Self::Http(hs) => hs.handle_timeout(now),
            Self::Socks5(hs) => hs.handle_timeout(now),
        }
    }

    /// Bytes of an incomplete reply held (bounded: see each exchange).
    pub fn buffered(&self) -> usize {
        match self {
            Self::Http(hs) => hs.buffered(),
            Self::Socks5(hs) => hs.buffered(),
        }
    }
}
