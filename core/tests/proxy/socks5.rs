//! SOCKS5 (RFC 1928, RFC 1929): every request byte for byte, every reply
//! cut at every byte, every reply code and address type, and lengths
//! that lie.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tether_core::proxy::MAX_SOCKS5_REPLY_LEN;

use super::*;

const NO_AUTH: [u8; 2] = [5, 0];
const USER_PASS: [u8; 2] = [5, 2];
const AUTH_OK: [u8; 2] = [1, 0];
/// A success reply bound to 10.0.0.1:8080.
const OK_V4: [u8; 10] = [5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90];

fn start(target: &Host, port: u16, creds: Option<&Credentials>) -> (Socks5, Vec<u8>) {
    Socks5::new(target, port, creds, limits(), Instant::now()).expect("a valid target")
}

fn creds() -> Credentials {
    Credentials::new("alice", "s3cret")
}

/// An exchange with `creds` (or none) for example.com:443, fed `earlier`
/// replies whole: the state in which the next reply is read.
fn after(with_creds: bool, earlier: &[&[u8]]) -> Socks5 {
    let c = creds();
    let (mut s, _) = start(&host("example.com"), 443, with_creds.then_some(&c));
    for reply in earlier {
        write(s.handle_read(reply));
    }
    s
}

/// The CONNECT request for example.com:443.
fn connect_request() -> Vec<u8> {
    let mut r = vec![5, 1, 0, 3, 11];
    r.extend_from_slice(b"example.com");
    r.extend_from_slice(&443u16.to_be_bytes());
    r
}

// ---- what is written ----

#[test]
fn greetings_offer_no_auth_and_user_pass_with_credentials() {
    assert_eq!(start(&host("a"), 1, None).1, [5, 1, 0]);
    assert_eq!(start(&host("a"), 1, Some(&creds())).1, [5, 2, 0, 2]);
}

#[test]
fn connect_requests_are_byte_exact_for_each_address_type() {
    let cases: [(Host, Vec<u8>); 4] = [
        (host("example.com"), connect_request()),
        (
            Host::Ip(Ipv4Addr::new(192, 0, 2, 1).into()),
            vec![5, 1, 0, 1, 192, 0, 2, 1, 0x01, 0xbb],
        ),
        (
            Host::Ip("2001:db8::1".parse().unwrap()),
            [
                &[5u8, 1, 0, 4][..],
                &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
                &[0x01, 0xbb],
            ]
            .concat(),
        ),
        // A string that is an address is sent as one.
        (
            host("[::1]"),
            [&[5u8, 1, 0, 4][..], &[0; 15], &[1, 0x01, 0xbb]].concat(),
        ),
    ];
    for (target, request) in cases {
        let (mut s, _) = start(&target, 443, None);
        assert_eq!(write(s.handle_read(&NO_AUTH)), request, "{target:?}");
    }
}

#[test]
fn the_user_pass_request_is_byte_exact() {
    let mut s = after(true, &[]);
    assert_eq!(
        write(s.handle_read(&USER_PASS)),
        b"\x01\x05alice\x06s3cret".to_vec()
    );
    assert_eq!(write(s.handle_read(&AUTH_OK)), connect_request());
}

