//! Client side of the opening handshake.

use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};

use super::{
    accept_key, has_token, head_window, list_items, to_header_map, write_headers, HandshakeError,
    HandshakeLimits, HeadBuffer,
};
use crate::rng::RandomSource;
use crate::{Config, Connection, Role};

/// What the client asks for.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClientRequest {
    /// Host header value (`host` or `host:port`).
    pub host: String,
    /// Request target: path and query, starting with `/`.
    pub path: String,
    /// The URL was `wss://`: the request must go over TLS (port 443 by
    /// default). The handshake itself is the same; the transport is not.
    pub secure: bool,
    /// Origin header, for servers that check it.
    pub origin: Option<String>,
    /// Subprotocols offered, in order of preference.
    pub protocols: Vec<String>,
    /// Further headers (authentication, cookies).
    pub headers: http::HeaderMap,
    /// permessage-deflate offers, most preferred first; empty: none.
    #[cfg(feature = "deflate")]
    pub deflate: Vec<crate::deflate::DeflateConfig>,
}

crate::__with_setters!(ClientRequest {
    with_host => host: String,
    with_path => path: String,
    with_secure => secure: bool,
    with_origin => origin: Option<String>,
    with_protocols => protocols: Vec<String>,
    with_headers => headers: http::HeaderMap,
});

#[cfg(feature = "deflate")]
crate::__with_setters!(ClientRequest {
    with_deflate => deflate: Vec<crate::deflate::DeflateConfig>,
});

