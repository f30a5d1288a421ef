//! Typed errors, each mapped to the close code it sends.

use std::fmt;

use crate::close::{CloseCode, ClosePayloadError};
use crate::handshake::HandshakeError;
use crate::proxy::ProxyError;

/// A peer broke RFC 6455, or exceeded a configured limit. The connection
/// sends a close frame with [`ProtocolError::close_code`] and ignores
/// further input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A client sent an unmasked frame.
    UnmaskedFrame,
    /// A server sent a masked frame.
    MaskedFrame,
    /// RSV bits set that no extension negotiated.
    ReservedBits(u8),
    /// An opcode RFC 6455 reserves.
    ReservedOpcode(u8),
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong(u64),
    /// A control frame without FIN.
    FragmentedControlFrame,
    /// A continuation frame with no message to continue.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message was unfinished.
    ExpectedContinuation,
    /// A 64-bit payload length with the top bit set.
    LengthOverflow,
    /// Text (or a close reason) that is not UTF-8.
    InvalidUtf8,
    /// A compressed message that does not inflate.
    InvalidCompressedData,
    /// A malformed close frame payload.
    InvalidClosePayload(ClosePayloadError),
    /// A frame larger than `max_frame_size`.
    FrameTooLarge {
        /// The frame's payload length.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message larger than `max_message_size`.
    MessageTooLarge {
        /// The message size reached.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
}

impl ProtocolError {
    /// The close code this violation is answered with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8
            | Self::InvalidCompressedData
            | Self::InvalidClosePayload(ClosePayloadError::InvalidReason) => {
                CloseCode::INVALID_PAYLOAD
            }
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnmaskedFrame => f.write_str("client frame is not masked"),
            Self::MaskedFrame => f.write_str("server frame is masked"),
            Self::ReservedBits(b) => write!(f, "reserved bits {b:#05b} set without an extension"),
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::ControlFrameTooLong(n) => write!(f, "control frame of {n} bytes (limit 125)"),
            Self::FragmentedControlFrame => f.write_str("fragmented control frame"),
            Self::UnexpectedContinuation => f.write_str("continuation frame without a message"),
            Self::ExpectedContinuation => f.write_str("new message inside a fragmented message"),
            Self::LengthOverflow => f.write_str("payload length has its top bit set"),
            Self::InvalidUtf8 => f.write_str("text is not valid UTF-8"),
            Self::InvalidCompressedData => f.write_str("compressed message does not inflate"),
            Self::InvalidClosePayload(e) => write!(f, "invalid close frame: {e:?}"),
            Self::FrameTooLarge { size, limit } => {
                write!(f, "frame of {size} bytes (limit {limit})")
            }
            Self::MessageTooLarge { size, limit } => {
                write!(f, "message of at least {size} bytes (limit {limit})")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Everything that can go wrong on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the protocol or a limit; a close frame with the
    /// matching code was queued.
    Protocol(ProtocolError),
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// The connection is closing or closed; nothing more can be sent.
    Closed,
    /// A close code that may not be sent (1005, 1006, 1015, unassigned).
    InvalidCloseCode(u16),
    /// A ping or pong payload over 125 bytes.
    ControlPayloadTooLong(usize),
    /// A chunk of a streamed message was sent out of order: a continuation
    /// with no message started, or a new message before the last finished.
    ChunkOutOfOrder,
    /// No pong answered a keepalive ping in time; closed with 1011.
    KeepaliveTimeout,
    /// The peer ended TCP without a close handshake (close code 1006).
    AbnormalClosure,
    /// The proxy in front of the server could not be used.
    Proxy(ProxyError),
}

impl Error {
    /// The close code the connection ended with because of this error:
    /// the violation's code for a protocol error, 1011 for a keepalive
    /// timeout, 1006 (never sent, only reported) when TCP ended without a
    /// close frame. `None` for errors that close nothing: a failed
    /// handshake, or a command refused locally.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Protocol(e) => Some(e.close_code()),
            Self::KeepaliveTimeout => Some(CloseCode::INTERNAL_ERROR),
            Self::AbnormalClosure => Some(CloseCode::ABNORMAL),
            _ => None,
        }
    }

    /// The HTTP status of a failed handshake (see
    /// [`HandshakeError::http_status`]); `None` for any other error (a
    /// proxy's refusal has its own: [`ProxyError::http_status`]).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Handshake(e) => e.http_status(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
            Self::Closed => f.write_str("connection is closed"),
            Self::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
            Self::ControlPayloadTooLong(n) => write!(f, "control payload of {n} bytes (limit 125)"),
            Self::ChunkOutOfOrder => f.write_str("message chunk sent out of order"),
            Self::KeepaliveTimeout => f.write_str("no pong answered a keepalive ping in time"),
            Self::AbnormalClosure => f.write_str("peer closed TCP without a close frame"),
            Self::Proxy(e) => write!(f, "proxy: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protocol(e) => Some(e),
            Self::Handshake(e) => Some(e),
            Self::Proxy(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Self::Handshake(e)
    }
}

impl From<ProxyError> for Error {
    fn from(e: ProxyError) -> Self {
        Self::Proxy(e)
    }
}
