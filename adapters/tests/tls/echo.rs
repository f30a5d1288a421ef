//! A tether TLS server and a `wss://` client that trusts only the test CA,
//! on every pair of runtimes: messages of every frame-length form up to
//! 1 MiB come back intact, ALPN is http/1.1, and both ends close cleanly.

use tether::{ClientOptions, ServerOptions};

use crate::certs::{Ca, Usage, Validity};
use crate::support::{exchange, messages, Rt, TlsServer, BOTH};

fn echo_over_tls(server_rt: Rt, client_rt: Rt) {
    let ca = Ca::new("tether test CA");
    let id = ca.server();
    let tls = tether::tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    let server = TlsServer::start(server_rt, tls, ServerOptions::default());
    let client = ClientOptions::default()
        .with_tls(tether::tls::client_config(ca.cert_pem.as_bytes()).unwrap());
    let msgs = messages();
    let seen = exchange(client_rt, &server.url(), client, &msgs).expect("connect");
    assert!(seen.tls, "the client's stream is not TLS");
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let served = server.next().expect("server side");
    assert_eq!(served.echoed, msgs.len());
    assert_eq!(served.end, "closed");
    assert_eq!(served.alpn.as_deref(), Some(&b"http/1.1"[..]));
    // An IP address host: checked as an address, no SNI sent.
    assert_eq!(served.sni, None);
    assert!(!served.client_cert);
}

#[test]
fn smol_client_smol_server() {
    echo_over_tls(Rt::Smol, Rt::Smol);
}

#[test]
fn tokio_client_tokio_server() {
    echo_over_tls(Rt::Tokio, Rt::Tokio);
}

#[test]
fn smol_client_tokio_server() {
    echo_over_tls(Rt::Tokio, Rt::Smol);
}

#[test]
fn tokio_client_smol_server() {
    echo_over_tls(Rt::Smol, Rt::Tokio);
}

/// A DNS name host is sent as SNI and matched against the certificate's
/// DNS names (this one holds no address).
#[test]
fn a_dns_host_is_sent_as_sni_and_verified_by_name() {
    let ca = Ca::new("tether test CA");
    let id = ca.issue(&["localhost"], Usage::Server, Validity::Now);
    let tls = tether::tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    for rt in BOTH {
        let server = TlsServer::start(rt, tls.clone(), ServerOptions::default());
        let url = format!("wss://localhost:{}/", server.addr.port());
        let client = ClientOptions::default()
            .with_tls(tether::tls::client_config(ca.cert_pem.as_bytes()).unwrap());
        exchange(rt, &url, client, &messages()[..4]).expect("connect");
        let served = server.next().expect("server side");
        assert_eq!(served.sni.as_deref(), Some("localhost"), "{rt:?}");
        assert_eq!(served.end, "closed");
    }
}

/// Mutual TLS: a server that requires a client certificate from its
/// client CA accepts a client presenting one.
#[test]
fn mutual_tls_accepted() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let id = server_ca.server();
    let tls = tether::tls::server_config_with_client_auth(
        id.cert_pem.as_bytes(),
        id.key_pem.as_bytes(),
        client_ca.cert_pem.as_bytes(),
    )
    .unwrap();
    let me = client_ca.client("device-07");
    for rt in BOTH {
        let server = TlsServer::start(rt, tls.clone(), ServerOptions::default());
        let client = ClientOptions::default().with_tls(
            tether::tls::client_config_with_cert(
                server_ca.cert_pem.as_bytes(),
                me.cert_pem.as_bytes(),
                me.key_pem.as_bytes(),
            )
            .unwrap(),
        );
        exchange(rt, &server.url(), client, &messages()[..6]).expect("connect");
        let served = server.next().expect("server side");
        assert!(served.client_cert, "{rt:?}: no client certificate seen");
        assert_eq!(served.echoed, 6);
    }
}
