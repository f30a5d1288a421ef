//! Choosing a proxy from the environment: the order of the variables,
//! case, empty values, and `no_proxy` matching, table by table.

use std::collections::HashMap;

use tether_core::proxy::{proxy_from_env, NoProxy, ProxyUrlError};

use super::*;

/// The proxy's host chosen for the target with `vars` set (each proxy
/// variable's value is a distinct host, so the host names the variable).
fn chosen(vars: &[(&str, &str)], secure: bool, target: &str, port: u16) -> Option<String> {
    let env: HashMap<&str, &str> = vars.iter().copied().collect();
    proxy_from_env(secure, &host(target), port, |name| {
        env.get(name).map(|v| v.to_string())
    })
    .unwrap_or_else(|e| panic!("{vars:?}: {e}"))
    .map(|p| p.host.to_string())
}

const WSS: bool = true;
const WS: bool = false;

#[test]
fn the_order_of_the_variables() {
    let all = [
        ("wss_proxy", "wss-lower"),
        ("WSS_PROXY", "wss-upper"),
        ("ws_proxy", "ws-lower"),
        ("WS_PROXY", "ws-upper"),
        ("https_proxy", "https-lower"),
        ("HTTPS_PROXY", "https-upper"),
        ("http_proxy", "http-lower"),
        ("HTTP_PROXY", "http-upper"),
        ("all_proxy", "all-lower"),
        ("ALL_PROXY", "all-upper"),
    ];
    // Remove variables one at a time from the front of each scheme's
    // order: the next one in line takes over.
    let wss_order = [
        "wss-lower",
        "wss-upper",
        "https-lower",
        "https-upper",
        "all-lower",
        "all-upper",
    ];
    let ws_order = [
        "ws-lower",
        "ws-upper",
        "http-lower",
        "all-lower",
        "all-upper",
    ];
    for (secure, order) in [(WSS, &wss_order[..]), (WS, &ws_order[..])] {
        for (i, expected) in order.iter().enumerate() {
            let vars: Vec<(&str, &str)> = all
                .iter()
                .copied()
                .filter(|(_, v)| !order[..i].contains(v))
                .collect();
            assert_eq!(
                chosen(&vars, secure, "example.com", 443).as_deref(),
                Some(*expected),
                "secure {secure}, without {:?}",
                &order[..i]
            );
        }
    }
}

