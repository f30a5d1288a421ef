//! Headless Chromium against tether servers: a page served by the test
//! opens `new WebSocket(...)` to a smol and a tokio echo server (the
//! browser offers permessage-deflate with client_max_window_bits),
//! exchanges text and binary messages of several sizes, checks the echoes
//! and posts its verdict back to the test's HTTP server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tether::{Config, ServerOptions};

use crate::support::{headless_chromium, EchoServer, Proc, Rt, TempDir, SIZES, TIMEOUT};

/// The page: runs the exchange against every target in turn, then posts
/// `ok <json of the extensions each connection reported>` or
/// `fail: <why>` to /result.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>tether interop</title>
<script>
"use strict";
const TARGETS = __TARGETS__;
const SIZES = __SIZES__;
const UNIT = '{"id":42,"device":"dev-07","note":"héllo wörld ✓ Ω","v":[1.5,2.25]} ';

function text(n) {
  let s = UNIT.repeat(Math.ceil(n / UNIT.length) + 1);
  return s.slice(0, n); // n UTF-16 units, no emoji, so no split pairs
}
function ascii(n) {
  return "0123456789abcdefghijklmnopqrstuvwxyz".repeat(Math.ceil(n / 36) + 1).slice(0, n);
}
function binary(n, seed) {
  const b = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    if (seed % 2) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b[i] = x & 255; }
    else b[i] = i & 255;
  }
  return b;
}
function same(a, b) {
  if (typeof a === "string") return a === b;
  if (!(b instanceof ArrayBuffer)) return false;
  const v = new Uint8Array(b);
  if (v.length !== a.length) return false;
  for (let i = 0; i < v.length; i++) if (v[i] !== a[i]) return false;
  return true;
}
function describe(m) {
  return typeof m === "string" ? `text(${m.length})` : `binary(${m.byteLength ?? m.length})`;
}

function run(name, url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const queue = [];
    let waiting = null;
    const timer = setTimeout(() => reject(new Error(`${name}: timed out`)), 60000);
    ws.onmessage = (e) => { if (waiting) { const w = waiting; waiting = null; w(e.data); } else queue.push(e.data); };
    ws.onerror = () => reject(new Error(`${name}: WebSocket error`));
    const next = () => new Promise((res) => { if (queue.length) res(queue.shift()); else waiting = res; });
    ws.onopen = async () => {
      try {
        const msgs = [];
        SIZES.forEach((n, i) => { msgs.push(text(n), ascii(n), binary(n, i)); });
        for (const m of msgs) {
          ws.send(m);
          const got = await next();
          if (!same(m, got)) throw new Error(`${name}: echo of ${describe(m)} came back as ${describe(got)} or differs`);
        }
        const burst = [];
        for (let i = 0; i < 200; i++) burst.push(UNIT.replace("42", String(i)));
        for (const m of burst) ws.send(m);
        for (const m of burst) {
          if (!same(m, await next())) throw new Error(`${name}: burst echo differs`);
        }
        const ext = ws.extensions;
        ws.onclose = (e) => {
          clearTimeout(timer);
          if (e.code !== 1000) reject(new Error(`${name}: closed with ${e.code}`));
          else resolve(ext);
        };
        ws.close(1000, "done");
      } catch (e) { clearTimeout(timer); reject(e); }
    };
  });
}

async function main() {
  const exts = {};
  try {
    for (const [name, url] of TARGETS) exts[name] = await run(name, url);
    await fetch("/result", { method: "POST", body: "ok " + JSON.stringify(exts) });
  } catch (e) {
    await fetch("/result", { method: "POST", body: "fail: " + e.message });
  }
}
window.onerror = (msg) => { fetch("/result", { method: "POST", body: "fail: page error " + msg }); };
main();
</script>
"#;

/// Serves the page at / and takes the verdict at POST /result, on a thread
/// of its own; the verdict arrives on the returned channel.
fn page_server(page: String) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            if let Some(verdict) = answer(stream, &page) {
                let _ = tx.send(verdict);
            }
        }
    });
    (port, rx)
}

/// Answers one HTTP request; returns the body of a POST /result.
fn answer(mut stream: TcpStream, page: &str) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    let (status, content_type, reply, verdict) = if request_line.starts_with("GET / ") {
        ("200 OK", "text/html; charset=utf-8", page.as_bytes(), None)
    } else if request_line.starts_with("POST /result ") {
        let verdict = String::from_utf8_lossy(&body).into_owned();
        ("200 OK", "text/plain", &b"thanks"[..], Some(verdict))
    } else {
        ("404 Not Found", "text/plain", &b"no"[..], None)
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(reply);
    verdict
}

#[test]
#[ignore = "needs chromium (apt-get install chromium, or set TETHER_CHROMIUM); run with --include-ignored"]
fn chromium_against_smol_and_tokio_servers() {
    let options = ServerOptions::default()
        .with_config(Config::without_keepalive().with_max_message_size(4 << 20));
    let mut servers = vec![("smol", EchoServer::start(Rt::Smol, options.clone(), 1))];
    #[cfg(feature = "tokio")]
    servers.push(("tokio", EchoServer::start(Rt::Tokio, options.clone(), 1)));
    chromium_against(&servers, &options, &[]);
}

/// Runs the page in headless Chromium (with `flags` added) against
/// `servers`, each started with `options` for one connection, and checks
/// what both sides saw.
pub fn chromium_against(servers: &[(&str, EchoServer)], options: &ServerOptions, flags: &[String]) {
    let targets: Vec<String> = servers
        .iter()
        .map(|(name, s)| format!("[\"{name}\", \"{}\"]", s.url()))
        .collect();
    let sizes: Vec<String> = SIZES.iter().map(usize::to_string).collect();
    let page = PAGE
        .replace("__TARGETS__", &format!("[{}]", targets.join(", ")))
        .replace("__SIZES__", &format!("[{}]", sizes.join(", ")));
    let (port, verdicts) = page_server(page);

    let profile = TempDir::new("chromium-profile");
    let mut cmd = headless_chromium(&profile);
    cmd.args(flags).arg(format!("http://127.0.0.1:{port}/"));
    let mut browser = Proc::spawn("chromium", cmd, true);

    let verdict = match verdicts.recv_timeout(TIMEOUT) {
        Ok(v) => v,
        Err(e) => {
            let status = browser.wait(Duration::ZERO);
            panic!(
                "no verdict from the page within {TIMEOUT:?} ({e:?}); chromium status: {status:?}"
            )
        }
    };
    drop(browser);
    eprintln!("chromium: {verdict}");
    let exts = verdict
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("page reported: {verdict}"));

    let cfg = options.deflate.clone().expect("deflate on");
    for (name, server) in servers {
        let report = server.report(TIMEOUT);
        eprintln!("{name} server saw: {report:?}");
        assert!(
            report.offer.contains("permessage-deflate")
                && report.offer.contains("client_max_window_bits"),
            "browser offer: {:?}",
            report.offer
        );
        assert!(report.compressed, "{name}: not compressed");
        let response = report.response.clone().expect("deflate accepted");
        assert_eq!(
            report.response,
            crate::support::expected_response(&cfg, &report.offer)
        );
        // The browser's `ws.extensions` is the response header it accepted.
        let seen = format!("\"{name}\":\"{response}\"");
        assert!(
            exts.contains(&seen),
            "browser saw {exts}, server answered {response}"
        );
        assert_eq!(report.echoed, 3 * SIZES.len() + 200, "{name}");
        assert_eq!(report.end, "closed", "{name}");
    }
}
