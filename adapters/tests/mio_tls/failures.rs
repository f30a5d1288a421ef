//! What fails, fails with a typed error and ends: refused certificates
//! and names (`TlsErrorKind`), mutual TLS accepted and refused, TLS
//! meeting plain TCP either way, and a session whose records are cut or
//! corrupted on the way (through a relay).

use std::sync::Arc;

use tether::mio::{Driver, Event};
use tether::tls::rustls::{ClientConfig, ServerConfig};
use tether::tls::{self, TlsErrorKind};
use tether::{Error, Message};

use crate::certs::Ca;
use crate::run::*;

/// A mio TLS server with `server_tls` and a mio client with `client_tls`
/// for `wss://{host}:PORT/` in one loop; the client sends one message if
/// it opens. The client's events and the server side's.
fn attempt(
    server_tls: Arc<ServerConfig>,
    client_tls: Arc<ClientConfig>,
    host: &str,
) -> (Vec<Seen>, Vec<Seen>) {
    let mut driver = Driver::new().expect("driver");
    let addr = driver
        .listen_tls(format!("{host}:0"), server_tls)
        .expect("listen");
    let url = format!("wss://{host}:{}/", addr.port());
    let client = driver
        .connect_with(&url, client_options(client_tls))
        .expect("connect");
    let mut log = echo_session(&mut driver, client, &[Message::text("hi")], 1);
    let server = server_side(&mut log, client);
    (log.remove(&client).expect("client log"), server)
}

/// The one TLS error in a connection's events, which never opened.
fn tls_failure(events: &[Seen]) -> TlsErrorKind {
    assert!(
        !events.iter().any(|e| matches!(e, Seen::Open { .. })),
        "opened: {events:?}"
    );
    assert!(matches!(events.last(), Some(Seen::Closed)), "{events:?}");
    match errors(events)[..] {
        [Error::Tls(e)] => e.kind(),
        _ => panic!("expected one TLS error: {events:?}"),
    }
}

fn server_tls(ca: &Ca, names: &[&str]) -> Arc<ServerConfig> {
    let id = ca.server_for(names);
    tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).expect("server config")
}

fn trusting(ca: &Ca) -> Arc<ClientConfig> {
    tls::client_config(ca.cert_pem.as_bytes()).expect("client config")
}

#[test]
fn a_server_from_an_unknown_ca_is_refused() {
    let (ca, other) = (Ca::new("server's CA"), Ca::new("another CA"));
    let (client, server) = attempt(
        server_tls(&ca, &["127.0.0.1"]),
        trusting(&other),
        "127.0.0.1",
    );
    assert_eq!(tls_failure(&client), TlsErrorKind::UnknownIssuer);
    // The client's alert (unknown_ca) reached the server.
    assert_eq!(tls_failure(&server), TlsErrorKind::CertificateRefused);
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let ca = Ca::new("CA");
    let (client, _) = attempt(
        server_tls(&ca, &["other.example"]),
        trusting(&ca),
        "127.0.0.1",
    );
    assert_eq!(tls_failure(&client), TlsErrorKind::WrongName);
    let (client, _) = attempt(server_tls(&ca, &["127.0.0.1"]), trusting(&ca), "localhost");
    assert_eq!(tls_failure(&client), TlsErrorKind::WrongName);
}

/// Server configuration asking for a client certificate from `client_ca`.
fn mutual(ca: &Ca, client_ca: &Ca) -> Arc<ServerConfig> {
    let id = ca.server();
    tls::server_config_with_client_auth(
        id.cert_pem.as_bytes(),
        id.key_pem.as_bytes(),
        client_ca.cert_pem.as_bytes(),
    )
    .expect("server config")
}

fn with_cert(ca: &Ca, issuer: &Ca) -> Arc<ClientConfig> {
    let id = issuer.client("client.example");
    tls::client_config_with_cert(
        ca.cert_pem.as_bytes(),
        id.cert_pem.as_bytes(),
        id.key_pem.as_bytes(),
    )
    .expect("client config")
}

#[test]
fn mutual_tls_with_a_trusted_client_certificate() {
    let (ca, clients) = (Ca::new("CA"), Ca::new("clients' CA"));
    let (client, server) = attempt(mutual(&ca, &clients), with_cert(&ca, &clients), "127.0.0.1");
    assert!(errors(&client).is_empty(), "{client:?}");
    assert!(errors(&server).is_empty(), "{server:?}");
    assert!(
        matches!(server[0], Seen::Open { peer_certs: 1, .. }),
        "{server:?}"
    );
    assert!(matches!(client[1], Seen::Message(2)), "{client:?}");
}

#[test]
fn mutual_tls_refuses_no_certificate_and_one_from_another_ca() {
    let (ca, clients, strangers) = (Ca::new("CA"), Ca::new("clients' CA"), Ca::new("other CA"));
    let (client, server) = attempt(mutual(&ca, &clients), trusting(&ca), "127.0.0.1");
    assert_eq!(tls_failure(&server), TlsErrorKind::NoCertificate);
    // TLS 1.3: the client's side of the handshake is over when the server
    // says no; the refusal arrives as the server's alert.
    assert_eq!(tls_failure(&client), TlsErrorKind::CertificateRefused);

    let (client, server) = attempt(
        mutual(&ca, &clients),
        with_cert(&ca, &strangers),
        "127.0.0.1",
    );
    assert_eq!(tls_failure(&server), TlsErrorKind::UnknownIssuer);
    assert_eq!(tls_failure(&client), TlsErrorKind::CertificateRefused);
}

