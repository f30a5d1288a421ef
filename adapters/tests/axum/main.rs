//! tether inside a real axum application: plain HTTP and WebSockets on
//! one port, through `tether::axum::WebSocketUpgrade`, served by hyper's
//! HTTP/1.1 and HTTP/2 server (extended CONNECT, RFC 8441, enabled), in
//! plain TCP and TLS (ALPN `h2` and `http/1.1`). The peers are real:
//! tether's own client (HTTP/1.1, and RFC 8441 over HTTP/2 with
//! `tether::http2`), hyper's HTTP/2 client, Python `websockets`
//! (the venv of the interop tests), and headless Chromium (`#[ignore]`d:
//! it needs a system package; `.ci/run` runs it).

#![cfg(all(feature = "axum", feature = "rustls", feature = "deflate"))]

mod app;
mod browser;
#[path = "../tls/certs.rs"]
mod certs;
#[cfg(feature = "http2")]
mod client_h2;
mod http1;
mod http2;
mod hyper_service;
mod python;
#[allow(dead_code)]
#[path = "../interop/support.rs"]
mod support;

use std::time::Duration;

/// Bound on any single wait.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Awaits `fut` for at most [`TIMEOUT`], panicking after that.
pub async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {TIMEOUT:?}"))
}

/// The messages every peer exchanges: text and binary at the frame
/// length forms' edges, and a burst of small records.
pub fn messages() -> Vec<tether::Message> {
    let mut out = Vec::new();
    for (i, n) in [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20]
        .into_iter()
        .enumerate()
    {
        let text: String = "héllo wörld ✓ ".chars().cycle().take(n).collect();
        out.push(tether::Message::text(text));
        let binary: Vec<u8> = (0..n).map(|j| (j * 31 + i) as u8).collect();
        out.push(tether::Message::binary(binary));
    }
    out.extend((0..100).map(|i| tether::Message::text(format!("{{\"id\":{i}}}"))));
    out
}
