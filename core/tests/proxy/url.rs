//! Proxy URLs: schemes, default ports, hosts, percent-decoded credentials,
//! typed errors, and passwords that are never printed.

use std::net::{Ipv4Addr, Ipv6Addr};

use tether_core::proxy::ProxyUrlError;

use super::*;

fn parse(url: &str) -> Proxy {
    Proxy::parse(url).unwrap_or_else(|e| panic!("{url:?}: {e}"))
}

#[test]
fn schemes_hosts_and_default_ports() {
    let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let cases: [(&str, ProxyKind, Host, u16); 12] = [
        (
            "http://proxy.example.com:3128",
            ProxyKind::Http,
            host("proxy.example.com"),
            3128,
        ),
        (
            "http://proxy.example.com",
            ProxyKind::Http,
            host("proxy.example.com"),
            80,
        ),
        (
            "http://proxy.example.com/",
            ProxyKind::Http,
            host("proxy.example.com"),
            80,
        ),
        (
            "HTTP://Proxy:8080/",
            ProxyKind::Http,
            Host::Domain("Proxy".into()),
            8080,
        ),
        // No scheme: http, as curl reads http_proxy=proxy:3128.
        ("proxy:3128", ProxyKind::Http, host("proxy"), 3128),
        ("  proxy  ", ProxyKind::Http, host("proxy"), 80),
        (
            "socks5://127.0.0.1",
            ProxyKind::Socks5,
            Ipv4Addr::LOCALHOST.into(),
            1080,
        ),
        ("SOCKS5H://tor:9050", ProxyKind::Socks5h, host("tor"), 9050),
        (
            "socks5h://[2001:db8::1]",
            ProxyKind::Socks5h,
            v6.into(),
            1080,
        ),
        (
            "http://[2001:db8::1]:8080",
            ProxyKind::Http,
            v6.into(),
            8080,
        ),
        // An empty port is no port (RFC 3986).
        ("http://proxy:", ProxyKind::Http, host("proxy"), 80),
        (
            "http://my_proxy-1.corp.",
            ProxyKind::Http,
            host("my_proxy-1.corp."),
            80,
        ),
    ];
    for (url, kind, h, port) in cases {
        let p = parse(url);
        assert_eq!((p.kind, &p.host, p.port), (kind, &h, port), "{url}");
        assert_eq!(p.credentials, None, "{url}");
    }
    assert_eq!(ProxyKind::Http.default_port(), 80);
    assert_eq!(ProxyKind::Socks5.default_port(), 1080);
    assert!(!ProxyKind::Socks5h.resolves_locally());
    assert!(!ProxyKind::Http.resolves_locally());
}

#[test]
fn credentials_are_percent_decoded() {
    let cases = [
        ("http://user:pass@proxy", "user", "pass"),
        ("http://user:p%40ss%3Aw%2Frd@proxy:1", "user", "p@ss:w/rd"),
        ("socks5h://us%20er:%25@proxy", "us er", "%"),
        ("http://user@proxy", "user", ""),
        ("http://user:@proxy", "user", ""),
        ("http://:pw@proxy", "", "pw"),
        ("http://%E2%82%AC:%e2%82%ac@proxy", "€", "€"),
        // The last '@' ends the user info (an unencoded '@' in a password).
        ("http://user:p@ss@proxy", "user", "p@ss"),
        ("http://a+b:c+d@proxy", "a+b", "c+d"),
    ];
    for (url, user, pass) in cases {
        let p = parse(url);
        let c = p.credentials.as_ref().unwrap_or_else(|| panic!("{url}"));
        assert_eq!((c.username(), c.password()), (user, pass), "{url}");
        assert_eq!(p.host, host("proxy"), "{url}");
    }
    // Empty user info is none.
    assert_eq!(parse("http://@proxy").credentials, None);
    assert_eq!(parse("http://:@proxy").credentials, None);
}

