//! `ProxyConfig::FromEnv` (the default) against the process's real
//! environment, on smol, tokio and the mio loop, through real tinyproxy
//! and microsocks: `ws_proxy`, `http_proxy` (not `HTTP_PROXY`),
//! `all_proxy`, their order, `no_proxy`/`NO_PROXY`, a bad value; and
//! `Direct` and `Explicit`, which ignore it. The echo server sees which
//! way each connection came (see `proxies/mod.rs`).
//!
//! The environment is the process's, so this binary holds one test: no
//! other test can read it while it changes, and it changes only between
//! connections. Needs tinyproxy and microsocks, like `proxy.rs`.

#![cfg(feature = "smol")]

mod proxies;

use std::net::IpAddr;

use proxies::{options, Echo, Proxy, DIRECT, RUNTIMES, VIA_MICROSOCKS, VIA_TINYPROXY};
use tether::proxy::{ProxyConfig, ProxyError};

const VARS: &[&str] = &[
    "ws_proxy",
    "WS_PROXY",
    "wss_proxy",
    "WSS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// What is set, the variables, and where the connection must come from.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], IpAddr);

/// Exactly these proxy variables set.
fn set_env(vars: &[(&str, &str)]) {
    for var in VARS {
        std::env::remove_var(var);
    }
    for (var, value) in vars {
        std::env::set_var(var, value);
    }
}

#[test]
#[ignore = "needs tinyproxy and microsocks: apt-get install tinyproxy microsocks"]
fn environment_chooses_the_proxy() {
    let echo = Echo::start();
    let http = Proxy::tinyproxy(&[]);
    let socks = Proxy::microsocks(None);
    let tiny = http.url("http", None);
    let micro = socks.url("socks5h", None);
    let bare = format!("127.0.0.1:{}", http.port); // no scheme: http://
    let cases: &[Case] = &[
        ("nothing set", &[], DIRECT),
        ("ws_proxy", &[("ws_proxy", &tiny)], VIA_TINYPROXY),
        ("WS_PROXY", &[("WS_PROXY", &micro)], VIA_MICROSOCKS),
        ("http_proxy", &[("http_proxy", &bare)], VIA_TINYPROXY),
        ("HTTP_PROXY is ignored", &[("HTTP_PROXY", &tiny)], DIRECT),
        ("https_proxy is for wss", &[("https_proxy", &tiny)], DIRECT),
        ("all_proxy", &[("all_proxy", &micro)], VIA_MICROSOCKS),
        (
            "ws_proxy before all_proxy",
            &[("all_proxy", &micro), ("ws_proxy", &tiny)],
            VIA_TINYPROXY,
        ),
        (
            "no_proxy",
            &[("ws_proxy", &tiny), ("no_proxy", "localhost,127.0.0.1")],
            DIRECT,
        ),
        (
            "NO_PROXY range",
            &[("all_proxy", &micro), ("NO_PROXY", "127.0.0.0/8")],
            DIRECT,
        ),
        (
            "no_proxy for another host",
            &[("ws_proxy", &tiny), ("no_proxy", "example.com")],
            VIA_TINYPROXY,
        ),
    ];
    for &rt in RUNTIMES {
        for (what, vars, via) in cases {
            set_env(vars);
            rt.echo(&echo.url(), options())
                .unwrap_or_else(|e| panic!("{rt:?}, {what}: {e}"));
            assert_eq!(echo.take_peers(), [*via], "{rt:?}, {what}");
        }

        set_env(&[("ws_proxy", &tiny), ("all_proxy", &micro)]);
        let direct = options().with_proxy(ProxyConfig::Direct);
        rt.echo(&echo.url(), direct).expect("Direct");
        assert_eq!(echo.take_peers(), [DIRECT], "{rt:?}: Direct");

        set_env(&[("ws_proxy", &tiny), ("no_proxy", "*")]);
        let explicit = ProxyConfig::Explicit(micro.parse().unwrap());
        rt.echo(&echo.url(), options().with_proxy(explicit))
            .expect("Explicit");
        assert_eq!(echo.take_peers(), [VIA_MICROSOCKS], "{rt:?}: Explicit");

        // A bad value is an error that names the variable, not a silent
        // direct connection.
        set_env(&[("ws_proxy", "ftp://proxy.example")]);
        let err = rt.echo(&echo.url(), options()).expect_err("bad ws_proxy");
        match err.proxy_error() {
            Some(e @ ProxyError::InvalidEnv { var, .. }) => {
                assert_eq!(*var, "ws_proxy");
                assert!(!e.is_retryable());
            }
            _ => panic!("{rt:?}: expected InvalidEnv: {err:?}"),
        }
        assert!(echo.take_peers().is_empty());
    }
    set_env(&[]);
    assert!(http.log().contains("CONNECT 127.0.0.1"), "{}", http.log());
}
