//! The server's checks and negotiation on a request head, written once for
//! both entries: the byte-level [`ServerHandshake`](super::ServerHandshake)
//! parses into an `http::Request<()>` and calls these, and
//! [`ServerUpgrade`](super::ServerUpgrade) calls them on a request another
//! HTTP stack parsed (hyper, axum, an HTTP/2 server).

use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use http::header::{
    CONNECTION, HOST, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderValue, Method, StatusCode, Version};

use crate::rng::RandomSource;
use crate::{Config, Connection, Role};

use super::{accept_key, has_token, list_items, Accept, Decision, HandshakeError};

/// How a request asked for a WebSocket, which decides the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// RFC 6455: an HTTP/1.1 `GET` with `Upgrade: websocket` and a
    /// `Sec-WebSocket-Key`, answered `101 Switching Protocols`; the
    /// frames then take over the connection.
    Upgrade,
    /// RFC 8441: an HTTP/2 extended CONNECT (`:method CONNECT`,
    /// `:protocol websocket`, no key), answered `200`; the frames are
    /// the data of that one stream. (RFC 9220 is the same for HTTP/3.)
    ExtendedConnect,
}

/// The parts of a request head the checks read, borrowed from an
/// `http::Request` or its `Parts`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Head<'a> {
    pub(super) method: &'a Method,
    pub(super) version: Version,
    pub(super) uri: &'a http::Uri,
    pub(super) headers: &'a http::HeaderMap,
}

impl<'a, B> From<&'a http::Request<B>> for Head<'a> {
    fn from(r: &'a http::Request<B>) -> Self {
        Self {
            method: r.method(),
            version: r.version(),
            uri: r.uri(),
            headers: r.headers(),
        }
    }
}

impl<'a> From<&'a http::request::Parts> for Head<'a> {
    fn from(p: &'a http::request::Parts) -> Self {
        Self {
            method: &p.method,
            version: p.version,
            uri: &p.uri,
            headers: &p.headers,
        }
    }
}

/// Whether a request asks for a WebSocket at all, right or wrong: an
/// `Upgrade: websocket` header, or a CONNECT with `:protocol websocket`.
/// A route that serves plain HTTP too answers the others itself, and
/// lets the checks refuse these.
pub fn requests_websocket(
    method: &Method,
    headers: &http::HeaderMap,
    protocol: Option<&str>,
) -> bool {
    has_token(headers.get_all(UPGRADE), "websocket")
        || (method == Method::CONNECT
            && protocol.is_some_and(|p| p.eq_ignore_ascii_case("websocket")))
}

/// A request that passed the checks, and what was agreed on for it.
#[derive(Debug, Clone)]
pub(super) struct Negotiation {
    pub(super) mode: Mode,
    /// Sec-WebSocket-Key, trimmed (RFC 6455 mode only).
    key: Option<String>,
    /// The subprotocols offered, in the client's order of preference.
    pub(super) offered: Vec<String>,
    /// The permessage-deflate offers, kept until the server's settings
    /// are known.
    #[cfg(feature = "deflate")]
    offers: Vec<crate::deflate::ExtensionItem>,
    /// Agreed parameters and the response element.
    #[cfg(feature = "deflate")]
    pub(super) deflate: Option<(crate::deflate::DeflateParams, String)>,
}

impl Negotiation {
    /// Checks a request head. `protocol` is HTTP/2's `:protocol`
    /// pseudo-header, which `http::Request` has no field for (hyper
    /// keeps it in an extension); `None` on HTTP/1.1.
    ///
    /// HTTP/1.x: `GET` (405), HTTP/1.1 or later (505), `Host`, `Upgrade:
    /// websocket`, `Connection: upgrade`, a key of 16 bytes in base64.
    /// HTTP/2 and later: `CONNECT` (405), `:protocol websocket`, an
    /// authority. Both: `Sec-WebSocket-Version: 13` (426).
    pub(super) fn check(head: Head<'_>, protocol: Option<&str>) -> Result<Self, HandshakeError> {
        let map = head.headers;
        let (mode, key) = if head.version >= Version::HTTP_2 {
            if head.method != Method::CONNECT {
                return Err(HandshakeError::MethodNotConnect);
            }
            if !protocol.is_some_and(|p| p.eq_ignore_ascii_case("websocket")) {
                return Err(HandshakeError::BadHeader(":protocol"));
            }
            if head.uri.authority().is_none() && map.get(HOST).is_none() {
                return Err(HandshakeError::BadHeader(":authority"));
            }
            (Mode::ExtendedConnect, None)
        } else {
            if head.method != Method::GET {
                return Err(HandshakeError::MethodNotGet);
            }
            if head.version != Version::HTTP_11 {
                return Err(HandshakeError::HttpVersion);
            }
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
                .ok_or(HandshakeError::BadHeader("Sec-WebSocket-Key"))?;
            (Mode::Upgrade, Some(key.trim().to_owned()))
        };
        if map.get(SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
            return Err(HandshakeError::UnsupportedVersion);
        }
        Ok(Self {
            mode,
            key,
            offered: list_items(map.get_all(SEC_WEBSOCKET_PROTOCOL)),
            #[cfg(feature = "deflate")]
            offers: crate::deflate::parse_extensions(
                map.get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            ),
            #[cfg(feature = "deflate")]
            deflate: None,
        })
    }

