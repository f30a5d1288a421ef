//! Clients through real proxies on loopback, on smol, tokio and the mio
//! loop: tinyproxy for HTTP CONNECT (with and without Basic auth, and
//! refusing), microsocks for SOCKS5 (with and without a password,
//! `socks5://` against `socks5h://`), and a `Reconnector` through both.
//! The echo server records where each connection came from, and each
//! proxy connects from an address of its own, so every test asserts the
//! way its connection really went (see `proxies/mod.rs`).
//!
//! Needs tinyproxy and microsocks (Debian packages of those names), so
//! the tests are `#[ignore]`d and run with `--include-ignored` (`.ci/run`
//! does, after installing them); then they fail, not skip, without them.
//! The environment variables are tested in `proxy_env.rs`.

#![cfg(feature = "smol")]

mod proxies;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxies::{free_port, options, Echo, Proxy, Rt, DIRECT, VIA_MICROSOCKS, VIA_TINYPROXY};
use tether::proxy::{ProxyConfig, ProxyError, Socks5Failure};
use tether::reconnect::{
    BackoffConfig, Failure, ReconnectEvent, ReconnectOptions, Reconnector, RetryPolicy,
};
use tether::{ClientOptions, Connector, Error};

/// `options()` through the proxy at `url`.
fn via(url: &str) -> ClientOptions {
    options().with_proxy(ProxyConfig::Explicit(url.parse().expect("proxy URL")))
}

/// The proxy's error, or a failure saying what came instead.
fn proxy_error(result: Result<(), Error>) -> ProxyError {
    match result {
        Err(e) => e
            .proxy_error()
            .cloned()
            .unwrap_or_else(|| panic!("not a proxy error: {e:?}")),
        Ok(()) => panic!("connected, but the proxy should have refused"),
    }
}

/// Through tinyproxy, and nowhere else: the server sees tinyproxy's
/// address, tinyproxy logs the CONNECT, and once it is stopped the same
/// client cannot connect while a direct one can.
fn http_connect(rt: Rt) {
    let echo = Echo::start();
    let mut proxy = Proxy::tinyproxy(&[]);
    let url = proxy.url("http", None);
    rt.echo(&echo.url(), via(&url))
        .expect("echo through tinyproxy");
    assert_eq!(echo.take_peers(), [VIA_TINYPROXY]);
    let connect = format!("CONNECT 127.0.0.1:{} HTTP/1.1", echo.addr.port());
    assert!(proxy.log().contains(&connect), "{}", proxy.log());

    proxy.stop();
    let err = rt
        .echo(&echo.url(), via(&url))
        .expect_err("the proxy is down");
    let io = err.io_error().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    let direct = options().with_proxy(ProxyConfig::Direct);
    rt.echo(&echo.url(), direct).expect("echo direct");
    assert_eq!(echo.take_peers(), [DIRECT]);
}

/// Basic auth: the right credentials get through; none get a typed 407 with the proxy's challenge; wrong ones
/// get what tinyproxy answers them, 401. Neither is worth a retry.
fn http_basic_auth(rt: Rt) {
    let echo = Echo::start();
    let proxy = Proxy::tinyproxy(&["BasicAuth tether s3cret"]);
    let good = proxy.url("http", Some("tether:s3cret"));
    rt.echo(&echo.url(), via(&good))
        .expect("echo with credentials");
    assert_eq!(echo.take_peers(), [VIA_TINYPROXY]);

    let e = proxy_error(rt.echo(&echo.url(), via(&proxy.url("http", None))));
    match &e {
        ProxyError::AuthenticationRequired {
            challenge: Some(challenge),
            credentials_sent: false,
        } => assert!(challenge.starts_with("Basic"), "{challenge}"),
        other => panic!("expected a 407 with a challenge: {other:?}"),
    }
    assert_eq!(e.http_status(), Some(407));
    assert!(!e.is_retryable());

    let wrong = proxy.url("http", Some("tether:guess"));
    let e = proxy_error(rt.echo(&echo.url(), via(&wrong)));
    assert_eq!(e.http_status(), Some(401), "{e:?}");
    assert!(!e.is_retryable());
    assert!(echo.take_peers().is_empty());
}

/// A proxy whose rules forbid the target's port answers 403.
fn http_forbidden(rt: Rt) {
    let echo = Echo::start();
    let proxy = Proxy::tinyproxy(&["ConnectPort 1"]);
    let e = proxy_error(rt.echo(&echo.url(), via(&proxy.url("http", None))));
    assert_eq!(e, ProxyError::Forbidden);
    assert_eq!(e.http_status(), Some(403));
    assert!(!e.is_retryable());
    assert!(echo.take_peers().is_empty());
}

/// A target that is down behind an HTTP proxy: tinyproxy's 500, which a
/// later attempt may not meet.
fn http_target_down(rt: Rt) {
    let proxy = Proxy::tinyproxy(&[]);
    let down = format!("ws://127.0.0.1:{}/", free_port());
    let e = proxy_error(rt.echo(&down, via(&proxy.url("http", None))));
    assert_eq!(e.http_status(), Some(500), "{e:?}");
    assert!(e.is_retryable());
}

