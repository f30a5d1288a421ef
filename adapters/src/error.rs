//! Errors of the adapters: the core's, plus I/O and TLS.

use std::{fmt, io};

use crate::tls::TlsError;

/// An error on a WebSocket connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The WebSocket failed (its handshake, the protocol, a keepalive
    /// timeout) or a command was refused: the core's error.
    WebSocket(tether_core::Error),
    /// The socket failed.
    Io(io::Error),
    /// A message arrived in chunks (chunk delivery is on) where the message
    /// `Stream` expects whole messages; read it with `next_chunk`.
    Chunked,
    /// A reconnecting client stopped: its policy does not retry this
    /// failure, or its attempts ran out.
    NotRetried(tether_core::backoff::Failure),
    /// A `wss://` URL, and this build of tether cannot open TLS (feature
    /// `rustls` is off): enable it, or connect a TLS stream yourself and
    /// run the handshake over it with the runtime's `client` function.
    /// Never sent in plain text instead.
    TlsUnavailable,
    /// TLS failed: a certificate refused on either side, an alert from
    /// the peer, unusable settings ([`TlsError::kind`] says which).
    Tls(TlsError),
}

impl Error {
    /// The close code the connection ended with because of this error
    /// (see [`tether_core::Error::close_code`]). `None` when no close is
    /// involved: an I/O error, a
    /// failed handshake, local misuse.
    pub fn close_code(&self) -> Option<tether_core::CloseCode> {
        match self {
            Self::WebSocket(e) => e.close_code(),
            _ => None,
        }
    }

    /// The HTTP status of a failed handshake: the server's answer instead
    /// of 101, or what this server answered the client (see
    /// [`HandshakeError::http_status`](tether_core::handshake::HandshakeError::http_status)).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::WebSocket(e) => e.http_status(),
            _ => None,
        }
    }

    /// The handshake failed (the connection never opened).
    pub fn handshake_error(&self) -> Option<&tether_core::handshake::HandshakeError> {
        match self {
            Self::WebSocket(tether_core::Error::Handshake(e)) => Some(e),
            _ => None,
        }
    }

    /// TLS failed (the handshake, or a record during the session).
    pub fn tls_error(&self) -> Option<&TlsError> {
        match self {
            Self::Tls(e) => Some(e),
            _ => None,
        }
    }

    /// The proxy could not open a tunnel to the server (see
    /// [`crate::proxy`]): its HTTP status, whether a retry can help.
    pub fn proxy_error(&self) -> Option<&tether_core::proxy::ProxyError> {
        match self {
            Self::WebSocket(tether_core::Error::Proxy(e)) => Some(e),
            _ => None,
        }
    }

    /// The socket failed (or a connection could not be opened).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WebSocket(e) => e.fmt(f),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Chunked => f.write_str("message arrives in chunks: read it with next_chunk"),
            Self::NotRetried(failure) => write!(f, "not reconnecting: {failure}"),
            Self::TlsUnavailable => f.write_str(
                "wss:// needs TLS, which this build of tether cannot open: enable feature `rustls`, or connect a TLS stream and run the handshake over it with `client`",
            ),
            Self::Tls(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::WebSocket(e) => Some(e),
            Self::Io(e) => Some(e),
            Self::Tls(e) => Some(e),
            Self::Chunked | Self::NotRetried(_) | Self::TlsUnavailable => None,
        }
    }
}

impl From<tether_core::Error> for Error {
    fn from(e: tether_core::Error) -> Self {
        Self::WebSocket(e)
    }
}

impl From<tether_core::handshake::HandshakeError> for Error {
    fn from(e: tether_core::handshake::HandshakeError) -> Self {
        Self::WebSocket(e.into())
    }
}

impl From<tether_core::proxy::ProxyError> for Error {
    fn from(e: tether_core::proxy::ProxyError) -> Self {
        Self::WebSocket(e.into())
    }
}

/// An I/O error that carries a rustls error (futures-rustls wraps them
/// so) becomes [`Error::Tls`], so every `?` in a handshake classifies it.
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match TlsError::from_io(&e) {
            Some(tls) => Self::Tls(tls),
            None => Self::Io(e),
        }
    }
}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Self {
        Self::Tls(e)
    }
}