    /// Accepts the first permessage-deflate offer `config` can honour
    /// (`None`: never compress).
    #[cfg(feature = "deflate")]
    pub(super) fn negotiate_deflate(&mut self, config: Option<&crate::deflate::DeflateConfig>) {
        self.deflate = config.and_then(|cfg| crate::deflate::server_accept(cfg, &self.offers));
    }

    /// The response head accepting the request: 101 with the accept key,
    /// or 200 for an extended CONNECT; the subprotocol chosen (it must be
    /// one the client offered), the extension agreed, the application's
    /// headers.
    pub(super) fn response(&self, accept: &Accept) -> Result<http::Response<()>, HandshakeError> {
        if let Some(p) = &accept.protocol {
            if !self.offered.iter().any(|o| o == p) {
                return Err(HandshakeError::ProtocolNotOffered(p.clone()));
            }
        }
        // 200 (`Response::new`'s status) for an extended CONNECT, without
        // the connection-specific headers HTTP/2 forbids.
        let mut response = http::Response::new(());
        if let (Mode::Upgrade, Some(key)) = (self.mode, &self.key) {
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            let accept = accept_key(key.as_bytes());
            headers.insert(
                SEC_WEBSOCKET_ACCEPT,
                HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
            );
        }
        let headers = response.headers_mut();
        if let Some(p) = &accept.protocol {
            // An offered token came from a header value, so it is one.
            let value = HeaderValue::from_str(p)
                .map_err(|_| HandshakeError::ProtocolNotOffered(p.clone()))?;
            headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
        }
        #[cfg(feature = "deflate")]
        if let Some((_, element)) = &self.deflate {
            let value = HeaderValue::from_str(element).expect("the element is ASCII");
            headers.insert(http::header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
        for (name, value) in &accept.headers {
            headers.append(name, value.clone());
        }
        Ok(response)
    }

    /// The application's `decision` on the request: the response accepting
    /// it with the subprotocol chosen, or a refusal (its own, or 400 for a
    /// subprotocol the client did not offer). The one place this policy
    /// is written.
    pub(super) fn decide(&self, decision: Decision) -> Result<Accepted, Box<Refusal>> {
        let outcome = match decision {
            Ok(accept) => self
                .response(&accept)
                .map(|response| Accepted {
                    response,
                    protocol: accept.protocol,
                })
                .map_err(|e| Box::new(Refusal::failed(e))),
            Err(response) => Err(Box::new(Refusal {
                error: HandshakeError::RejectedByApplication(response.status().as_u16()),
                response: *response,
            })),
        };
        #[cfg(feature = "tracing")]
        match &outcome {
            Ok(a) => tracing::debug!(
                target: "tether",
                protocol = a.protocol.as_deref(),
                mode = ?self.mode,
                "handshake accepted"
            ),
            Err(r) => tracing::info!(
                target: "tether",
                status = r.error.http_status(),
                error = %r.error,
                "handshake refused"
            ),
        }
        outcome
    }

    /// The server connection the accepted request opens at `now`, with
    /// permessage-deflate as agreed.
    pub(super) fn connection(
        &self,
        config: Config,
        rng: Box<dyn RandomSource>,
        now: Instant,
    ) -> Connection {
        let conn = Connection::new(Role::Server, config, rng, now);
        #[cfg(feature = "deflate")]
        let conn = conn.with_deflate(self.deflate.as_ref().map(|(p, _)| p.clone()));
        conn
    }
}

/// An accepted request's response head and the subprotocol chosen.
#[derive(Debug)]
pub(super) struct Accepted {
    pub(super) response: http::Response<()>,
    pub(super) protocol: Option<String>,
}

/// A request that gets no WebSocket: the response to send (the
/// application's own, or the error response for a failed check) and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct Refusal {
    /// The response to send before closing (over HTTP/1.1) or ending the
    /// stream (HTTP/2).
    pub response: http::Response<Bytes>,
    /// Why there is no WebSocket.
    pub error: HandshakeError,
}

impl Refusal {
    /// The refusal of a request that failed its checks: [`failed_response`]
    /// for `error`.
    pub fn failed(error: HandshakeError) -> Self {
        trace!(info, status = error.http_status(), error = %error, "handshake request refused");
        Self {
            response: failed_response(&error),
            error,
        }
    }
}

/// The response for a request that failed its checks: its
/// [`http_status`](HandshakeError::http_status) (400 when none), with
/// `Sec-WebSocket-Version: 13` on a 426 and `Allow` on a 405, and the
/// error as a line of text. The byte-level handshake adds
/// `Content-Length` and `Connection: close` when it writes it.
#[must_use]
pub fn failed_response(error: &HandshakeError) -> http::Response<Bytes> {
    let status = error.http_status().unwrap_or(400);
    let mut response = http::Response::new(Bytes::from(format!("{error}\n")));
    // A status carried by the error came from a parsed response or an
    // `http::StatusCode`, but `Rejected` can be built by hand: never panic.
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    match error {
        HandshakeError::UnsupportedVersion => {
            headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        HandshakeError::MethodNotGet => {
            headers.insert(http::header::ALLOW, HeaderValue::from_static("GET"));
        }
        HandshakeError::MethodNotConnect => {
            headers.insert(http::header::ALLOW, HeaderValue::from_static("CONNECT"));
        }
        _ => {}
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
