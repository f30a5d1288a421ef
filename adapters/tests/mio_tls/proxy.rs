//! `wss://` from the mio loop through real proxies on loopback: TLS runs
//! inside the tunnel, end to end with the server, whose certificate is
//! checked for the URL's host (not the proxy's). The server (the proxy
//! tests' `Echo` over smol's `accept_tls`) records where each connection
//! came from, and each proxy connects from an address of its own (see
//! `proxies/mod.rs`).
//!
//! Needs tinyproxy and microsocks, so `#[ignore]`d like `tests/proxy.rs`.

use std::sync::Arc;

use tether::proxy::ProxyConfig;
use tether::ClientOptions;

use crate::certs::Ca;
use crate::proxies::{Echo, Proxy, Rt, VIA_MICROSOCKS, VIA_TINYPROXY};
use crate::run::client_options;

fn via(tls: &Arc<tether::tls::rustls::ClientConfig>, proxy: &str) -> ClientOptions {
    client_options(tls.clone()).with_proxy(ProxyConfig::Explicit(proxy.parse().expect("proxy")))
}

/// Through tinyproxy (HTTP CONNECT) and microsocks (`socks5h://`, the
/// name resolved by the proxy), by name so the certificate is checked
/// for `localhost`; then a certificate for another name is refused
/// through the tunnel as it is directly.
#[test]
#[ignore = "needs tinyproxy and microsocks: apt-get install tinyproxy microsocks"]
fn mio_wss_through_real_proxies() {
    let ca = Ca::new("proxy CA");
    let id = ca.server();
    let server_tls = tether::tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes())
        .expect("server config");
    let client_tls = tether::tls::client_config(ca.cert_pem.as_bytes()).expect("client config");
    let echo = Echo::start_with_tls(server_tls);
    let url = format!("wss://localhost:{}/", echo.addr.port());
    let mut tinyproxy = Proxy::tinyproxy(&[]);
    let microsocks = Proxy::microsocks(None);

    Rt::Mio
        .echo(&url, via(&client_tls, &tinyproxy.url("http", None)))
        .expect("through tinyproxy");
    assert_eq!(echo.take_peers(), [VIA_TINYPROXY]);
    let connect = format!("CONNECT localhost:{} HTTP/1.1", echo.addr.port());
    assert!(tinyproxy.log().contains(&connect), "{}", tinyproxy.log());

    Rt::Mio
        .echo(&url, via(&client_tls, &microsocks.url("socks5h", None)))
        .expect("through microsocks");
    assert_eq!(echo.take_peers(), [VIA_MICROSOCKS]);

    let other = ca.server_for(&["other.example"]);
    let other_tls = tether::tls::server_config(other.cert_pem.as_bytes(), other.key_pem.as_bytes())
        .expect("server config");
    let other_echo = Echo::start_with_tls(other_tls);
    let wrong_name = format!("wss://localhost:{}/", other_echo.addr.port());
    let err = Rt::Mio
        .echo(&wrong_name, via(&client_tls, &tinyproxy.url("http", None)))
        .expect_err("a certificate for another name");
    let kind = err.tls_error().map(|e| e.kind());
    assert_eq!(kind, Some(tether::tls::TlsErrorKind::WrongName), "{err:?}");

    // With the proxy gone, the same client cannot connect: it went through it.
    tinyproxy.stop();
    let err = Rt::Mio
        .echo(&url, via(&client_tls, &tinyproxy.url("http", None)))
        .expect_err("the proxy is down");
    let io = err.io_error().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
}
