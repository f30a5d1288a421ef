//! Server side of the opening handshake.
//!
//! The server parses and checks the request, then the application decides:
//! accept (choosing a subprotocol, adding headers) or reject with any
//! response. Authentication and Origin checks live in that decision.

use std::time::Instant;

use bytes::Bytes;

use crate::rng::RandomSource;
use crate::{Config, Connection};

use super::negotiate::{Negotiation, Refusal};
use super::{
    head_window, to_header_map, write_headers, HandshakeError, HandshakeLimits, HeadBuffer,
};

/// The application's yes to a request.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Accept {
    /// The subprotocol chosen; it must be one the client offered.
    pub protocol: Option<String>,
    /// Extra response headers (cookies, for example).
    pub headers: http::HeaderMap,
}

crate::__with_setters!(Accept {
    with_protocol => protocol: Option<String>,
    with_headers => headers: http::HeaderMap,
});

/// The application's answer to an upgrade request: accept (subprotocol,
/// extra headers) or reject with any response (boxed: a response is large
/// next to an `Accept`).
pub type Decision = Result<Accept, Box<http::Response<Bytes>>>;

/// What a server writes once the request is in, and whether a connection
/// follows: the 101 (`result` is `Ok` with the subprotocol chosen), the
/// application's refusal, or an error response for a request that failed
/// its checks. Write `bytes` either way; on `Err`, close the transport
/// after them.
#[derive(Debug)]
#[non_exhaustive]
pub struct Answer {
    /// The response to write.
    pub bytes: Vec<u8>,
    /// `Ok(subprotocol)`: call [`ServerHandshake::into_connection`].
    pub result: Result<Option<String>, HandshakeError>,
}

impl Answer {
    /// The answer to a request that failed its checks (or a handshake
    /// that failed otherwise): [`error_response`] for `error`.
    pub fn failed(error: HandshakeError) -> Self {
        Self::from(Refusal::failed(error))
    }
}

impl From<Refusal> for Answer {
    fn from(refusal: Refusal) -> Self {
        Self {
            bytes: encode_response(&refusal.response),
            result: Err(refusal.error),
        }
    }
}

/// Parses the request and writes the response; after an accepting
/// [`answer`](Self::answer), [`into_connection`](Self::into_connection)
/// opens the connection.
#[derive(Debug)]
pub struct ServerHandshake {
    limits: HandshakeLimits,
    deadline: Instant,
    pub(super) head: HeadBuffer,
    /// The checked request and what was agreed on, once it is in.
    negotiation: Option<Negotiation>,
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::DeflateConfig>,
}

impl ServerHandshake {
    /// Starts waiting for a request at `now`.
    pub fn new(limits: HandshakeLimits, now: Instant) -> Self {
        let deadline = crate::time::deadline_after(now, limits.timeout);
        Self {
            limits,
            deadline,
            head: HeadBuffer::default(),
            negotiation: None,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }

    /// Accepts permessage-deflate offers with these settings.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn with_deflate(mut self, config: Option<crate::deflate::DeflateConfig>) -> Self {
        self.deflate = config;
        self
    }

    /// The permessage-deflate parameters agreed on, once the request is
    /// parsed, for [`Connection::with_deflate`](crate::Connection::with_deflate).
    #[cfg(feature = "deflate")]
    pub fn deflate_params(&self) -> Option<crate::deflate::DeflateParams> {
        self.negotiation
            .as_ref()?
            .deflate
            .as_ref()
            .map(|(p, _)| p.clone())
    }

    /// When the handshake times out.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// Fails once the deadline has passed.
    pub fn handle_timeout(&self, now: Instant) -> Result<(), HandshakeError> {
        if now >= self.deadline {
            Err(HandshakeError::TimedOut)
        } else {
            Ok(())
        }
    }

