//! A `wss://` URL is never served in plain text: where TLS cannot be opened
//! (a build without `rustls`), every way to open a client connection
//! fails with `Error::TlsUnavailable` and no TCP connection reaches the
//! port (before, it connected in plain text, to port 80 when the URL had
//! no port). With `rustls`, smol and tokio open TLS instead
//! (`tests/tls`), and so does the mio loop (`tests/mio_tls`).

#![cfg(any(feature = "smol", feature = "tokio", feature = "mio"))]
#![allow(dead_code, unused_imports)]

use std::net::TcpListener;
use std::time::Duration;

use tether::reconnect::{ReconnectOptions, Reconnector};
use tether::{ClientOptions, Error};

/// A listener no client should reach; panics if one did.
struct Untouched(TcpListener);

impl Untouched {
    fn new() -> (Self, String) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let url = format!("wss://{}/feed", l.local_addr().unwrap());
        (Self(l), url)
    }

    fn check(&self) {
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            self.0.accept().is_err(),
            "a wss:// client connected in plain text"
        );
    }
}

fn is_tls_unavailable<T>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::TlsUnavailable))
}

#[cfg(all(feature = "smol", feature = "tokio", not(feature = "rustls")))]
#[test]
fn smol_and_tokio_refuse_wss_without_tls() {
    let (port, url) = Untouched::new();
    assert!(is_tls_unavailable(smol::block_on(tether::smol::connect(
        &url
    ))));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(is_tls_unavailable(
        rt.block_on(tether::tokio::connect(&url))
    ));
    // Upper case, and no port (it would have been 80).
    assert!(is_tls_unavailable(smol::block_on(tether::smol::connect(
        "WSS://127.0.0.1/"
    ))));
    port.check();
}

#[cfg(all(feature = "smol", not(feature = "rustls")))]
#[test]
fn the_reconnector_and_the_pool_do_not_retry_wss_in_plain_text() {
    let (port, url) = Untouched::new();
    smol::block_on(async {
        let mut rc = Reconnector::smol(&url, ClientOptions::default(), ReconnectOptions::default());
        assert!(rc.connect().await.is_err());
        let pool = tether::pool::Pool::smol(ClientOptions::default(), Default::default());
        assert!(is_tls_unavailable(pool.checkout(&url).await.map(drop)));
    });
    port.check();
}

#[cfg(all(feature = "mio", not(feature = "rustls")))]
#[test]
fn mio_refuses_wss_without_tls() {
    let (port, url) = Untouched::new();
    let mut driver = tether::mio::Driver::new().unwrap();
    assert!(is_tls_unavailable(driver.connect(&url)));
    port.check();
}

#[test]
fn the_error_says_what_to_do() {
    let msg = Error::TlsUnavailable.to_string();
    assert!(msg.contains("wss://") && msg.contains("TLS"), "{msg}");
}
