//! What a `wss://` client needs before any byte leaves: the configuration
//! (with ALPN) and the name the server's certificate must match. smol and
//! tokio hand it to futures-rustls (`handshake.rs`); the mio loop turns it
//! into rustls's own connection and drives that itself.

// With feature `rustls` but no runtime (tether-resume's build), nothing
// opens a client.
#![cfg_attr(
    not(any(feature = "smol", feature = "tokio", feature = "mio")),
    allow(dead_code)
)]

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{DnsName, ServerName};
use rustls::ClientConfig;
use tether_core::handshake::ClientRequest;

use super::{config, TlsError, TlsErrorKind};
use crate::handshake::ClientOptions;
use crate::Error;

/// A `wss://` connect's TLS settings, settled before the TCP connect.
pub(crate) struct ClientTls {
    pub(super) config: Arc<ClientConfig>,
    pub(super) name: ServerName<'static>,
}

impl ClientTls {
    /// `None` for a `ws://` request. A missing trust store or a host that
    /// is no server name fails here, before the TCP connect.
    pub(crate) fn prepare(
        request: &ClientRequest,
        options: &ClientOptions,
    ) -> Result<Option<Self>, Error> {
        if !request.secure {
            return Ok(None);
        }
        let config = match &options.tls {
            Some(c) => config::with_http11(c),
            None => config::default_client_config()?,
        };
        let name = server_name(&request.host)?;
        Ok(Some(Self { config, name }))
    }

    /// Offers `h2` before `http/1.1` by ALPN (the HTTP/2 client's
    /// connection, where RFC 8441 carries WebSockets).
    #[cfg(feature = "http2")]
    pub(crate) fn offer_h2(&mut self) {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        self.config = Arc::new(config);
    }

    /// rustls's sans-IO client connection, for a loop that moves its
    /// bytes itself. Its ClientHello is ready to write.
    #[cfg(feature = "mio")]
    pub(crate) fn into_connection(self) -> Result<rustls::ClientConnection, TlsError> {
        Ok(rustls::ClientConnection::new(self.config, self.name)?)
    }
}

/// The name the server's certificate must hold: the URL's host, as an IP
/// address when it is one (no SNI is sent then), else as a DNS name.
fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let authority: http::uri::Authority = host
        .parse()
        .map_err(|_| TlsError::new(TlsErrorKind::Config, format!("host {host:?}")))?;
    let host = authority.host();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    DnsName::try_from(bare.to_owned())
        .map(ServerName::DnsName)
        .map_err(|_| {
            TlsError::new(
                TlsErrorKind::Config,
                format!("{bare:?} is not a valid TLS server name"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_hosts() {
        let ip = |s: &str| ServerName::IpAddress(s.parse::<IpAddr>().unwrap().into());
        assert_eq!(server_name("127.0.0.1:9001").unwrap(), ip("127.0.0.1"));
        assert_eq!(server_name("[::1]:9001").unwrap(), ip("::1"));
        assert_eq!(server_name("[::1]").unwrap(), ip("::1"));
        assert_eq!(
            server_name("Example.COM").unwrap(),
            ServerName::try_from("example.com").unwrap()
        );
        let e = server_name("bad_name!").unwrap_err();
        assert_eq!(e.kind(), TlsErrorKind::Config);
    }
}