#[test]
fn table() {
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        bool,
        &'a str,
        u16,
        Option<&'a str>,
    );
    let cases: &[Case] = &[
        // Nothing set: direct.
        (&[], WSS, "example.com", 443, None),
        (&[], WS, "example.com", 80, None),
        // Scheme mapping: wss uses https_proxy, ws uses http_proxy.
        (
            &[("https_proxy", "p1")],
            WSS,
            "example.com",
            443,
            Some("p1"),
        ),
        (&[("https_proxy", "p1")], WS, "example.com", 80, None),
        (&[("http_proxy", "p1")], WS, "example.com", 80, Some("p1")),
        (&[("http_proxy", "p1")], WSS, "example.com", 443, None),
        // Uppercase HTTP_PROXY is ignored (httpoxy); HTTPS_PROXY is not.
        (&[("HTTP_PROXY", "p1")], WS, "example.com", 80, None),
        (
            &[("HTTP_PROXY", "p1"), ("ALL_PROXY", "p2")],
            WS,
            "e.com",
            80,
            Some("p2"),
        ),
        (
            &[("HTTPS_PROXY", "p1")],
            WSS,
            "example.com",
            443,
            Some("p1"),
        ),
        // Lowercase before uppercase, empty (or blank) is unset.
        (
            &[("https_proxy", "lo"), ("HTTPS_PROXY", "up")],
            WSS,
            "e.com",
            443,
            Some("lo"),
        ),
        (
            &[("https_proxy", ""), ("HTTPS_PROXY", "up")],
            WSS,
            "e.com",
            443,
            Some("up"),
        ),
        (
            &[("https_proxy", "  "), ("HTTPS_PROXY", "up")],
            WSS,
            "e.com",
            443,
            Some("up"),
        ),
        (
            &[("https_proxy", ""), ("all_proxy", "all")],
            WSS,
            "e.com",
            443,
            Some("all"),
        ),
        (&[("ws_proxy", "")], WS, "e.com", 80, None),
        // The scheme's own variables come before the HTTP ones, uppercase
        // included.
        (
            &[("WSS_PROXY", "w"), ("https_proxy", "h")],
            WSS,
            "e.com",
            443,
            Some("w"),
        ),
        (
            &[("WS_PROXY", "w"), ("http_proxy", "h")],
            WS,
            "e.com",
            80,
            Some("w"),
        ),
        (&[("wss_proxy", "w")], WS, "e.com", 80, None),
        (&[("ws_proxy", "w")], WSS, "e.com", 443, None),
        // all_proxy for both.
        (&[("all_proxy", "a")], WS, "e.com", 80, Some("a")),
        (&[("ALL_PROXY", "a")], WSS, "e.com", 443, Some("a")),
        // no_proxy first.
        (
            &[("wss_proxy", "w"), ("no_proxy", "e.com")],
            WSS,
            "e.com",
            443,
            None,
        ),
        (
            &[("wss_proxy", "w"), ("no_proxy", "e.com")],
            WSS,
            "x.com",
            443,
            Some("w"),
        ),
        (
            &[("all_proxy", "a"), ("NO_PROXY", "*")],
            WS,
            "e.com",
            80,
            None,
        ),
        // no_proxy lowercase wins; an empty one falls through to NO_PROXY.
        (
            &[("all_proxy", "a"), ("no_proxy", "x.com"), ("NO_PROXY", "*")],
            WS,
            "e.com",
            80,
            Some("a"),
        ),
        (
            &[("all_proxy", "a"), ("no_proxy", ""), ("NO_PROXY", "*")],
            WS,
            "e.com",
            80,
            None,
        ),
        // A port-specific entry.
        (
            &[("all_proxy", "a"), ("no_proxy", "e.com:8080")],
            WS,
            "e.com",
            8080,
            None,
        ),
        (
            &[("all_proxy", "a"), ("no_proxy", "e.com:8080")],
            WS,
            "e.com",
            80,
            Some("a"),
        ),
        // Addresses and ranges.
        (
            &[("all_proxy", "a"), ("no_proxy", "10.0.0.0/8,::1")],
            WS,
            "10.9.8.7",
            80,
            None,
        ),
        (
            &[("all_proxy", "a"), ("no_proxy", "10.0.0.0/8,::1")],
            WS,
            "[::1]",
            80,
            None,
        ),
        (
            &[("all_proxy", "a"), ("no_proxy", "10.0.0.0/8,::1")],
            WS,
            "11.0.0.1",
            80,
            Some("a"),
        ),
    ];
    for (i, (vars, secure, target, port, expected)) in cases.iter().enumerate() {
        assert_eq!(
            chosen(vars, *secure, target, *port).as_deref(),
            *expected,
            "case {i}: {vars:?} secure {secure} {target}:{port}"
        );
    }
}

#[test]
fn the_chosen_proxy_is_parsed_in_full() {
    let env = |name: &str| {
        (name == "wss_proxy").then(|| "socks5h://u:p%21@[2001:db8::5]:9050".to_owned())
    };
    let p = proxy_from_env(true, &host("example.com"), 443, env)
        .unwrap()
        .unwrap();
    assert_eq!(p.kind, ProxyKind::Socks5h);
    assert_eq!(p.port, 9050);
    assert_eq!(p.credentials.unwrap().password(), "p!");
}

#[test]
fn a_bad_value_is_an_error_naming_the_variable() {
    let env = |name: &str| (name == "HTTPS_PROXY").then(|| "https://u:secret@p".to_owned());
    let err = proxy_from_env(true, &host("e.com"), 443, env).unwrap_err();
    assert_eq!(
        err,
        ProxyError::InvalidEnv {
            var: "HTTPS_PROXY",
            error: ProxyUrlError::HttpsProxy
        }
    );
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("HTTPS_PROXY") && !text.contains("secret"),
        "{text}"
    );
    assert!(std::error::Error::source(&err).is_some());
    // ... but not when no_proxy says the variable is not needed.
    let env = |name: &str| match name {
        "HTTPS_PROXY" => Some("https://p".to_owned()),
        "no_proxy" => Some("*".to_owned()),
        _ => None,
    };
    assert_eq!(proxy_from_env(true, &host("e.com"), 443, env), Ok(None));
}

