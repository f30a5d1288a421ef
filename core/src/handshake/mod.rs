//! The opening handshake (RFC 6455 section 4), sans-IO: bytes in, bytes
//! out, with `http` types at the edge where applications look at headers.

pub mod client;
mod negotiate;
pub mod server;
mod upgrade;

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha1::{Digest, Sha1};

pub use client::{ClientHandshake, ClientRequest, ClientResponse, ConnectHandshake};
pub use negotiate::{failed_response, requests_websocket, Mode, Refusal};
pub use server::{Accept, Answer, Decision, ServerHandshake};
pub use upgrade::{ServerUpgrade, Upgraded};

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
#[non_exhaustive]
pub struct HandshakeLimits {
    /// Largest request or response head, in bytes (431 or an error past it).
    pub max_head_size: usize,
    /// Most header fields accepted (431 or an error past it).
    pub max_headers: usize,
    /// Time allowed for the whole handshake.
    pub timeout: Duration,
}

crate::__with_setters!(HandshakeLimits {
    with_max_head_size => max_head_size: usize,
    with_max_headers => max_headers: usize,
    with_timeout => timeout: Duration,
});

impl Default for HandshakeLimits {
    /// A 16 KiB head with at most 100 fields, within 10 s.
    ///
    /// Why: 16 KiB is Node.js's default and holds a browser's full cookie
    /// jar for a site (cookies of 4 KiB each are legitimate) with the
    /// usual headers to spare; 100 fields is Apache's default. A slow
    /// client can hold at most that much of a server's memory, for at
    /// most the timeout, and the head is searched once per byte however
    /// it is cut (parsing it again on every read would make a head sent
    /// byte by byte cost quadratic time).
    fn default() -> Self {
        Self {
            max_head_size: 16 << 10,
            max_headers: 100,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The bytes of an HTTP head as they arrive. Parsing is attempted only
/// once the head can be complete (its blank line arrived) or on the first
/// read (so garbage fails at once), and the search for the blank line
/// never looks at a byte twice: a head trickled in byte by byte costs
/// linear time, not a full parse per byte. The proxy's CONNECT response
/// is read with it too.
#[derive(Debug, Default)]
pub(crate) struct HeadBuffer {
    pub(crate) buf: Vec<u8>,
    /// Bytes already searched for the blank line.
    searched: usize,
    /// Times the head was handed to the parser (tests check it stays small).
    parses: usize,
}

impl HeadBuffer {
    /// Appends `data`; returns whether the head should be parsed now.
    pub(crate) fn push(&mut self, data: &[u8]) -> bool {
        let first = self.buf.is_empty();
        self.buf.extend_from_slice(data);
        // The blank line is LF, optional CR, LF; it may straddle reads.
        let from = self.searched.saturating_sub(2);
        let end = self.buf[from..].windows(2).enumerate().any(|(i, w)| {
            w == b"\n\n" || (w == b"\n\r" && self.buf.get(from + i + 2) == Some(&b'\n'))
        });
        self.searched = self.buf.len();
        let parse = end || first;
        self.parses += usize::from(parse);
        parse
    }
}

/// Why an opening handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The HTTP head could not be parsed.
    Malformed(String),
    /// The head grew past `max_head_size`.
    HeadTooLarge,
    /// More header fields than `max_headers`.
    TooManyHeaders,
    /// The request method is not GET (HTTP/1.1).
    MethodNotGet,
    /// The request method is not CONNECT (HTTP/2, RFC 8441).
    MethodNotConnect,
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
    /// The HTTP server cannot hand this request's connection over (a
    /// request that did not come from hyper, an HTTP server without
    /// upgrades): a fault of the server, not the client.
    NotUpgradable,
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
            Self::MethodNotConnect => f.write_str("method is not CONNECT (HTTP/2, RFC 8441)"),
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
            Self::NotUpgradable => f.write_str("the HTTP server cannot upgrade this connection"),
            Self::TimedOut => f.write_str("handshake timed out"),
            Self::Eof => f.write_str("connection closed during the handshake"),
        }
    }
}

