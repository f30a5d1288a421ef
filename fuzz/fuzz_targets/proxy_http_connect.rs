//! The HTTP CONNECT exchange on arbitrary response bytes in arbitrary
//! pieces: it never holds more than one byte past the head limit, the
//! outcome does not depend on the cuts (but for an error found later, as
//! with the WebSocket handshake: the head is parsed on the first read and
//! then once its blank line arrived or it passed the limit), a tunnel's
//! leftover is exactly the input's tail, nothing is written after the
//! request, and reads after the end fail.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tether_core::handshake::HandshakeLimits;
use tether_core::proxy::{Credentials, Host, HttpConnect, ProxyError, Step};

#[derive(Debug, PartialEq)]
enum Outcome {
    Incomplete,
    Failed(ProxyError),
    /// The leftover, with the pieces after the one that finished appended.
    Done(Vec<u8>),
}

fn run(creds: Option<&Credentials>, limits: &HandshakeLimits, pieces: &[&[u8]]) -> Outcome {
    let (mut hs, request) = HttpConnect::new(
        &Host::from("example.com"),
        443,
        creds,
        limits.clone(),
        Instant::now(),
    )
    .expect("a valid target");
    assert!(request.starts_with(b"CONNECT example.com:443 HTTP/1.1\r\n"));
    for (i, piece) in pieces.iter().enumerate() {
        let r = hs.handle_read(piece);
        assert!(
            hs.buffered() <= limits.max_head_size + 1,
            "holds {} bytes, limit {}",
            hs.buffered(),
            limits.max_head_size
        );
        match r {
            Ok(None) => {}
            Ok(Some(Step::Write(_))) => panic!("HTTP CONNECT writes only its request"),
            Ok(Some(Step::Done(tunnel))) => {
                assert_eq!(hs.handle_read(b"x"), Err(ProxyError::Finished));
                let mut leftover = tunnel.leftover;
                assert!(tunnel.bound.is_none());
                for p in &pieces[i + 1..] {
                    leftover.extend_from_slice(p);
                }
                return Outcome::Done(leftover);
            }
            Err(e) => {
                assert_eq!(hs.handle_read(b"x"), Err(e.clone()), "the error again");
                return Outcome::Failed(e);
            }
        }
    }
    Outcome::Incomplete
}

fuzz_target!(|input: &[u8]| {
    // Header: flags, head size limit (2 bytes), header count limit, cut
    // count, two bytes per cut; the rest is the response.
    let [flags, h0, h1, max_headers, ncuts, rest @ ..] = input else {
        return;
    };
    let ncuts = (*ncuts % 8) as usize;
    if rest.len() < 2 * ncuts {
        return;
    }
    let (cut_bytes, data) = rest.split_at(2 * ncuts);
    let limits = HandshakeLimits::default()
        .with_max_head_size(match u16::from_le_bytes([*h0, *h1]) {
            0 => 16 << 10,
            n => n as usize,
        })
        .with_max_headers(match max_headers {
            0 => 64,
            n => (*n % 32) as usize,
        })
        .with_timeout(Duration::from_secs(10));
    let creds = (flags & 1 != 0).then(|| Credentials::new("user", "pass"));

    let mut cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize % (data.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for c in cuts {
        pieces.push(&data[start..c]);
        start = c;
    }
    pieces.push(&data[start..]);

    let whole = run(creds.as_ref(), &limits, &[data]);
    if let Outcome::Done(leftover) = &whole {
        assert!(data.ends_with(leftover), "the leftover is the input's tail");
    }
    let mut others = vec![run(creds.as_ref(), &limits, &pieces)];
    if flags & 2 != 0 && data.len() <= 4096 {
        others.push(run(
            creds.as_ref(),
            &limits,
            &data.chunks(1).collect::<Vec<_>>(),
        ));
    }
    for other in others {
        let waiting_for_more = matches!(
            (&whole, &other),
            (
                Outcome::Failed(ProxyError::Malformed(_) | ProxyError::TooManyHeaders),
                Outcome::Incomplete
            )
        );
        if !waiting_for_more {
            assert_eq!(whole, other, "outcome depends on the cuts {pieces:?}");
        }
    }
});
