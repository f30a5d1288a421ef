//! HTTP CONNECT: the request byte for byte, and every kind of response
//! cut at every byte.

use super::*;

fn connect(target: &str, port: u16, creds: Option<&Credentials>) -> (HttpConnect, String) {
    let (hs, req) = HttpConnect::new(&host(target), port, creds, limits(), Instant::now())
        .expect("a valid target");
    (hs, String::from_utf8(req).expect("ASCII request"))
}

fn fresh() -> HttpConnect {
    connect("example.com", 443, None).0
}

fn with_limits(l: HandshakeLimits) -> HttpConnect {
    HttpConnect::new(&host("example.com"), 443, None, l, Instant::now())
        .unwrap()
        .0
}

// ---- the request ----

#[test]
fn request_without_credentials_is_byte_exact() {
    let (_, req) = connect("example.com", 443, None);
    assert_eq!(
        req,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    );
}

#[test]
fn request_with_credentials_carries_basic_auth() {
    // RFC 7617 section 2's example.
    let creds = Credentials::new("Aladdin", "open sesame");
    let (_, req) = connect("example.com", 8080, Some(&creds));
    assert_eq!(
        req,
        "CONNECT example.com:8080 HTTP/1.1\r\nHost: example.com:8080\r\n\
         Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
    );
    // UTF-8 credentials are sent as UTF-8 (RFC 7617 section 2.1), and an
    // empty password is allowed.
    let (_, req) = connect("h", 1, Some(&Credentials::new("tëst", "")));
    assert!(
        req.contains("Proxy-Authorization: Basic dMOrc3Q6\r\n"),
        "{req}"
    );
}

#[test]
fn address_targets_are_written_as_authorities() {
    let (_, req) = connect("192.0.2.1", 80, None);
    assert_eq!(
        req,
        "CONNECT 192.0.2.1:80 HTTP/1.1\r\nHost: 192.0.2.1:80\r\n\r\n"
    );
    for v6 in ["2001:db8::1", "[2001:db8::1]"] {
        let (_, req) = connect(v6, 443, None);
        assert_eq!(
            req,
            "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"
        );
    }
}

