//! Headless Chromium against the axum application over `https://` and
//! `wss://` (the test certificate trusted by its key): the page, served
//! by the application itself, opens WebSockets to the echo route on the
//! same origin. With ALPN `h2` the browser reuses its HTTP/2 connection
//! and the server must see an extended CONNECT (RFC 8441); with HTTP/2
//! off (ALPN `http/1.1` only), an HTTP/1.1 upgrade.

use std::time::Duration;

use base64::Engine as _;
use tether::core::handshake::Mode;

use crate::app::{tls_config, Listen, Server};
use crate::certs::Ca;
use crate::support::{headless_chromium, Proc, TempDir};

/// The page: echoes text and binary messages of several sizes over two
/// WebSockets in turn, closes each with 1000, and posts `ok <extensions>`
/// or `fail: <why>` to /result.
pub const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>tether axum</title>
<script>
"use strict";
const SIZES = [0, 1, 125, 126, 65535, 65536, 1048576];
function text(n) { return "héllo wörld ✓ ".repeat(n / 10 + 1).slice(0, n); }
function binary(n, seed) { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 255; return b; }
function same(a, b) {
  if (typeof a === "string") return a === b;
  if (!(b instanceof ArrayBuffer)) return false;
  const v = new Uint8Array(b);
  return v.length === a.length && v.every((x, i) => x === a[i]);
}
function run(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ["echo.v1"]);
    ws.binaryType = "arraybuffer";
    const queue = []; let waiting = null;
    ws.onmessage = (e) => { if (waiting) { const w = waiting; waiting = null; w(e.data); } else queue.push(e.data); };
    ws.onerror = () => reject(new Error("WebSocket error"));
    const next = () => new Promise((res) => { if (queue.length) res(queue.shift()); else waiting = res; });
    ws.onopen = async () => {
      try {
        if (ws.protocol !== "echo.v1") throw new Error("subprotocol " + ws.protocol);
        const msgs = [];
        SIZES.forEach((n, i) => msgs.push(text(n), binary(n, i)));
        for (let i = 0; i < 100; i++) msgs.push(`{"id":${i}}`);
        for (const m of msgs) { ws.send(m); if (!same(m, await next())) throw new Error("echo differs"); }
        const ext = ws.extensions;
        ws.onclose = (e) => e.code === 1000 ? resolve(ext) : reject(new Error("closed with " + e.code));
        ws.close(1000, "done");
      } catch (e) { reject(e); }
    };
  });
}
async function main() {
  try {
    const url = `wss://${location.host}/echo`;
    const a = await run(url);
    const b = await run(url);
    await fetch("/result", { method: "POST", body: "ok " + a + "|" + b });
  } catch (e) {
    await fetch("/result", { method: "POST", body: "fail: " + e.message });
  }
}
main();
</script>
"#;

/// Loads the page in headless Chromium from a server offering `alpn`,
/// and checks the verdict and what the server saw: two WebSockets that
/// arrived as `mode` over `version`, compressed, closed with 1000.
fn chromium_against(alpn: &[&[u8]], mode: Mode, version: http::Version) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ca = Ca::new("tether axum browser CA");
    let identity = ca.server();
    let server = rt.block_on(Server::start(Listen::Tls(tls_config(&identity, alpn))));
    // Chromium trusts a certificate whose key hashes (SHA-256 of the
    // SubjectPublicKeyInfo, base64) to one in this list; nothing else.
    let spki = ring::digest::digest(&ring::digest::SHA256, &identity.spki_der);
    let pin = base64::engine::general_purpose::STANDARD.encode(spki.as_ref());

    let profile = TempDir::new("axum-chromium-profile");
    let mut cmd = headless_chromium(&profile);
    cmd.arg(format!("--ignore-certificate-errors-spki-list={pin}"))
        .arg(format!("https://127.0.0.1:{}/page", server.addr.port()));
    let mut browser = Proc::spawn("chromium", cmd, true);

    let verdict = rt.block_on(crate::within("the page's verdict", async {
        loop {
            if let Some(v) = server.log.verdict() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }));
    let status = browser.wait(Duration::ZERO);
    drop(browser);
    eprintln!("chromium ({status:?}): {verdict}");
    let exts = verdict
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("page reported: {verdict}"));
    for ext in exts.split('|') {
        assert!(ext.starts_with("permessage-deflate"), "{exts}");
    }
    let seen = rt.block_on(server.seen(2));
    for s in seen {
        assert_eq!((s.mode, s.version), (mode, version), "{s:?}");
        assert_eq!(s.protocol.as_deref(), Some("echo.v1"));
        assert!(s.compressed);
        assert_eq!(s.echoed, 2 * 7 + 100);
        assert_eq!(s.end, "closed Some(1000)");
    }
    drop(server);
}

#[test]
#[ignore = "needs chromium (apt-get install chromium, or set TETHER_CHROMIUM); run with --include-ignored"]
fn chromium_over_http2_extended_connect() {
    chromium_against(
        &[b"h2", b"http/1.1"],
        Mode::ExtendedConnect,
        http::Version::HTTP_2,
    );
}

#[test]
#[ignore = "needs chromium (apt-get install chromium, or set TETHER_CHROMIUM); run with --include-ignored"]
fn chromium_over_http1_with_http2_off() {
    chromium_against(&[b"http/1.1"], Mode::Upgrade, http::Version::HTTP_11);
}
