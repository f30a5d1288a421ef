//! Properties on arbitrary input: no exchange panics or holds more than
//! its bound, however the bytes are cut; the outcome does not depend on
//! the cuts (within the limits documented at each property); URL and
//! no_proxy parsing never panic, and Display round-trips.

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult, Testable};
use tether_core::proxy::{NoProxy, MAX_SOCKS5_REPLY_LEN};

use super::*;

fn check<A: Testable>(cases: u64, prop: A) {
    QuickCheck::new().tests(cases).quickcheck(prop);
}

fn below(g: &mut Gen, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        usize::arbitrary(g) % n
    }
}

fn pick<'a, T>(g: &mut Gen, items: &'a [T]) -> &'a T {
    &items[below(g, items.len())]
}

/// `bytes` cut at up to 8 random places.
fn cut<'a>(g: &mut Gen, bytes: &'a [u8]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = (0..below(g, 9))
        .map(|_| below(g, bytes.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts {
        out.push(&bytes[start..c]);
        start = c;
    }
    out.push(&bytes[start..]);
    out
}

/// Arbitrary bytes, often starting like the reply the exchange expects so
/// that deep states are reached.
fn noise(g: &mut Gen, likely: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..below(g, 4) {
        if bool::arbitrary(g) {
            let chunk: &&[u8] = pick(g, likely);
            out.extend_from_slice(chunk);
        } else {
            let mut junk = Vec::<u8>::arbitrary(g);
            junk.truncate(below(g, 64));
            out.extend_from_slice(&junk);
        }
        if below(g, 4) == 0 && !out.is_empty() {
            // Flip one byte.
            let i = below(g, out.len());
            out[i] = u8::arbitrary(g);
        }
    }
    out
}

// ---- HTTP CONNECT ----

#[derive(Debug, Clone)]
struct HttpCase {
    max_head_size: usize,
    max_headers: usize,
    bytes: Vec<u8>,
    cuts: Vec<usize>,
}

impl Arbitrary for HttpCase {
    fn arbitrary(g: &mut Gen) -> Self {
        let heads: &[&[u8]] = &[
            b"HTTP/1.1 200 Connection established\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 407 Auth\r\nProxy-Authenticate: Basic realm=x\r\n\r\n",
            b"HTTP/1.0 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 403 Forbidden\n\n",
            b"X-Header: value\r\n",
            b"\r\n",
        ];
        let bytes = noise(g, heads);
        let cuts = (0..below(g, 9))
            .map(|_| below(g, bytes.len() + 1))
            .collect();
        Self {
            max_head_size: *pick(g, &[0, 1, 16, 40, 64, 16 << 10]),
            max_headers: *pick(g, &[0, 1, 4, 100]),
            bytes,
            cuts,
        }
    }
}

fn http_run(case: &HttpCase, pieces: &[&[u8]]) -> Outcome {
    let l = limits()
        .with_max_head_size(case.max_head_size)
        .with_max_headers(case.max_headers);
    let (mut hs, _) = HttpConnect::new(&host("example.com"), 443, None, l, Instant::now()).unwrap();
    let mut result = Ok(None);
    for (i, p) in pieces.iter().enumerate() {
        let r = hs.handle_read(p);
        assert!(
            hs.buffered() <= case.max_head_size + 1,
            "holds {} bytes, limit {}",
            hs.buffered(),
            case.max_head_size
        );
        match r {
            Ok(None) => {}
            Ok(Some(Step::Done(mut t))) => {
                for later in &pieces[i + 1..] {
                    t.leftover.extend_from_slice(later);
                }
                result = Ok(Some(Step::Done(t)));
                break;
            }
            other => {
                assert!(
                    !matches!(other, Ok(Some(Step::Write(_)))),
                    "HTTP never writes twice"
                );
                result = other;
                break;
            }
        }
    }
    result
}

/// Any bytes in any pieces: no panic, at most one byte past the head
/// limit held, and the same outcome as one read but for one documented
/// difference (the HTTP head is parsed on the first read and then once
/// its blank line arrived or it passed the limit, so bytes that break it
/// after the first read may still be waiting where one read failed).
#[test]
fn http_connect_on_arbitrary_bytes() {
    fn prop(case: HttpCase) -> TestResult {
        let whole = http_run(&case, &[&case.bytes]);
        let mut cuts = case.cuts.clone();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for c in cuts {
            pieces.push(&case.bytes[start..c]);
            start = c;
        }
        pieces.push(&case.bytes[start..]);
        let split = http_run(&case, &pieces);
        let bytewise = http_run(&case, &case.bytes.chunks(1).collect::<Vec<_>>());
        for other in [split, bytewise] {
            let waiting = matches!(
                (&whole, &other),
                (
                    Err(ProxyError::Malformed(_) | ProxyError::TooManyHeaders),
                    Ok(None)
                )
            );
            if !waiting && other != whole {
                return TestResult::error(format!("{whole:?} vs {other:?}"));
            }
        }
        TestResult::passed()
    }
    check(3000, prop as fn(HttpCase) -> TestResult);
}

/// Well-formed responses with any status and any tunnel bytes behind,
/// cut anywhere: the same verdict as one read, and the tunnel gets every
/// byte after the head.
#[test]
fn http_connect_well_formed_responses_any_cut() {
    fn prop(status: u16, interim: bool, leftover: Vec<u8>, seed: u64) -> TestResult {
        let status = 100 + status % 500;
        if status < 200 && status != 101 {
            return TestResult::discard();
        }
        let mut resp = Vec::new();
        if interim {
            resp.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        resp.extend_from_slice(format!("HTTP/1.1 {status} Reason\r\nX: y\r\n\r\n").as_bytes());
        resp.extend_from_slice(&leftover);
        let mut g = Gen::new(seed as usize % 64 + 1);
        let pieces = cut(&mut g, &resp);
        let fresh = || {
            HttpConnect::new(&host("h"), 1, None, limits(), Instant::now())
                .unwrap()
                .0
        };
        let whole = feed(&mut fresh(), &[&resp]);
        let split = feed(&mut fresh(), &pieces);
        if whole != split {
            return TestResult::error(format!("{whole:?} vs {split:?}"));
        }
        match (status, whole) {
            (200..=299, Ok(Some(Step::Done(t)))) if t.leftover == leftover => TestResult::passed(),
            (407, Err(ProxyError::AuthenticationRequired { .. }))
            | (403, Err(ProxyError::Forbidden)) => TestResult::passed(),
            (s, Err(ProxyError::Refused { status, .. })) if s == status => TestResult::passed(),
            (s, other) => TestResult::error(format!("{s}: {other:?}")),
        }
    }
    check(2000, prop as fn(u16, bool, Vec<u8>, u64) -> TestResult);
}

// ---- SOCKS5 ----

#[derive(Debug, Clone)]
struct SocksCase {
    creds: bool,
    /// What the proxy sends after each request: one entry per turn.
    turns: Vec<Vec<u8>>,
    seed: u64,
}

impl Arbitrary for SocksCase {
    fn arbitrary(g: &mut Gen) -> Self {
        let any: &[&[u8]] = &[
            &[5, 0],
            &[5, 2],
            &[5, 0xFF],
            &[1, 0],
            &[1, 1],
            &[5, 4, 0, 1],
            &[5, 0, 0, 3, 255],
        ];
        let connect: &[&[u8]] = &[
            &[5, 0, 0, 1, 10, 0, 0, 1, 0, 80],
            &[5, 0, 0, 3, 3, b'a', b'b', b'c', 0, 80],
            &[
                5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80,
            ],
        ];
        let creds = bool::arbitrary(g);
        // The proxy's side of a good conversation...
        let mut script: Vec<Vec<u8>> = if creds && bool::arbitrary(g) {
            vec![vec![5, 2], vec![1, 0]]
        } else {
            vec![vec![5, 0]]
        };
        script.push(pick(g, connect).to_vec());
        // ... with, now and then, a byte changed, a reply cut short or
        // followed by more, or another reply in its place.
        for t in &mut script {
            match below(g, 12) {
                0 => {
                    let i = below(g, t.len());
                    t[i] = u8::arbitrary(g);
                }
                1 => t.truncate(below(g, t.len())),
                2 => t.extend(Vec::<u8>::arbitrary(g).into_iter().take(300)),
                3 => *t = pick(g, any).to_vec(),
                4 => *t = noise(g, any),
                _ => {}
            }
        }
        Self {
            creds,
            turns: script,
            seed: u64::arbitrary(g),
        }
    }
}

/// Runs the conversation, each turn in one read or in random pieces:
/// the outcome of each turn, and whether a turn was answered before it
/// ended with a `Write` (which one read reports as `UnexpectedData`).
fn socks_run(case: &SocksCase, split: bool) -> (Vec<Outcome>, bool) {
    let c = Credentials::new("user", "pass");
    let (mut s, _) = Socks5::new(
        &host("example.com"),
        443,
        case.creds.then_some(&c),
        limits(),
        Instant::now(),
    )
    .unwrap();
    let mut g = Gen::new(case.seed as usize % 64 + 1);
    let mut outcomes = Vec::new();
    for turn in &case.turns {
        let pieces = if split {
            cut(&mut g, turn)
        } else {
            vec![&turn[..]]
        };
        let mut outcome = Ok(None);
        for (i, p) in pieces.iter().enumerate() {
            let r = s.handle_read(p);
            assert!(
                s.buffered() <= MAX_SOCKS5_REPLY_LEN,
                "holds {}",
                s.buffered()
            );
            match r {
                Ok(None) => continue,
                Ok(Some(Step::Done(mut t))) => {
                    for later in &pieces[i + 1..] {
                        t.leftover.extend_from_slice(later);
                    }
                    outcome = Ok(Some(Step::Done(t)));
                }
                Ok(Some(Step::Write(w))) => {
                    if pieces[i + 1..].iter().any(|p| !p.is_empty()) {
                        return (outcomes, true);
                    }
                    outcome = Ok(Some(Step::Write(w)));
                }
                Err(e) => outcome = Err(e),
            }
            break;
        }
        let stop = !matches!(outcome, Ok(Some(Step::Write(_))));
        outcomes.push(outcome);
        if stop {
            break;
        }
    }
    (outcomes, false)
}

/// Any conversation in any pieces: no panic, never more than the longest
/// reply held, and each turn's outcome the same as in one read, except
/// where one read holds a reply and bytes the proxy sent before being
/// asked (`UnexpectedData`), which pieces cannot tell from a later read.
#[test]
fn socks5_on_arbitrary_conversations() {
    fn prop(case: SocksCase) -> TestResult {
        let (whole, _) = socks_run(&case, false);
        let (split, premature) = socks_run(&case, true);
        if whole
            .iter()
            .any(|o| matches!(o, Err(ProxyError::UnexpectedData(_))))
        {
            return TestResult::discard();
        }
        if premature {
            return TestResult::error("pieces saw premature bytes one read did not");
        }
        if whole != split {
            return TestResult::error(format!("{whole:?} vs {split:?}"));
        }
        TestResult::passed()
    }
    check(5000, prop as fn(SocksCase) -> TestResult);
}

// ---- parsing ----

#[test]
fn url_and_no_proxy_parsing_never_panic() {
    fn prop(s: String, t: String, port: u16) -> bool {
        let _ = Proxy::parse(&s);
        let _ = Proxy::parse(&format!("socks5h://{s}"));
        let _ = Proxy::parse(&format!("http://u:{s}@h:{port}"));
        let list = NoProxy::parse(&s);
        let _ = list.matches(&host(&t), port);
        let _ = list.matches(&host(&s), port);
        true
    }
    check(3000, prop as fn(String, String, u16) -> bool);
}

/// Proxies without a password print as URLs that parse back to them; a
/// password is never printed.
#[test]
fn proxies_round_trip_through_display() {
    fn prop(
        kind: u8,
        a: u32,
        v6: u128,
        name: Vec<u8>,
        port: u16,
        user: String,
        pass: String,
    ) -> TestResult {
        let kind = [ProxyKind::Http, ProxyKind::Socks5, ProxyKind::Socks5h][kind as usize % 3];
        let name: String = name
            .iter()
            .map(|b| b"abcxyz0189-._"[*b as usize % 13] as char)
            .take(30)
            .collect();
        let h = match a % 3 {
            0 if !name.is_empty() && name.parse::<std::net::Ipv4Addr>().is_err() => {
                Host::Domain(name)
            }
            0 | 1 => Host::Ip(std::net::Ipv4Addr::from(a).into()),
            _ => Host::Ip(std::net::Ipv6Addr::from(v6).into()),
        };
        let port = port.max(1);
        let creds = (!user.is_empty()).then(|| Credentials::new(user.clone(), String::new()));
        let p = Proxy::new(kind, h, port).with_credentials(creds);
        match Proxy::parse(&p.to_string()) {
            Ok(back) if back == p => {}
            other => return TestResult::error(format!("{p:?} printed {p} parsed {other:?}")),
        }
        // A marker no other part of the output holds.
        let pass = format!("pw\u{1F511}{pass}");
        if !user.contains('\u{1F511}') {
            let secret = Proxy::new(kind, "h", port)
                .with_credentials(Some(Credentials::new(user, pass.clone())));
            let text = format!("{secret} {secret:?}");
            if text.contains(&pass) {
                return TestResult::error(text);
            }
        }
        TestResult::passed()
    }
    check(
        2000,
        prop as fn(u8, u32, u128, Vec<u8>, u16, String, String) -> TestResult,
    );
}
