//! permessage-deflate on the receive and send paths of `Connection`: RSV1
//! rules, bad compressed data, UTF-8 after inflating, fragments and reads
//! split anywhere, chunk delivery, the per-message opt-out, the size
//! threshold, context takeover, the inflated-size limit, and a quickcheck
//! round trip between a client and a server over arbitrary settings.

#![cfg(feature = "deflate")]

mod common;

use std::time::Instant;

use common::*;
use quickcheck::{Arbitrary, Gen, QuickCheck};
use tether_core::deflate::{client_accept, client_offer, parse_extensions, server_accept};
use tether_core::{
    Bytes, Config, Connection, DataKind, DeflateConfig, DeflateParams, Error, Event, Message,
    ProtocolError, Role, Xoshiro256,
};

const RSV1: u8 = 0b100;

/// Negotiates like the handshake does: the client offers `client`, the
/// server answers with `server`; returns (client params, server params).
fn negotiate(client: &DeflateConfig, server: &DeflateConfig) -> (DeflateParams, DeflateParams) {
    let offer = client_offer(std::slice::from_ref(client));
    let (sp, response) = server_accept(server, &parse_extensions([offer.as_str()]))
        .unwrap_or_else(|| panic!("server declined {offer:?}"));
    let item = &parse_extensions([response.as_str()])[0];
    let cp = client_accept(std::slice::from_ref(client), item)
        .unwrap_or_else(|| panic!("client refused {response:?}"));
    (cp, sp)
}

/// A client and a server connection with deflate negotiated from these
/// settings, both with `config`.
fn pair_with(
    client: &DeflateConfig,
    server: &DeflateConfig,
    config: Config,
) -> (Connection, Connection) {
    let (cp, sp) = negotiate(client, server);
    let now = Instant::now();
    let c = Connection::new(
        Role::Client,
        config.clone(),
        Box::new(Xoshiro256::from_seed(1)),
        now,
    )
    .with_deflate(Some(cp));
    let s = Connection::new(
        Role::Server,
        config,
        Box::new(Xoshiro256::from_seed(2)),
        now,
    )
    .with_deflate(Some(sp));
    assert!(c.deflate_negotiated() && s.deflate_negotiated());
    (c, s)
}

/// Compress everything (no threshold), default settings otherwise.
fn all() -> DeflateConfig {
    DeflateConfig::default().with_threshold(0)
}

fn pair() -> (Connection, Connection) {
    pair_with(&all(), &all(), config())
}

/// A server with deflate on (default parameters, client window 15).
fn server_with(config: Config) -> Connection {
    pair_with(&all(), &all(), config).1
}

/// Raw deflate of `data` with a sync flush and the 4-byte tail stripped,
/// as a peer would put it in a message (zlib-rs through a client
/// connection, so the bytes are what a real sender produces).
fn deflated(data: &[u8]) -> Vec<u8> {
    let (mut c, _) = pair();
    c.send(Message::binary(data.to_vec())).unwrap();
    let frames = sent_frames(&mut c);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].rsv, RSV1);
    frames[0].payload.clone()
}

/// The error events among `events`.
fn errors(events: &[Event]) -> Vec<&Error> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// Feeds `bytes` to `s`, takes every event and returns them with the close
/// code the connection sent (if it sent a close frame).
fn feed_all(s: &mut Connection, bytes: &[u8]) -> (Vec<Event>, Option<u16>) {
    s.handle_read(bytes, Instant::now());
    let evs = events(s);
    let frames = sent_frames(s);
    let code = frames
        .iter()
        .find(|f| f.opcode == CLOSE)
        .and_then(Frame::close_code);
    (evs, code)
}

/// Messages among the events.
fn messages(events: &[Event]) -> Vec<Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// Moves everything `from` has queued into `to`, in reads cut at `cuts`.
fn deliver(from: &mut Connection, to: &mut Connection, cuts: &[usize]) -> Vec<Event> {
    let bytes = transmit(from);
    let mut out = Vec::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(bytes.len());
    for c in cuts {
        to.handle_read(&bytes[start..c], Instant::now());
        start = c;
        out.extend(events(to));
    }
    out
}

// ---- RSV1 rules ----

#[test]
fn rsv1_without_negotiation_is_1002() {
    let mut s = conn(Role::Server, Instant::now());
    assert!(!s.deflate_negotiated());
    let frame = Raw::to(Role::Server, TEXT, deflated(b"hello")).rsv(RSV1);
    let (evs, code) = feed_all(&mut s, &frame.encode());
    assert_eq!(
        errors(&evs),
        [&Error::Protocol(ProtocolError::ReservedBits(RSV1))]
    );
    assert_eq!(code, Some(1002));
}

#[test]
fn rsv2_and_rsv3_are_1002_even_with_deflate() {
    for rsv in [0b010, 0b001, 0b110, 0b101] {
        let mut s = server_with(config());
        let frame = Raw::to(Role::Server, TEXT, deflated(b"hello")).rsv(rsv);
        let (evs, code) = feed_all(&mut s, &frame.encode());
        assert_eq!(
            errors(&evs),
            [&Error::Protocol(ProtocolError::ReservedBits(rsv))]
        );
        assert_eq!(code, Some(1002), "rsv {rsv:#05b}");
    }
}