    /// Takes request bytes. `Ok(None)`: the head is incomplete. `Ok(Some)`:
    /// a valid WebSocket request for the application to [`accept`](Self::accept)
    /// or [`reject`](Self::reject). `Err`: write [`error_response`] for it
    /// and close the connection.
    pub fn handle_read(
        &mut self,
        data: &[u8],
    ) -> Result<Option<http::Request<()>>, HandshakeError> {
        // Past the limit the head is parsed (up to the limit) even without
        // its blank line, to tell a malformed head from a long one the way
        // a single large read would.
        if !self.head.push(data) && self.head.buf.len() <= self.limits.max_head_size {
            return Ok(None);
        }
        let mut headers = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(head_window(&self.head.buf, &self.limits)) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if self.head.buf.len() > self.limits.max_head_size {
                    return Err(HandshakeError::HeadTooLarge);
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
            Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
        };
        if head_len > self.limits.max_head_size {
            return Err(HandshakeError::HeadTooLarge);
        }
        // Into the representation a parsed request has (an HTTP/1.x head
        // here, never an extended CONNECT), for the shared checks.
        let method = http::Method::from_bytes(req.method.unwrap_or("").as_bytes())
            .map_err(|e| HandshakeError::Malformed(e.to_string()))?;
        let version = match req.version {
            Some(1) => http::Version::HTTP_11,
            _ => http::Version::HTTP_10,
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(req.path.unwrap_or("/"))
            .version(version)
            .body(())
            .map_err(|e| HandshakeError::Malformed(e.to_string()))?;
        *request.headers_mut() = to_header_map(req.headers)?;
        let negotiation = Negotiation::check((&request).into(), None)?;
        #[cfg(feature = "deflate")]
        let negotiation = {
            let mut n = negotiation;
            n.negotiate_deflate(self.deflate.as_ref());
            n
        };
        self.negotiation = Some(negotiation);
        self.head.buf.drain(..head_len);
        Ok(Some(request))
    }

    /// Bytes that followed the request head (frames a client sent without
    /// waiting for the response), for [`Connection::handle_read`](crate::Connection::handle_read).
    #[must_use]
    pub fn take_leftover(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.head.buf))
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn offered_protocols(&self) -> &[String] {
        self.negotiation.as_ref().map_or(&[], |n| &n.offered)
    }

    /// The 101 response accepting the request.
    pub fn accept(&self, accept: &Accept) -> Result<Vec<u8>, HandshakeError> {
        let negotiation = self.negotiation();
        Ok(encode_head(&negotiation.response(accept)?))
    }

    fn negotiation(&self) -> &Negotiation {
        self.negotiation
            .as_ref()
            .expect("an answer before a complete request")
    }

    /// The application's refusal, as bytes to write before closing.
    #[must_use]
    pub fn reject(&self, response: &http::Response<Bytes>) -> Vec<u8> {
        encode_response(response)
    }

    /// What to write for the application's `decision` on the request
    /// [`handle_read`](Self::handle_read) returned: the 101, the
    /// application's own refusal, or 400 when it chose a subprotocol the
    /// client did not offer (the policy of [`ServerUpgrade`](super::ServerUpgrade)
    /// too, written once).
    pub fn answer(&mut self, decision: Decision) -> Answer {
        match self.negotiation().decide(decision) {
            Ok(accepted) => Answer {
                bytes: encode_head(&accepted.response),
                result: Ok(accepted.protocol),
            },
            Err(refusal) => Answer::from(*refusal),
        }
    }

    /// The connection an accepting [`answer`](Self::answer) opens at
    /// `now`: a server, with permessage-deflate as agreed and the frames a
    /// client sent behind its request already read.
    pub fn into_connection(
        mut self,
        config: Config,
        rng: Box<dyn RandomSource>,
        now: Instant,
    ) -> Connection {
        let rest = self.take_leftover();
        let conn = self.negotiation().connection(config, rng, now);
        super::open_with(conn, &rest, now)
    }
}

/// The response to write for a request that failed its checks:
/// [`failed_response`](super::failed_response) as
/// bytes.
#[must_use]
pub fn error_response(error: &HandshakeError) -> Vec<u8> {
    encode_response(&super::negotiate::failed_response(error))
}

/// An HTTP/1.1 response head: status line and headers.
fn encode_head<B>(response: &http::Response<B>) -> Vec<u8> {
    let status = response.status();
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    write_headers(&mut out, response.headers());
    out.extend_from_slice(b"\r\n");
    out
}

/// A whole response that ends the connection: its head with
/// `Content-Length` (unless given) and `Connection: close`, and its body.
fn encode_response(response: &http::Response<Bytes>) -> Vec<u8> {
    let mut out = encode_head(response);
    out.truncate(out.len() - 2);
    if !response
        .headers()
        .contains_key(http::header::CONTENT_LENGTH)
    {
        out.extend_from_slice(format!("Content-Length: {}\r\n", response.body().len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(response.body());
    out
}