/// Through microsocks without authentication, both schemes.
fn socks5(rt: Rt) {
    let echo = Echo::start();
    let proxy = Proxy::microsocks(None);
    for scheme in ["socks5", "socks5h"] {
        rt.echo(&echo.url(), via(&proxy.url(scheme, None)))
            .unwrap_or_else(|e| panic!("{scheme}: {e}"));
        assert_eq!(echo.take_peers(), [VIA_MICROSOCKS], "{scheme}");
    }
}

/// Username and password: the right ones get through, a wrong password
/// is refused (RFC 1929), and no credentials leave no method in common.
fn socks5_auth(rt: Rt) {
    let echo = Echo::start();
    let proxy = Proxy::microsocks(Some(("tether", "s3cret")));
    let good = proxy.url("socks5h", Some("tether:s3cret"));
    rt.echo(&echo.url(), via(&good))
        .expect("echo with credentials");
    assert_eq!(echo.take_peers(), [VIA_MICROSOCKS]);

    let wrong = proxy.url("socks5h", Some("tether:guess"));
    let e = proxy_error(rt.echo(&echo.url(), via(&wrong)));
    assert!(matches!(e, ProxyError::AuthFailed(_)), "{e:?}");
    assert!(!e.is_retryable());

    let e = proxy_error(rt.echo(&echo.url(), via(&proxy.url("socks5h", None))));
    assert_eq!(e, ProxyError::NoAcceptableMethods);
    assert!(!e.is_retryable());
    assert!(echo.take_peers().is_empty());
}

/// `socks5://` resolves `localhost` here and sends the proxy an address;
/// `socks5h://` sends the name, as microsocks's log shows.
fn socks5_resolution(rt: Rt) {
    let echo = Echo::start();
    let proxy = Proxy::microsocks(None);
    let port = echo.addr.port();
    let target = format!("ws://localhost:{port}/");
    let resolved = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", port))
        .expect("resolve localhost")
        .next()
        .expect("an address for localhost");

    rt.echo(&target, via(&proxy.url("socks5", None)))
        .expect("echo through socks5://");
    let log = proxy.log();
    assert!(log.contains(&format!("connected to {resolved}")), "{log}");
    assert!(!log.contains("connected to localhost"), "{log}");

    rt.echo(&target, via(&proxy.url("socks5h", None)))
        .expect("echo through socks5h://");
    let log = proxy.log();
    assert!(
        log.contains(&format!("connected to localhost:{port}")),
        "{log}"
    );
    assert_eq!(echo.take_peers(), [VIA_MICROSOCKS, VIA_MICROSOCKS]);
}

/// A target that refuses the proxy's connection: SOCKS5 reply 5, which a
/// later attempt may not meet.
fn socks5_target_down(rt: Rt) {
    let proxy = Proxy::microsocks(None);
    let down = format!("ws://127.0.0.1:{}/", free_port());
    let e = proxy_error(rt.echo(&down, via(&proxy.url("socks5", None))));
    assert_eq!(e, ProxyError::Socks5(Socks5Failure::ConnectionRefused));
    assert!(e.is_retryable());
}

macro_rules! on_each_runtime {
    ($($name:ident),* $(,)?) => {
        mod on_smol {
            $(#[test]
            #[ignore = "needs tinyproxy and microsocks: apt-get install tinyproxy microsocks"]
            fn $name() {
                super::$name(super::Rt::Smol)
            })*
        }
        #[cfg(feature = "tokio")]
        mod on_tokio {
            $(#[test]
            #[ignore = "needs tinyproxy and microsocks: apt-get install tinyproxy microsocks"]
            fn $name() {
                super::$name(super::Rt::Tokio)
            })*
        }
        #[cfg(feature = "mio")]
        mod on_mio {
            $(#[test]
            #[ignore = "needs tinyproxy and microsocks: apt-get install tinyproxy microsocks"]
            fn $name() {
                super::$name(super::Rt::Mio)
            })*
        }
    };
}

on_each_runtime!(
    http_connect,
    http_basic_auth,
    http_forbidden,
    http_target_down,
    socks5,
    socks5_auth,
    socks5_resolution,
    socks5_target_down,
);

