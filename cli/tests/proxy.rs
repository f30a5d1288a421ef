//! `connect --proxy` and the proxy environment variables through real
//! proxies (tinyproxy for HTTP CONNECT, microsocks for SOCKS5), started
//! by adapters/tests/proxies/mod.rs. The echo server there records where
//! each connection came from, which tells whether a proxy was used and
//! which. `#[ignore]`d (they need the packages); `.ci/run` installs them
//! and runs these with `--include-ignored`; without them they fail.

// The shared module asks for the adapters' features, which this crate
// does not have: its smol client and plain echo server are what remain.
#![allow(unexpected_cfgs)]

mod common;

#[path = "../../adapters/tests/proxies/mod.rs"]
mod proxies;

use common::{run, run_cmd, tether};
use proxies::{Echo, Proxy, DIRECT, VIA_MICROSOCKS, VIA_TINYPROXY};

#[test]
#[ignore = "needs tinyproxy and microsocks: apt-get install tinyproxy microsocks"]
fn proxy_flag_http_connect_and_socks5() {
    let echo = Echo::start();
    let tiny = Proxy::tinyproxy(&[]);
    let r = run(
        &[
            "connect",
            &echo.url(),
            "--proxy",
            &tiny.url("http", None),
            "-n",
            "1",
        ],
        b"via http\n",
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "via http\n"), "{r:?}");
    assert_eq!(echo.take_peers(), [VIA_TINYPROXY]);

    let micro = Proxy::microsocks(Some(("user", "secret")));
    let r = run(
        &[
            "connect",
            &echo.url(),
            "--proxy",
            &micro.url("socks5", Some("user:secret")),
            "-n",
            "1",
        ],
        b"via socks\n",
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "via socks\n"), "{r:?}");
    assert_eq!(echo.take_peers(), [VIA_MICROSOCKS]);

    // Wrong credentials: the connection fails (3), with the proxy's reason.
    let r = run(
        &[
            "connect",
            &echo.url(),
            "--proxy",
            &micro.url("socks5", Some("user:wrong")),
        ],
        b"",
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("proxy"), "{r:?}");
}

#[test]
#[ignore = "needs tinyproxy and microsocks: apt-get install tinyproxy microsocks"]
fn proxy_environment_and_no_proxy() {
    let echo = Echo::start();
    let tiny = Proxy::tinyproxy(&[]);
    let r = run_cmd(
        tether().env("http_proxy", tiny.url("http", None)).args([
            "connect",
            &echo.url(),
            "-n",
            "1",
        ]),
        b"env\n",
        None,
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "env\n"), "{r:?}");
    assert_eq!(echo.take_peers(), [VIA_TINYPROXY]);
    let r = run_cmd(
        tether().env("http_proxy", tiny.url("http", None)).args([
            "connect",
            &echo.url(),
            "--no-proxy",
            "-n",
            "1",
        ]),
        b"direct\n",
        None,
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "direct\n"), "{r:?}");
    assert_eq!(echo.take_peers(), [DIRECT]);
    // A proxy that is down: status 3.
    let mut down = Proxy::tinyproxy(&[]);
    down.stop();
    let r = run(
        &["connect", &echo.url(), "--proxy", &down.url("http", None)],
        b"",
    );
    assert_eq!(r.code, 3, "{r:?}");
}
