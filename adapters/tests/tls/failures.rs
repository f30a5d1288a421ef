//! Every way a certificate is refused, asserted by its typed error on the
//! side that refused it (and, where the peer learns of it by an alert, on
//! the other side too), on both runtimes.

use std::sync::Arc;

use tether::tls::rustls::ServerConfig;
use tether::tls::TlsErrorKind;
use tether::{ClientOptions, ServerOptions};

use crate::certs::{Ca, Identity, Usage, Validity};
use crate::support::{assert_tls, connect_error, tls_kind, TlsServer, BOTH};

fn server_tls(id: &Identity) -> Arc<ServerConfig> {
    tether::tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap()
}

fn trusting(ca: &Ca) -> ClientOptions {
    ClientOptions::default().with_tls(tether::tls::client_config(ca.cert_pem.as_bytes()).unwrap())
}

/// The client refuses the server's certificate with `kind`; the server
/// hears of it as an alert.
fn client_refuses(id: &Identity, client_trusts: &Ca, kind: TlsErrorKind, words: &str) {
    for rt in BOTH {
        let server = TlsServer::start(rt, server_tls(id), ServerOptions::default());
        let e = connect_error(rt, &server.url(), trusting(client_trusts));
        assert_tls(&e, kind, words);
        let seen = server.next_error();
        assert_eq!(
            tls_kind(&seen),
            TlsErrorKind::CertificateRefused,
            "{rt:?}: {seen}"
        );
    }
}

#[test]
fn unknown_issuer() {
    let ca = Ca::new("the server's CA");
    let other = Ca::new("another CA");
    client_refuses(
        &ca.server(),
        &other,
        TlsErrorKind::UnknownIssuer,
        "not issued by a trusted CA",
    );
}

#[test]
fn wrong_host_name() {
    let ca = Ca::new("tether test CA");
    let id = ca.issue(&["feed.tether.invalid"], Usage::Server, Validity::Now);
    client_refuses(&id, &ca, TlsErrorKind::WrongName, "not valid for the name");
}

#[test]
fn expired_certificate() {
    let ca = Ca::new("tether test CA");
    let id = ca.issue(&["127.0.0.1"], Usage::Server, Validity::Expired);
    client_refuses(&id, &ca, TlsErrorKind::Expired, "expired");
}

#[test]
fn certificate_not_valid_yet() {
    let ca = Ca::new("tether test CA");
    let id = ca.issue(&["127.0.0.1"], Usage::Server, Validity::Future);
    client_refuses(&id, &ca, TlsErrorKind::NotYetValid, "not valid yet");
}

/// A client certificate presented as a server's is refused (wrong
/// purpose): the catch-all certificate kind.
#[test]
fn a_client_certificate_is_no_server_certificate() {
    let ca = Ca::new("tether test CA");
    let id = ca.issue(&["127.0.0.1"], Usage::Client, Validity::Now);
    client_refuses(
        &id,
        &ca,
        TlsErrorKind::InvalidCertificate,
        "certificate is invalid",
    );
}

/// A server requiring a client certificate from `client_ca`.
fn mtls_server(server_ca: &Ca, client_ca: &Ca) -> Arc<ServerConfig> {
    let id = server_ca.server();
    tether::tls::server_config_with_client_auth(
        id.cert_pem.as_bytes(),
        id.key_pem.as_bytes(),
        client_ca.cert_pem.as_bytes(),
    )
    .unwrap()
}

#[test]
fn mutual_tls_refuses_a_client_without_certificate() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let tls = mtls_server(&server_ca, &client_ca);
    for rt in BOTH {
        let server = TlsServer::start(rt, tls.clone(), ServerOptions::default());
        let e = connect_error(rt, &server.url(), trusting(&server_ca));
        assert_tls(
            &e,
            TlsErrorKind::CertificateRefused,
            "refused our certificate",
        );
        assert!(e.tls_error().unwrap().is_certificate_error());
        let seen = server.next_error();
        assert_tls(&seen, TlsErrorKind::NoCertificate, "sent no certificate");
    }
}

#[test]
fn mutual_tls_refuses_a_certificate_from_an_untrusted_ca() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let stranger = Ca::new("a stranger's CA");
    let tls = mtls_server(&server_ca, &client_ca);
    let me = stranger.client("device-07");
    for rt in BOTH {
        let server = TlsServer::start(rt, tls.clone(), ServerOptions::default());
        let options = ClientOptions::default().with_tls(
            tether::tls::client_config_with_cert(
                server_ca.cert_pem.as_bytes(),
                me.cert_pem.as_bytes(),
                me.key_pem.as_bytes(),
            )
            .unwrap(),
        );
        let e = connect_error(rt, &server.url(), options);
        assert_tls(
            &e,
            TlsErrorKind::CertificateRefused,
            "refused our certificate",
        );
        let seen = server.next_error();
        assert_tls(
            &seen,
            TlsErrorKind::UnknownIssuer,
            "not issued by a trusted CA",
        );
    }
}
