//! `tether serve --echo` with other libraries' clients: Python
//! `websockets` (the pinned release in the venv the adapters' interop
//! tests use, `target/interop-venv`, made here the same way when missing)
//! and Node's `ws` (installed with npm under target/; `#[ignore]`d,
//! needing node and npm, run by `.ci/run`); and `tether bench` against a
//! Python `websockets` echo server.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{target_dir, Serve, TempDir};

/// The `websockets` release of adapters/tests/interop/support.rs.
const WEBSOCKETS_VERSION: &str = "17.4";
/// The `ws` release the Node client runs.
const WS_VERSION: &str = "8.18.3";

fn has_websockets(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            &format!("import websockets.version as v, sys; sys.exit(v.version != {WEBSOCKETS_VERSION:?})"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python with the pinned `websockets`: `TETHER_INTEROP_PYTHON`, else
/// target/interop-venv, made (venv + pip from PyPI) when missing.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TETHER_INTEROP_PYTHON") {
        return p.into();
    }
    let venv = target_dir().join("interop-venv");
    let py = venv.join("bin/python");
    if has_websockets(&py) {
        return py;
    }
    let base = std::env::var_os("TETHER_PYTHON").unwrap_or_else(|| "python3".into());
    let ok = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 -m venv {venv:?} failed (Debian: apt-get install python3-venv)"
    );
    let ok = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(format!("websockets=={WEBSOCKETS_VERSION}"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok && has_websockets(&py), "pip install websockets failed");
    py
}

const PY_CLIENT: &str = r#"
import sys
from websockets.sync.client import connect
with connect(sys.argv[1], compression=None if sys.argv[2] == "plain" else "deflate") as ws:
    for msg in ["hello", "h\u00e9llo \u2713", b"\x00\x01\xff", "x" * 70000, b"\x00" * 65536]:
        ws.send(msg)
        back = ws.recv()
        assert back == msg, (type(back), len(back))
    print("ok", ws.response.headers.get("Sec-WebSocket-Extensions", ""), flush=True)
"#;

#[test]
fn python_websockets_client_against_serve_echo() {
    let py = python();
    let dir = TempDir::new("py");
    let script = dir.file("client.py", PY_CLIENT);
    for (flags, mode) in [(&[][..], "plain"), (&["--compress"][..], "deflate")] {
        let mut serve = Serve::start(flags);
        let out = Command::new(&py)
            .arg(&script)
            .arg(serve.url())
            .arg(mode)
            .output()
            .expect("run python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("ok"), "{stdout}");
        assert_eq!(
            stdout.contains("permessage-deflate"),
            mode == "deflate",
            "{stdout}"
        );
        let closed = serve.line_with("#1 closed");
        assert!(closed.contains("code=1000"), "{closed}");
        assert!(closed.contains("5 in, 5 out"), "{closed}");
    }
}

const NODE_CLIENT: &str = r#"
const WebSocket = require(process.argv[2]);
const ws = new WebSocket(process.argv[3], { perMessageDeflate: process.argv[4] === "deflate" });
const msgs = ["hello", "h\u00e9llo \u2713", Buffer.from([0, 1, 255]), "x".repeat(70000)];
let i = 0;
ws.on("open", () => ws.send(msgs[0]));
ws.on("message", (data, isBinary) => {
  const want = msgs[i];
  const got = isBinary ? data : data.toString();
  if (Buffer.isBuffer(want) ? !want.equals(got) : want !== got) {
    console.error("mismatch at", i); process.exit(1);
  }
  i += 1;
  if (i < msgs.length) ws.send(msgs[i]); else ws.close(1000, "done");
});
ws.on("close", (code) => { console.log("closed", code, ws.extensions); process.exit(code === 1000 ? 0 : 1); });
ws.on("error", (e) => { console.error(e); process.exit(1); });
"#;

/// `ws` installed with npm into target/node-ws (once).
fn node_ws() -> PathBuf {
    let dir = target_dir().join("node-ws");
    let module = dir.join("node_modules/ws");
    let marker = dir.join(format!("ws-{WS_VERSION}"));
    if !marker.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .arg(format!("ws@{WS_VERSION}"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "npm install ws@{WS_VERSION} failed: this test needs node and npm"
        );
        std::fs::write(&marker, "").unwrap();
    }
    module
}

#[test]
#[ignore = "needs node + npm: apt-get install nodejs npm"]
fn node_ws_client_against_serve_echo() {
    let module = node_ws();
    let dir = TempDir::new("node");
    let script = dir.file("client.js", NODE_CLIENT);
    for (flags, mode) in [(&[][..], "plain"), (&["--compress"][..], "deflate")] {
        let mut serve = Serve::start(flags);
        let out = Command::new("node")
            .arg(&script)
            .arg(&module)
            .arg(serve.url())
            .arg(mode)
            .output()
            .expect("run node (apt-get install nodejs)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.contains("permessage-deflate"),
            mode == "deflate",
            "{stdout}"
        );
        let closed = serve.line_with("#1 closed");
        assert!(closed.contains("code=1000 (done) by client"), "{closed}");
        assert!(closed.contains("4 in, 4 out"), "{closed}");
    }
}

const PY_ECHO_SERVER: &str = r#"
from websockets.sync.server import serve
def echo(ws):
    for msg in ws:
        ws.send(msg)
with serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
    print("PORT", server.socket.getsockname()[1], flush=True)
    server.serve_forever()
"#;

#[test]
fn bench_against_a_python_websockets_echo_server() {
    use std::io::{BufRead, BufReader};
    let py = python();
    let dir = TempDir::new("py-echo");
    let script = dir.file("server.py", PY_ECHO_SERVER);
    let mut server = Command::new(&py)
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .expect("PORT line")
        .to_owned();
    let r = common::run(
        &[
            "bench",
            &format!("ws://127.0.0.1:{port}/"),
            "--count",
            "500",
            "--connections",
            "2",
            "--json",
        ],
        b"",
    );
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(r.code, 0, "{r:?}");
    let report: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(report["messages"], 500, "{report}");
    assert!(
        report["messages_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}