/// The server's refusal of the upgrade goes out through TLS, then
/// close_notify: the client reads the status.
#[test]
fn a_refusal_reaches_the_client_through_tls() {
    let ca = Ca::new("CA");
    let mut driver = Driver::new().expect("driver");
    let addr = driver
        .listen_tls_with(
            "127.0.0.1:0",
            server_tls(&ca, &["127.0.0.1"]),
            server_options(),
            |_| {
                let refusal = tether::http::Response::builder()
                    .status(403)
                    .body(tether::Bytes::from_static(b"not you"))
                    .expect("response");
                Err(Box::new(refusal))
            },
        )
        .expect("listen");
    let client = driver
        .connect_with(&format!("wss://{addr}/"), client_options(trusting(&ca)))
        .expect("connect");
    let log = echo_session(&mut driver, client, &[], 1);
    let events = &log[&client];
    assert!(
        matches!(errors(events)[..], [e] if e.http_status() == Some(403)),
        "{events:?}"
    );
    assert!(matches!(events.last(), Some(Seen::Closed)));
}

/// A `wss://` client at a plain `ws://` server: the server's HTTP 400 is
/// no TLS record.
#[test]
fn a_tls_client_at_a_plain_server() {
    let ca = Ca::new("CA");
    let mut driver = Driver::new().expect("driver");
    let addr = driver.listen("127.0.0.1:0").expect("listen");
    let client = driver
        .connect_with(&format!("wss://{addr}/"), client_options(trusting(&ca)))
        .expect("connect");
    let mut log = echo_session(&mut driver, client, &[], 1);
    let server = server_side(&mut log, client);
    assert_eq!(tls_failure(&log[&client]), TlsErrorKind::Other);
    assert!(
        matches!(errors(&server)[..], [e] if e.handshake_error().is_some()),
        "{server:?}"
    );
}

/// An HTTP request in plain text at a TLS server: a TLS error, and the
/// socket closed.
#[test]
fn plain_text_at_a_tls_server() {
    let ca = Ca::new("CA");
    let mut driver = Driver::new().expect("driver");
    let addr = driver
        .listen_tls("127.0.0.1:0", server_tls(&ca, &["127.0.0.1"]))
        .expect("listen");
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n".to_vec();
    let events = raw_client(&mut driver, addr, request);
    assert_eq!(tls_failure(&events), TlsErrorKind::Other);
}

/// An open session through a relay that spoils the server's next bytes
/// once the first echo is back: the client's events from then on.
fn spoiled(how: Spoil) -> Vec<Seen> {
    let ca = Ca::new("CA");
    let mut driver = Driver::new().expect("driver");
    let addr = driver
        .listen_tls_with(
            "127.0.0.1:0",
            server_tls(&ca, &["127.0.0.1"]),
            server_options(),
            |_| Ok(Default::default()),
        )
        .expect("listen");
    let relay = Relay::start(addr);
    let client = driver
        .connect_with(
            &format!("wss://{}/", relay.addr),
            client_options(trusting(&ca)),
        )
        .expect("connect");
    let mut events = Vec::new();
    run_until(
        &mut driver,
        &mut events,
        |events, conns, id, event| match event {
            Event::Message(m) if id != client => conns.send(id, m).expect("echo"),
            Event::Open if id == client => conns.send(id, Message::text("one")).expect("send"),
            Event::Message(m) if id == client && events.is_empty() => {
                assert_eq!(m, Message::text("one"));
                relay.spoil(how);
                conns.send(id, Message::text("two")).expect("send");
                events.push(Seen::Message(m.len()));
            }
            Event::Error(e) if id == client => events.push(Seen::Error(e)),
            Event::Closed if id == client => events.push(Seen::Closed),
            Event::Message(m) if id == client => events.push(Seen::Message(m.len())),
            _ => {}
        },
        |events| matches!(events.last(), Some(Seen::Closed)),
    );
    events
}

/// TCP ends without close_notify, at a record's start or inside one: an
/// end like any other for the WebSocket, which, without a close frame,
/// is abnormal (1006).
#[test]
fn a_session_cut_without_close_notify_ends_abnormally() {
    for cut in [0, 7] {
        let events = spoiled(Spoil::Cut(cut));
        assert!(
            matches!(
                errors(&events)[..],
                [Error::WebSocket(tether::core::Error::AbnormalClosure)]
            ),
            "cut at {cut}: {events:?}"
        );
        assert_eq!(events.len(), 3, "cut at {cut}: {events:?}");
    }
}

/// A record that fails authentication: a TLS error, and the end.
#[test]
fn a_corrupted_record_is_a_tls_error() {
    let events = spoiled(Spoil::Corrupt);
    match errors(&events)[..] {
        [Error::Tls(e)] => {
            assert_eq!(e.kind(), TlsErrorKind::Other);
            assert!(
                matches!(e.rustls_error(), Some(tls::rustls::Error::DecryptError)),
                "{e:?}"
            );
        }
        _ => panic!("{events:?}"),
    }
    assert!(matches!(events.last(), Some(Seen::Closed)));
}
