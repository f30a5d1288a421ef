//! The TLS handshakes, written once for both runtimes over futures-io
//! streams (tokio's go through its shim), each within the deadline of the
//! opening handshake that follows it.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};
use futures_rustls::{client, server, TlsAcceptor, TlsConnector};
use rustls::ServerConfig;
use tether_core::handshake::HandshakeError;

use super::ClientTls;
use crate::transport::Runtime;
use crate::{connector, Error};

impl ClientTls {
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
