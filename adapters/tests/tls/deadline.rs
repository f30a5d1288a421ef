//! A TLS handshake has a deadline on both sides: `HandshakeLimits::timeout`,
//! shared with the WebSocket handshake after it. A short one here; only the
//! outcome is asserted, never how long it took.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use tether::core::handshake::HandshakeError;
use tether::{ClientOptions, Error, HandshakeLimits, ServerOptions};

use crate::certs::Ca;
use crate::support::{connect_error, TlsServer, BOTH, TIMEOUT};

fn limits() -> HandshakeLimits {
    HandshakeLimits::default().with_timeout(Duration::from_millis(300))
}

fn timed_out(e: &Error) -> bool {
    matches!(e.handshake_error(), Some(HandshakeError::TimedOut))
}

/// A client that opens TCP, sends the first bytes of a ClientHello and
/// then nothing is dropped by the server at its deadline.
#[test]
fn a_client_that_stalls_in_the_tls_handshake_is_dropped() {
    let ca = Ca::new("tether test CA");
    let id = ca.server();
    let tls = tether::tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    for rt in BOTH {
        let server = TlsServer::start(
            rt,
            tls.clone(),
            ServerOptions::default().with_limits(limits()),
        );
        let mut tcp = TcpStream::connect(server.addr).unwrap();
        // A TLS record header promising a handshake message that never comes.
        tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
        let e = server.next_error();
        assert!(timed_out(&e), "{rt:?}: {e}");
        // And the socket is closed: end of stream, or a reset.
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        match tcp.read(&mut [0u8; 64]) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("{rt:?}: the server kept the socket: {other:?}"),
        }
    }
}

/// A `wss://` client whose server accepts TCP and never answers the
/// ClientHello gives up at its deadline.
#[test]
fn a_client_gives_up_on_a_server_that_never_answers_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("wss://{}/", listener.local_addr().unwrap());
    let ca = Ca::new("tether test CA");
    for rt in BOTH {
        let options = ClientOptions::default()
            .with_limits(limits())
            .with_tls(tether::tls::client_config(ca.cert_pem.as_bytes()).unwrap());
        let e = connect_error(rt, &url, options);
        assert!(timed_out(&e), "{rt:?}: {e}");
        // The connection reached the listener (it was TLS's deadline, not
        // a refused connect).
        let (_held, _) = listener.accept().unwrap();
    }
}
