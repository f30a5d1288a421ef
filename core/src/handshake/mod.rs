//! The opening handshake (RFC 6455 section 4), sans-IO: bytes in, bytes
//! out, with `http` types at the edge where applications look at headers.

pub mod client;
pub mod server;

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha1::{Digest, Sha1};

pub use client::{ClientHandshake, ClientRequest, ClientResponse};
pub use server::{Accept, ServerHandshake};

/// The GUID RFC 6455 appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    BASE64.encode(sha.finalize())
}

/// Bounds on the HTTP head, so a peer cannot make the handshake buffer or
/// wait without limit.
#[derive(Debug, Clone)]
pub struct HandshakeLimits {
    /// Largest request or response head, in bytes (431 or an error past it).
    pub max_head_size: usize,
    /// Most header fields accepted (431 or an error past it).
    pub max_headers: usize,
    /// Time allowed for the whole handshake.
    pub timeout: Duration,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        Self {
            max_head_size: 16 << 10,
            max_headers: 64,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why an opening handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The HTTP head could not be parsed.
    Malformed(String),
    /// The head grew past `max_head_size`.
    HeadTooLarge,
    /// More header fields than `max_headers`.
    TooManyHeaders,
    /// The request method is not GET.
    MethodNotGet,
    /// HTTP/1.0 or older.
    HttpVersion,
    /// A header is missing or has the wrong value.
    BadHeader(&'static str),
    /// Sec-WebSocket-Version is not 13.
    UnsupportedVersion,
    /// The server answered with this status instead of 101.
    Rejected(u16),
    /// The server's Sec-WebSocket-Accept does not match our key.
    AcceptMismatch,
    /// The server chose a subprotocol we did not offer.
    UnexpectedProtocol(String),
    /// The server accepted an extension we did not offer.
    UnexpectedExtension(String),
    /// The application's hook chose a subprotocol the client did not offer.
    ProtocolNotOffered(String),
    /// The application's hook rejected the request.
    RejectedByApplication(u16),
    /// The handshake did not finish in time.
    TimedOut,
    /// The peer closed the connection during the handshake.
    Eof,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed HTTP head: {e}"),
            Self::HeadTooLarge => f.write_str("HTTP head too large"),
            Self::TooManyHeaders => f.write_str("too many header fields"),
            Self::MethodNotGet => f.write_str("method is not GET"),
            Self::HttpVersion => f.write_str("HTTP/1.1 or later required"),
            Self::BadHeader(h) => write!(f, "missing or invalid {h} header"),
            Self::UnsupportedVersion => f.write_str("Sec-WebSocket-Version is not 13"),
            Self::Rejected(s) => write!(f, "server answered {s} instead of 101"),
            Self::AcceptMismatch => f.write_str("Sec-WebSocket-Accept does not match the key"),
            Self::UnexpectedProtocol(p) => {
                write!(f, "server chose subprotocol {p:?} that was not offered")
            }
            Self::UnexpectedExtension(e) => {
                write!(f, "server accepted extension {e:?} that was not offered")
            }
            Self::ProtocolNotOffered(p) => {
                write!(f, "subprotocol {p:?} was not offered by the client")
            }
            Self::RejectedByApplication(s) => write!(f, "request rejected with status {s}"),
            Self::TimedOut => f.write_str("handshake timed out"),
            Self::Eof => f.write_str("connection closed during the handshake"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Whether a comma-separated header value contains `token`, ignoring
/// ASCII case (Upgrade and Connection may list several tokens).
fn has_token(values: http::header::GetAll<'_, http::HeaderValue>, token: &str) -> bool {
    values.iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Every comma-separated item of every instance of a header.
fn list_items(values: http::header::GetAll<'_, http::HeaderValue>) -> Vec<String> {
    values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Copies httparse headers into a `HeaderMap`.
fn to_header_map(headers: &[httparse::Header<'_>]) -> Result<http::HeaderMap, HandshakeError> {
    let mut map = http::HeaderMap::with_capacity(headers.len());
    for h in headers {
        let name = http::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HandshakeError::Malformed(format!("header name {:?}", h.name)))?;
        let value = http::HeaderValue::from_bytes(h.value)
            .map_err(|_| HandshakeError::Malformed(format!("value of {}", h.name)))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Writes `name: value\r\n` for every header.
fn write_headers(out: &mut Vec<u8>, headers: &http::HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc_accept_key() {
        // RFC 6455 section 1.3.
        assert_eq!(
            super::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
