//! Server side of the opening handshake.
//!
//! The server parses and checks the request, then the application decides:
//! accept (choosing a subprotocol, adding headers) or reject with any
//! response. Authentication and Origin checks live in that decision.

use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use http::header::{
    CONNECTION, HOST, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};

use crate::rng::RandomSource;
use crate::{Config, Connection, Role};

use super::{
    accept_key, has_token, head_window, list_items, to_header_map, write_headers, HandshakeError,
    HandshakeLimits, HeadBuffer,
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
        trace!(info, status = error.http_status(), error = %error, "handshake request refused");
        Self {
            bytes: error_response(&error),
            result: Err(error),
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
    key: Option<String>,
    offered: Vec<String>,
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::DeflateConfig>,
    /// Agreed parameters and the response element.
    #[cfg(feature = "deflate")]
    negotiated: Option<(crate::deflate::DeflateParams, String)>,
}

impl ServerHandshake {
    /// Starts waiting for a request at `now`.
    pub fn new(limits: HandshakeLimits, now: Instant) -> Self {
        let deadline = crate::time::deadline_after(now, limits.timeout);
        Self {
            limits,
            deadline,
            head: HeadBuffer::default(),
            key: None,
            offered: Vec::new(),
            #[cfg(feature = "deflate")]
            deflate: None,
            #[cfg(feature = "deflate")]
            negotiated: None,
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
        self.negotiated.as_ref().map(|(p, _)| p.clone())
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
        if req.method != Some("GET") {
            return Err(HandshakeError::MethodNotGet);
        }
        if req.version != Some(1) {
            return Err(HandshakeError::HttpVersion);
        }
        let path = req.path.unwrap_or("/");
        let map = to_header_map(req.headers)?;
        if map.get(HOST).is_none() {
            return Err(HandshakeError::BadHeader("Host"));
        }
        if !has_token(map.get_all(UPGRADE), "websocket") {
            return Err(HandshakeError::BadHeader("Upgrade"));
        }
        if !has_token(map.get_all(CONNECTION), "upgrade") {
            return Err(HandshakeError::BadHeader("Connection"));
        }
        let key = map
            .get(SEC_WEBSOCKET_KEY)
            .and_then(|k| k.to_str().ok())
            .filter(|k| BASE64.decode(k.trim()).is_ok_and(|d| d.len() == 16))
            .ok_or(HandshakeError::BadHeader("Sec-WebSocket-Key"))?
            .trim()
            .to_owned();
        if map.get(SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
            return Err(HandshakeError::UnsupportedVersion);
        }
        let mut request = http::Request::builder()
            .method(http::Method::GET)
            .uri(path)
            .version(http::Version::HTTP_11)
            .body(())
            .map_err(|e| HandshakeError::Malformed(e.to_string()))?;
        self.offered = list_items(map.get_all(SEC_WEBSOCKET_PROTOCOL));
        #[cfg(feature = "deflate")]
        if let Some(cfg) = &self.deflate {
            let values = map
                .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok());
            self.negotiated =
                crate::deflate::server_accept(cfg, &crate::deflate::parse_extensions(values));
        }
        *request.headers_mut() = map;
        self.key = Some(key);
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
        &self.offered
    }

    /// The 101 response accepting the request.
    pub fn accept(&self, accept: &Accept) -> Result<Vec<u8>, HandshakeError> {
        let key = self.key.as_ref().expect("accept before a complete request");
        if let Some(p) = &accept.protocol {
            if !self.offered.iter().any(|o| o == p) {
                return Err(HandshakeError::ProtocolNotOffered(p.clone()));
            }
        }
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
        out.extend_from_slice(accept_key(key.as_bytes()).as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(p) = &accept.protocol {
            out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        #[cfg(feature = "deflate")]
        if let Some((_, response)) = &self.negotiated {
            out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
            out.extend_from_slice(response.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        write_headers(&mut out, &accept.headers);
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }

    /// The application's refusal, as bytes to write before closing.
    #[must_use]
    pub fn reject(&self, response: &http::Response<Bytes>) -> Vec<u8> {
        encode_response(response)
    }

    /// What to write for the application's `decision` on the request
    /// [`handle_read`](Self::handle_read) returned: the 101, the
    /// application's own refusal, or 400 when it chose a subprotocol the
    /// client did not offer. The one place this policy is written.
    pub fn answer(&mut self, decision: Decision) -> Answer {
        let answer = self.answer_inner(decision);
        #[cfg(feature = "tracing")]
        match &answer.result {
            Ok(protocol) => tracing::debug!(
                target: "tether",
                protocol = protocol.as_deref(),
                "handshake accepted"
            ),
            Err(e) => tracing::info!(
                target: "tether",
                status = e.http_status(),
                error = %e,
                "handshake refused"
            ),
        }
        answer
    }

    fn answer_inner(&mut self, decision: Decision) -> Answer {
        match decision {
            Ok(accept) => match self.accept(&accept) {
                Ok(bytes) => Answer {
                    bytes,
                    result: Ok(accept.protocol),
                },
                Err(e) => Answer::failed(e),
            },
            Err(response) => Answer {
                bytes: self.reject(&response),
                result: Err(HandshakeError::RejectedByApplication(
                    response.status().as_u16(),
                )),
            },
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
        let conn = Connection::new(Role::Server, config, rng, now);
        #[cfg(feature = "deflate")]
        let conn = conn.with_deflate(self.deflate_params());
        super::open_with(conn, &rest, now)
    }
}

/// The response to write for a request that failed its checks: 426 with
/// the supported version, 431 for oversized heads, 405 for other methods,
/// 400 otherwise.
#[must_use]
pub fn error_response(error: &HandshakeError) -> Vec<u8> {
    let status = error.http_status().unwrap_or(400);
    let extra: &[(&str, &str)] = match error {
        HandshakeError::UnsupportedVersion => &[("Sec-WebSocket-Version", "13")],
        HandshakeError::MethodNotGet => &[("Allow", "GET")],
        _ => &[],
    };
    let mut response = http::Response::new(Bytes::from(format!("{error}\n")));
    *response.status_mut() = http::StatusCode::from_u16(status).expect("valid status");
    for (name, value) in extra {
        response
            .headers_mut()
            .insert(*name, http::HeaderValue::from_static(value));
    }
    encode_response(&response)
}

fn encode_response(response: &http::Response<Bytes>) -> Vec<u8> {
    let status = response.status();
    let mut out = Vec::with_capacity(128 + response.body().len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    write_headers(&mut out, response.headers());
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
