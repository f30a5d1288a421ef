//! Python `websockets` (compression on, its default) as a client against
//! tether servers, and as a server for tether clients.

use std::process::Command;

use futures_util::{SinkExt, StreamExt};
use tether::core::deflate::{client_accept, parse_extensions};
use tether::{ClientOptions, CloseCode, Config, DeflateConfig, Message, ServerOptions};

use crate::support::{python, within, EchoServer, Proc, Rt, TempDir, SIZES, TIMEOUT};

/// Shared by both scripts: the messages, deterministic on both sides.
const MESSAGES_PY: &str = r#"
import random

SIZES = [int(s) for s in SIZES_ARG.split(",")]
UNIT = '{"id":42,"device":"dev-07","t":"2024-05-01T12:00:00Z","v":[1.5,2.25],"note":"héllo wörld ✓ Ω"} '

def text(n, seed):
    # Exactly n bytes of UTF-8: JSON-like text with multi-byte characters,
    # cut at a character boundary and padded with ASCII.
    raw = (UNIT * (n // len(UNIT) + 2)).encode()[: max(n - 3, 0)]
    s = raw.decode("utf-8", errors="ignore")
    return s + "x" * (n - len(s.encode()))

def binary(n, seed):
    # Half the sizes random (incompressible), half compressible.
    if seed % 2:
        return random.Random(seed).randbytes(n)
    return (bytes(range(256)) * (n // 256 + 1))[:n]

def messages():
    out = []
    for i, n in enumerate(SIZES):
        out.append(text(n, i))
        out.append(binary(n, i))
    # A burst of small similar records, sent without waiting.
    out += [UNIT.replace("42", str(i)) for i in range(200)]
    return out
"#;

/// Python client: connects, exchanges every message, checks the echoes,
/// prints `RESULT ok <negotiated extension>`. A fourth argument is a CA
/// file to trust for `wss://` (nothing else is trusted then).
const CLIENT_PY: &str = r#"
import sys
SIZES_ARG, URL, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
CA = sys.argv[4] if len(sys.argv) > 4 else None
exec(MESSAGES_SRC)
from websockets.sync.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

kwargs = dict(max_size=None, proxy=None, open_timeout=30, close_timeout=30, ping_interval=None)
if CA:
    import ssl
    kwargs["ssl"] = ssl.create_default_context(cafile=CA)
if MODE == "tight":
    kwargs["compression"] = None
    kwargs["extensions"] = [ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=10, client_max_window_bits=9)]
with connect(URL, **kwargs) as ws:
    ext = ws.response.headers.get("Sec-WebSocket-Extensions")
    if not ext or not ext.startswith("permessage-deflate"):
        sys.exit(f"permessage-deflate not negotiated: {ext!r}")
    msgs = messages()
    burst = msgs[2 * len(SIZES):]
    for i, m in enumerate(msgs[: 2 * len(SIZES)]):
        ws.send(m)
        got = ws.recv(timeout=60)
        if got != m:
            sys.exit(f"echo {i} differs: sent {type(m).__name__} of {len(m)}, got {type(got).__name__} of {len(got)}")
    for m in burst:
        ws.send(m)
    for i, m in enumerate(burst):
        got = ws.recv(timeout=60)
        if got != m:
            sys.exit(f"burst echo {i} differs")
    ws.close()
print("RESULT ok", ext, flush=True)
"#;

/// Python echo server: prints `PORT n`, echoes everything; `EXT?` is
/// answered with the extension it negotiated. Two more arguments are a
/// certificate chain and key file: it serves TLS with them.
const SERVER_PY: &str = r#"
import sys
SIZES_ARG = sys.argv[1]
SSL = None
if len(sys.argv) > 3:
    import ssl
    SSL = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    SSL.load_cert_chain(sys.argv[2], sys.argv[3])
exec(MESSAGES_SRC)
from websockets.sync.server import serve

def handler(ws):
    ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
    for msg in ws:
        ws.send("EXT " + ext if msg == "EXT?" else msg)

with serve(handler, "127.0.0.1", 0, max_size=None, ping_interval=None, ssl=SSL) as server:
    print("PORT", server.socket.getsockname()[1], flush=True)
    server.serve_forever()
"#;

fn sizes_arg() -> String {
    SIZES
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs one of the scripts with the shared message code.
fn script(dir: &TempDir, name: &str, body: &str, args: &[&str]) -> Proc {
    let path = dir.0.join(name);
    // The shared part goes in as a string the script execs (Rust's debug
    // quoting of a string is a valid Python string literal for this text).
    let src = format!("MESSAGES_SRC = {MESSAGES_PY:?}\n{body}");
    std::fs::write(&path, src).unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(&path).args(args);
    Proc::spawn(&format!("python {name}"), cmd, false)
}

/// The same messages as the scripts, in Rust.
fn messages() -> Vec<Message> {
    const UNIT: &str = "{\"id\":42,\"device\":\"dev-07\",\"t\":\"2024-05-01T12:00:00Z\",\"v\":[1.5,2.25],\"note\":\"héllo wörld ✓ Ω\"} ";
    let mut out = Vec::new();
    for (i, &n) in SIZES.iter().enumerate() {
        let raw = UNIT.repeat(n / UNIT.len() + 2);
        let mut cut = n.saturating_sub(3);
        while !raw.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut text = raw[..cut].to_owned();
        text.push_str(&"x".repeat(n - text.len()));
        out.push(Message::text(text));
        // Random for odd indexes (not Python's generator: these only go
        // one way, from tether to the echo server).
        let bin: Vec<u8> = if i % 2 == 1 {
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ i as u64;
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        } else {
            (0..n).map(|j| j as u8).collect()
        };
        out.push(Message::binary(bin));
    }
    for i in 0..200 {
        out.push(Message::text(UNIT.replace("42", &i.to_string())));
    }
    out
}

/// A Python client against a tether echo server on `rt`, in `mode`
/// ("default": websockets' own offer; "tight": no context takeover both
/// ways and small windows).
fn python_client(rt: Rt, mode: &str) {
    python_client_of(EchoServer::start(rt, server_options(), 1), rt, mode, &[]);
}

/// What the tether servers of these tests run with.
pub fn server_options() -> ServerOptions {
    ServerOptions::default().with_config(Config::without_keepalive().with_max_message_size(4 << 20))
}

/// A Python client (with `extra` arguments: a CA file) against `server`.
pub fn python_client_of(server: EchoServer, rt: Rt, mode: &str, extra: &[&str]) {
    let dir = TempDir::new("py-client");
    let url = server.url();
    let mut args = vec![sizes_arg(), url, mode.to_owned()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut client = script(&dir, "client.py", CLIENT_PY, &args);
    let result = client.line_with("RESULT ", TIMEOUT);
    let status = client.wait(TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "python client exited with {status:?}: {:?}",
        client.rest()
    );
    let report = server.report(TIMEOUT);
    eprintln!("{rt:?} server, python client ({mode}): {result}; server saw {report:?}");
    let negotiated = result.strip_prefix("ok ").expect("RESULT ok");
    assert!(
        report.offer.starts_with("permessage-deflate"),
        "offer {:?}",
        report.offer
    );
    assert!(report.compressed, "server did not run with deflate");
    assert_eq!(
        report.response.as_deref(),
        Some(negotiated),
        "what the server answered and what the client saw"
    );
    if mode == "tight" {
        // The client's client_no_context_takeover is a hint it keeps on its
        // own; the server answers it only when it asks for it itself.
        for p in [
            "server_no_context_takeover",
            "server_max_window_bits=10",
            "client_max_window_bits=9",
        ] {
            assert!(negotiated.contains(p), "{p} missing from {negotiated:?}");
        }
    }
    assert_eq!(report.echoed, 2 * SIZES.len() + 200);
    assert_eq!(report.end, "closed");
}

#[test]
fn python_client_smol_server() {
    python_client(Rt::Smol, "default");
}

#[test]
fn python_client_smol_server_no_context_takeover() {
    python_client(Rt::Smol, "tight");
}

#[cfg(feature = "tokio")]
#[test]
fn python_client_tokio_server() {
    python_client(Rt::Tokio, "default");
}

#[cfg(feature = "tokio")]
#[test]
fn python_client_tokio_server_no_context_takeover() {
    python_client(Rt::Tokio, "tight");
}

/// The deflate offers a tether client makes in these tests.
fn offers(mode: &str) -> Vec<DeflateConfig> {
    match mode {
        "default" => ClientOptions::default().deflate,
        _ => vec![DeflateConfig::default()
            .with_max_window_bits(9)
            .with_peer_max_window_bits(Some(10))
            .with_no_context_takeover(true)
            .with_peer_no_context_takeover(true)
            .with_threshold(0)
            .with_level(6)],
    }
}

/// A tether client on `rt` against a Python echo server.
fn python_server(rt: Rt, mode: &str) {
    python_server_with(rt, mode, "ws", ClientOptions::default(), &[]);
}

/// A tether client with `base` options on `rt` against a Python echo
/// server started with `extra` arguments (certificate and key files),
/// at a `scheme` URL.
pub fn python_server_with(rt: Rt, mode: &str, scheme: &str, base: ClientOptions, extra: &[&str]) {
    let dir = TempDir::new("py-server");
    let mut args = vec![sizes_arg()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = script(&dir, "server.py", SERVER_PY, &args);
    let port = server.line_with("PORT ", TIMEOUT);
    let url = format!("{scheme}://127.0.0.1:{port}/");
    let options = base
        .with_config(Config::without_keepalive().with_max_message_size(4 << 20))
        .with_deflate(offers(mode));
    let (compressed, ext) = match rt {
        Rt::Smol => smol::block_on(async {
            let ws = within("connect", tether::smol::connect_with(&url, options)).await;
            exchange(ws.unwrap()).await
        }),
        #[cfg(feature = "tokio")]
        Rt::Tokio => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let ws = within("connect", tether::tokio::connect_with(&url, options)).await;
                exchange(ws.unwrap()).await
            }),
    };
    eprintln!("{rt:?} client, python server ({mode}): negotiated {ext}");
    assert!(compressed, "client did not run with deflate");
    let item = &parse_extensions([ext.as_str()])[0];
    let params = client_accept(&offers(mode), item)
        .unwrap_or_else(|| panic!("server's answer {ext:?} fits none of our offers"));
    if mode != "default" {
        assert_eq!(
            (params.own_window_bits, params.peer_window_bits),
            (9, 10),
            "{ext}"
        );
        assert!(params.own_no_context_takeover && params.peer_no_context_takeover);
    }
}

/// Sends every message, checks each echo (the burst pipelined), asks the
/// server what it negotiated and closes. Returns (compressed, extension).
async fn exchange<S: tether::Transport, R: tether::Runtime>(
    mut ws: tether::WebSocket<S, R>,
) -> (bool, String) {
    let compressed = ws.connection().deflate_negotiated();
    let all = messages();
    let (single, burst) = all.split_at(2 * SIZES.len());
    for (i, m) in single.iter().enumerate() {
        ws.send(m.clone()).await.unwrap();
        let got = next_data(&mut ws).await;
        assert!(got == *m, "echo {i} differs ({} bytes sent)", m.len());
    }
    for m in burst {
        ws.feed(m.clone()).await.unwrap();
    }
    ws.flush().await.unwrap();
    for (i, m) in burst.iter().enumerate() {
        assert!(next_data(&mut ws).await == *m, "burst echo {i} differs");
    }
    ws.send(Message::text("EXT?")).await.unwrap();
    let ext = match next_data(&mut ws).await {
        Message::Text(t) => t.strip_prefix("EXT ").expect("EXT answer").to_owned(),
        other => panic!("unexpected {other:?}"),
    };
    within("close", ws.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap();
    (compressed, ext)
}

async fn next_data<S: tether::Transport, R: tether::Runtime>(
    ws: &mut tether::WebSocket<S, R>,
) -> Message {
    loop {
        let next = within("echo", ws.next()).await;
        match next {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return m,
            Some(Ok(_)) => {}
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

#[test]
fn python_server_smol_client() {
    python_server(Rt::Smol, "default");
}

#[test]
fn python_server_smol_client_no_context_takeover() {
    python_server(Rt::Smol, "tight");
}

#[cfg(feature = "tokio")]
#[test]
fn python_server_tokio_client() {
    python_server(Rt::Tokio, "default");
}

#[cfg(feature = "tokio")]
#[test]
fn python_server_tokio_client_no_context_takeover() {
    python_server(Rt::Tokio, "tight");
}
