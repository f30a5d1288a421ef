//! Errors of the adapters: the core's, plus I/O.

use std::{fmt, io};

/// An error on a WebSocket connection.
#[derive(Debug)]
pub enum Error {
    /// A protocol, handshake or state error from the core.
    Ws(tether_core::Error),
    /// The socket failed.
    Io(io::Error),
    /// A message arrived in chunks (chunk delivery is on) where the message
    /// `Stream` expects whole messages; read it with `next_chunk`.
    Chunked,
    /// The peer broke the resumable-transfer protocol (`tether::resume`);
    /// the connection was closed with 1008.
    Resume(tether_core::resume::ResumeError),
    /// A reconnecting client stopped: its policy does not retry this
    /// failure, or its attempts ran out.
    NotRetried(tether_core::backoff::Failure),
    /// A `wss://` URL, and this build of tether cannot open TLS: connect a
    /// TLS stream yourself and run the handshake over it with the
    /// runtime's `client` function. Never sent in plain text instead.
    TlsUnavailable,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ws(e) => e.fmt(f),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Chunked => f.write_str("message arrives in chunks: read it with next_chunk"),
            Self::Resume(e) => e.fmt(f),
            Self::NotRetried(failure) => write!(f, "not reconnecting: {failure}"),
            Self::TlsUnavailable => f.write_str(
                "wss:// needs TLS, which this build of tether cannot open: connect a TLS stream and run the handshake over it with `client`",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ws(e) => Some(e),
            Self::Io(e) => Some(e),
            Self::Resume(e) => Some(e),
            Self::Chunked | Self::NotRetried(_) | Self::TlsUnavailable => None,
        }
    }
}

impl From<tether_core::Error> for Error {
    fn from(e: tether_core::Error) -> Self {
        Self::Ws(e)
    }
}

impl From<tether_core::handshake::HandshakeError> for Error {
    fn from(e: tether_core::handshake::HandshakeError) -> Self {
        Self::Ws(e.into())
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}
