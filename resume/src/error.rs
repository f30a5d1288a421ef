//! How a resumable transfer on one connection can fail.

use std::{fmt, io};

use tether::core::backoff::Failure;
use tether::CloseCode;

use crate::protocol::ResumeError;

/// A transfer's connection ended in failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the resume protocol; the connection was closed with
    /// 1008 (a policy violation: the WebSocket framing itself was fine).
    Protocol(ResumeError),
    /// The connection failed: its socket, or the WebSocket protocol.
    WebSocket(tether::Error),
    /// The local side failed: the sender's source or the receiver's
    /// store. The connection was closed with 1011.
    Local(io::Error),
}

impl Error {
    /// The close code the connection ended with because of this error,
    /// where one is known.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Protocol(e) => Some(e.close_code()),
            Self::WebSocket(e) => e.close_code(),
            Self::Local(_) => Some(CloseCode::INTERNAL_ERROR),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => e.fmt(f),
            Self::WebSocket(e) => e.fmt(f),
            Self::Local(e) => write!(f, "local source or store failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protocol(e) => Some(e),
            Self::WebSocket(e) => Some(e),
            Self::Local(e) => Some(e),
        }
    }
}

impl From<tether::Error> for Error {
    fn from(e: tether::Error) -> Self {
        Self::WebSocket(e)
    }
}

impl From<ResumeError> for Error {
    fn from(e: ResumeError) -> Self {
        Self::Protocol(e)
    }
}

/// How a reconnecting receiver classifies a failed session: a violation
/// is the code we closed with (1008, not retried by default: a peer that
/// broke the protocol will break it again); a local failure is not the
/// network's fault.
impl From<&Error> for Failure {
    fn from(e: &Error) -> Self {
        match e {
            Error::Protocol(r) => Failure::Protocol(r.close_code().0),
            Error::WebSocket(e) => Failure::from(e),
            Error::Local(_) => Failure::Other,
        }
    }
}
