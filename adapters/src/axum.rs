//! An axum 0.8 extractor that upgrades a request to a tether WebSocket, in
//! the shape of axum's own `WebSocketUpgrade`: over HTTP/1.1, and over
//! HTTP/2 when the server enables extended CONNECT (RFC 8441).
//!
//! ```no_run
//! use axum::{response::{IntoResponse, Response}, routing::any, Router};
//! use futures_util::{SinkExt, StreamExt};
//! use tether::axum::WebSocketUpgrade;
//!
//! // `any`: an HTTP/2 WebSocket arrives as CONNECT, not GET. `Option`:
//! // the same route answers plain HTTP requests.
//! let app: Router = Router::new().route("/chat", any(chat));
//!
//! async fn chat(ws: Option<WebSocketUpgrade>) -> Response {
//!     let Some(ws) = ws else {
//!         return "plain HTTP".into_response();
//!     };
//!     ws.protocols(["chat.v2", "chat.v1"])
//!         .on_upgrade(|mut ws| async move {
//!             while let Some(Ok(msg)) = ws.next().await {
//!                 let data = matches!(msg, tether::Message::Text(_) | tether::Message::Binary(_));
//!                 if data && ws.send(msg).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         })
//! }
//! ```
//!
//! The checks, the negotiation and the refusals are the core's; the
//! WebSocket is driven like every other tether connection.

use std::future::Future;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use hyper::upgrade::OnUpgrade;
use tether_core::handshake::{Accept, Decision, HandshakeError, Mode, Refusal, ServerUpgrade};

use crate::hyper::{connect_protocol, PendingWebSocket};
use crate::{Config, Error, ServerOptions};

pub use crate::hyper::WebSocket;

/// The extractor: a request that passed the WebSocket checks, to answer
/// with [`on_upgrade`](Self::on_upgrade). A request that asks for a
/// WebSocket and fails the checks is refused with the core's status
/// (400, 405, 426, ...); as `Option<WebSocketUpgrade>`, a request that
/// does not ask for one at all is `None`, for the route to serve.
#[must_use = "the WebSocket opens only through `on_upgrade`"]
pub struct WebSocketUpgrade {
    checked: ServerUpgrade,
    on_upgrade: OnUpgrade,
    options: ServerOptions,
    /// The application's protocols, in its order of preference.
    protocols: Vec<String>,
    headers: http::HeaderMap,
    decision: Option<Decision>,
    on_failed: Box<dyn FnOnce(Error) + Send>,
}

impl std::fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("checked", &self.checked)
            .field("options", &self.options)
            .field("protocols", &self.protocols)
            .finish_non_exhaustive()
    }
}

impl WebSocketUpgrade {
    /// The subprotocols this route speaks, most preferred first: the
    /// first of them the client offered is chosen, none if it offered
    /// none of them.
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// The subprotocol that will be chosen.
    pub fn selected_protocol(&self) -> Option<&str> {
        self.protocols
            .iter()
            .find(|p| self.checked.offered_protocols().contains(p))
            .map(String::as_str)
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn offered_protocols(&self) -> &[String] {
        self.checked.offered_protocols()
    }

    /// Whether the request is an HTTP/1.1 upgrade or an HTTP/2 extended
    /// CONNECT.
    pub fn mode(&self) -> Mode {
        self.checked.mode()
    }

    /// All the server options at once (limits, timers, deflate).
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// The connection's limits and timers (message size, keepalive,
    /// backpressure, close timeout).
    pub fn config(mut self, config: Config) -> Self {
        self.options.config = config;
        self
    }

    /// permessage-deflate settings for a client that offers it (`None`:
    /// never compress). On with the default settings by default.
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, deflate: Option<tether_core::DeflateConfig>) -> Self {
        self.options.deflate = deflate;
        self
    }

    /// Extra response headers (a cookie, say).
    pub fn headers(mut self, headers: http::HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// The accept hook's decision, made by the handler from whatever it
    /// extracted (a session, the Origin): it replaces the choice of
    /// [`protocols`](Self::protocols) and [`headers`](Self::headers), and
    /// a refusal is answered as is.
    pub fn decision(mut self, decision: Decision) -> Self {
        self.decision = Some(decision);
        self
    }

    /// Called with the error when the connection cannot be handed over
    /// after the response (the client left first, the handshake timed
    /// out); by default the error is dropped.
    pub fn on_failed_upgrade(mut self, f: impl FnOnce(Error) + Send + 'static) -> Self {
        self.on_failed = Box::new(f);
        self
    }

    /// The response that accepts the request (101, or 200 over HTTP/2),
    /// and `callback` run with the WebSocket on a task of its own once
    /// the connection is handed over; or the refusal's response.
    pub fn on_upgrade<C, F>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let decision = match self.decision {
            Some(d) => d,
            None => Ok(Accept::default()
                .with_protocol(
                    self.protocols
                        .iter()
                        .find(|p| self.checked.offered_protocols().contains(p))
                        .cloned(),
                )
                .with_headers(self.headers)),
        };
        match crate::hyper::accept(self.checked, self.on_upgrade, &self.options, decision) {
            Ok((response, pending)) => {
                tokio::spawn(run(pending, callback, self.on_failed));
                response.map(|()| Body::empty())
            }
            Err(refusal) => refused(*refusal),
        }
    }
}

async fn run<C, F>(pending: PendingWebSocket, callback: C, on_failed: Box<dyn FnOnce(Error) + Send>)
where
    C: FnOnce(WebSocket) -> F,
    F: Future<Output = ()>,
{
    match pending.await {
        Ok(ws) => callback(ws).await,
        Err(e) => on_failed(e),
    }
}

fn refused(refusal: Refusal) -> Response {
    refusal.response.map(Body::from)
}

/// A request that asked for a WebSocket and failed the checks, or that
/// the HTTP server cannot upgrade: answered with the core's error
/// response.
#[derive(Debug)]
pub struct WebSocketUpgradeRejection(Box<Refusal>);

impl WebSocketUpgradeRejection {
    /// Why the request was refused.
    pub fn error(&self) -> &HandshakeError {
        &self.0.error
    }
}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        refused(*self.0)
    }
}

impl std::fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.error.fmt(f)
    }
}

impl std::error::Error for WebSocketUpgradeRejection {}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let protocol = connect_protocol(&parts.extensions);
        let checked = ServerUpgrade::from_parts(parts, protocol)
            .map_err(|e| WebSocketUpgradeRejection(crate::hyper::refusal(e)))?;
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
            WebSocketUpgradeRejection(crate::hyper::refusal(HandshakeError::NotUpgradable))
        })?;
        Ok(Self {
            checked,
            on_upgrade,
            options: ServerOptions::default(),
            protocols: Vec::new(),
            headers: http::HeaderMap::new(),
            decision: None,
            on_failed: Box::new(drop),
        })
    }
}

/// `None` for a request that does not ask for a WebSocket at all, so one
/// route serves both; a broken attempt is still refused.
impl<S: Send + Sync> OptionalFromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let protocol = connect_protocol(&parts.extensions);
        if !tether_core::handshake::requests_websocket(&parts.method, &parts.headers, protocol) {
            return Ok(None);
        }
        <Self as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}