#[test]
fn names_and_credentials_are_held_to_their_lengths() {
    let name = "a".repeat(255);
    let (mut s, _) = start(&host(&name), 80, None);
    let req = write(s.handle_read(&NO_AUTH));
    assert_eq!(req[4], 255);
    assert_eq!(req.len(), 5 + 255 + 2);
    let long = "a".repeat(256);
    for bad in [long.as_str(), "", "a b", "a\r\nb", "a:1", "a/b"] {
        assert!(
            matches!(
                Socks5::new(&host(bad), 80, None, limits(), Instant::now()),
                Err(ProxyError::InvalidTarget(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        Socks5::new(&host("a"), 0, None, limits(), Instant::now()),
        Err(ProxyError::InvalidTarget(_))
    ));
    let max = "x".repeat(255);
    let over = "x".repeat(256);
    for (user, pass, ok) in [
        ("u", "p", true),
        (max.as_str(), max.as_str(), true),
        ("", "p", false),
        ("u", "", false),
        (over.as_str(), "p", false),
        ("u", over.as_str(), false),
    ] {
        let r = Socks5::new(
            &host("a"),
            1,
            Some(&Credentials::new(user, pass)),
            limits(),
            Instant::now(),
        );
        match (r, ok) {
            (Ok(_), true) | (Err(ProxyError::InvalidCredentials(_)), false) => {}
            (r, _) => panic!("{} {}: {r:?}", user.len(), pass.len()),
        }
    }
}

// ---- conversations ----

#[test]
fn a_conversation_without_auth_at_every_cut() {
    assert_eq!(
        write(every_split(|| after(false, &[]), &NO_AUTH)),
        connect_request()
    );
    let t = done(every_split(|| after(false, &[&NO_AUTH]), &OK_V4));
    assert!(t.leftover.is_empty());
    assert_eq!(
        t.bound,
        Some((Host::Ip(Ipv4Addr::new(10, 0, 0, 1).into()), 8080))
    );
}

#[test]
fn a_conversation_with_auth_at_every_cut() {
    assert_eq!(
        write(every_split(|| after(true, &[]), &USER_PASS)),
        b"\x01\x05alice\x06s3cret".to_vec()
    );
    assert_eq!(
        write(every_split(|| after(true, &[&USER_PASS]), &AUTH_OK)),
        connect_request()
    );
    let t = done(every_split(|| after(true, &[&USER_PASS, &AUTH_OK]), &OK_V4));
    assert!(t.leftover.is_empty());
}

#[test]
fn a_proxy_may_skip_auth_though_credentials_were_offered() {
    let mut s = after(true, &[]);
    assert_eq!(write(s.handle_read(&NO_AUTH)), connect_request());
    done(s.handle_read(&OK_V4));
}

#[test]
fn bytes_after_the_connect_reply_are_the_tunnels() {
    let mut reply = OK_V4.to_vec();
    reply.extend_from_slice(b"\x16\x03\x01 and more");
    let t = done(every_split(|| after(false, &[&NO_AUTH]), &reply));
    assert_eq!(t.leftover, b"\x16\x03\x01 and more");
}

#[test]
fn every_address_type_of_the_bound_address() {
    let v6: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let name = "bound.example".as_bytes();
    let cases: [(Vec<u8>, Host); 3] = [
        (
            vec![5, 0, 0, 1, 0, 0, 0, 0, 0, 0],
            Host::Ip(Ipv4Addr::UNSPECIFIED.into()),
        ),
        (
            [&[5u8, 0, 0, 4][..], &v6.octets(), &[0, 0]].concat(),
            Host::Ip(IpAddr::V6(v6)),
        ),
        (
            [&[5u8, 0, 0, 3, name.len() as u8][..], name, &[0, 0]].concat(),
            Host::Domain("bound.example".into()),
        ),
    ];
    for (reply, bound) in cases {
        let mut with_tail = reply.clone();
        with_tail.push(0xAA);
        let t = done(every_split(|| after(false, &[&NO_AUTH]), &with_tail));
        assert_eq!(t.bound, Some((bound, 0)));
        assert_eq!(t.leftover, [0xAA]);
    }
}

#[test]
fn the_longest_reply_fits_the_bound() {
    let mut reply = vec![5, 0, 0, 3, 255];
    reply.extend_from_slice(&[b'n'; 255]);
    reply.extend_from_slice(&[0x01, 0x02]);
    assert_eq!(reply.len(), MAX_SOCKS5_REPLY_LEN);
    let mut s = after(false, &[&NO_AUTH]);
    assert_eq!(s.handle_read(&reply[..reply.len() - 1]), Ok(None));
    assert_eq!(s.buffered(), MAX_SOCKS5_REPLY_LEN - 1);
    let t = done(s.handle_read(&reply[reply.len() - 1..]));
    assert_eq!(t.bound, Some((Host::Domain("n".repeat(255)), 0x0102)));
    assert_eq!(s.buffered(), 0);
}

// ---- refusals ----

#[test]
fn every_reply_code_is_its_own_error() {
    let cases = [
        (
            1,
            Socks5Failure::GeneralFailure,
            true,
            "general SOCKS server failure",
        ),
        (
            2,
            Socks5Failure::NotAllowed,
            false,
            "not allowed by ruleset",
        ),
        (
            3,
            Socks5Failure::NetworkUnreachable,
            true,
            "network unreachable",
        ),
        (4, Socks5Failure::HostUnreachable, true, "host unreachable"),
        (
            5,
            Socks5Failure::ConnectionRefused,
            true,
            "connection refused",
        ),
        (6, Socks5Failure::TtlExpired, true, "TTL expired"),
        (
            7,
            Socks5Failure::CommandNotSupported,
            false,
            "command not supported",
        ),
        (
            8,
            Socks5Failure::AddressTypeNotSupported,
            false,
            "address type not supported",
        ),
        (
            9,
            Socks5Failure::Unassigned(9),
            false,
            "unassigned reply code 9",
        ),
        (
            255,
            Socks5Failure::Unassigned(255),
            false,
            "unassigned reply code 255",
        ),
    ];
    for (code, failure, retryable, text) in cases {
        assert_eq!(Socks5Failure::from_code(code), Some(failure));
        assert_eq!(failure.code(), code);
        // The whole reply, or only its first two bytes: the code decides.
        let mut reply = OK_V4;
        reply[1] = code;
        for r in [&reply[..], &reply[..2]] {
            let err = every_split(|| after(false, &[&NO_AUTH]), r).unwrap_err();
            assert_eq!(err, ProxyError::Socks5(failure));
            assert_eq!(err.is_retryable(), retryable, "{code}");
            assert!(err.to_string().contains(text), "{err}");
        }
    }
    assert_eq!(Socks5Failure::from_code(0), None);
}

#[test]
fn no_acceptable_method_and_unexpected_methods() {
    for with_creds in [false, true] {
        let err = every_split(|| after(with_creds, &[]), &[5, 0xFF]).unwrap_err();
        assert_eq!(err, ProxyError::NoAcceptableMethods);
        assert!(!err.is_retryable());
    }
    // User/password chosen though not offered; GSSAPI; anything else.
    for (with_creds, method) in [(false, 2), (false, 1), (true, 1), (true, 0x80)] {
        assert_eq!(
            every_split(|| after(with_creds, &[]), &[5, method]),
            Err(ProxyError::UnexpectedMethod(method))
        );
    }
}

#[test]
fn refused_credentials_fail_and_are_final() {
    for status in [1, 2, 0xFF] {
        let err = every_split(|| after(true, &[&USER_PASS]), &[1, status]).unwrap_err();
        assert_eq!(err, ProxyError::AuthFailed(status));
        assert!(!err.is_retryable());
        assert!(!err.to_string().contains("s3cret"));
    }
}

#[test]
fn bad_version_bytes_fail_at_once() {
    let cases: [(Socks5, &[u8], u8, u8); 5] = [
        (after(false, &[]), &[4, 0], 5, 4),
        // An HTTP proxy's answer.
        (after(false, &[]), b"HTTP/1.1 400", 5, b'H'),
        // RFC 1929's sub-negotiation is version 1, not 5.
        (after(true, &[&USER_PASS]), &[5, 0], 1, 5),
        (after(false, &[&NO_AUTH]), &[4, 0, 0, 1], 5, 4),
        (after(false, &[&NO_AUTH]), &[0], 5, 0),
    ];
    for (mut s, reply, expected, got) in cases {
        let err = s.handle_read(reply).unwrap_err();
        assert_eq!(err, ProxyError::BadVersion { expected, got });
        assert!(!err.is_retryable());
    }
    let err = ProxyError::BadVersion {
        expected: 5,
        got: b'H',
    };
    assert!(err.to_string().contains("HTTP proxy"), "{err}");
}

#[test]
fn bad_address_types_and_reserved_bytes_fail() {
    for atyp in [0, 2, 5, 0xFF] {
        let reply = [5, 0, 0, atyp, 1, 2, 3, 4, 5, 6];
        assert_eq!(
            every_split(|| after(false, &[&NO_AUTH]), &reply),
            Err(ProxyError::BadAddressType(atyp))
        );
    }
    assert_eq!(
        every_split(
            || after(false, &[&NO_AUTH]),
            &[5, 0, 1, 1, 0, 0, 0, 0, 0, 0]
        ),
        Err(ProxyError::BadReply("reserved byte"))
    );
    // A name of length 0.
    assert_eq!(
        every_split(|| after(false, &[&NO_AUTH]), &[5, 0, 0, 3, 0, 0, 0]),
        Err(ProxyError::BadReply("name length (0)"))
    );
    // The reply code is read before the later bytes.
    assert_eq!(
        after(false, &[&NO_AUTH]).handle_read(&[5, 4, 9, 9]),
        Err(ProxyError::Socks5(Socks5Failure::HostUnreachable))
    );
}

// ---- lengths: truncated, lying ----

#[test]
fn every_truncated_reply_waits_holding_only_its_bytes() {
    let name_reply = [&[5u8, 0, 0, 3, 3][..], b"abc", &[0, 80]].concat();
    let v6_reply = [&[5u8, 0, 0, 4][..], &[0; 16], &[0, 80]].concat();
    for reply in [&OK_V4[..], &name_reply, &v6_reply] {
        for cut in 0..reply.len() {
            let mut s = after(false, &[&NO_AUTH]);
            assert_eq!(s.handle_read(&reply[..cut]), Ok(None), "{cut}");
            assert_eq!(s.buffered(), cut);
        }
    }
    for cut in 0..2 {
        let mut s = after(true, &[]);
        assert_eq!(s.handle_read(&USER_PASS[..cut]), Ok(None));
        let mut s = after(true, &[&USER_PASS]);
        assert_eq!(s.handle_read(&AUTH_OK[..cut]), Ok(None));
    }
}

#[test]
fn a_name_length_longer_than_what_came_waits_for_the_rest() {
    // It says 200 bytes and sends 20: nothing past the 200 is taken, and
    // the caller's end of stream ends it.
    let mut reply = vec![5, 0, 0, 3, 200];
    reply.extend_from_slice(&[b'x'; 20]);
    let mut s = after(false, &[&NO_AUTH]);
    assert_eq!(s.handle_read(&reply), Ok(None));
    assert_eq!(s.buffered(), 25);
    // The rest, with tunnel bytes behind it: the reply takes exactly
    // 5 + 200 + 2 bytes.
    let mut rest = vec![b'y'; 180];
    rest.extend_from_slice(&[0, 1, 0xEE, 0xFF]);
    let t = done(s.handle_read(&rest));
    assert_eq!(t.bound.unwrap().1, 1);
    assert_eq!(t.leftover, [0xEE, 0xFF]);
}

#[test]
fn a_name_length_shorter_than_what_came_leaves_the_rest_to_the_tunnel() {
    // It says 3 and sends "abcdef": "abc", then "de" as the port, then
    // "f" is the tunnel's. The reply format cannot tell; the bytes are
    // not lost or read twice.
    let reply = [&[5u8, 0, 0, 3, 3][..], b"abcdef"].concat();
    let t = done(every_split(|| after(false, &[&NO_AUTH]), &reply));
    assert_eq!(
        t.bound,
        Some((Host::Domain("abc".into()), u16::from_be_bytes(*b"de")))
    );
    assert_eq!(t.leftover, b"f");
}

#[test]
fn replies_before_the_request_are_refused() {
    // Bytes behind a method or auth reply in the same read answer a
    // request not yet written.
    let mut s = after(false, &[]);
    assert_eq!(
        s.handle_read(&[5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
        Err(ProxyError::UnexpectedData("method reply"))
    );
    let mut s = after(true, &[&USER_PASS]);
    assert_eq!(
        s.handle_read(&[1, 0, 5]),
        Err(ProxyError::UnexpectedData("authentication reply"))
    );
    // A refusal says so even with bytes behind it.
    let mut s = after(false, &[]);
    assert_eq!(
        s.handle_read(&[5, 0xFF, 0]),
        Err(ProxyError::NoAcceptableMethods)
    );
}

// ---- time and the end ----

#[test]
fn the_deadline_applies_until_the_tunnel_opens() {
    let now = Instant::now();
    let l = limits().with_timeout(Duration::from_secs(3));
    let (mut s, _) = Socks5::new(&host("a"), 1, None, l, now).unwrap();
    assert_eq!(s.poll_timeout(), now + Duration::from_secs(3));
    assert_eq!(s.handle_timeout(now), Ok(()));
    write(s.handle_read(&NO_AUTH));
    assert_eq!(
        s.handle_timeout(now + Duration::from_secs(3)),
        Err(ProxyError::TimedOut)
    );
    done(s.handle_read(&OK_V4));
    assert_eq!(s.handle_timeout(now + Duration::from_secs(30)), Ok(()));
}

#[test]
fn reads_after_the_end_fail() {
    let mut s = after(false, &[&NO_AUTH]);
    done(s.handle_read(&OK_V4));
    assert_eq!(s.handle_read(&[1]), Err(ProxyError::Finished));
    let mut s = after(false, &[]);
    let err = s.handle_read(&[5, 0xFF]).unwrap_err();
    assert_eq!(s.handle_read(&NO_AUTH), Err(err));
    assert_eq!(s.buffered(), 0);
}

// ---- through ProxyHandshake ----

#[test]
fn proxy_handshake_picks_the_exchange_and_the_address_form() {
    let now = Instant::now();
    let p: Proxy = "socks5h://bob:pw@proxy:1080".parse().unwrap();
    let (mut hs, first) =
        ProxyHandshake::new(&p, &host("example.com"), 443, limits(), now).unwrap();
    assert!(matches!(hs, ProxyHandshake::Socks5(_)));
    assert_eq!(first, [5, 2, 0, 2]);
    assert_eq!(
        write(hs.handle_read(&USER_PASS)),
        b"\x01\x03bob\x02pw".to_vec()
    );
    assert_eq!(write(hs.handle_read(&AUTH_OK)), connect_request());
    done(hs.handle_read(&OK_V4));

    // socks5:// wants an address: the caller resolves.
    let p: Proxy = "socks5://proxy".parse().unwrap();
    assert!(p.kind.resolves_locally());
    let err = ProxyHandshake::new(&p, &host("example.com"), 443, limits(), now).unwrap_err();
    assert_eq!(err, ProxyError::UnresolvedTarget("example.com".into()));
    assert!(!err.is_retryable());
    let (mut hs, _) = ProxyHandshake::new(&p, &host("192.0.2.7"), 443, limits(), now).unwrap();
    assert_eq!(
        write(hs.handle_read(&NO_AUTH)),
        [5, 1, 0, 1, 192, 0, 2, 7, 0x01, 0xbb]
    );
    assert_eq!(hs.poll_timeout(), now + limits().timeout);

    let p: Proxy = "http://u:p@proxy:3128".parse().unwrap();
    let (mut hs, first) =
        ProxyHandshake::new(&p, &host("example.com"), 443, limits(), now).unwrap();
    assert!(matches!(hs, ProxyHandshake::Http(_)));
    assert!(first.starts_with(b"CONNECT example.com:443 HTTP/1.1\r\n"));
    assert!(String::from_utf8(first).unwrap().contains("Basic dTpw\r\n"));
    assert_eq!(hs.handle_read(b"HTTP/1.1 200"), Ok(None));
    assert_eq!(hs.buffered(), 12);
    done(hs.handle_read(b" OK\r\n\r\n"));
    assert_eq!(hs.handle_timeout(now + Duration::from_secs(3600)), Ok(()));
}