#[test]
fn bad_urls_are_typed_errors() {
    use ProxyUrlError as E;
    let cases: [(&str, ProxyUrlError); 24] = [
        ("", E::Empty),
        ("   ", E::Empty),
        ("https://proxy", E::HttpsProxy),
        ("HTTPS://proxy:443", E::HttpsProxy),
        ("socks4://proxy", E::UnsupportedScheme("socks4".into())),
        ("socks4a://proxy", E::UnsupportedScheme("socks4a".into())),
        ("ftp://proxy", E::UnsupportedScheme("ftp".into())),
        ("1http://proxy", E::Malformed("scheme")),
        ("://proxy", E::Malformed("scheme")),
        ("http://", E::MissingHost),
        ("http://:8080", E::MissingHost),
        ("http://user:pw@", E::MissingHost),
        ("http://proxy:0", E::InvalidPort("0".into())),
        ("http://proxy:65536", E::InvalidPort("65536".into())),
        ("http://proxy:80a", E::InvalidPort("80a".into())),
        ("http://proxy:+80", E::InvalidPort("+80".into())),
        ("http://proxy:1:2", E::InvalidPort("1:2".into())),
        ("http://[::1", E::InvalidHost("[::1".into())),
        ("http://[zz::1]:80", E::InvalidHost("[zz::1]:80".into())),
        ("http://[::1]x", E::InvalidHost("[::1]x".into())),
        ("http://pro xy", E::InvalidHost("pro xy".into())),
        ("http://proxy/path", E::PathNotAllowed),
        ("http://u:%zz@proxy", E::InvalidPercentEncoding),
        ("http://u:%ff@proxy", E::CredentialsNotUtf8),
    ];
    for (url, error) in cases {
        assert_eq!(Proxy::parse(url), Err(error.clone()), "{url:?}");
        // Every error reads as a sentence and converts for `?`.
        assert!(!error.to_string().is_empty());
        assert_eq!(
            ProxyError::from(error.clone()),
            ProxyError::InvalidUrl(error)
        );
    }
    for url in [
        "http://proxy?x=1",
        "http://proxy#f",
        "http://u:%@proxy",
        "http://u:%4@proxy",
    ] {
        assert!(Proxy::parse(url).is_err(), "{url}");
    }
    assert!(ProxyUrlError::HttpsProxy
        .to_string()
        .contains("not supported"));
    assert!(!ProxyError::InvalidUrl(ProxyUrlError::HttpsProxy).is_retryable());
}

#[test]
fn passwords_are_never_printed() {
    let url = "socks5h://alice:hunter2-%F0%9F%94%91@proxy:1080";
    let p = parse(url);
    assert_eq!(p.credentials.as_ref().unwrap().password(), "hunter2-🔑");
    let debug = format!("{p:?} {:?} {:#?}", p.credentials, p);
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        debug.contains("alice") && debug.contains("<redacted>"),
        "{debug}"
    );
    assert_eq!(p.to_string(), "socks5h://alice:***@proxy:1080");

    // Nor by an exchange holding them, nor by errors of URLs holding them.
    let (s, _) = Socks5::new(
        &host("a"),
        1,
        p.credentials.as_ref(),
        limits(),
        Instant::now(),
    )
    .unwrap();
    assert!(!format!("{s:?}").contains("hunter2"));
    let (hs, _) = ProxyHandshake::new(&p, &host("a"), 1, limits(), Instant::now()).unwrap();
    assert!(!format!("{hs:?}").contains("hunter2"));
    let (c, _) = HttpConnect::new(
        &host("a"),
        1,
        p.credentials.as_ref(),
        limits(),
        Instant::now(),
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    for bad in [
        "http://alice:hunter2@proxy:x",
        "http://alice:hunter2@pro xy",
        "http://alice:hunter2@[::1",
        "alice:hunter2@proxy://x",
        "http://alice:hunter2%zz@proxy",
        "http://alice:hunter2@proxy/p",
    ] {
        let e = Proxy::parse(bad).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("hunter2"), "{bad}: {text}");
    }
}

#[test]
fn display_round_trips_without_a_password() {
    for url in [
        "http://proxy:3128",
        "socks5://[2001:db8::1]:1080",
        "socks5h://user%40corp@10.0.0.1:9050",
        "socks5h://a%20b@h:1",
    ] {
        let p = parse(url);
        assert_eq!(p.to_string(), url);
        assert_eq!(parse(&p.to_string()), p);
    }
    let p = Proxy::new(ProxyKind::Socks5h, "tor", 9050)
        .with_credentials(Some(Credentials::new("u", "")));
    assert_eq!(p.to_string(), "socks5h://u@tor:9050");
}
