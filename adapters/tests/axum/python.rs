//! Python `websockets` (permessage-deflate on, its default) against the
//! axum route, in plain TCP and TLS, with a plain GET to the same route
//! from `urllib` first.

use std::process::Command;

use tether::core::handshake::Mode;

use crate::app::{tls_config, Listen, Server};
use crate::certs::Ca;
use crate::support::{python, Proc, TempDir};

/// Gets the route as plain HTTP, then opens a WebSocket offering
/// `echo.v1`, exchanges text and binary messages of every size and a
/// burst, checks each echo, closes with 1000, and prints `RESULT ok
/// <subprotocol> <extensions>` (or a traceback).
const CLIENT_PY: &str = r#"
import random, ssl, sys, urllib.request
HTTP, WS = sys.argv[1], sys.argv[2]
CA = sys.argv[3] if len(sys.argv) > 3 else None
context = ssl.create_default_context(cafile=CA) if CA else None
with urllib.request.urlopen(HTTP, context=context, timeout=30) as r:
    body = r.read().decode()
    assert body == "plain HTTP/1.1", body

from websockets.sync.client import connect
kwargs = dict(max_size=None, proxy=None, open_timeout=30, close_timeout=30, ping_interval=None,
              subprotocols=["echo.v1"])
if context:
    kwargs["ssl"] = context
with connect(WS, **kwargs) as ws:
    msgs = []
    for i, n in enumerate([0, 1, 125, 126, 65535, 65536, 1 << 20]):
        msgs.append(("héllo wörld ✓ " * (n // 10 + 1))[:n])
        msgs.append(random.Random(i).randbytes(n) if i % 2 else bytes(range(256)) * (n // 256) + bytes(n % 256))
    msgs += ['{"id":%d}' % i for i in range(100)]
    for m in msgs:
        ws.send(m)
        back = ws.recv()
        assert back == m, (type(m), len(m), type(back), len(back))
    ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
    print("RESULT ok", ws.subprotocol, len(msgs), ext, flush=True)
    ws.close(1000, "done")
"#;

fn python_client(listen: Listen, scheme: &str, host: &str, ca: Option<&Ca>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(Server::start(listen));
    let port = server.addr.port();
    let dir = TempDir::new("axum-python");
    let script = dir.0.join("client.py");
    std::fs::write(&script, CLIENT_PY).unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(&script)
        .arg(format!("{scheme}://{host}:{port}/echo"))
        .arg(format!(
            "{}://{host}:{port}/echo",
            if scheme == "https" { "wss" } else { "ws" }
        ));
    if let Some(ca) = ca {
        let path = dir.0.join("ca.pem");
        std::fs::write(&path, &ca.cert_pem).unwrap();
        cmd.arg(path);
    }
    let mut client = Proc::spawn("python client", cmd, false);
    let result = client.line_with("RESULT ", crate::TIMEOUT);
    let status = client.wait(crate::TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "python: {status:?}");
    let mut words = result.split(' ');
    assert_eq!(words.next(), Some("ok"), "{result}");
    assert_eq!(words.next(), Some("echo.v1"), "{result}");
    let count: usize = words.next().unwrap().parse().unwrap();
    let ext = words.collect::<Vec<_>>().join(" ");
    assert!(ext.starts_with("permessage-deflate"), "{result}");

    let seen = rt.block_on(server.seen(1));
    assert_eq!(seen[0].mode, Mode::Upgrade);
    assert_eq!(seen[0].version, http::Version::HTTP_11);
    assert_eq!(seen[0].protocol.as_deref(), Some("echo.v1"));
    assert!(seen[0].compressed);
    assert_eq!(seen[0].echoed, count);
    assert_eq!(seen[0].end, "closed Some(1000)");
    drop(server);
}

#[test]
fn python_websockets_against_the_axum_route() {
    python_client(Listen::Plain, "http", "127.0.0.1", None);
}

#[test]
fn python_websockets_against_the_axum_route_over_tls() {
    let ca = Ca::new("tether axum test CA");
    let config = tls_config(&ca.server_for(&["localhost"]), &[b"h2", b"http/1.1"]);
    python_client(Listen::Tls(config), "https", "localhost", Some(&ca));
}
