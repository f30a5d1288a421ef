//! The server handshake on a request head another HTTP stack parsed: a
//! hyper or axum service upgrading a request on a port that also serves
//! HTTP, over HTTP/1.1 (`Upgrade`) or HTTP/2 (extended CONNECT, RFC
//! 8441). The checks, the negotiation and the accept hook are those of
//! the byte-level [`ServerHandshake`](super::ServerHandshake).

use std::time::Instant;

use crate::rng::RandomSource;
use crate::{Config, Connection};

use super::negotiate::{Mode, Negotiation, Refusal};
use super::{Decision, HandshakeError};

/// A request head that passed the WebSocket checks, waiting for the
/// application's [`Decision`].
///
/// ```
/// use std::time::Instant;
/// use tether_core::handshake::{Accept, ServerUpgrade};
///
/// let request = http::Request::get("/chat")
///     .header("host", "example.com")
///     .header("upgrade", "websocket")
///     .header("connection", "Upgrade")
///     .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
///     .header("sec-websocket-version", "13")
///     .body(())
///     .unwrap();
/// let upgrade = ServerUpgrade::new(&request, None).unwrap();
/// let accepted = upgrade
///     .accept(
///         Ok(Accept::default()),
///         Default::default(),
///         Box::new(tether_core::Xoshiro256::from_seed(1)),
///         Instant::now(),
///     )
///     .unwrap();
/// assert_eq!(accepted.response.status(), 101);
/// ```
#[derive(Debug, Clone)]
pub struct ServerUpgrade {
    negotiation: Negotiation,
}

/// What an accepted request gives: the response head to send (101, or
/// 200 for an extended CONNECT), the subprotocol chosen, and the
/// connection the frames that follow go to.
#[derive(Debug)]
#[non_exhaustive]
pub struct Upgraded {
    /// The response head (its body is empty).
    pub response: http::Response<()>,
    /// The subprotocol chosen, if any.
    pub protocol: Option<String>,
    /// The server connection.
    pub connection: Connection,
}

impl ServerUpgrade {
    /// Checks `request` as [`ServerHandshake`](super::ServerHandshake)
    /// checks the requests it parses, and also accepts an HTTP/2 (or
    /// later) extended CONNECT. `protocol` is the `:protocol`
    /// pseudo-header, which `http::Request` has no field for (hyper puts
    /// it in the request's extensions); `None` over HTTP/1.1. `Err`: send
    /// [`Refusal::failed`]'s response.
    pub fn new<B>(
        request: &http::Request<B>,
        protocol: Option<&str>,
    ) -> Result<Self, HandshakeError> {
        let negotiation = Negotiation::check(request.into(), protocol)?;
        Ok(Self { negotiation })
    }

    /// [`new`](Self::new) on a request's `Parts` (what an axum extractor
    /// sees).
    pub fn from_parts(
        parts: &http::request::Parts,
        protocol: Option<&str>,
    ) -> Result<Self, HandshakeError> {
        let negotiation = Negotiation::check(parts.into(), protocol)?;
        Ok(Self { negotiation })
    }

    /// Accepts a permessage-deflate offer with these settings (`None`:
    /// never compress, the default).
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn with_deflate(mut self, config: Option<crate::deflate::DeflateConfig>) -> Self {
        self.negotiation.negotiate_deflate(config.as_ref());
        self
    }

    /// Whether the request is an RFC 6455 upgrade or an RFC 8441
    /// extended CONNECT.
    pub fn mode(&self) -> Mode {
        self.negotiation.mode
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn offered_protocols(&self) -> &[String] {
        &self.negotiation.offered
    }

    /// The permessage-deflate parameters agreed on.
    #[cfg(feature = "deflate")]
    pub fn deflate_params(&self) -> Option<crate::deflate::DeflateParams> {
        self.negotiation.deflate.as_ref().map(|(p, _)| p.clone())
    }

    /// The application's `decision` applied: the response head and the
    /// connection opened at `now`, or the response refusing the request
    /// (the application's own, or 400 for a subprotocol the client did
    /// not offer; boxed, as a response is large next to the rest).
    pub fn accept(
        self,
        decision: Decision,
        config: Config,
        rng: Box<dyn RandomSource>,
        now: Instant,
    ) -> Result<Upgraded, Box<Refusal>> {
        let accepted = self.negotiation.decide(decision)?;
        Ok(Upgraded {
            response: accepted.response,
            protocol: accepted.protocol,
            connection: self.negotiation.connection(config, rng, now),
        })
    }
}