#[test]
fn no_proxy_matching() {
    // (list, target, port, matches)
    let cases: &[(&str, &str, u16, bool)] = &[
        ("*", "anything.example", 1, true),
        ("*", "192.0.2.1", 1, true),
        ("a.com, *", "b.com", 1, true),
        ("", "example.com", 1, false),
        (" , ,", "example.com", 1, false),
        // A name: itself and everything under it, any case, trailing dot.
        ("example.com", "example.com", 443, true),
        ("example.com", "a.b.example.com", 443, true),
        ("example.com", "EXAMPLE.COM", 443, true),
        ("EXAMPLE.com", "example.com.", 443, true),
        ("example.com.", "www.example.com", 443, true),
        ("example.com", "notexample.com", 443, false),
        ("example.com", "example.com.evil.net", 443, false),
        ("example.com", "com", 443, false),
        // A leading dot or "*." is the same (curl's reading).
        (".example.com", "example.com", 443, true),
        (".example.com", "www.example.com", 443, true),
        ("*.example.com", "www.example.com", 443, true),
        ("*.example.com", "example.com", 443, true),
        (".example.com", "wwwexample.com", 443, false),
        // Separators: commas and white space.
        ("a.com,b.com\tc.com  d.com", "c.com", 1, true),
        ("a.com,b.com\tc.com  d.com", "e.com", 1, false),
        // Ports.
        ("example.com:8080", "example.com", 8080, true),
        ("example.com:8080", "example.com", 80, false),
        ("192.0.2.1:80", "192.0.2.1", 80, true),
        ("192.0.2.1:80", "192.0.2.1", 81, false),
        ("[::1]:8080", "::1", 8080, true),
        ("[::1]:8080", "::1", 8081, false),
        // Addresses.
        ("192.0.2.1", "192.0.2.1", 1, true),
        ("192.0.2.1", "192.0.2.2", 1, false),
        ("::1", "[::1]", 1, true),
        ("[::1]", "::1", 1, true),
        ("0:0::1", "::1", 1, true),
        ("192.0.2.1", "::ffff:192.0.2.1", 1, true),
        ("::ffff:192.0.2.1", "192.0.2.1", 1, true),
        // Ranges.
        ("10.0.0.0/8", "10.255.0.1", 1, true),
        ("10.0.0.0/8", "11.0.0.1", 1, false),
        ("10.1.2.3/8", "10.200.0.0", 1, true),
        ("192.168.1.0/24", "192.168.1.255", 1, true),
        ("192.168.1.0/24", "192.168.2.0", 1, false),
        ("192.0.2.7/32", "192.0.2.7", 1, true),
        ("192.0.2.7/32", "192.0.2.8", 1, false),
        ("0.0.0.0/0", "203.0.113.9", 1, true),
        ("0.0.0.0/0", "::1", 1, false),
        ("fe80::/10", "fe80::1", 1, true),
        ("fe80::/10", "febf::1", 1, true),
        ("fe80::/10", "fec0::1", 1, false),
        ("[2001:db8::]/32", "2001:db8:ffff::1", 1, true),
        ("::/0", "2001:db8::1", 1, true),
        ("::ffff:10.0.0.0/104", "10.9.9.9", 1, true),
        ("::ffff:10.0.0.0/104", "11.9.9.9", 1, false),
        ("10.0.0.0/8", "::ffff:10.1.1.1", 1, true),
        // Names are not resolved, and bad entries are ignored.
        ("localhost", "127.0.0.1", 1, false),
        ("127.0.0.0/8", "localhost", 1, false),
        ("10.0.0.0/33,a.com", "10.0.0.1", 1, false),
        ("10.0.0.0/33,a.com", "a.com", 1, true),
        ("a.com:http", "a.com", 80, false),
        ("[zz]", "zz", 1, false),
        ("10.0.0.0/x", "10.0.0.0", 1, false),
    ];
    for (list, target, port, expected) in cases {
        assert_eq!(
            NoProxy::parse(list).matches(&host(target), *port),
            *expected,
            "no_proxy={list:?} target {target}:{port}"
        );
    }
    assert!(NoProxy::parse(" , ").is_empty());
    assert!(!NoProxy::parse("*").is_empty());
    assert!(NoProxy::parse("[zz], 10.0.0.0/99").is_empty());
}
