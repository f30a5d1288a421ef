//! Configurations: PEM input that cannot work is a clear error, a
//! configuration without ALPN still offers http/1.1, and the default one
//! trusts the enabled roots only.

use std::sync::Arc;

use tether::tls::rustls::{self, ClientConfig, RootCertStore};
use tether::tls::TlsErrorKind;
use tether::{ClientOptions, ServerOptions};

use crate::certs::Ca;
use crate::support::{connect_error, exchange, messages, tls_kind, TlsServer, BOTH};

#[test]
fn pem_that_cannot_work_is_a_config_error() {
    let ca = Ca::new("tether test CA");
    let id = ca.server();
    let other = ca.server();
    fn config_error<T>(r: Result<T, tether::tls::TlsError>, what: &str) -> String {
        let e = r.map(drop).expect_err(what);
        assert_eq!(e.kind(), TlsErrorKind::Config, "{what}: {e}");
        e.to_string()
    }
    let msg = config_error(
        tether::tls::server_config(b"", id.key_pem.as_bytes()),
        "no certificate",
    );
    assert!(msg.contains("no CERTIFICATE"), "{msg}");
    config_error(
        tether::tls::server_config(id.cert_pem.as_bytes(), b"not a key"),
        "no key",
    );
    config_error(
        tether::tls::server_config(id.cert_pem.as_bytes(), other.key_pem.as_bytes()),
        "a key of another certificate",
    );
    config_error(tether::tls::client_config(b"garbage"), "no CA");
    config_error(
        tether::tls::client_config_with_cert(ca.cert_pem.as_bytes(), id.cert_pem.as_bytes(), b""),
        "client certificate without key",
    );
    config_error(
        tether::tls::server_config_with_client_auth(
            id.cert_pem.as_bytes(),
            id.key_pem.as_bytes(),
            b"",
        ),
        "no client CA",
    );
}

/// The application's own configuration (built with the re-exported
/// rustls and tether's provider) offers no ALPN: http/1.1 is added.
#[test]
fn a_configuration_without_alpn_offers_http_1_1() {
    let ca = Ca::new("tether test CA");
    let id = ca.server();
    let tls = tether::tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    let mut roots = RootCertStore::empty();
    let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
    roots.add(ca_der).unwrap();
    let mine = Arc::new(
        ClientConfig::builder_with_provider(tether::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    assert!(mine.alpn_protocols.is_empty());
    for rt in BOTH {
        let server = TlsServer::start(rt, tls.clone(), ServerOptions::default());
        // Twice with the same Arc: the copy with ALPN is reused.
        for _ in 0..2 {
            let client = ClientOptions::default().with_tls(mine.clone());
            let seen = exchange(rt, &server.url(), client, &messages()[..2]).unwrap();
            assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]), "{rt:?}");
            let served = server.next().unwrap();
            assert_eq!(served.alpn.as_deref(), Some(&b"http/1.1"[..]), "{rt:?}");
        }
    }
    assert!(
        mine.alpn_protocols.is_empty(),
        "the caller's configuration changed"
    );
}

/// Without `ClientOptions::tls`, the enabled roots are trusted and a
/// private CA is not.
#[cfg(any(feature = "webpki-roots", feature = "rustls-native-certs"))]
#[test]
fn the_default_configuration_does_not_trust_a_private_ca() {
    let config = tether::tls::default_client_config().expect("roots enabled");
    assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    let ca = Ca::new("tether test CA");
    let id = ca.server();
    let tls = tether::tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    for rt in BOTH {
        let server = TlsServer::start(rt, tls.clone(), ServerOptions::default());
        let e = connect_error(rt, &server.url(), ClientOptions::default());
        assert_eq!(tls_kind(&e), TlsErrorKind::UnknownIssuer, "{rt:?}: {e}");
    }
}

/// With `rustls` and no root feature, a `wss://` connect without a
/// configuration fails before any byte leaves: no empty trust store.
#[cfg(not(any(feature = "webpki-roots", feature = "rustls-native-certs")))]
#[test]
fn without_roots_wss_needs_a_configuration() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("wss://{}/", listener.local_addr().unwrap());
    for rt in BOTH {
        let e = connect_error(rt, &url, ClientOptions::default());
        assert_eq!(tls_kind(&e), TlsErrorKind::NoTrustRoots, "{rt:?}: {e}");
        let msg = e.to_string();
        assert!(
            msg.contains("webpki-roots") && msg.contains("ClientOptions::tls"),
            "{msg}"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(listener.accept().is_err(), "a TCP connection was made");
}