impl HandshakeError {
    /// The HTTP status of the failure: on a client, the one the server
    /// answered instead of 101; on a server, the one it answers the client
    /// with ([`server::error_response`] writes it), 426 for a version other
    /// than 13, 431 for a head over the limits, 405 for a method other than
    /// GET (CONNECT over HTTP/2), 505 for HTTP/1.0, 500 for a server
    /// that cannot upgrade, the hook's status for a rejection, 400 for
    /// other bad requests. `None` where no status is involved: a response
    /// that fails the client's checks, a timeout, end of stream.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Rejected(s) | Self::RejectedByApplication(s) => Some(*s),
            Self::UnsupportedVersion => Some(426),
            Self::HeadTooLarge | Self::TooManyHeaders => Some(431),
            Self::MethodNotGet | Self::MethodNotConnect => Some(405),
            Self::NotUpgradable => Some(500),
            Self::HttpVersion => Some(505),
            Self::Malformed(_) | Self::BadHeader(_) | Self::ProtocolNotOffered(_) => Some(400),
            Self::AcceptMismatch
            | Self::UnexpectedProtocol(_)
            | Self::UnexpectedExtension(_)
            | Self::TimedOut
            | Self::Eof => None,
        }
    }
}

impl std::error::Error for HandshakeError {}

/// The part of the buffered head that is parsed: one byte past the size
/// limit is enough to know the limit was passed. Looking no further makes
/// the outcome depend only on the bytes, not on how reads cut them: a
/// read that reached a malformed byte past the limit would otherwise fail
/// as malformed (400), and smaller reads as too large (431).
pub(crate) fn head_window<'a>(buf: &'a [u8], limits: &HandshakeLimits) -> &'a [u8] {
    &buf[..buf.len().min(limits.max_head_size.saturating_add(1))]
}

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

/// Hands a connection just made from a handshake the bytes that came
/// after the head (frames a peer sent without waiting): the one place a
/// finished handshake becomes a connection, for both roles.
fn open_with(
    mut conn: crate::Connection,
    rest: &[u8],
    now: std::time::Instant,
) -> crate::Connection {
    if !rest.is_empty() {
        conn.handle_read(rest, now);
    }
    conn
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
    use std::time::Instant;

    use super::*;

    /// A request with a 12 KiB cookie and 90 more fields: big, and legal
    /// under the default limits.
    fn big_request() -> Vec<u8> {
        let mut r = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\nCookie: "
            .to_vec();
        r.extend(std::iter::repeat_n(b'c', 12 << 10));
        r.extend_from_slice(b"\r\n");
        for i in 0..90 {
            r.extend_from_slice(format!("X-Field-{i}: {i}\r\n").as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r
    }

    /// RUSTSEC-2023-0065 (tungstenite) was a head parsed again on every
    /// read: sent byte by byte, a long head cost quadratic CPU. Here it is
    /// parsed twice (the first byte, to fail garbage early, and once
    /// complete) however it is cut.
    #[test]
    fn a_head_sent_byte_by_byte_is_parsed_twice_not_once_per_byte() {
        let request = big_request();
        assert!(request.len() > 13 << 10 && request.len() < 16 << 10);
        let mut hs = ServerHandshake::new(HandshakeLimits::default(), Instant::now());
        let mut accepted = None;
        for b in &request {
            if let Some(req) = hs.handle_read(std::slice::from_ref(b)).unwrap() {
                accepted = Some(req);
            }
        }
        let req = accepted.expect("the request is accepted");
        assert_eq!(req.headers().get("cookie").unwrap().len(), 12 << 10);
        assert_eq!(hs.head.parses, 2);
    }

    /// The blank line is found wherever a read cuts it (LF LF, or CR LF CR
    /// LF cut at each byte), and bytes that merely look like a line end
    /// inside a header do not end the head.
    #[test]
    fn the_end_of_the_head_is_found_across_reads() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        for cut in 1..head.len() {
            let mut h = HeadBuffer::default();
            h.push(&head[..cut]);
            assert!(h.push(&head[cut..]), "cut at {cut}");
        }
        let mut h = HeadBuffer::default();
        h.push(b"GET / HTTP/1.1\r\n");
        assert!(!h.push(b"Host: a\r\n"));
        assert!(!h.push(b"X: \r"));
        assert!(h.push(b"\n\n"));
        let mut h = HeadBuffer::default();
        h.push(b"G");
        assert!(!h.push(b"ET / HTTP/1.1\nHost: a\n"));
        assert!(h.push(b"\n"));
    }

    /// Garbage fails on its first read, without waiting for a blank line
    /// that never comes (a TLS hello sent to a plain port, say).
    #[test]
    fn garbage_fails_at_once() {
        let mut hs = ServerHandshake::new(HandshakeLimits::default(), Instant::now());
        assert!(hs.handle_read(&[0x16, 0x03, 0x01, 0x02, 0x00]).is_err());
    }

    #[test]
    fn rfc_accept_key() {
        // RFC 6455 section 1.3.
        assert_eq!(
            super::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
