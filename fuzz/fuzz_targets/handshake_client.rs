//! The client's opening handshake on arbitrary response bytes in arbitrary
//! pieces: the outcome does not depend on the cuts (but for an error
//! found later, see below), an accepted response
//! names only a subprotocol and extension the client offered, and the
//! bytes after the head are handed on intact.
//!
//! The fuzzer cannot compute SHA-1, so `ACCEPT-KEY` in the input is
//! replaced by the Sec-WebSocket-Accept the client expects.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tether_core::handshake::{
    accept_key, ClientHandshake, ClientRequest, HandshakeError, HandshakeLimits,
};
use tether_core::{Config, DeflateConfig, DeflateParams, Event, Xoshiro256};

const MARKER: &[u8] = b"ACCEPT-KEY";

/// The client's offered subprotocols.
const PROTOCOLS: [&str; 2] = ["chat", "superchat"];

#[derive(Debug, PartialEq)]
enum Outcome {
    Incomplete,
    Failed(HandshakeError),
    Accepted {
        headers: Vec<(String, Vec<u8>)>,
        protocol: Option<String>,
        deflate: Option<DeflateParams>,
        /// What the connection the handshake hands over makes of the bytes
        /// after the head (the same for any cut).
        events: Vec<Event>,
    },
}

fn run(request: &ClientRequest, limits: &HandshakeLimits, pieces: &[&[u8]]) -> Outcome {
    let mut rng = Xoshiro256::from_seed(7);
    let (mut hs, _) = ClientHandshake::new(request, limits.clone(), &mut rng, Instant::now())
        .expect("a valid request");
    for (i, piece) in pieces.iter().enumerate() {
        match hs.handle_read(piece) {
            Ok(None) => {}
            Err(e) => return Outcome::Failed(e),
            Ok(Some(resp)) => {
                let now = Instant::now();
                let mut conn =
                    hs.into_connection(Config::without_keepalive(), Box::new(rng), now);
                for p in &pieces[i + 1..] {
                    conn.handle_read(p, now);
                }
                let mut events = Vec::new();
                while let Some(ev) = conn.poll_event() {
                    events.push(ev);
                }
                if let Some(p) = &resp.protocol {
                    assert!(request.protocols.contains(p), "protocol {p} not offered");
                }
                if resp.deflate.is_some() {
                    assert!(!request.deflate.is_empty(), "deflate not offered");
                }
                assert_eq!(resp.response.status(), 101);
                return Outcome::Accepted {
                    headers: resp
                        .response
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                        .collect(),
                    protocol: resp.protocol,
                    deflate: resp.deflate,
                    events,
                };
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
    let (cut_bytes, raw) = rest.split_at(2 * ncuts);
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
    let mut request = ClientRequest::from_url("ws://example.com/chat").unwrap();
    if flags & 1 != 0 {
        request.protocols = PROTOCOLS.iter().map(|p| p.to_string()).collect();
    }
    if flags & 2 != 0 {
        request.deflate.push(
            DeflateConfig::default()
                .with_max_window_bits(8 + (flags >> 2) % 8)
                .with_peer_max_window_bits((flags & 0x20 != 0).then_some(8 + (flags >> 3) % 8))
                .with_no_context_takeover(flags & 0x40 != 0)
                .with_peer_no_context_takeover(flags & 0x80 != 0),
        );
        if flags & 0x10 != 0 {
            request.deflate.push(DeflateConfig::default());
        }
    }

    // The key is the client's first 16 random bytes, base64: the same seed
    // gives the same key in both runs.
    let key = {
        let mut rng = Xoshiro256::from_seed(7);
        let (_, req) = ClientHandshake::new(&request, limits.clone(), &mut rng, Instant::now())
            .expect("a valid request");
        let text = String::from_utf8(req).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_owned();
        accept_key(line.as_bytes())
    };
    let mut data = Vec::with_capacity(raw.len() + 32);
    let mut at = 0;
    while at < raw.len() {
        if raw[at..].starts_with(MARKER) {
            data.extend_from_slice(key.as_bytes());
            at += MARKER.len();
        } else {
            data.push(raw[at]);
            at += 1;
        }
    }

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

    let whole = run(&request, &limits, &[&data]);
    let split = run(&request, &limits, &pieces);
    // The head is parsed on the first read and then only once its blank
    // line arrived (or it passed the size limit), so bytes that break it
    // after the first read are found later: such a split may still be
    // waiting where the one read already failed. Any verdict both reach
    // is the same.
    let waiting_for_more = matches!(
        (&whole, &split),
        (
            Outcome::Failed(HandshakeError::Malformed(_) | HandshakeError::TooManyHeaders),
            Outcome::Incomplete
        )
    );
    if !waiting_for_more {
        assert_eq!(whole, split, "outcome depends on the cuts {pieces:?}");
    }
});
