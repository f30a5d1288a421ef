//! Echo through an axum route, served by hyper's HTTP/1.1 connection
//! with upgrades, as `axum::serve` would: `tether-axum` upgrades with
//! `tether::axum::WebSocketUpgrade` and runs the tether echo,
//! `axum-ws` with axum's own `extract::ws` (tokio-tungstenite) and the
//! same `feed`/`flush` batching the tokio-tungstenite server uses. Both
//! spawn the upgraded connection with `tokio::spawn`, as their
//! `on_upgrade` does; the router is built once and cloned per connection.

use std::sync::LazyLock;

use axum::extract::ws::{self, WebSocketUpgrade as AxumUpgrade};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;

static TETHER: LazyLock<Router> = LazyLock::new(|| Router::new().fallback(any(tether_route)));
static AXUM: LazyLock<Router> = LazyLock::new(|| Router::new().fallback(any(axum_route)));

async fn tether_route(ws: tether::axum::WebSocketUpgrade) -> Response {
    ws.options(super::tether::OPTIONS.clone())
        .on_upgrade(super::tether::echo)
}

async fn axum_route(ws: AxumUpgrade) -> Response {
    ws.max_message_size(super::MAX_MESSAGE)
        .max_frame_size(super::MAX_MESSAGE)
        .on_upgrade(axum_echo)
}

async fn serve(stream: TcpStream, router: &Router) {
    let service = TowerToHyperService::new(router.clone());
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

pub async fn serve_tether(stream: TcpStream) {
    serve(stream, &TETHER).await
}

pub async fn serve_axum(stream: TcpStream) {
    serve(stream, &AXUM).await
}

async fn axum_echo(ws: ws::WebSocket) {
    super::feed_flush_echo(ws, |m| {
        matches!(m, ws::Message::Binary(_) | ws::Message::Text(_))
    })
    .await;
}