#[test]
fn rsv1_on_a_continuation_is_1002() {
    let data = deflated(b"hello, hello, hello");
    let (a, b) = data.split_at(data.len() / 2);
    for first_rsv in [RSV1, 0] {
        let (a, b) = if first_rsv == 0 {
            (&b"hello, "[..], &b"hello"[..])
        } else {
            (a, b)
        };
        let mut s = server_with(config());
        let bytes = wire(&[
            Raw::to(Role::Server, TEXT, a).fin(false).rsv(first_rsv),
            Raw::to(Role::Server, CONT, b).rsv(RSV1),
        ]);
        let (evs, code) = feed_all(&mut s, &bytes);
        assert_eq!(
            errors(&evs),
            [&Error::Protocol(ProtocolError::ReservedBits(RSV1))]
        );
        assert_eq!(code, Some(1002));
        assert!(messages(&evs).is_empty());
    }
}

#[test]
fn rsv1_on_a_control_frame_is_1002() {
    for opcode in [PING, PONG, CLOSE] {
        let mut s = server_with(config());
        let payload = if opcode == CLOSE {
            close_payload(1000, b"")
        } else {
            b"hi".to_vec()
        };
        let frame = Raw::to(Role::Server, opcode, payload).rsv(RSV1);
        let (evs, code) = feed_all(&mut s, &frame.encode());
        assert_eq!(
            errors(&evs),
            [&Error::Protocol(ProtocolError::ReservedBits(RSV1))],
            "opcode {opcode:#x}"
        );
        assert_eq!(code, Some(1002));
    }
}

#[test]
fn control_frames_between_compressed_fragments() {
    let data = deflated(b"interleaved with a ping");
    let (a, b) = data.split_at(5);
    let mut s = server_with(config());
    let bytes = wire(&[
        Raw::to(Role::Server, TEXT, a).fin(false).rsv(RSV1),
        Raw::to(Role::Server, PING, b"p"),
        Raw::to(Role::Server, CONT, b),
    ]);
    let (evs, code) = feed_all(&mut s, &bytes);
    assert_eq!(code, None);
    assert_eq!(
        evs,
        [
            Event::Ping(Bytes::from_static(b"p")),
            Event::Message(Message::text("interleaved with a ping")),
        ]
    );
}

// ---- bad compressed data ----

#[test]
fn invalid_deflate_data_is_1007() {
    // 0x07: final block of the reserved type 3; 0xff..: a dynamic block
    // with impossible code lengths; the rest: garbage after a valid start.
    let mut garbage_tail = deflated(b"a valid start");
    garbage_tail.extend_from_slice(&[0xff; 32]);
    for payload in [vec![0x07], vec![0xff; 16], garbage_tail] {
        let mut s = server_with(config());
        let frame = Raw::to(Role::Server, BINARY, &payload).rsv(RSV1);
        let (evs, code) = feed_all(&mut s, &frame.encode());
        assert_eq!(
            errors(&evs),
            [&Error::Protocol(ProtocolError::InvalidCompressedData)],
            "{payload:x?}"
        );
        assert_eq!(code, Some(1007));
    }
}

#[test]
fn invalid_utf8_after_inflating_is_1007() {
    for bad in [&b"\xff\xfe"[..], b"ok then \xc3", b"\xed\xa0\x80 surrogate"] {
        let mut s = server_with(config());
        let frame = Raw::to(Role::Server, TEXT, deflated(bad)).rsv(RSV1);
        let (evs, code) = feed_all(&mut s, &frame.encode());
        assert_eq!(
            errors(&evs),
            [&Error::Protocol(ProtocolError::InvalidUtf8)],
            "{bad:x?}"
        );
        assert_eq!(code, Some(1007));
    }
}

#[test]
fn invalid_utf8_is_caught_before_the_message_ends() {
    // The bad byte sits in the first fragment: the connection fails on it
    // without waiting for the rest of the message.
    let (mut c, mut s) = pair();
    c.send_chunk(DataKind::Text, Bytes::from_static(b"bad \xff"), false)
        .unwrap();
    let (evs, code) = feed_all(&mut s, &transmit(&mut c));
    assert_eq!(errors(&evs), [&Error::Protocol(ProtocolError::InvalidUtf8)]);
    assert_eq!(code, Some(1007));
}

#[test]
fn binary_may_inflate_to_anything() {
    let mut s = server_with(config());
    let frame = Raw::to(Role::Server, BINARY, deflated(b"\xff\xfe\x00")).rsv(RSV1);
    let (evs, code) = feed_all(&mut s, &frame.encode());
    assert_eq!(code, None);
    assert_eq!(
        evs,
        [Event::Message(Message::binary(b"\xff\xfe\x00".to_vec()))]
    );
}

#[test]
fn rfc_7692_examples_inflate() {
    // Section 7.2.3.1 (one frame), 7.2.3.2 (the same split in two frames)
    // and 7.2.3.3 (a stored block, not compressed).
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, b'H', b'e', b'l', b'l', b'o', 0x00,
    ];
    for frames in [
        vec![Raw::to(Role::Server, TEXT, hello).rsv(RSV1)],
        vec![
            Raw::to(Role::Server, TEXT, &hello[..3])
                .rsv(RSV1)
                .fin(false),
            Raw::to(Role::Server, CONT, &hello[3..]),
        ],
        vec![Raw::to(Role::Server, TEXT, stored).rsv(RSV1)],
    ] {
        let mut s = server_with(config());
        let (evs, code) = feed_all(&mut s, &wire(&frames));
        assert_eq!(code, None);
        assert_eq!(evs, [Event::Message(Message::text("Hello"))]);
    }
}