#[test]
fn header_injection_and_bad_targets_are_refused_before_writing() {
    let long = "a".repeat(256);
    for bad in [
        "example.com\r\nX-Injected: 1",
        "example.com\nX: 1",
        "example.com\r",
        "exa mple.com",
        "example.com:443",
        "example.com/path",
        "user@example.com",
        "example.com\0",
        "ex\tample.com",
        "exämple.com",
        "",
        long.as_str(),
    ] {
        let r = HttpConnect::new(&host(bad), 443, None, limits(), Instant::now());
        match r {
            Err(ProxyError::InvalidTarget(_)) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // Even a name built by hand, bypassing Host::from.
    let r = HttpConnect::new(
        &Host::Domain("a b".into()),
        443,
        None,
        limits(),
        Instant::now(),
    );
    assert!(matches!(r, Err(ProxyError::InvalidTarget(_))));
    let r = HttpConnect::new(&host("example.com"), 0, None, limits(), Instant::now());
    assert!(matches!(r, Err(ProxyError::InvalidTarget(_))));
    let r = HttpConnect::new(
        &host("example.com"),
        443,
        Some(&Credentials::new("a:b", "c")),
        limits(),
        Instant::now(),
    );
    assert!(matches!(r, Err(ProxyError::InvalidCredentials(_))));
}

// ---- 2xx ----

#[test]
fn a_200_opens_the_tunnel_at_every_cut() {
    let t = done(every_split(
        fresh,
        b"HTTP/1.1 200 Connection established\r\n\r\n",
    ));
    assert!(t.leftover.is_empty());
    assert_eq!(t.bound, None);
}

#[test]
fn bytes_after_the_head_are_the_tunnels() {
    let mut resp = b"HTTP/1.1 200 OK\r\nProxy-Agent: test\r\n\r\n".to_vec();
    let tunnel_bytes = b"\x16\x03\x01\x02\x00HTTP/1.1 101 not parsed\r\n\r\n";
    resp.extend_from_slice(tunnel_bytes);
    let t = done(every_split(fresh, &resp));
    assert_eq!(t.leftover, tunnel_bytes);
}

#[test]
fn any_2xx_opens_and_content_length_is_ignored() {
    for (resp, leftover) in [
        (&b"HTTP/1.1 204 No Content\r\n\r\n"[..], &b""[..]),
        (b"HTTP/1.0 200 OK\r\n\r\n", b""),
        (b"HTTP/1.1 299 Whatever\n\nxy", b"xy"),
        // RFC 9110 9.3.6: a client ignores Content-Length and
        // Transfer-Encoding in a 2xx to CONNECT.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"hello",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
            b"0\r\n",
        ),
    ] {
        assert_eq!(done(every_split(fresh, resp)).leftover, leftover);
    }
}

#[test]
fn interim_responses_are_skipped() {
    let resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\nHTTP/1.1 200 OK\r\n\r\ntail";
    assert_eq!(done(every_split(fresh, resp)).leftover, b"tail");
    // 101 is no interim answer to CONNECT.
    let resp = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
    assert!(matches!(
        every_split(fresh, resp),
        Err(ProxyError::Refused { status: 101, .. })
    ));
}

#[test]
fn an_incomplete_head_waits() {
    let resp = b"HTTP/1.1 200 Connection established\r\nX: y\r\n";
    for cut in 0..resp.len() {
        let mut hs = fresh();
        assert_eq!(hs.handle_read(&resp[..cut]), Ok(None), "{cut}");
        assert_eq!(hs.buffered(), cut);
    }
}

// ---- refusals ----

#[test]
fn a_407_carries_the_challenge() {
    let resp = b"HTTP/1.1 407 Proxy Authentication Required\r\n\
        Proxy-Authenticate: Basic realm=\"corp\"\r\n\
        proxy-authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n";
    let err = every_split(fresh, resp).unwrap_err();
    assert_eq!(
        err,
        ProxyError::AuthenticationRequired {
            challenge: Some("Basic realm=\"corp\", Negotiate".into()),
            credentials_sent: false,
        }
    );
    assert!(!err.is_retryable());
    assert_eq!(err.http_status(), Some(407));
    assert!(err.to_string().contains("requires authentication"), "{err}");
    assert!(err.to_string().contains("realm=\"corp\""), "{err}");

    // With credentials: they were refused.
    let creds = Credentials::new("u", "wrong");
    let (mut hs, _) = connect("example.com", 443, Some(&creds));
    let err = hs.handle_read(b"HTTP/1.1 407 No\r\n\r\n").unwrap_err();
    assert_eq!(
        err,
        ProxyError::AuthenticationRequired {
            challenge: None,
            credentials_sent: true,
        }
    );
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert!(!err.to_string().contains("wrong"));
}

#[test]
fn a_long_challenge_is_cut() {
    let realm = "é".repeat(1000);
    let resp = format!("HTTP/1.1 407 X\r\nProxy-Authenticate: Basic realm=\"{realm}\"\r\n\r\n");
    let err = fresh().handle_read(resp.as_bytes()).unwrap_err();
    let ProxyError::AuthenticationRequired {
        challenge: Some(c), ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert!(c.len() <= tether_core::proxy::MAX_CHALLENGE_LEN + '…'.len_utf8());
    assert!(c.starts_with("Basic realm=\"éé") && c.ends_with('…'), "{c}");
}

#[test]
fn a_403_is_forbidden_and_final() {
    let err = every_split(fresh, b"HTTP/1.1 403 Forbidden\r\n\r\n").unwrap_err();
    assert_eq!(err, ProxyError::Forbidden);
    assert!(!err.is_retryable());
    assert_eq!(err.http_status(), Some(403));
}

#[test]
fn other_statuses_are_refusals_retryable_when_transient() {
    for (status, reason, retryable) in [
        (502, "Bad Gateway", true),
        (503, "Service Unavailable", true),
        (504, "Gateway Timeout", true),
        (500, "", true),
        (408, "Request Timeout", true),
        (429, "Too Many Requests", true),
        (400, "Bad Request", false),
        (404, "Not Found", false),
        (405, "Method Not Allowed", false),
        (301, "Moved Permanently", false),
        (101, "Switching Protocols", false),
    ] {
        let resp = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 3\r\n\r\nabc");
        let err = every_split(fresh, resp.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            ProxyError::Refused {
                status,
                reason: reason.into()
            }
        );
        assert_eq!(err.is_retryable(), retryable, "{status}");
        assert_eq!(err.http_status(), Some(status));
        assert!(err.to_string().contains(&status.to_string()));
    }
}

#[test]
fn a_long_reason_is_cut() {
    let resp = format!("HTTP/1.1 502 {}\r\n\r\n", "x".repeat(500));
    let Err(ProxyError::Refused { reason, .. }) = fresh().handle_read(resp.as_bytes()) else {
        panic!()
    };
    assert!(reason.len() <= 128 + 3 && reason.ends_with('…'));
}

// ---- malformed, oversized, late ----

#[test]
fn garbage_is_malformed_at_once() {
    // A SOCKS5 method reply: an HTTP client pointed at a SOCKS proxy.
    assert!(matches!(
        fresh().handle_read(&[5, 0]),
        Err(ProxyError::Malformed(_))
    ));
    for resp in [
        &b"HTTP/1.1 abc OK\r\n\r\n"[..],
        b"HTTP/2 200\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
    ] {
        assert!(
            matches!(every_split(fresh, resp), Err(ProxyError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(resp)
        );
    }
}

#[test]
fn a_head_over_the_limit_fails_and_buffering_stays_bounded() {
    let l = limits().with_max_head_size(64);
    let mut resp = b"HTTP/1.1 200 OK\r\n".to_vec();
    resp.extend_from_slice(format!("X: {}\r\n\r\n", "y".repeat(100)).as_bytes());
    assert_eq!(
        every_split(|| with_limits(l.clone()), &resp),
        Err(ProxyError::HeadTooLarge)
    );
    // Byte by byte, at most one byte past the limit is ever held.
    let mut hs = with_limits(l.clone());
    for b in &resp {
        if hs.handle_read(std::slice::from_ref(b)).is_err() {
            break;
        }
        assert!(hs.buffered() <= 65);
    }
    // A head exactly at the limit passes.
    let exact = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "y".repeat(64 - 24));
    assert_eq!(exact.len(), 64);
    assert!(
        done(every_split(|| with_limits(l.clone()), exact.as_bytes()))
            .leftover
            .is_empty()
    );
}

#[test]
fn a_large_read_after_a_small_head_is_all_leftover() {
    // The limit bounds the head, not what the tunnel brings with it.
    let l = limits().with_max_head_size(64);
    let mut resp = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    resp.extend_from_slice(&vec![7u8; 1 << 20]);
    let mut hs = with_limits(l);
    let t = done(hs.handle_read(&resp));
    assert_eq!(t.leftover.len(), 1 << 20);
    assert_eq!(hs.buffered(), 0);
}

#[test]
fn too_many_header_fields_fail() {
    let l = limits().with_max_headers(3);
    let resp = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert_eq!(
        every_split(|| with_limits(l.clone()), resp),
        Err(ProxyError::TooManyHeaders)
    );
    let resp = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert!(done(every_split(|| with_limits(l.clone()), resp))
        .leftover
        .is_empty());
}

#[test]
fn the_deadline_applies_until_the_tunnel_opens() {
    let now = Instant::now();
    let l = limits().with_timeout(Duration::from_secs(5));
    let (mut hs, _) = HttpConnect::new(&host("a"), 1, None, l, now).unwrap();
    assert_eq!(hs.poll_timeout(), now + Duration::from_secs(5));
    assert_eq!(hs.handle_timeout(now + Duration::from_millis(4999)), Ok(()));
    assert_eq!(
        hs.handle_timeout(now + Duration::from_secs(5)),
        Err(ProxyError::TimedOut)
    );
    assert!(ProxyError::TimedOut.is_retryable());
    done(hs.handle_read(b"HTTP/1.1 200 OK\r\n\r\n"));
    assert_eq!(hs.handle_timeout(now + Duration::from_secs(60)), Ok(()));
    // A timeout the clock cannot add does not panic.
    let l = limits().with_timeout(Duration::MAX);
    let (hs, _) = HttpConnect::new(&host("a"), 1, None, l, now).unwrap();
    assert!(hs.poll_timeout() > now);
}

#[test]
fn reads_after_the_end_fail() {
    let mut hs = fresh();
    done(hs.handle_read(b"HTTP/1.1 200 OK\r\n\r\n"));
    assert_eq!(hs.handle_read(b"more"), Err(ProxyError::Finished));
    let mut hs = fresh();
    let err = hs.handle_read(b"HTTP/1.1 403 No\r\n\r\n").unwrap_err();
    assert_eq!(hs.handle_read(b"HTTP/1.1 200 OK\r\n\r\n"), Err(err));
}