impl ClientRequest {
    /// A request for `ws://host[:port]/path` or `wss://…` (which sets
    /// [`secure`](Self::secure): TLS is the transport's business).
    pub fn from_url(url: &str) -> Result<Self, HandshakeError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| HandshakeError::Malformed(format!("URL {url:?}: {e}")))?;
        let secure = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("ws") => false,
            Some(s) if s.eq_ignore_ascii_case("wss") => true,
            _ => {
                return Err(HandshakeError::Malformed(format!(
                    "URL {url:?}: scheme must be ws or wss"
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| HandshakeError::Malformed(format!("URL {url:?}: no host")))?;
        if authority.as_str().contains('@') {
            return Err(HandshakeError::Malformed(format!(
                "URL {url:?}: user info is not supported"
            )));
        }
        Ok(Self {
            host: authority.as_str().to_owned(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            secure,
            ..Self::default()
        })
    }
}

/// The server's accepted answer.
#[derive(Debug)]
#[non_exhaustive]
pub struct ClientResponse {
    /// The 101 response, headers included.
    pub response: http::Response<()>,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
    /// The permessage-deflate parameters agreed on, for
    /// [`Connection::with_deflate`](crate::Connection::with_deflate).
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::deflate::DeflateParams>,
}

/// Builds the request and checks the response; once the server has
/// accepted, [`into_connection`](Self::into_connection) opens the
/// connection.
#[derive(Debug)]
pub struct ClientHandshake {
    key: String,
    protocols: Vec<String>,
    #[cfg(feature = "deflate")]
    deflate: Vec<crate::deflate::DeflateConfig>,
    limits: HandshakeLimits,
    deadline: Instant,
    head: HeadBuffer,
    /// Set once the server accepted: what the connection needs.
    accepted: Option<Accepted>,
}

/// What an accepted response leaves for the connection.
#[derive(Debug)]
struct Accepted {
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::DeflateParams>,
    /// Bytes after the head: the server's first frames.
    rest: Bytes,
}

impl ClientHandshake {
    /// Starts a handshake at `now`: returns the state and the request bytes
    /// to write. Fails if a request field would break the HTTP head (a
    /// control character such as CR or LF, or an invalid subprotocol token).
    pub fn new(
        request: &ClientRequest,
        limits: HandshakeLimits,
        rng: &mut dyn RandomSource,
        now: Instant,
    ) -> Result<(Self, Vec<u8>), HandshakeError> {
        check_request(request)?;
        let mut nonce = [0u8; 16];
        rng.fill(&mut nonce);
        let key = BASE64.encode(nonce);
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(request.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(request.host.as_bytes());
        out.extend_from_slice(
            b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ",
        );
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\r\nSec-WebSocket-Version: 13\r\n");
        if let Some(origin) = &request.origin {
            out.extend_from_slice(b"Origin: ");
            out.extend_from_slice(origin.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !request.protocols.is_empty() {
            out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
            out.extend_from_slice(request.protocols.join(", ").as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        #[cfg(feature = "deflate")]
        if !request.deflate.is_empty() {
            out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
            out.extend_from_slice(crate::deflate::client_offer(&request.deflate).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        write_headers(&mut out, &request.headers);
        out.extend_from_slice(b"\r\n");
        let deadline = crate::time::deadline_after(now, limits.timeout);
        let state = Self {
            key,
            protocols: request.protocols.clone(),
            #[cfg(feature = "deflate")]
            deflate: request.deflate.clone(),
            limits,
            deadline,
            head: HeadBuffer::default(),
            accepted: None,
        };
        Ok((state, out))
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

    /// Takes response bytes. Returns `Ok(None)` until the head is complete,
    /// then the checked response; the bytes after the head (the server's
    /// first frames) wait for [`into_connection`](Self::into_connection).
    pub fn handle_read(&mut self, data: &[u8]) -> Result<Option<ClientResponse>, HandshakeError> {
        if self.accepted.is_some() {
            return Err(HandshakeError::Malformed(
                "response bytes after the handshake completed".into(),
            ));
        }
        // Past the limit the head is parsed (up to the limit) even without
        // its blank line, to tell a malformed head from a long one the way
        // a single large read would.
        if !self.head.push(data) && self.head.buf.len() <= self.limits.max_head_size {
            return Ok(None);
        }
        let mut headers = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(head_window(&self.head.buf, &self.limits)) {
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
        let status = resp.code.unwrap_or(0);
        let map = to_header_map(resp.headers)?;
        if status != 101 {
            trace!(info, status, "server refused the handshake");
            return Err(HandshakeError::Rejected(status));
        }
        if !has_token(map.get_all(UPGRADE), "websocket") {
            return Err(HandshakeError::BadHeader("Upgrade"));
        }
        if !has_token(map.get_all(CONNECTION), "upgrade") {
            return Err(HandshakeError::BadHeader("Connection"));
        }
        let expected = accept_key(self.key.as_bytes());
        if map.get(SEC_WEBSOCKET_ACCEPT).map(|v| v.as_bytes()) != Some(expected.as_bytes()) {
            return Err(HandshakeError::AcceptMismatch);
        }
        let agreed = Agreed::check(
            &map,
            &self.protocols,
            #[cfg(feature = "deflate")]
            &self.deflate,
        )?;
        let protocol = agreed.protocol;
        #[cfg(feature = "deflate")]
        let deflate = agreed.deflate;
        let mut response = http::Response::new(());
        *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        *response.headers_mut() = map;
        let rest = Bytes::copy_from_slice(&self.head.buf[head_len..]);
        self.head = HeadBuffer::default();
        trace!(
            debug,
            protocol = protocol.as_deref(),
            "handshake accepted by the server"
        );
        self.accepted = Some(Accepted {
            #[cfg(feature = "deflate")]
            deflate: deflate.clone(),
            rest,
        });
        Ok(Some(ClientResponse {
            response,
            protocol,
            #[cfg(feature = "deflate")]
            deflate,
        }))
    }

    /// The connection the accepted handshake opens at `now`: a client,
    /// with permessage-deflate as agreed and the frames that came with the
    /// response already read. `rng` must be a cryptographically secure
    /// source on a real network: it makes the mask keys.
    ///
    /// # Panics
    /// Before [`handle_read`](Self::handle_read) returned the response: a
    /// bug in the caller, not something a peer can cause.
    pub fn into_connection(
        self,
        config: Config,
        rng: Box<dyn RandomSource>,
        now: Instant,
    ) -> Connection {
        let accepted = self
            .accepted
            .expect("into_connection before the server accepted");
        let conn = Connection::new(Role::Client, config, rng, now);
        #[cfg(feature = "deflate")]
        let conn = conn.with_deflate(accepted.deflate);
        super::open_with(conn, &accepted.rest, now)
    }
}

/// What the server's response agreed to, checked against the offers:
/// the same checks for an HTTP/1.1 101 and an RFC 8441 200.
struct Agreed {
    protocol: Option<String>,
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::DeflateParams>,
}

impl Agreed {
    /// At most one subprotocol, one we offered; at most one extension,
    /// a permessage-deflate we offered.
    fn check(
        map: &http::HeaderMap,
        protocols: &[String],
        #[cfg(feature = "deflate")] offers: &[crate::deflate::DeflateConfig],
    ) -> Result<Self, HandshakeError> {
        let chosen = list_items(map.get_all(SEC_WEBSOCKET_PROTOCOL));
        let protocol = match chosen.as_slice() {
            [] => None,
            [p] if protocols.iter().any(|o| o == p) => Some(p.clone()),
            _ => return Err(HandshakeError::UnexpectedProtocol(chosen.join(", "))),
        };
        // Only an extension we offered may be accepted, once.
        let accepted = list_items(map.get_all(SEC_WEBSOCKET_EXTENSIONS));
        #[cfg(feature = "deflate")]
        let deflate = match accepted.as_slice() {
            [] => None,
            [ext] => {
                let items = crate::deflate::parse_extensions([ext.as_str()]);
                let params = items
                    .first()
                    .and_then(|item| crate::deflate::client_accept(offers, item));
                Some(params.ok_or_else(|| HandshakeError::UnexpectedExtension(ext.clone()))?)
            }
            _ => return Err(HandshakeError::UnexpectedExtension(accepted.join(", "))),
        };
        #[cfg(not(feature = "deflate"))]
        if let Some(ext) = accepted.into_iter().next() {
            return Err(HandshakeError::UnexpectedExtension(ext));
        }
        Ok(Self {
            protocol,
            #[cfg(feature = "deflate")]
            deflate,
        })
    }
}

/// The checks of the request's fields, for both forms of request.
fn check_request(request: &ClientRequest) -> Result<(), HandshakeError> {
    check_field("host", &request.host)?;
    check_field("path", &request.path)?;
    if !request.path.starts_with('/') || request.path.contains(' ') {
        return Err(HandshakeError::Malformed(format!(
            "path {:?}",
            request.path
        )));
    }
    if let Some(origin) = &request.origin {
        check_field("origin", origin)?;
    }
    for p in &request.protocols {
        if p.is_empty() || !p.bytes().all(is_token_byte) {
            return Err(HandshakeError::Malformed(format!(
                "subprotocol {p:?} is not a token"
            )));
        }
    }
    Ok(())
}

/// The client side of an RFC 8441 extended CONNECT: the request head to
/// send on a new HTTP/2 stream (its `:protocol websocket` pseudo-header
/// is the HTTP/2 library's to set, as `http::Request` has no field for
/// it), and the checks of the response (a 2xx; the subprotocol and
/// extension as over HTTP/1.1; no key, so no accept value). The frames
/// are then the stream's data, in both directions.
#[derive(Debug)]
pub struct ConnectHandshake {
    protocols: Vec<String>,
    #[cfg(feature = "deflate")]
    deflate: Vec<crate::deflate::DeflateConfig>,
    #[cfg(feature = "deflate")]
    agreed: Option<crate::deflate::DeflateParams>,
    accepted: bool,
}

impl ConnectHandshake {
    /// The state and the request head: CONNECT over HTTP/2 to
    /// `https://host/path` (`http://` when not [`secure`](ClientRequest::secure)),
    /// with the version, origin, subprotocols, permessage-deflate offers and
    /// extra headers of `request`.
    pub fn new(request: &ClientRequest) -> Result<(Self, http::Request<()>), HandshakeError> {
        check_request(request)?;
        let scheme = if request.secure { "https" } else { "http" };
        let uri = format!("{scheme}://{}{}", request.host, request.path);
        let mut head = http::Request::builder()
            .method(http::Method::CONNECT)
            .version(http::Version::HTTP_2)
            .uri(uri)
            .header(http::header::SEC_WEBSOCKET_VERSION, "13");
        if let Some(origin) = &request.origin {
            head = head.header(http::header::ORIGIN, origin);
        }
        if !request.protocols.is_empty() {
            head = head.header(SEC_WEBSOCKET_PROTOCOL, request.protocols.join(", "));
        }
        #[cfg(feature = "deflate")]
        if !request.deflate.is_empty() {
            head = head.header(
                SEC_WEBSOCKET_EXTENSIONS,
                crate::deflate::client_offer(&request.deflate),
            );
        }
        let mut head = head
            .body(())
            .map_err(|e| HandshakeError::Malformed(e.to_string()))?;
        for (name, value) in &request.headers {
            head.headers_mut().append(name, value.clone());
        }
        let state = Self {
            protocols: request.protocols.clone(),
            #[cfg(feature = "deflate")]
            deflate: request.deflate.clone(),
            #[cfg(feature = "deflate")]
            agreed: None,
            accepted: false,
        };
        Ok((state, head))
    }

    /// Checks the server's response head: `Rejected(status)` for anything
    /// but a 2xx, then the subprotocol and extension it chose.
    pub fn handle_response<B>(
        &mut self,
        response: &http::Response<B>,
    ) -> Result<ClientResponse, HandshakeError> {
        let status = response.status();
        if !status.is_success() {
            trace!(
                info,
                status = status.as_u16(),
                "server refused the extended CONNECT"
            );
            return Err(HandshakeError::Rejected(status.as_u16()));
        }
        let agreed = Agreed::check(
            response.headers(),
            &self.protocols,
            #[cfg(feature = "deflate")]
            &self.deflate,
        )?;
        #[cfg(feature = "deflate")]
        {
            self.agreed.clone_from(&agreed.deflate);
        }
        self.accepted = true;
        let mut head = http::Response::new(());
        *head.status_mut() = status;
        head.headers_mut().clone_from(response.headers());
        Ok(ClientResponse {
            response: head,
            protocol: agreed.protocol,
            #[cfg(feature = "deflate")]
            deflate: agreed.deflate,
        })
    }

    /// The client connection for the stream, once the response was
    /// accepted; `rng` makes the mask keys (a CSPRNG on a real network).
    ///
    /// # Panics
    /// Before [`handle_response`](Self::handle_response) accepted: a bug
    /// in the caller, not something a peer can cause.
    pub fn into_connection(
        self,
        config: Config,
        rng: Box<dyn RandomSource>,
        now: Instant,
    ) -> Connection {
        assert!(self.accepted, "into_connection before the server accepted");
        let conn = Connection::new(Role::Client, config, rng, now);
        #[cfg(feature = "deflate")]
        let conn = conn.with_deflate(self.agreed);
        conn
    }
}

/// Rejects values that would end the header line or the head early.
fn check_field(name: &str, value: &str) -> Result<(), HandshakeError> {
    if value.is_empty() || value.bytes().any(|b| b.is_ascii_control()) {
        return Err(HandshakeError::Malformed(format!("{name} {value:?}")));
    }
    Ok(())
}

/// RFC 7230 `tchar`, the characters of a subprotocol name.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
