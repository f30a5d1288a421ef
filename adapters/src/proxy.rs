//! Client connections through an HTTP `CONNECT` or SOCKS5 proxy.
//!
//! [`ClientOptions::proxy`](crate::ClientOptions::proxy) chooses, for
//! every connection a client opens (smol, tokio, the mio loop, a
//! `Reconnector` or a pool):
//!
//! * [`ProxyConfig::FromEnv`] (the default): the proxy the environment
//!   names, read at each connection, as curl and Python's `websockets`
//!   read it: `no_proxy`/`NO_PROXY` first (a match connects directly),
//!   then `ws_proxy`/`wss_proxy`, `http_proxy` (`ws://`) or `https_proxy`
//!   (`wss://`), then `all_proxy`; credentials go in the URL
//!   (`http://user:pass@proxy:3128`). See [`proxy_from_env`] for the
//!   details. A bad URL there is an error, not a silent direct
//!   connection. Nothing set: a direct connection.
//! * [`ProxyConfig::Direct`]: no proxy, whatever the environment says.
//! * [`ProxyConfig::Explicit`]: this proxy for every target; the
//!   environment, `no_proxy` included, is not read.
//!
//! The client connects to the proxy, runs the core's sans-IO exchange
//! ([`ProxyHandshake`](tether_core::proxy::ProxyHandshake)) within
//! [`HandshakeLimits::timeout`](crate::HandshakeLimits), then the
//! WebSocket handshake through the tunnel. `socks5://` resolves the
//! target's name here and sends the proxy an address; `socks5h://` and
//! `http://` send the name. A proxy that fails fails the connection with
//! [`Error::proxy_error`](crate::Error::proxy_error): its HTTP status
//! ([`ProxyError::http_status`]) and whether another attempt can help
//! ([`ProxyError::is_retryable`], which the reconnect policy follows: a
//! refused password or a forbidden target is not retried, a 502 or an
//! unreachable target is).
//!
//! ```no_run
//! # #[cfg(feature = "smol")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tether::proxy::ProxyConfig;
//! use tether::ClientOptions;
//!
//! smol::block_on(async {
//!     // Through this proxy, whatever the environment says:
//!     let proxy = ProxyConfig::Explicit("socks5h://me:secret@127.0.0.1:1080".parse()?);
//!     let options = ClientOptions::default().with_proxy(proxy);
//!     match tether::smol::connect_with("ws://example.com/feed", options).await {
//!         Ok(_ws) => {}
//!         Err(e) => match e.proxy_error() {
//!             Some(p) if p.http_status() == Some(407) => eprintln!("wrong proxy password"),
//!             Some(p) => eprintln!("proxy: {p} (retry: {})", p.is_retryable()),
//!             None => eprintln!("{e}"),
//!         },
//!     }
//!     // Never through a proxy, even with `http_proxy` set:
//!     let _options = ClientOptions::default().with_proxy(ProxyConfig::Direct);
//!     Ok(())
//! })
//! # }
//! # #[cfg(not(feature = "smol"))] fn main() {}
//! ```
//!
//! `https://` proxies (TLS to the proxy itself) are refused when parsed.

pub use tether_core::proxy::{
    proxy_from_env, Credentials, Host, Proxy, ProxyError, ProxyKind, ProxyUrlError, Socks5Failure,
};

/// Which proxy a client goes through (see the [module](self) docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyConfig {
    /// The proxy the environment chooses for each target
    /// ([`proxy_from_env`]), read at each connection; none when nothing
    /// is set.
    #[default]
    FromEnv,
    /// No proxy: the environment is ignored.
    Direct,
    /// Always this proxy; the environment (`no_proxy` too) is ignored.
    Explicit(Proxy),
}

impl From<Proxy> for ProxyConfig {
    fn from(proxy: Proxy) -> Self {
        Self::Explicit(proxy)
    }
}

impl ProxyConfig {
    /// The proxy for `ws[s]://host:port`, or `None` to connect directly.
    pub fn choose(
        &self,
        secure: bool,
        host: &Host,
        port: u16,
    ) -> Result<Option<Proxy>, ProxyError> {
        match self {
            Self::FromEnv => proxy_from_env(secure, host, port, |name| std::env::var(name).ok()),
            Self::Direct => Ok(None),
            Self::Explicit(proxy) => Ok(Some(proxy.clone())),
        }
    }
}

/// What a tunnel that opened with bytes behind the proxy's last reply
/// fails with. Neither a WebSocket server (it waits for the request) nor
/// a TLS server (it waits for the ClientHello) speaks first, so those
/// bytes are not the target's answer to anything: a broken or hostile
/// proxy, or not the server meant.
#[cfg(any(feature = "smol", feature = "tokio", feature = "mio"))]
pub(crate) fn early_data() -> ProxyError {
    ProxyError::UnexpectedData("CONNECT reply")
}
