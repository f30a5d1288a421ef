//! The interop peers over TLS, with certificates made at test time:
//! Python `websockets` in both roles (an `ssl.SSLContext` trusting only
//! the test CA, or serving its certificate), and headless Chromium
//! opening `wss://` to tether servers (trusting the test certificate's
//! key through `--ignore-certificate-errors-spki-list`).

use base64::Engine as _;
use tether::ClientOptions;

use crate::browser::chromium_against;
use crate::certs::Ca;
use crate::python::{python_client_of, python_server_with, server_options};
use crate::support::{EchoServer, Rt, TempDir};

/// A CA, a server certificate for 127.0.0.1 from it, and both written
/// as PEM files (`ca.pem`, `cert.pem`, `key.pem`) in a fresh directory.
struct Pki {
    ca: Ca,
    server: crate::certs::Identity,
    dir: TempDir,
}

impl Pki {
    fn new() -> Self {
        let ca = Ca::new("tether interop CA");
        let server = ca.server();
        let dir = TempDir::new("tls-pki");
        std::fs::write(dir.0.join("ca.pem"), &ca.cert_pem).unwrap();
        std::fs::write(dir.0.join("cert.pem"), &server.cert_pem).unwrap();
        std::fs::write(dir.0.join("key.pem"), &server.key_pem).unwrap();
        Self { ca, server, dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.0.join(name).to_str().unwrap().to_owned()
    }

    fn tether_server(&self, rt: Rt) -> EchoServer {
        let tls = tether::tls::server_config(
            self.server.cert_pem.as_bytes(),
            self.server.key_pem.as_bytes(),
        )
        .unwrap();
        EchoServer::start_tls(rt, server_options(), 1, tls)
    }
}

fn python_client_over_tls(rt: Rt) {
    let pki = Pki::new();
    let server = pki.tether_server(rt);
    assert!(server.url().starts_with("wss://"));
    python_client_of(server, rt, "default", &[&pki.path("ca.pem")]);
}

fn python_server_over_tls(rt: Rt) {
    let pki = Pki::new();
    let client = ClientOptions::default()
        .with_tls(tether::tls::client_config(pki.ca.cert_pem.as_bytes()).unwrap());
    python_server_with(
        rt,
        "default",
        "wss",
        client,
        &[&pki.path("cert.pem"), &pki.path("key.pem")],
    );
}

#[test]
fn python_client_smol_server_over_tls() {
    python_client_over_tls(Rt::Smol);
}

#[cfg(feature = "tokio")]
#[test]
fn python_client_tokio_server_over_tls() {
    python_client_over_tls(Rt::Tokio);
}

#[test]
fn python_server_smol_client_over_tls() {
    python_server_over_tls(Rt::Smol);
}

#[cfg(feature = "tokio")]
#[test]
fn python_server_tokio_client_over_tls() {
    python_server_over_tls(Rt::Tokio);
}

#[test]
#[ignore = "needs chromium (apt-get install chromium, or set TETHER_CHROMIUM); run with --include-ignored"]
fn chromium_over_wss_against_smol_and_tokio_servers() {
    let pki = Pki::new();
    let mut servers = vec![("smol", pki.tether_server(Rt::Smol))];
    #[cfg(feature = "tokio")]
    servers.push(("tokio", pki.tether_server(Rt::Tokio)));
    assert!(servers.iter().all(|(_, s)| s.url().starts_with("wss://")));
    // Chromium trusts a certificate whose key hashes (SHA-256 of the
    // SubjectPublicKeyInfo, base64) to one in this list; nothing else.
    let spki = ring::digest::digest(&ring::digest::SHA256, &pki.server.spki_der);
    let pin = base64::engine::general_purpose::STANDARD.encode(spki.as_ref());
    chromium_against(
        &servers,
        &server_options(),
        &[format!("--ignore-certificate-errors-spki-list={pin}")],
    );
}