/// `wss://` through each kind of proxy: TLS runs inside the tunnel, end
/// to end with the server, so the client trusts the server's certificate
/// alone and the proxy sees only the CONNECT (or SOCKS request); a client
/// trusting another certificate fails on TLS through the same tunnel.
#[cfg(feature = "rustls")]
fn wss_through_proxies(rt: Rt) {
    let echo = Echo::start_tls();
    let pem = echo.cert_pem.clone().expect("a TLS echo");
    let trust = tether::tls::client_config(pem.as_bytes()).expect("client config");
    let http = Proxy::tinyproxy(&[]);
    let through_http = via(&http.url("http", None)).with_tls(trust.clone());
    rt.echo(&echo.url(), through_http)
        .expect("wss through tinyproxy");
    let connect = format!("CONNECT 127.0.0.1:{} HTTP/1.1", echo.addr.port());
    assert!(http.log().contains(&connect), "{}", http.log());
    let socks = Proxy::microsocks(None);
    for scheme in ["socks5", "socks5h"] {
        let options = via(&socks.url(scheme, None)).with_tls(trust.clone());
        rt.echo(&echo.url(), options)
            .unwrap_or_else(|e| panic!("wss through {scheme}: {e:?}"));
    }
    assert_eq!(
        echo.take_peers(),
        [VIA_TINYPROXY, VIA_MICROSOCKS, VIA_MICROSOCKS]
    );

    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let wrong = tether::tls::client_config(other.cert.pem().as_bytes()).expect("client config");
    let e = rt
        .echo(&echo.url(), via(&http.url("http", None)).with_tls(wrong))
        .expect_err("a certificate the client does not trust");
    // rcgen names every self-signed certificate alike, so the trusted one
    // looks like the issuer and its signature is what fails.
    assert_eq!(
        e.tls_error().map(|t| t.kind()),
        Some(tether::tls::TlsErrorKind::InvalidCertificate),
        "{e:?}"
    );
}

/// On smol and tokio here; the mio loop's `wss://` through a proxy is in
/// `mio_tls/proxy.rs`.
#[cfg(feature = "rustls")]
mod wss {
    #[test]
    #[ignore = "needs tinyproxy and microsocks: apt-get install tinyproxy microsocks"]
    fn on_smol() {
        super::wss_through_proxies(super::Rt::Smol)
    }

    #[cfg(feature = "tokio")]
    #[test]
    #[ignore = "needs tinyproxy and microsocks: apt-get install tinyproxy microsocks"]
    fn on_tokio() {
        super::wss_through_proxies(super::Rt::Tokio)
    }
}

/// 1 ms doubling, no jitter; at most 2 retries.
fn reconnect_options() -> ReconnectOptions {
    ReconnectOptions::default()
        .with_backoff(
            BackoffConfig::default()
                .with_initial(Duration::from_millis(1))
                .with_jitter(0.0)
                .with_max_attempts(Some(2)),
        )
        .with_retry(RetryPolicy::default())
}

/// The attempts a reconnector made and how each failed.
fn failures(events: &[ReconnectEvent]) -> Vec<(Failure, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            ReconnectEvent::Failed { failure, retry, .. } => Some((*failure, *retry)),
            _ => None,
        })
        .collect()
}

/// A `Reconnector` through tinyproxy connects; refused credentials are
/// given up on after one attempt; a target that is down behind microsocks
/// is retried until the attempts run out.
async fn reconnector<R: Connector>() {
    let echo = Echo::start();
    let http = Proxy::tinyproxy(&["BasicAuth tether s3cret"]);
    let socks = Proxy::microsocks(None);
    let events = Arc::new(Mutex::new(Vec::new()));
    let connect = |url: &str, proxy: String| {
        let seen = events.clone();
        Reconnector::<R>::new(url, via(&proxy), reconnect_options())
            .on_event(move |e| seen.lock().unwrap().push(e.clone()))
    };

    let good = http.url("http", Some("tether:s3cret"));
    let mut ws = connect(&echo.url(), good).connect().await.expect("connect");
    ws.close(tether::CloseCode::NORMAL, "")
        .await
        .expect("close");
    assert_eq!(echo.take_peers(), [VIA_TINYPROXY]);
    assert_eq!(failures(&events.lock().unwrap()), []);

    let wrong = http.url("http", Some("tether:guess"));
    let Err(err) = connect(&echo.url(), wrong).connect().await else {
        panic!("connected with wrong credentials");
    };
    assert_eq!(
        err.proxy_error().and_then(ProxyError::http_status),
        Some(401)
    );
    let seen = std::mem::take(&mut *events.lock().unwrap());
    assert_eq!(failures(&seen), [(Failure::Handshake, false)]);

    let down = format!("ws://127.0.0.1:{}/", free_port());
    let Err(err) = connect(&down, socks.url("socks5", None)).connect().await else {
        panic!("connected to a target that is down");
    };
    let expected = ProxyError::Socks5(Socks5Failure::ConnectionRefused);
    assert_eq!(err.proxy_error(), Some(&expected));
    let refused = Failure::Connect(std::io::ErrorKind::ConnectionRefused);
    let seen = std::mem::take(&mut *events.lock().unwrap());
    assert_eq!(failures(&seen), [(refused, true); 3]);
    assert!(echo.take_peers().is_empty());
}

#[test]
#[ignore = "needs tinyproxy and microsocks: apt-get install tinyproxy microsocks"]
fn reconnector_on_smol() {
    smol::block_on(reconnector::<tether::smol::Smol>());
}

#[cfg(feature = "tokio")]
#[test]
#[ignore = "needs tinyproxy and microsocks: apt-get install tinyproxy microsocks"]
fn reconnector_on_tokio() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(reconnector::<tether::tokio::Tokio>());
}
