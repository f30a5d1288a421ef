//! The SOCKS5 exchange on an arbitrary conversation: what the proxy
//! sends after each request, in arbitrary pieces. It never holds more
//! than the longest reply, writes only the requests it should (the
//! username/password request after method 2 was chosen, then CONNECT for
//! the target given), each turn's outcome does not depend on the cuts
//! (except that one read holding a reply and bytes the proxy sent before
//! it was asked fails with UnexpectedData, which pieces cannot tell from
//! a later read), and a tunnel's leftover is exactly the turn's tail.

#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tether_core::handshake::HandshakeLimits;
use tether_core::proxy::{Credentials, Host, ProxyError, Socks5, Step, MAX_SOCKS5_REPLY_LEN};

#[derive(Debug, PartialEq)]
enum Outcome {
    Incomplete,
    Wrote(Vec<u8>),
    Failed(ProxyError),
    Done(Vec<u8>, Option<(Host, u16)>),
    /// A `Write` with bytes of the turn left (pieces only).
    Premature,
}

fn target(flags: u8) -> Host {
    match (flags >> 1) % 3 {
        0 => Host::from("example.com"),
        1 => Host::from(Ipv4Addr::new(192, 0, 2, 1)),
        _ => Host::from(Ipv6Addr::LOCALHOST),
    }
}

/// Runs the turns, each cut by `cut` into pieces.
fn run(flags: u8, turns: &[&[u8]], cut: &dyn Fn(usize, &[u8]) -> Vec<usize>) -> Vec<Outcome> {
    let creds = Credentials::new("user", "pass");
    let creds = (flags & 1 != 0).then_some(&creds);
    let host = target(flags);
    let (mut s, greeting) = Socks5::new(
        &host,
        443,
        creds,
        HandshakeLimits::default(),
        Instant::now(),
    )
    .expect("a valid target");
    assert_eq!(greeting.len(), if creds.is_some() { 4 } else { 3 });
    let mut outcomes = Vec::new();
    let mut wrote_auth = false;
    for (t, turn) in turns.iter().enumerate() {
        let mut pieces = Vec::new();
        let mut start = 0;
        for c in cut(t, turn) {
            pieces.push(&turn[start..c]);
            start = c;
        }
        pieces.push(&turn[start..]);
        let mut outcome = Outcome::Incomplete;
        for (i, piece) in pieces.iter().enumerate() {
            let r = s.handle_read(piece);
            assert!(
                s.buffered() <= MAX_SOCKS5_REPLY_LEN,
                "holds {}",
                s.buffered()
            );
            match r {
                Ok(None) => continue,
                Ok(Some(Step::Write(w))) => {
                    if w.first() == Some(&1) {
                        assert!(creds.is_some() && !wrote_auth && outcomes.is_empty());
                        assert_eq!(w, b"\x01\x04user\x04pass");
                        wrote_auth = true;
                    } else {
                        assert_eq!(&w[..3], [5, 1, 0], "a CONNECT request");
                        assert_eq!(&w[w.len() - 2..], 443u16.to_be_bytes());
                    }
                    outcome = if pieces[i + 1..].iter().any(|p| !p.is_empty()) {
                        Outcome::Premature
                    } else {
                        Outcome::Wrote(w)
                    };
                }
                Ok(Some(Step::Done(tunnel))) => {
                    assert!(tunnel.bound.is_some());
                    assert_eq!(s.handle_read(b"x"), Err(ProxyError::Finished));
                    let mut leftover = tunnel.leftover;
                    for p in &pieces[i + 1..] {
                        leftover.extend_from_slice(p);
                    }
                    assert!(turn.ends_with(&leftover));
                    outcome = Outcome::Done(leftover, tunnel.bound);
                }
                Err(e) => {
                    assert_eq!(s.handle_read(b"x"), Err(e.clone()), "the error again");
                    outcome = Outcome::Failed(e);
                }
            }
            break;
        }
        let go_on = matches!(outcome, Outcome::Wrote(_));
        outcomes.push(outcome);
        if !go_on {
            break;
        }
    }
    outcomes
}

fuzz_target!(|input: &[u8]| {
    // Header: flags (bit 0 credentials, then the target's kind), two cut
    // seeds; then turns, each a length byte and that many bytes.
    let [flags, a, b, rest @ ..] = input else {
        return;
    };
    let mut rest = rest;
    let mut turns = Vec::new();
    while let [len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        turns.push(&tail[..n]);
        rest = &tail[n..];
    }
    let whole = run(*flags, &turns, &|_, _| Vec::new());
    if whole
        .iter()
        .any(|o| matches!(o, Outcome::Failed(ProxyError::UnexpectedData(_))))
    {
        return;
    }
    let two_cuts = |t: usize, turn: &[u8]| {
        let n = turn.len() + 1;
        let mut c = vec![(*a as usize * (t + 1)) % n, (*b as usize + 7 * t) % n];
        c.sort_unstable();
        c
    };
    let bytewise = |_: usize, turn: &[u8]| (1..turn.len()).collect();
    assert_eq!(whole, run(*flags, &turns, &two_cuts), "two cuts per turn");
    assert_eq!(whole, run(*flags, &turns, &bytewise), "byte by byte");
});
