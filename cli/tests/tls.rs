//! `wss://` with certificates made at test time (the CA code of
//! adapters/tests/tls/certs.rs): `serve --tls-cert/--tls-key`, `connect
//! --cacert`, `--insecure` with its warning, an unknown issuer refused,
//! and a client certificate (`--cert/--key`) for a server that asks.

mod common;

#[path = "../../adapters/tests/tls/certs.rs"]
mod certs;

use common::{run, Serve, TempDir};
use futures_util::{SinkExt, StreamExt};

struct Files {
    _dir: TempDir,
    ca: String,
    cert: String,
    key: String,
    client_cert: String,
    client_key: String,
}

fn files() -> Files {
    let dir = TempDir::new("tls");
    let ca = certs::Ca::new("tether cli test CA");
    let server = ca.server();
    let client = ca.client("cli-client");
    Files {
        ca: dir.file("ca.pem", &ca.cert_pem),
        cert: dir.file("cert.pem", &server.cert_pem),
        key: dir.file("key.pem", &server.key_pem),
        client_cert: dir.file("client.pem", &client.cert_pem),
        client_key: dir.file("client-key.pem", &client.key_pem),
        _dir: dir,
    }
}

#[test]
fn wss_with_cacert_insecure_and_an_unknown_issuer() {
    let f = files();
    let serve = Serve::start(&["--tls-cert", &f.cert, "--tls-key", &f.key]);
    let url = serve.url();
    assert!(url.starts_with("wss://"), "{url}");

    let r = run(
        &["connect", &url, "--cacert", &f.ca, "-n", "1"],
        b"secret\n",
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "secret\n"), "{r:?}");
    assert!(!r.stderr.contains("WARNING"), "{r:?}");

    // The built-in roots do not know the test CA.
    let r = run(&["connect", &url, "-n", "1"], b"secret\n");
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("UnknownIssuer") || r.stderr.contains("issuer"),
        "{r:?}"
    );

    let r = run(&["connect", &url, "--insecure", "-n", "1"], b"anyway\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "anyway\n"), "{r:?}");
    assert!(r.stderr.contains("WARNING: --insecure"), "{r:?}");

    // Another CA's file does not help.
    let other = TempDir::new("tls-other");
    let other_ca = other.file("ca.pem", &certs::Ca::new("someone else").cert_pem);
    let r = run(&["connect", &url, "--cacert", &other_ca, "-n", "1"], b"x\n");
    assert_eq!(r.code, 3, "{r:?}");

    // A missing file is a clear local error.
    let r = run(&["connect", &url, "--cacert", "/nonexistent.pem"], b"");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("/nonexistent.pem"), "{r:?}");
}

#[test]
fn client_certificate_for_a_server_that_asks() {
    let f = files();
    let ca_pem = std::fs::read(&f.ca).unwrap();
    let tls = tether::tls::server_config_with_client_auth(
        &std::fs::read(&f.cert).unwrap(),
        &std::fs::read(&f.key).unwrap(),
        &ca_pem,
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("wss://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tether::tokio::accept_tls(stream, &tls).await else {
                        return;
                    };
                    while let Some(Ok(m)) = ws.next().await {
                        if matches!(m, tether::Message::Text(_)) {
                            let _ = ws.send(m).await;
                        }
                    }
                });
            }
        });
    });
    let r = run(
        &[
            "connect",
            &url,
            "--cacert",
            &f.ca,
            "--cert",
            &f.client_cert,
            "--key",
            &f.client_key,
            "-n",
            "1",
        ],
        b"mutual\n",
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "mutual\n"), "{r:?}");
    // Without one the server refuses the handshake.
    let r = run(&["connect", &url, "--cacert", &f.ca, "-n", "1"], b"x\n");
    assert_ne!(r.code, 0, "{r:?}");
    // --cert needs --key.
    let r = run(&["connect", &url, "--cert", &f.client_cert], b"");
    assert_eq!(r.code, 2, "{r:?}");
}