#[test]
fn rfc_7692_context_takeover_example() {
    // Section 7.2.3.2: the second "Hello" refers back into the first.
    let mut s = server_with(config());
    let bytes = wire(&[
        Raw::to(
            Role::Server,
            TEXT,
            [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        )
        .rsv(RSV1),
        Raw::to(Role::Server, TEXT, [0xf2, 0x00, 0x11, 0x00, 0x00]).rsv(RSV1),
    ]);
    let (evs, code) = feed_all(&mut s, &bytes);
    assert_eq!(code, None);
    assert_eq!(
        evs,
        [
            Event::Message(Message::text("Hello")),
            Event::Message(Message::text("Hello"))
        ]
    );
}

#[test]
fn a_final_block_ends_the_message_and_resets_the_window() {
    // BFINAL set (section 7.2.3.3 allows it): the message ends there, and
    // the next message starts a new window.
    let final_hello = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let mut s = server_with(config());
    let bytes = wire(&[
        Raw::to(Role::Server, TEXT, final_hello).rsv(RSV1),
        Raw::to(Role::Server, TEXT, final_hello).rsv(RSV1),
    ]);
    let (evs, code) = feed_all(&mut s, &bytes);
    assert_eq!(code, None);
    assert_eq!(
        evs,
        [
            Event::Message(Message::text("Hello")),
            Event::Message(Message::text("Hello"))
        ]
    );
}

// ---- limits ----

/// A message of `n` zero bytes deflated: about n/1000 bytes on the wire.
fn zeros_deflated(n: usize) -> Vec<u8> {
    let (mut c, _) = pair_with(
        &DeflateConfig::default()
            .with_level(9)
            .with_mem_level(9)
            .with_max_window_bits(15)
            .with_threshold(0),
        &all(),
        config()
            .with_max_frame_size(usize::MAX)
            .with_fragment_size(usize::MAX),
    );
    c.send(Message::binary(vec![0u8; n])).unwrap();
    let frames = sent_frames(&mut c);
    assert_eq!(frames.len(), 1);
    frames[0].payload.clone()
}

#[test]
fn inflated_size_limit_is_1009() {
    let bomb = zeros_deflated(8 << 20);
    assert!(bomb.len() < 16 << 10, "{} bytes", bomb.len());
    for limit in [0, 1, 1000, 1 << 20] {
        let mut s = server_with(config().with_max_message_size(limit));
        let (evs, code) = feed_all(
            &mut s,
            &Raw::to(Role::Server, BINARY, &bomb).rsv(RSV1).encode(),
        );
        match errors(&evs)[..] {
            [Error::Protocol(ProtocolError::MessageTooLarge { size, limit: l })] => {
                assert_eq!(*l, limit);
                // It stops one byte past the limit: nothing more is inflated.
                assert_eq!(*size, limit as u64 + 1);
            }
            ref other => panic!("limit {limit}: {other:?}"),
        }
        assert_eq!(code, Some(1009));
    }
}

#[test]
fn a_message_at_the_limit_passes() {
    let n = 100_000;
    let mut s = server_with(config().with_max_message_size(n));
    let bytes = Raw::to(Role::Server, BINARY, zeros_deflated(n))
        .rsv(RSV1)
        .encode();
    let (evs, code) = feed_all(&mut s, &bytes);
    assert_eq!(code, None);
    assert_eq!(evs, [Event::Message(Message::binary(vec![0u8; n]))]);
}

#[test]
fn the_limit_counts_inflated_bytes_across_fragments() {
    let n = 300_000;
    let data = zeros_deflated(n);
    let third = data.len() / 3;
    let frames = [
        Raw::to(Role::Server, BINARY, &data[..third])
            .rsv(RSV1)
            .fin(false),
        Raw::to(Role::Server, CONT, &data[third..2 * third]).fin(false),
        Raw::to(Role::Server, CONT, &data[2 * third..]),
    ];
    let mut s = server_with(config().with_max_message_size(n - 1));
    let (evs, code) = feed_all(&mut s, &wire(&frames));
    assert!(matches!(
        errors(&evs)[..],
        [Error::Protocol(ProtocolError::MessageTooLarge { .. })]
    ));
    assert_eq!(code, Some(1009));
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

#[test]
fn a_bomb_allocates_no_more_than_the_limit() {
    let bomb = Raw::to(Role::Server, BINARY, zeros_deflated(64 << 20))
        .rsv(RSV1)
        .encode();
    let limit = 4 << 20;
    let mut s = server_with(config().with_max_message_size(limit));
    let ((), peak) = counting::peak_during(|| s.handle_read(&bomb, Instant::now()));
    eprintln!(
        "bomb of {} bytes, limit {limit}: peak {peak} bytes",
        bomb.len()
    );
    // The message buffer (it may reserve up to twice what it holds, but
    // only touches what it holds), the read buffer and the inflate window.
    assert!(
        peak < 2 * limit + bomb.len() + (1 << 20),
        "peak {peak} bytes for a limit of {limit}"
    );
    assert_eq!(sent_close_code(&mut s), Some(1009));
}

#[test]
fn a_chunked_bomb_is_held_back_by_the_inbound_limit() {
    // Chunk delivery has no message limit; what bounds memory there is the
    // inbound queue: a bomb arriving in one read must not be queued whole.
    let inflated = 64 << 20;
    let bomb = Raw::to(Role::Server, BINARY, zeros_deflated(inflated))
        .rsv(RSV1)
        .encode();
    let max_inbound = 1 << 20;
    let mut s = server_with(
        config()
            .with_deliver_chunks(true)
            .with_max_inbound_bytes(max_inbound),
    );
    let ((), mut peak) = counting::peak_during(|| s.handle_read(&bomb, Instant::now()));
    assert!(!s.wants_read());
    let mut total = 0usize;
    let mut fin = false;
    while !fin {
        let (ev, p) = counting::peak_during(|| s.poll_event());
        peak = peak.max(p);
        match ev {
            Some(Event::Chunk { data, fin: f, .. }) => {
                assert!(data.iter().all(|&b| b == 0));
                total += data.len();
                fin = f;
            }
            other => panic!("unexpected {other:?} after {total} bytes"),
        }
    }
    assert_eq!(total, inflated);
    assert!(!s.has_transmit(), "no close frame expected");
    eprintln!("chunked bomb, inbound limit {max_inbound}: peak {peak} bytes");
    // What the application has not taken yet, plus one step of slack: a
    // few MiB, not the whole inflated message.
    assert!(
        peak < 2 * max_inbound + bomb.len() + (4 << 20),
        "peak {peak} bytes with an inbound limit of {max_inbound}"
    );
}

// ---- fragments, reads, chunks ----

#[test]
fn compressed_text_split_across_fragments_and_reads() {
    let text = "Grüße, κόσμε, こんにちは 🚀 — ".repeat(500);
    for pieces in [1, 2, 3, 7, 40] {
        let (mut c, mut s) = pair();
        // A streamed message: each piece deflated on its own, cut inside
        // multi-byte characters.
        let bytes = text.as_bytes();
        let step = bytes.len().div_ceil(pieces);
        let parts: Vec<&[u8]> = bytes.chunks(step).collect();
        for (i, p) in parts.iter().enumerate() {
            c.send_chunk(
                DataKind::Text,
                Bytes::copy_from_slice(p),
                i + 1 == parts.len(),
            )
            .unwrap();
        }
        let out = transmit(&mut c);
        let frames = decode(&out);
        assert_eq!(frames.len(), parts.len());
        assert_eq!(frames[0].rsv, RSV1);
        assert!(frames[1..].iter().all(|f| f.rsv == 0));
        // Read it back one byte at a time, then in larger odd pieces.
        for read in [1usize, 13, 4096] {
            let mut s2 = server_with(config());
            let mut evs = Vec::new();
            for piece in out.chunks(read) {
                s2.handle_read(piece, Instant::now());
                evs.extend(events(&mut s2));
            }
            assert_eq!(
                evs,
                [Event::Message(Message::text(text.clone()))],
                "{pieces} pieces, reads of {read}"
            );
        }
        s.handle_read(&out, Instant::now());
        assert_eq!(
            events(&mut s),
            [Event::Message(Message::text(text.clone()))]
        );
    }
}

#[test]
fn fragment_size_splits_compressed_messages() {
    let text = "fragmented after compression ".repeat(4000);
    let (mut c, mut s) = pair_with(&all(), &all(), config().with_fragment_size(100));
    c.send(Message::text(text.clone())).unwrap();
    let out = transmit(&mut c);
    let frames = decode(&out);
    assert!(frames.len() > 1);
    assert_eq!(frames[0].rsv, RSV1);
    assert!(frames[1..].iter().all(|f| f.rsv == 0 && f.opcode == CONT));
    s.handle_read(&out, Instant::now());
    assert_eq!(events(&mut s), [Event::Message(Message::text(text))]);
}

#[test]
fn deliver_chunks_with_compression() {
    let text = "chunks of inflated text, é and 🚀 included. ".repeat(20_000);
    let (mut c, _) = pair();
    c.send(Message::text(text.clone())).unwrap();
    let out = transmit(&mut c);
    for read in [7usize, 1000, 1 << 20] {
        let mut s = server_with(config().with_deliver_chunks(true));
        let mut got = Vec::new();
        let mut fins = 0;
        let mut chunks = 0;
        for piece in out.chunks(read) {
            s.handle_read(piece, Instant::now());
            for ev in events(&mut s) {
                match ev {
                    Event::Chunk { kind, data, fin } => {
                        assert_eq!(kind, DataKind::Text);
                        assert_eq!(fins, 0, "a chunk after fin");
                        got.extend_from_slice(&data);
                        fins += usize::from(fin);
                        chunks += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(fins, 1);
        assert!(chunks > 1, "reads of {read}: {chunks} chunk(s)");
        assert!(got == text.as_bytes(), "reads of {read}: content differs");
    }
}

#[test]
fn deliver_chunks_checks_utf8_after_inflating() {
    let mut s = server_with(config().with_deliver_chunks(true));
    let frame = Raw::to(Role::Server, TEXT, deflated(b"fine, then \xc0\xaf")).rsv(RSV1);
    let (evs, code) = feed_all(&mut s, &frame.encode());
    assert_eq!(errors(&evs), [&Error::Protocol(ProtocolError::InvalidUtf8)]);
    assert_eq!(code, Some(1007));
}

// ---- sending ----

#[test]
fn send_uncompressed_skips_deflate() {
    let (mut c, mut s) = pair();
    let big = "x".repeat(10_000);
    c.send_uncompressed(Message::text(big.clone())).unwrap();
    c.send(Message::text(big.clone())).unwrap();
    c.send_uncompressed(Message::binary(vec![7u8; 300]))
        .unwrap();
    let out = transmit(&mut c);
    let frames = decode(&out);
    assert_eq!(frames.len(), 3);
    assert_eq!((frames[0].rsv, frames[0].payload.len()), (0, 10_000));
    assert_eq!(frames[1].rsv, RSV1);
    assert!(frames[1].payload.len() < 100);
    assert_eq!((frames[2].rsv, frames[2].payload.len()), (0, 300));
    s.handle_read(&out, Instant::now());
    assert_eq!(
        events(&mut s),
        [
            Event::Message(Message::text(big.clone())),
            Event::Message(Message::text(big)),
            Event::Message(Message::binary(vec![7u8; 300])),
        ]
    );
}

#[test]
fn threshold_leaves_small_messages_alone() {
    let cfg = DeflateConfig::default().with_threshold(64);
    let (mut c, mut s) = pair_with(&cfg, &cfg, config());
    for (len, rsv) in [
        (0, 0),
        (1, 0),
        (63, 0),
        (64, RSV1),
        (65, RSV1),
        (1000, RSV1),
    ] {
        let msg = Message::binary(vec![b'a'; len]);
        c.send(msg.clone()).unwrap();
        let out = transmit(&mut c);
        let frames = decode(&out);
        assert_eq!(frames[0].rsv, rsv, "length {len}");
        s.handle_read(&out, Instant::now());
        assert_eq!(events(&mut s), [Event::Message(msg)]);
    }
    // The server side has its own threshold.
    s.send(Message::text("tiny")).unwrap();
    assert_eq!(sent_frames(&mut s)[0].rsv, 0);
    s.send(Message::text("y".repeat(64))).unwrap();
    assert_eq!(sent_frames(&mut s)[0].rsv, RSV1);
}

#[test]
fn threshold_zero_compresses_empty_messages() {
    let (mut c, mut s) = pair();
    for _ in 0..3 {
        c.send(Message::text("")).unwrap();
        c.send(Message::binary(Vec::new())).unwrap();
    }
    c.send(Message::text("after the empty ones")).unwrap();
    let out = transmit(&mut c);
    let frames = decode(&out);
    assert!(frames.iter().all(|f| f.rsv == RSV1));
    // An empty stored block minus its tail (RFC 7692 section 7.2.3.6),
    // whether or not the compressor had anything pending.
    assert!(
        frames[..6].iter().all(|f| f.payload == [0x00]),
        "{frames:?}"
    );
    s.handle_read(&out, Instant::now());
    assert_eq!(
        messages(&events(&mut s)),
        [
            Message::text(""),
            Message::binary(Vec::new()),
            Message::text(""),
            Message::binary(Vec::new()),
            Message::text(""),
            Message::binary(Vec::new()),
            Message::text("after the empty ones"),
        ]
    );
}

#[test]
fn streamed_chunks_are_compressed_even_below_the_threshold() {
    let cfg = DeflateConfig::default().with_threshold(1000);
    let (mut c, mut s) = pair_with(&cfg, &cfg, config());
    c.send_chunk(DataKind::Binary, Bytes::from_static(b"ab"), false)
        .unwrap();
    c.send_chunk(DataKind::Binary, Bytes::new(), false).unwrap();
    c.send_chunk(DataKind::Binary, Bytes::from_static(b"cd"), false)
        .unwrap();
    // An empty last chunk after a flushed one, then more messages on the
    // same window.
    c.send_chunk(DataKind::Binary, Bytes::new(), true).unwrap();
    c.send(Message::binary(b"abcd".repeat(300))).unwrap();
    c.send_chunk(DataKind::Text, Bytes::new(), true).unwrap();
    let out = transmit(&mut c);
    assert_eq!(decode(&out)[0].rsv, RSV1);
    s.handle_read(&out, Instant::now());
    assert_eq!(
        events(&mut s),
        [
            Event::Message(Message::binary(b"abcd".to_vec())),
            Event::Message(Message::binary(b"abcd".repeat(300))),
            Event::Message(Message::text("")),
        ]
    );
}

/// Compressed payload sizes of `msg` sent `times` times from client to
/// server, checking the server reads each back.
fn sizes_of_repeats(client: &DeflateConfig, server: &DeflateConfig, msg: &Message) -> Vec<usize> {
    let (mut c, mut s) = pair_with(client, server, config());
    let mut sizes = Vec::new();
    for _ in 0..4 {
        c.send(msg.clone()).unwrap();
        let out = transmit(&mut c);
        let frames = decode(&out);
        assert_eq!(frames.len(), 1);
        sizes.push(frames[0].payload.len());
        s.handle_read(&out, Instant::now());
        assert_eq!(events(&mut s), [Event::Message(msg.clone())]);
    }
    sizes
}

#[test]
fn context_takeover_shrinks_repeated_messages() {
    let msg = Message::text(
        r#"{"id":12345,"device":"sensor-0042","reading":21.75,"unit":"C","note":"steady"}"#,
    );
    let takeover = sizes_of_repeats(&all(), &all(), &msg);
    assert!(takeover[1] < takeover[0] / 3, "{takeover:?}");
    assert!(
        takeover[1..].windows(2).all(|w| w[0] == w[1]),
        "{takeover:?}"
    );

    // The client chooses to reset its window: every message costs the same.
    let own = all().with_no_context_takeover(true);
    let fresh = sizes_of_repeats(&own, &all(), &msg);
    assert!(fresh.iter().all(|&n| n == fresh[0]), "{fresh:?}");
    assert_eq!(fresh[0], takeover[0]);

    // The server asks the client to reset (client_no_context_takeover).
    let asks = all().with_peer_no_context_takeover(true);
    let (cp, sp) = negotiate(&all(), &asks);
    assert!(cp.own_no_context_takeover && sp.peer_no_context_takeover);
    let asked = sizes_of_repeats(&all(), &asks, &msg);
    assert!(asked.iter().all(|&n| n == asked[0]), "{asked:?}");
}

#[test]
fn server_no_context_takeover_round_trip() {
    // The client asks the server to reset its window; the server's
    // messages then all compress alike, and the client reads them back.
    let client = all()
        .with_peer_no_context_takeover(true)
        .with_peer_max_window_bits(Some(10));
    let (cp, sp) = negotiate(&client, &all());
    assert!(sp.own_no_context_takeover && cp.peer_no_context_takeover);
    assert_eq!((sp.own_window_bits, cp.peer_window_bits), (10, 10));
    let (mut c, mut s) = pair_with(&client, &all(), config());
    let msg = Message::text("the same message again and again ".repeat(30));
    let mut sizes = Vec::new();
    for _ in 0..3 {
        s.send(msg.clone()).unwrap();
        let out = transmit(&mut s);
        sizes.push(decode(&out)[0].payload.len());
        c.handle_read(&out, Instant::now());
        assert_eq!(events(&mut c), [Event::Message(msg.clone())]);
    }
    assert!(sizes.iter().all(|&n| n == sizes[0]), "{sizes:?}");
}

// ---- quickcheck: everything round-trips ----

/// Arbitrary permessage-deflate settings for one endpoint.
#[derive(Clone, Debug)]
struct Settings(DeflateConfig);

impl Arbitrary for Settings {
    fn arbitrary(g: &mut Gen) -> Self {
        let pick = |g: &mut Gen, lo: u8, hi: u8| lo + u8::arbitrary(g) % (hi - lo + 1);
        let peer_max_window_bits = bool::arbitrary(g).then(|| pick(g, 9, 15));
        Settings(
            DeflateConfig::default()
                .with_level(pick(g, 0, 9))
                .with_mem_level(pick(g, 1, 9))
                .with_max_window_bits(pick(g, 8, 15))
                .with_peer_max_window_bits(peer_max_window_bits)
                .with_no_context_takeover(bool::arbitrary(g))
                .with_peer_no_context_takeover(bool::arbitrary(g))
                .with_threshold([0, 1, 64, 200][usize::arbitrary(g) % 4]),
        )
    }
}

/// A message to send, and how: whole (maybe uncompressed) or streamed in
/// pieces.
#[derive(Clone, Debug)]
struct Send {
    kind: DataKind,
    data: Vec<u8>,
    /// Streamed, cut at these points (None: sent whole).
    cuts: Option<Vec<usize>>,
    uncompressed: bool,
}

impl Arbitrary for Send {
    fn arbitrary(g: &mut Gen) -> Self {
        let kind = if bool::arbitrary(g) {
            DataKind::Text
        } else {
            DataKind::Binary
        };
        let unit = match kind {
            DataKind::Text => String::arbitrary(g).into_bytes(),
            DataKind::Binary => Vec::<u8>::arbitrary(g),
        };
        // Repeat whole units (text stays valid) to a size that spans the
        // inflate step now and then.
        let target = match usize::arbitrary(g) % 20 {
            0 => 70_000 + usize::arbitrary(g) % 70_000,
            1..=5 => usize::arbitrary(g) % 2000,
            _ => 0,
        };
        let mut data = unit.clone();
        while !unit.is_empty() && data.len() < target {
            data.extend_from_slice(&unit);
        }
        let cuts = bool::arbitrary(g).then(|| {
            let n = usize::arbitrary(g) % 5;
            (0..n)
                .map(|_| usize::arbitrary(g) % (data.len() + 1))
                .collect()
        });
        Send {
            kind,
            data,
            cuts,
            uncompressed: usize::arbitrary(g) % 5 == 0,
        }
    }
}

impl Send {
    fn message(&self) -> Message {
        match self.kind {
            DataKind::Text => Message::text(String::from_utf8(self.data.clone()).unwrap()),
            DataKind::Binary => Message::binary(self.data.clone()),
        }
    }

    fn send(&self, c: &mut Connection) {
        match &self.cuts {
            None if self.uncompressed => c.send_uncompressed(self.message()).unwrap(),
            None => c.send(self.message()).unwrap(),
            Some(cuts) => {
                let mut cuts = cuts.clone();
                cuts.sort_unstable();
                cuts.push(self.data.len());
                let mut start = 0;
                for (i, &end) in cuts.iter().enumerate() {
                    let piece = Bytes::copy_from_slice(&self.data[start..end]);
                    c.send_chunk(self.kind, piece, i + 1 == cuts.len()).unwrap();
                    start = end;
                }
            }
        }
    }
}

fn check(cases: u64, prop: impl quickcheck::Testable) {
    QuickCheck::new().tests(cases).quickcheck(prop);
}

/// Messages sent each way between a pair with these settings arrive
/// whole and in order, whatever the fragment size and the reads.
fn both_ways(
    client: &DeflateConfig,
    server: &DeflateConfig,
    (from_client, from_server): (&[Send], &[Send]),
    fragment: u16,
    chunks: bool,
    reads: &[usize],
) -> bool {
    let config = config()
        .with_fragment_size(usize::from(fragment).max(1) * 7)
        .with_deliver_chunks(chunks);
    let (mut c, mut s) = pair_with(client, server, config);
    let ok = one_way(&mut c, &mut s, from_client, reads, chunks)
        && one_way(&mut s, &mut c, from_server, reads, chunks);
    if !ok {
        eprintln!("client {client:?}\nserver {server:?}");
    }
    ok
}

#[test]
fn round_trip_any_settings_messages_and_splits() {
    #[allow(clippy::too_many_arguments)]
    fn prop(
        client: Settings,
        server: Settings,
        from_client: Vec<Send>,
        from_server: Vec<Send>,
        fragment: u16,
        chunks: bool,
        reads: Vec<usize>,
    ) -> bool {
        let sends = (&from_client[..], &from_server[..]);
        both_ways(&client.0, &server.0, sends, fragment, chunks, &reads)
    }
    check(
        200,
        prop as fn(Settings, Settings, Vec<Send>, Vec<Send>, u16, bool, Vec<usize>) -> bool,
    );
}

#[test]
fn round_trip_level_one_any_settings_messages_and_splits() {
    // Level 1 is tether's own encoder: the same round trip with it on both
    // sides, whatever the windows, takeover and fragmenting.
    fn prop(
        client: Settings,
        server: Settings,
        from_client: Vec<Send>,
        from_server: Vec<Send>,
        fragment: u16,
        reads: Vec<usize>,
    ) -> bool {
        let (client, server) = (client.0.with_level(1), server.0.with_level(1));
        let sends = (&from_client[..], &from_server[..]);
        both_ways(&client, &server, sends, fragment, false, &reads)
    }
    check(
        150,
        prop as fn(Settings, Settings, Vec<Send>, Vec<Send>, u16, Vec<usize>) -> bool,
    );
}

/// JSON records as an API would stream them.
fn json_records(seed: u64, n: usize) -> Vec<String> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!(
                "{{\"id\":{},\"name\":\"user{}\",\"state\":\"{}\",\"score\":{}}}",
                x % 1_000_000,
                x % 5000,
                ["open", "closed", "pending"][(x % 3) as usize],
                x % 100_000
            )
        })
        .collect()
}

#[test]
fn level_one_streams_at_every_window_through_connections() {
    // Many messages with context takeover, single records and batches far
    // larger than the window, empty ones, a long run and noise; messages
    // split into frames of 100 bytes, read back in 1000-byte reads by a
    // peer whose inflater has exactly the negotiated window.
    let records = json_records(3, 600);
    let mut noise = Xoshiro256::from_seed(9);
    let mut sends: Vec<Message> = records.iter().map(|r| Message::text(r.clone())).collect();
    sends.push(Message::text(records.concat()));
    sends.push(Message::binary(Vec::new()));
    sends.push(Message::binary(vec![7u8; 70_000]));
    sends.push(Message::binary(
        (0..50_000)
            .map(|_| noise.next_u64() as u8)
            .collect::<Vec<u8>>(),
    ));
    sends.push(Message::text(records[..300].concat()));
    for bits in 9..=15 {
        for no_context_takeover in [false, true] {
            let client = all()
                .with_max_window_bits(bits)
                .with_no_context_takeover(no_context_takeover);
            let (mut c, mut s) = pair_with(&client, &all(), config().with_fragment_size(100));
            assert_eq!(negotiate(&client, &all()).1.peer_window_bits, bits);
            for m in &sends {
                c.send(m.clone()).unwrap();
            }
            let cuts: Vec<usize> = (1..10_000).map(|i| i * 1000).collect();
            let got = deliver(&mut c, &mut s, &cuts);
            assert!(errors(&got).is_empty(), "{bits}: {:?}", errors(&got));
            assert!(messages(&got) == sends, "{bits} {no_context_takeover}");
        }
    }
}

#[test]
fn level_one_context_takeover_compresses_json_records() {
    // One record per message: the encoder must find repeats in earlier
    // messages (the bench-deflate corpus gets about 3:1).
    let (mut c, mut s) = pair();
    let records = json_records(5, 400);
    let raw: usize = records.iter().map(String::len).sum();
    for r in &records {
        c.send(Message::text(r.clone())).unwrap();
    }
    let wire = transmit(&mut c);
    s.handle_read(&wire, Instant::now());
    let got = messages(&events(&mut s));
    assert_eq!(got.len(), records.len());
    assert!(got
        .iter()
        .zip(&records)
        .all(|(m, r)| *m == Message::text(r.clone())));
    assert!(raw > 2 * wire.len(), "{raw} bytes became {}", wire.len());
}

/// Queues every message on `sender`, then reads them back on `receiver` in
/// arbitrary pieces: they must come out whole, in order, without errors.
fn one_way(
    sender: &mut Connection,
    receiver: &mut Connection,
    sends: &[Send],
    reads: &[usize],
    chunks: bool,
) -> bool {
    for m in sends {
        m.send(sender);
    }
    let events = deliver(sender, receiver, reads);
    let got = if chunks {
        reassemble(&events)
    } else {
        messages(&events)
    };
    let want: Vec<Message> = sends.iter().map(Send::message).collect();
    got == want && errors(&events).is_empty()
}

/// Chunk events put back together into messages.
fn reassemble(events: &[Event]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut cur: Option<(DataKind, Vec<u8>)> = None;
    for ev in events {
        if let Event::Chunk { kind, data, fin } = ev {
            let (k, buf) = cur.get_or_insert_with(|| (*kind, Vec::new()));
            assert_eq!(k, kind);
            buf.extend_from_slice(data);
            if *fin {
                let (k, buf) = cur.take().unwrap();
                out.push(match k {
                    DataKind::Text => Message::text(String::from_utf8(buf).unwrap()),
                    DataKind::Binary => Message::binary(buf),
                });
            }
        }
    }
    out
}

#[test]
fn negotiated_windows_are_honoured() {
    // Every window size, both ways: a server limited to 9..15 bits and a
    // client told to use them, with a message bigger than any window.
    let msg = Message::binary(
        (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8 % 17)
            .collect::<Vec<u8>>(),
    );
    for bits in 9..=15 {
        let client = all()
            .with_max_window_bits(bits)
            .with_peer_max_window_bits(Some(bits));
        let server = all().with_max_window_bits(15);
        let (cp, sp) = negotiate(&client, &server);
        assert_eq!(
            (cp.own_window_bits, cp.peer_window_bits, sp.own_window_bits),
            (bits, bits, bits)
        );
        let (mut c, mut s) = pair_with(&client, &server, config());
        c.send(msg.clone()).unwrap();
        s.send(msg.clone()).unwrap();
        s.handle_read(&transmit(&mut c), Instant::now());
        c.handle_read(&transmit(&mut s), Instant::now());
        assert_eq!(events(&mut s), [Event::Message(msg.clone())], "{bits}");
        assert_eq!(events(&mut c), [Event::Message(msg.clone())], "{bits}");
    }
}

/// The error events after reading `bytes` in pieces of `piece` bytes.
fn errors_in_pieces(config: Config, bytes: &[u8], piece: usize) -> Vec<Error> {
    let mut s = server_with(config);
    for p in bytes.chunks(piece) {
        s.handle_read(p, Instant::now());
    }
    errors(&events(&mut s)).into_iter().cloned().collect()
}

/// Of a compressed message's faults the first in its inflated bytes is
/// reported, however reads cut it: text that is not UTF-8 before corrupt
/// data, or before the size limit is passed. One large read used to report
/// the fault inflation met last (corrupt data, 1007 but another error; the
/// size limit, 1009 instead of 1007). Found by fuzz/connection.
#[test]
fn the_first_fault_of_a_compressed_message_is_reported_for_any_reads() {
    let mut corrupt_after_bad_text = deflated(b"text that goes bad \xff here");
    corrupt_after_bad_text.extend_from_slice(&[0xff; 8]);
    let cases = [
        (corrupt_after_bad_text, config()),
        (
            deflated(&[&b"\xff"[..], &[b'a'; 5000]].concat()),
            config().with_max_message_size(100),
        ),
    ];
    for (payload, config) in cases {
        let frame = Raw::to(Role::Server, TEXT, &payload).rsv(RSV1).encode();
        for piece in [frame.len(), 7, 1] {
            assert_eq!(
                errors_in_pieces(config.clone(), &frame, piece),
                [Error::Protocol(ProtocolError::InvalidUtf8)],
                "reads of {piece} bytes"
            );
        }
    }
}

/// On a connection that negotiated permessage-deflate, a prepared message
/// is compressed per connection (each has its own compressor and, with
/// context takeover, its own window), giving the bytes `send` gives, and
/// the peer reads it back. Below the threshold the shared frame goes out
/// uncompressed, as `send` would send it.
#[test]
fn prepared_messages_are_compressed_per_connection() {
    use tether_core::PreparedMessage;
    let text = "{\"tick\":1,\"price\":42.5,\"symbol\":\"TTHR\"},".repeat(20);
    let p = PreparedMessage::text(text.clone());
    let (mut c, mut s) = pair();
    let (_, mut plain) = pair();
    for _ in 0..3 {
        s.send_prepared(&p).unwrap();
        plain.send(Message::text(text.clone())).unwrap();
    }
    let wire = transmit(&mut s);
    assert_eq!(wire, transmit(&mut plain));
    let frames = decode(&wire);
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| f.rsv == RSV1));
    assert!(wire.len() < text.len(), "compressed: {} bytes", wire.len());
    let now = Instant::now();
    c.handle_read(&wire, now);
    let evs: Vec<Event> = std::iter::from_fn(|| c.poll_event()).collect();
    assert_eq!(evs, vec![Event::Message(Message::text(text.clone())); 3]);

    // Default threshold (64 bytes): a small message is not compressed, and
    // the shared frame itself is queued.
    let (_, mut s) = pair_with(
        &DeflateConfig::default(),
        &DeflateConfig::default(),
        config(),
    );
    let small = PreparedMessage::binary(b"tiny");
    s.send_prepared(&small).unwrap();
    let mut iov = [std::io::IoSlice::new(&[]); 2];
    assert_eq!(s.poll_transmit(&mut iov), 1);
    assert_eq!(iov[0].as_ptr(), small.frame().as_ptr());
}
