//! The TLS handshakes, written once for both runtimes over futures-io
//! streams (tokio's go through its shim), each within the deadline of the
//! opening handshake that follows it.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};
use futures_rustls::{client, server, TlsAcceptor, TlsConnector};
use rustls::pki_types::{DnsName, ServerName};
use rustls::{ClientConfig, ServerConfig};
use tether_core::handshake::{ClientRequest, HandshakeError};

use super::{config, TlsError, TlsErrorKind};
use crate::handshake::ClientOptions;
use crate::transport::Runtime;
use crate::{connector, Error};

/// What a `wss://` connect needs, settled before any byte leaves: the
/// configuration (with ALPN) and the name the certificate must match.
pub(crate) struct ClientTls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
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

    /// Runs the client's TLS handshake on `io` until `deadline`.
    pub(crate) async fn connect<S, R>(
        self,
        io: S,
        deadline: Instant,
    ) -> Result<client::TlsStream<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        R: Runtime,
    {
        let handshake = TlsConnector::from(self.config).connect(self.name, io);
        finish::<R, _>(deadline, handshake).await
    }
}

/// Runs the server's TLS handshake on `io` until `deadline`.
pub(crate) async fn accept<S, R>(
    config: &Arc<ServerConfig>,
    io: S,
    deadline: Instant,
) -> Result<server::TlsStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    finish::<R, _>(deadline, TlsAcceptor::from(config.clone()).accept(io)).await
}

/// Boxed, as the opening handshake is: the future holds a whole rustls
/// connection, which inline would take room in the caller's task for as
/// long as the connection lives. A rustls error becomes [`Error::Tls`].
async fn finish<R: Runtime, T>(
    deadline: Instant,
    handshake: impl Future<Output = io::Result<T>>,
) -> Result<T, Error> {
    match connector::within::<R, _>(deadline, Box::pin(handshake)).await {
        Some(done) => done.map_err(Error::from),
        None => Err(HandshakeError::TimedOut.into()),
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
