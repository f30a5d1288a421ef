//! Unit behaviour of `Connection`, driven byte for byte and instant for
//! instant: framing, validation and the close code of every failure, the
//! close handshake, keepalive, outgoing fragmentation and flow control.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tether_core::{
    Bytes, CloseCode, CloseFrame, ClosePayloadError, Config, Connection, DataKind, Error, Event,
    Message, ProtocolError, Role, State,
};

const ROLES: [Role; 2] = [Role::Server, Role::Client];

/// Feeds `bytes` to a fresh connection of `role` and checks that it fails
/// with exactly `error` and queues a close frame with `code`.
fn assert_fails(role: Role, config: Config, bytes: &[u8], error: ProtocolError, code: u16) {
    let now = Instant::now();
    let mut c = conn_at(role, config, now);
    c.handle_read(bytes, now);
    assert_eq!(
        events(&mut c),
        [Event::Error(Error::Protocol(error.clone()))],
        "{role:?}, {error:?}"
    );
    assert_eq!(error.close_code(), CloseCode(code), "{error:?}");
    assert_eq!(sent_close_code(&mut c), Some(code), "{role:?}, {error:?}");
    assert_ne!(c.state(), State::Open);
    // Input after the failure is ignored.
    c.handle_read(&Raw::to(role, TEXT, "late").encode(), now);
    assert_eq!(events(&mut c), []);
}

/// Feeds frames to a fresh connection of `role` and returns its events.
fn receive(role: Role, frames: &[Raw]) -> Vec<Event> {
    let now = Instant::now();
    let mut c = conn(role, now);
    c.handle_read(&wire(frames), now);
    events(&mut c)
}

fn binary(data: impl Into<Bytes>) -> Event {
    Event::Message(Message::binary(data))
}

fn text(s: &'static str) -> Event {
    Event::Message(Message::text(s))
}

// ---- payload length forms ----

/// Every payload length form (7-bit, 16-bit, 64-bit) is read and written,
/// at the boundaries, by both roles, with the shortest header.
#[test]
fn payload_length_forms() {
    for role in ROLES {
        for (len, len_bytes) in [(0, 0), (125, 0), (126, 2), (65535, 2), (65536, 8)] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let received = receive(role, &[Raw::to(role, BINARY, &payload)]);
            assert_eq!(
                received,
                [binary(payload.clone())],
                "{role:?} receiving {len}"
            );

            let now = Instant::now();
            let mut c = conn(role, now);
            c.send(Message::binary(payload.clone())).unwrap();
            let frames = sent_frames(&mut c);
            assert_eq!(frames.len(), 1, "{role:?} sending {len}");
            let f = &frames[0];
            let mask_bytes = if role == Role::Client { 4 } else { 0 };
            assert_eq!((f.fin, f.rsv, f.opcode), (true, 0, BINARY));
            assert_eq!(
                f.header_len,
                2 + len_bytes + mask_bytes,
                "{role:?} sending {len}"
            );
            assert_eq!(f.payload, payload);
        }
    }
}

/// A payload that arrives a byte at a time still makes one message.
#[test]
fn frames_arrive_in_pieces() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        let bytes = wire(&[
            Raw::to(role, TEXT, "héllo"),
            Raw::to(role, BINARY, [0u8; 200]),
        ]);
        let mut got = Vec::new();
        for b in &bytes {
            c.handle_read(std::slice::from_ref(b), now);
            got.extend(events(&mut c));
        }
        assert_eq!(got, [text("héllo"), binary(vec![0u8; 200])], "{role:?}");
    }
}

/// The zero-copy read path (read_buf + commit_read) parses like handle_read.
#[test]
fn read_buf_and_commit_read() {
    let now = Instant::now();
    let mut c = conn(Role::Server, now);
    let bytes = wire(&[
        Raw::to(Role::Server, TEXT, "one"),
        Raw::to(Role::Server, TEXT, "two"),
    ]);
    let (a, b) = bytes.split_at(5);
    for part in [a, b] {
        let buf = c.read_buf();
        assert!(buf.len() >= part.len());
        buf[..part.len()].copy_from_slice(part);
        c.commit_read(part.len(), now);
    }
    // A read_buf that is never committed (the read would block) adds nothing.
    let _ = c.read_buf();
    assert_eq!(events(&mut c), [text("one"), text("two")]);
}

/// Feeds `bytes` through read_buf/commit_read, at most `step` bytes per
/// read, and returns the events.
fn read_in_place(c: &mut Connection, bytes: &[u8], step: usize, now: Instant) -> Vec<Event> {
    let mut got = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let buf = c.read_buf();
        let n = buf.len().min(rest.len()).min(step);
        buf[..n].copy_from_slice(&rest[..n]);
        c.commit_read(n, now);
        rest = &rest[n..];
        got.extend(events(c));
    }
    got
}

/// Large frames are read straight into their message: once a large
/// frame's header is in, read_buf offers the rest of its payload (not a
/// read_chunk_size buffer), and the messages come out the same for any
/// read size, masked or not, fragmented with a control frame in between.
#[test]
fn large_frames_are_read_in_place() {
    let big: Vec<u8> = (0..100_000).map(|i| (i % 253) as u8).collect();
    let tail: Vec<u8> = (0..70_000).map(|i| (i % 7) as u8).collect();
    let accents = "é".repeat(30_000);
    for role in ROLES {
        let frames = [
            Raw::to(role, BINARY, "first"),
            Raw::to(role, BINARY, &big).fin(false),
            Raw::to(role, PING, "p"),
            Raw::to(role, CONT, &tail),
            Raw::to(role, TEXT, &accents),
            Raw::to(role, TEXT, "small"),
        ];
        let bytes = wire(&frames);
        let mut whole = big.clone();
        whole.extend_from_slice(&tail);
        let want = [
            binary(&b"first"[..]),
            Event::Ping(Bytes::from_static(b"p")),
            binary(whole),
            Event::Message(Message::text(accents.clone())),
            text("small"),
        ];
        for step in [1, 7, 1000, 4096, 16 << 10, 100_003, usize::MAX] {
            let now = Instant::now();
            let mut c = conn(role, now);
            assert_eq!(
                read_in_place(&mut c, &bytes, step, now),
                want,
                "{role:?}, step {step}"
            );
        }

        // handle_read copies a frame's payload that goes past the bytes it
        // was given straight into the message: the same events.
        // Reads of 16 KiB and more are searched past whole frames for such
        // a frame (the first frame here is whole).
        for step in [1, 7, 1000, 4096, 20_000, 65_536, 100_003, usize::MAX] {
            let now = Instant::now();
            let mut c = conn(role, now);
            let mut got = Vec::new();
            for piece in bytes.chunks(step) {
                c.handle_read(piece, now);
                got.extend(events(&mut c));
            }
            assert_eq!(got, want, "{role:?}, handle_read step {step}");
        }

        // The header and 10 payload bytes, then the rest is offered whole.
        let now = Instant::now();
        let mut c = conn(role, now);
        let header = if role == Role::Server { 14 } else { 10 };
        let first = if role == Role::Server { 11 } else { 7 };
        c.handle_read(&bytes[..first], now);
        assert_eq!(events(&mut c), [binary(&b"first"[..])]);
        let (bytes, want) = (&bytes[first..], &want[1..]);
        c.handle_read(&bytes[..header + 10], now);
        assert_eq!(c.read_buf().len(), 100_000 - 10, "{role:?}");
        // Not committed (the read would block), then the bytes arrive by
        // handle_read instead: nothing is lost or doubled.
        c.handle_read(&bytes[header + 10..], now);
        assert_eq!(events(&mut c), want, "{role:?}");
    }
}

/// Text read in place is validated like any other: a bad byte deep in a
/// large frame fails with 1007, and so does a character cut by `fin`.
#[test]
fn text_read_in_place_is_validated() {
    let mut bad = "a".repeat(40_000).into_bytes();
    bad[30_000] = 0xFF;
    let mut cut = "é".repeat(20_000).into_bytes();
    cut.pop();
    for payload in [bad, cut] {
        let now = Instant::now();
        let mut c = conn(Role::Server, now);
        let got = read_in_place(
            &mut c,
            &Raw::to(Role::Server, TEXT, &payload).encode(),
            5000,
            now,
        );
        assert_eq!(
            got,
            [Event::Error(Error::Protocol(ProtocolError::InvalidUtf8))]
        );
        assert_eq!(sent_close_code(&mut c), Some(1007));
    }
}

// ---- masking ----

/// A server must fail the connection on an unmasked client frame (1002).
#[test]
fn server_rejects_unmasked_frames() {
    let frame = Raw::new(TEXT, "hi").encode();
    assert_fails(
        Role::Server,
        config(),
        &frame,
        ProtocolError::UnmaskedFrame,
        1002,
    );
}

/// A client must fail the connection on a masked server frame (1002).
#[test]
fn client_rejects_masked_frames() {
    let frame = Raw::new(TEXT, "hi").mask(Some(KEY)).encode();
    assert_fails(
        Role::Client,
        config(),
        &frame,
        ProtocolError::MaskedFrame,
        1002,
    );
}

/// Masking applies to control frames too.
#[test]
fn masking_is_checked_on_control_frames() {
    let ping = Raw::new(PING, "x").encode();
    assert_fails(
        Role::Server,
        config(),
        &ping,
        ProtocolError::UnmaskedFrame,
        1002,
    );
    let ping = Raw::new(PING, "x").mask(Some(KEY)).encode();
    assert_fails(
        Role::Client,
        config(),
        &ping,
        ProtocolError::MaskedFrame,
        1002,
    );
}

// ---- header checks ----

/// RSV bits without a negotiated extension are a protocol error.
#[test]
fn reserved_bits_fail_with_1002() {
    for role in ROLES {
        for rsv in [1, 2, 4, 7] {
            let frame = Raw::to(role, TEXT, "x").rsv(rsv).encode();
            assert_fails(
                role,
                config(),
                &frame,
                ProtocolError::ReservedBits(rsv),
                1002,
            );
        }
    }
}

/// Reserved opcodes (3-7, 0xB-0xF) are a protocol error.
#[test]
fn reserved_opcodes_fail_with_1002() {
    for role in ROLES {
        for op in (3..=7).chain(0xB..=0xF) {
            let frame = Raw::to(role, op, "").encode();
            assert_fails(
                role,
                config(),
                &frame,
                ProtocolError::ReservedOpcode(op),
                1002,
            );
        }
    }
}

/// Reads of 16 KiB and more are searched past whole frames for a large
/// one (see `handle_read`); bad frames found that way fail as anywhere:
/// a reserved opcode whole or cut off, and a bad length after a good frame.
#[test]
fn bad_frames_in_large_reads_fail_with_1002() {
    for role in ROLES {
        let whole = Raw::to(role, 3, vec![1u8; 20_000]).encode();
        assert_fails(
            role,
            config(),
            &whole,
            ProtocolError::ReservedOpcode(3),
            1002,
        );
        let cut = Raw::to(role, 3, vec![1u8; 40_000]).encode();
        assert_fails(
            role,
            config(),
            &cut[..20_000],
            ProtocolError::ReservedOpcode(3),
            1002,
        );

        let big = vec![2u8; 20_000];
        let mut bytes = Raw::to(role, BINARY, &big).encode();
        bytes.extend_from_slice(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        if role == Role::Server {
            let at = bytes.len() - 9;
            bytes[at] |= 0x80;
            bytes.extend_from_slice(&KEY);
        }
        let now = Instant::now();
        let mut c = conn(role, now);
        c.handle_read(&bytes, now);
        assert_eq!(
            events(&mut c),
            [
                binary(big.clone()),
                Event::Error(Error::Protocol(ProtocolError::LengthOverflow))
            ],
            "{role:?}"
        );
        assert_eq!(sent_close_code(&mut c), Some(1002), "{role:?}");
    }
}

/// Control frames carry at most 125 bytes.
#[test]
fn long_control_frames_fail_with_1002() {
    for role in ROLES {
        for op in [PING, PONG, CLOSE] {
            let frame = Raw::to(role, op, [b'a'; 126]).encode();
            assert_fails(
                role,
                config(),
                &frame,
                ProtocolError::ControlFrameTooLong(126),
                1002,
            );
        }
        // 125 is fine.
        let ev = receive(role, &[Raw::to(role, PING, [b'a'; 125])]);
        assert_eq!(ev, [Event::Ping(Bytes::from(vec![b'a'; 125]))]);
    }
}

/// Control frames may not be fragmented.
#[test]
fn fragmented_control_frames_fail_with_1002() {
    for role in ROLES {
        for op in [PING, PONG, CLOSE] {
            let frame = Raw::to(role, op, "x").fin(false).encode();
            assert_fails(
                role,
                config(),
                &frame,
                ProtocolError::FragmentedControlFrame,
                1002,
            );
        }
    }
}

/// A continuation with nothing to continue is a protocol error.
#[test]
fn continuation_without_a_message_fails_with_1002() {
    for role in ROLES {
        let frame = Raw::to(role, CONT, "x").encode();
        assert_fails(
            role,
            config(),
            &frame,
            ProtocolError::UnexpectedContinuation,
            1002,
        );
        // Also after a message has ended.
        let bytes = wire(&[
            Raw::to(role, TEXT, "a").fin(false),
            Raw::to(role, CONT, "b"),
        ]);
        let mut c = conn(role, Instant::now());
        c.handle_read(&bytes, Instant::now());
        assert_eq!(events(&mut c), [text("ab")]);
        c.handle_read(&Raw::to(role, CONT, "c").encode(), Instant::now());
        assert_eq!(
            events(&mut c),
            [Event::Error(Error::Protocol(
                ProtocolError::UnexpectedContinuation
            ))]
        );
        assert_eq!(sent_close_code(&mut c), Some(1002));
    }
}

/// A new text or binary frame inside a fragmented message is a protocol error.
#[test]
fn new_message_inside_fragmented_message_fails_with_1002() {
    for role in ROLES {
        for op in [TEXT, BINARY] {
            let bytes = wire(&[Raw::to(role, TEXT, "a").fin(false), Raw::to(role, op, "b")]);
            assert_fails(
                role,
                config(),
                &bytes,
                ProtocolError::ExpectedContinuation,
                1002,
            );
        }
    }
}

/// A 64-bit length with its top bit set is a protocol error.
#[test]
fn length_with_top_bit_fails_with_1002() {
    for role in ROLES {
        let mut bytes = vec![0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        if role == Role::Server {
            bytes[1] |= 0x80;
            bytes.extend_from_slice(&KEY);
        }
        assert_fails(role, config(), &bytes, ProtocolError::LengthOverflow, 1002);
    }
}

// ---- UTF-8 ----

/// Text that is not UTF-8 fails with 1007, in one frame or across fragments.
#[test]
fn invalid_utf8_fails_with_1007() {
    for role in ROLES {
        let bad = [
            wire(&[Raw::to(role, TEXT, b"abc\xff")]),
            // A code point cut across fragments and completed with a bad byte.
            wire(&[
                Raw::to(role, TEXT, b"\xce").fin(false),
                Raw::to(role, CONT, b"A"),
            ]),
            // A message ending inside a code point.
            wire(&[
                Raw::to(role, TEXT, b"ok").fin(false),
                Raw::to(role, CONT, b"\xe2\x82"),
            ]),
            // A surrogate, spread over three fragments.
            wire(&[
                Raw::to(role, TEXT, b"\xed").fin(false),
                Raw::to(role, CONT, b"\xa0").fin(false),
                Raw::to(role, CONT, b"\x80"),
            ]),
        ];
        for bytes in bad {
            assert_fails(role, config(), &bytes, ProtocolError::InvalidUtf8, 1007);
        }
        // A code point cut across fragments is fine when it completes.
        let ev = receive(
            role,
            &[
                Raw::to(role, TEXT, b"\xe2\x82").fin(false),
                Raw::to(role, CONT, b"\xac!"),
            ],
        );
        assert_eq!(ev, [text("€!")], "{role:?}");
    }
}

/// Invalid text fails as soon as it is seen, before the message ends: in a
/// non-final fragment, and in the first bytes of a frame whose rest has not
/// arrived.
#[test]
fn invalid_utf8_fails_fast() {
    for role in ROLES {
        let first_fragment = Raw::to(role, TEXT, b"fine\xc0\xaf").fin(false).encode();
        assert_fails(
            role,
            config(),
            &first_fragment,
            ProtocolError::InvalidUtf8,
            1007,
        );

        let frame = Raw::to(role, TEXT, b"\xff and much more to come").encode();
        let header_len = if role == Role::Server { 6 } else { 2 };
        assert_fails(
            role,
            config(),
            &frame[..header_len + 1],
            ProtocolError::InvalidUtf8,
            1007,
        );
    }
}

/// Binary payloads are not fed to the UTF-8 validator: a text message after
/// a binary one that ended inside a "code point" is validated on its own.
#[test]
fn utf8_state_is_per_text_message() {
    for role in ROLES {
        let ev = receive(
            role,
            &[
                Raw::to(role, BINARY, b"\xe2\x82"),
                Raw::to(role, TEXT, b"\xac"),
            ],
        );
        let error = Event::Error(Error::Protocol(ProtocolError::InvalidUtf8));
        assert_eq!(ev, [binary(&b"\xe2\x82"[..]), error], "{role:?}");
        let ev = receive(
            role,
            &[
                Raw::to(role, BINARY, b"\xe2\x82"),
                Raw::to(role, TEXT, b"ok"),
            ],
        );
        assert_eq!(ev, [binary(&b"\xe2\x82"[..]), text("ok")], "{role:?}");
    }
}

// ---- close payloads ----

/// Close payloads must be empty or a sendable code with a UTF-8 reason.
#[test]
fn invalid_close_payloads() {
    for role in ROLES {
        let cases: Vec<(Vec<u8>, ClosePayloadError, u16)> = vec![
            (vec![0x03], ClosePayloadError::Truncated, 1002),
            (
                close_payload(1005, b""),
                ClosePayloadError::InvalidCode(1005),
                1002,
            ),
            (
                close_payload(1006, b""),
                ClosePayloadError::InvalidCode(1006),
                1002,
            ),
            (
                close_payload(999, b""),
                ClosePayloadError::InvalidCode(999),
                1002,
            ),
            (
                close_payload(1015, b""),
                ClosePayloadError::InvalidCode(1015),
                1002,
            ),
            (
                close_payload(1004, b""),
                ClosePayloadError::InvalidCode(1004),
                1002,
            ),
            (
                close_payload(5000, b""),
                ClosePayloadError::InvalidCode(5000),
                1002,
            ),
            (
                close_payload(1000, b"bad \xff reason"),
                ClosePayloadError::InvalidReason,
                1007,
            ),
        ];
        for (payload, err, code) in cases {
            let frame = Raw::to(role, CLOSE, payload).encode();
            assert_fails(
                role,
                config(),
                &frame,
                ProtocolError::InvalidClosePayload(err),
                code,
            );
        }
    }
}

// ---- limits ----

/// A frame over max_frame_size fails with 1009 as soon as its header is
/// read, before any payload is buffered.
#[test]
fn frame_over_max_frame_size_fails_with_1009() {
    for role in ROLES {
        let config = common::config().with_max_frame_size(100);
        let ok = Raw::to(role, BINARY, [7u8; 100]).encode();
        let now = Instant::now();
        let mut c = conn_at(role, config.clone(), now);
        c.handle_read(&ok, now);
        assert_eq!(events(&mut c), [binary(vec![7u8; 100])]);

        let frame = Raw::to(role, BINARY, [7u8; 101]).encode();
        let header_len = if role == Role::Server { 8 } else { 4 };
        let error = ProtocolError::FrameTooLarge {
            size: 101,
            limit: 100,
        };
        assert_fails(role, config, &frame[..header_len], error, 1009);
    }
}

/// A message over max_message_size (all fragments together) fails with 1009
/// at the header of the fragment that crosses the limit.
#[test]
fn message_over_max_message_size_fails_with_1009() {
    for role in ROLES {
        let config = common::config().with_max_message_size(100);
        let exact = wire(&[
            Raw::to(role, BINARY, [1u8; 60]).fin(false),
            Raw::to(role, CONT, [2u8; 40]),
        ]);
        let now = Instant::now();
        let mut c = conn_at(role, config.clone(), now);
        c.handle_read(&exact, now);
        assert_eq!(
            events(&mut c),
            [binary([[1u8; 60].as_slice(), &[2u8; 40]].concat())]
        );

        let first = Raw::to(role, BINARY, [1u8; 60]).fin(false).encode();
        let second = Raw::to(role, CONT, [2u8; 60]).encode();
        let header_len = if role == Role::Server { 6 } else { 2 };
        let bytes = [first.as_slice(), &second[..header_len]].concat();
        let error = ProtocolError::MessageTooLarge {
            size: 120,
            limit: 100,
        };
        assert_fails(role, config, &bytes, error, 1009);
    }
}

// ---- ping and pong ----

/// A ping is answered with a pong carrying the same payload.
#[test]
fn ping_is_answered_with_the_same_payload() {
    for role in ROLES {
        for payload in [&b""[..], b"hello", &[0xAB; 125]] {
            let now = Instant::now();
            let mut c = conn(role, now);
            c.handle_read(&Raw::to(role, PING, payload).encode(), now);
            assert_eq!(
                events(&mut c),
                [Event::Ping(Bytes::copy_from_slice(payload))]
            );
            let frames = sent_frames(&mut c);
            assert_eq!(frames.len(), 1);
            assert_eq!((frames[0].opcode, frames[0].fin), (PONG, true));
            assert_eq!(frames[0].payload, payload, "{role:?}");
        }
    }
}

/// A peer that floods pings while never reading its socket cannot grow the
/// transmit queue without bound: past the high-water mark only the latest
/// pings are answered, and those answers still go out before a close.
#[test]
fn ping_flood_is_answered_within_bounds() {
    for role in ROLES {
        let now = Instant::now();
        let config = config()
            .with_write_high_water(4096)
            .with_write_low_water(1024);
        let mut c = conn_at(role, config, now);
        for i in 0..10_000u32 {
            let payload = format!("{i:0>100}");
            c.handle_read(&Raw::to(role, PING, payload).encode(), now);
            while c.poll_event().is_some() {}
        }
        // 4096 framed bytes at most before the mark, plus 32 owed pongs of
        // 100 bytes, each with its header.
        assert!(
            c.buffered_amount() <= 4096 + 114 + 32 * 102,
            "{}",
            c.buffered_amount()
        );
        c.close(CloseCode::NORMAL, "").unwrap();
        let frames = sent_frames(&mut c);
        let (last, pongs) = frames.split_last().unwrap();
        assert_eq!(last.opcode, CLOSE, "{role:?}: the close comes last");
        assert!(pongs.iter().all(|f| f.opcode == PONG));
        // The newest ping is among those answered.
        assert_eq!(
            pongs.last().unwrap().payload,
            format!("{:0>100}", 9_999).as_bytes()
        );
    }
}

/// A ping between the fragments of a message is answered at once and does
/// not disturb the message.
#[test]
fn ping_between_fragments() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        c.handle_read(
            &wire(&[
                Raw::to(role, TEXT, "Hel").fin(false),
                Raw::to(role, PING, "p1"),
                Raw::to(role, CONT, "lo, ").fin(false),
                Raw::to(role, PONG, "unsolicited"),
                Raw::to(role, CONT, "world"),
            ]),
            now,
        );
        assert_eq!(
            events(&mut c),
            [
                Event::Ping(Bytes::from_static(b"p1")),
                Event::Pong {
                    payload: Bytes::from_static(b"unsolicited"),
                    latency: None
                },
                text("Hello, world"),
            ]
        );
        let frames = sent_frames(&mut c);
        assert_eq!(
            frames
                .iter()
                .map(|f| (f.opcode, f.payload.clone()))
                .collect::<Vec<_>>(),
            [(PONG, b"p1".to_vec())]
        );
    }
}

/// Ping and pong payloads over 125 bytes are refused locally.
#[test]
fn sending_long_control_payloads_is_refused() {
    let mut c = conn(Role::Client, Instant::now());
    assert_eq!(
        c.ping(Bytes::from(vec![0; 126])),
        Err(Error::ControlPayloadTooLong(126))
    );
    assert_eq!(
        c.send(Message::Pong(Bytes::from(vec![0; 200]))),
        Err(Error::ControlPayloadTooLong(200))
    );
    assert!(!c.has_transmit());
    c.ping(Bytes::from(vec![0; 125])).unwrap();
    assert_eq!(sent_frames(&mut c)[0].payload, vec![0; 125]);
}

// ---- close handshake ----

/// Receiving a close frame reports it and echoes its code.
#[test]
fn received_close_is_echoed() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        c.handle_read(
            &Raw::to(role, CLOSE, close_payload(4001, b"bye")).encode(),
            now,
        );
        let frame = CloseFrame {
            code: CloseCode(4001),
            reason: "bye".into(),
        };
        assert_eq!(events(&mut c), [Event::Close(Some(frame))]);
        assert_eq!(sent_close_code(&mut c), Some(4001), "{role:?}");
        assert_ne!(c.state(), State::Open);

        // A close without a code is answered without a code.
        let mut c = conn(role, now);
        c.handle_read(&Raw::to(role, CLOSE, b"").encode(), now);
        assert_eq!(events(&mut c), [Event::Close(None)]);
        assert_eq!(sent_close_code(&mut c), None);
    }
}

/// The server closes TCP as soon as both close frames have crossed, in
/// either order.
#[test]
fn server_is_finished_after_close_exchange() {
    let now = Instant::now();
    // The server starts the close.
    let mut s = conn(Role::Server, now);
    s.close(CloseCode::NORMAL, "done").unwrap();
    assert_eq!(s.state(), State::Closing);
    assert!(!s.is_finished());
    let frames = sent_frames(&mut s);
    assert_eq!((frames.len(), frames[0].close_code()), (1, Some(1000)));
    assert_eq!(&frames[0].payload[2..], b"done");
    s.handle_read(
        &Raw::to(Role::Server, CLOSE, close_payload(1000, b"")).encode(),
        now,
    );
    assert_eq!(
        events(&mut s),
        [Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: String::new()
        }))]
    );
    assert!(s.is_finished());
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.poll_timeout(), None);
    assert!(!s.wants_read());
    assert!(!s.has_transmit(), "no second close frame");

    // The client starts the close.
    let mut s = conn(Role::Server, now);
    s.handle_read(
        &Raw::to(Role::Server, CLOSE, close_payload(1001, b"")).encode(),
        now,
    );
    assert!(s.is_finished());
    assert_eq!(sent_close_code(&mut s), Some(1001));
}

/// A client that has exchanged close frames waits for the server to end
/// TCP; EOF then finishes it without an error.
#[test]
fn client_waits_for_eof_after_close_exchange() {
    let now = Instant::now();
    let mut c = conn(Role::Client, now);
    c.handle_read(
        &Raw::to(Role::Client, CLOSE, close_payload(1000, b"")).encode(),
        now,
    );
    assert_eq!(sent_close_code(&mut c), Some(1000));
    assert!(!c.is_finished());
    assert_eq!(c.state(), State::Closing);
    c.handle_eof(at(now, 10));
    assert!(c.is_finished());
    assert_eq!(c.state(), State::Closed);
    assert_eq!(
        events(&mut c),
        [Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: String::new()
        }))],
        "no AbnormalClosure after a close handshake"
    );
}

/// A client whose server never ends TCP gives up at the close timeout.
#[test]
fn client_gives_up_at_close_timeout() {
    let now = Instant::now();
    let config = config().with_close_timeout(Duration::from_secs(3));
    let mut c = conn_at(Role::Client, config, now);
    c.close(CloseCode::GOING_AWAY, "").unwrap();
    assert_eq!(sent_close_code(&mut c), Some(1001));
    assert_eq!(c.poll_timeout(), Some(at(now, 3000)));
    c.handle_read(
        &Raw::to(Role::Client, CLOSE, close_payload(1001, b"")).encode(),
        at(now, 1000),
    );
    assert!(!c.has_transmit(), "the client's close is not sent twice");
    assert!(!c.is_finished());
    c.handle_timeout(at(now, 2999));
    assert!(!c.is_finished());
    c.handle_timeout(at(now, 3000));
    assert!(c.is_finished());
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.poll_timeout(), None);
}

/// A server whose client never answers its close gives up too.
#[test]
fn server_gives_up_at_close_timeout() {
    let now = Instant::now();
    let mut s = conn(Role::Server, now);
    s.close(CloseCode::NORMAL, "").unwrap();
    let deadline = now + s.config().close_timeout;
    assert_eq!(s.poll_timeout(), Some(deadline));
    s.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!s.is_finished());
    s.handle_timeout(deadline);
    assert!(s.is_finished());
}

/// Data received after our close, before the peer's, is still delivered.
#[test]
fn data_after_our_close_is_delivered() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        c.close(CloseCode::NORMAL, "").unwrap();
        c.handle_read(
            &wire(&[
                Raw::to(role, TEXT, "still"),
                Raw::to(role, CLOSE, close_payload(1000, b"")),
            ]),
            now,
        );
        assert_eq!(events(&mut c).first(), Some(&text("still")));
    }
}

/// Nothing can be sent once the close handshake has started.
#[test]
fn sending_after_close_fails() {
    for role in ROLES {
        let now = Instant::now();
        // After our own close.
        let mut c = conn(role, now);
        c.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(c.send(Message::text("x")), Err(Error::Closed));
        assert_eq!(c.send(Message::binary(&b"x"[..])), Err(Error::Closed));
        assert_eq!(c.ping(Bytes::new()), Err(Error::Closed));
        assert_eq!(
            c.send_chunk(DataKind::Binary, Bytes::new(), true),
            Err(Error::Closed)
        );
        // A second close is a no-op.
        c.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(sent_close_code(&mut c), Some(1000));

        // After the peer's close.
        let mut c = conn(role, now);
        c.handle_read(&Raw::to(role, CLOSE, b"").encode(), now);
        assert_eq!(c.send(Message::text("x")), Err(Error::Closed), "{role:?}");

        // After a failure.
        let mut c = conn(role, now);
        c.handle_read(&Raw::to(role, 3, b"").encode(), now);
        let _ = events(&mut c);
        assert_eq!(c.send(Message::text("x")), Err(Error::Closed), "{role:?}");
    }
}

/// close() refuses codes that may not appear on the wire.
#[test]
fn close_with_invalid_code_is_refused() {
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let mut c = conn(Role::Client, Instant::now());
        assert_eq!(
            c.close(CloseCode(code), ""),
            Err(Error::InvalidCloseCode(code))
        );
        assert_eq!(c.state(), State::Open);
        assert!(!c.has_transmit());
    }
}

/// A long close reason is cut to fit a control frame.
#[test]
fn close_reason_is_truncated() {
    let mut c = conn(Role::Server, Instant::now());
    c.close(CloseCode::NORMAL, &"é".repeat(100)).unwrap();
    let frames = sent_frames(&mut c);
    assert!(frames[0].payload.len() <= 125);
    assert!(std::str::from_utf8(&frames[0].payload[2..]).is_ok());
}

/// Data queued before close() goes out before the close frame.
#[test]
fn close_goes_out_after_queued_data() {
    let config = config().with_fragment_size(10);
    let mut c = conn_at(Role::Server, config, Instant::now());
    c.send(Message::binary(vec![1u8; 35])).unwrap();
    c.close(CloseCode::NORMAL, "").unwrap();
    let frames = sent_frames(&mut c);
    let ops: Vec<u8> = frames.iter().map(|f| f.opcode).collect();
    assert_eq!(ops, [BINARY, CONT, CONT, CONT, CLOSE]);
}

/// A message read before a violation in the same read is delivered first,
/// and a reply sent in answer goes out before the close frame.
#[test]
fn deferred_failure_lets_the_application_answer() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        let bytes = wire(&[
            Raw::to(role, TEXT, "question"),
            Raw::to(role, TEXT, "bad").rsv(2),
        ]);
        c.handle_read(&bytes, now);
        assert!(
            !c.has_transmit(),
            "no close before the application has seen the message"
        );
        assert_eq!(c.poll_event(), Some(text("question")));
        c.send(Message::text("answer")).unwrap();
        assert_eq!(
            c.poll_event(),
            Some(Event::Error(Error::Protocol(ProtocolError::ReservedBits(
                2
            ))))
        );
        assert_eq!(c.poll_event(), None);
        let frames = sent_frames(&mut c);
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(
            (frames[0].opcode, frames[0].payload.as_slice()),
            (TEXT, &b"answer"[..])
        );
        assert_eq!(frames[1].close_code(), Some(1002));
        assert_eq!(c.send(Message::text("too late")), Err(Error::Closed));
    }
}

/// TCP ending without a close frame is an abnormal closure.
#[test]
fn eof_without_close_is_abnormal() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        // Half a frame, then EOF.
        c.handle_read(&Raw::to(role, TEXT, "cut short").encode()[..4], now);
        c.handle_eof(now);
        assert_eq!(events(&mut c), [Event::Error(Error::AbnormalClosure)]);
        assert!(c.is_finished());
        assert_eq!(c.state(), State::Closed);
        assert!(!c.wants_read());
        assert!(!c.has_transmit(), "no close frame into a closed stream");
        c.handle_eof(now);
        assert_eq!(events(&mut c), [], "EOF is reported once");
    }
}

// ---- keepalive ----

fn keepalive_config() -> Config {
    Config::default()
        .with_ping_interval(Some(Duration::from_secs(1)))
        .with_ping_timeout(Some(Duration::from_secs(1)))
}

/// Runs the timer at `when` and returns the payload of the ping it sent.
fn keepalive_ping(c: &mut Connection, when: Instant) -> Vec<u8> {
    c.handle_timeout(when);
    let frames = sent_frames(c);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].opcode, PING);
    frames[0].payload.clone()
}

/// The keepalive ping goes out at the interval, and its pong gives the
/// round trip time.
#[test]
fn keepalive_ping_and_latency() {
    for role in ROLES {
        let t = Instant::now();
        let mut c = conn_at(role, keepalive_config(), t);
        assert_eq!(c.poll_timeout(), Some(at(t, 1000)));
        c.handle_timeout(at(t, 999));
        assert!(!c.has_transmit(), "no ping before the interval");

        let payload = keepalive_ping(&mut c, at(t, 1000));
        assert!(!payload.is_empty());
        assert_eq!(c.poll_timeout(), Some(at(t, 2000)), "pong deadline");

        c.handle_read(&Raw::to(role, PONG, &payload).encode(), at(t, 1250));
        let latency = Some(Duration::from_millis(250));
        assert_eq!(
            events(&mut c),
            [Event::Pong {
                payload: payload.clone().into(),
                latency
            }]
        );
        assert_eq!(c.latency(), latency);
        // Answered: the next ping is due an interval after the last one.
        assert_eq!(c.poll_timeout(), Some(at(t, 2000)));
        c.handle_timeout(at(t, 2000));
        assert!(events(&mut c).is_empty(), "no timeout once answered");
        let second = keepalive_ping(&mut c, at(t, 2000));
        assert_ne!(second, payload, "each ping has a fresh payload");
    }
}

/// A pong that does not echo the keepalive ping's payload does not count.
#[test]
fn unmatched_pong_does_not_count() {
    for role in ROLES {
        let t = Instant::now();
        let mut c = conn_at(role, keepalive_config(), t);
        let payload = keepalive_ping(&mut c, at(t, 1000));
        let mut wrong = payload.clone();
        wrong[0] ^= 1;
        c.handle_read(&Raw::to(role, PONG, &wrong).encode(), at(t, 1100));
        assert_eq!(
            events(&mut c),
            [Event::Pong {
                payload: wrong.into(),
                latency: None
            }]
        );
        assert_eq!(c.latency(), None);
        c.handle_timeout(at(t, 2000));
        assert_eq!(events(&mut c), [Event::Error(Error::KeepaliveTimeout)]);
    }
}

/// Without a pong, the connection fails with 1011 at interval + timeout.
#[test]
fn keepalive_timeout_fails_with_1011() {
    for role in ROLES {
        let t = Instant::now();
        let mut c = conn_at(role, keepalive_config(), t);
        keepalive_ping(&mut c, at(t, 1000));
        c.handle_timeout(at(t, 1999));
        assert!(events(&mut c).is_empty());
        assert!(!c.has_transmit());
        c.handle_timeout(at(t, 2000));
        assert_eq!(events(&mut c), [Event::Error(Error::KeepaliveTimeout)]);
        assert_eq!(sent_close_code(&mut c), Some(1011), "{role:?}");
        assert_ne!(c.state(), State::Open);
        assert_eq!(c.send(Message::text("x")), Err(Error::Closed));
    }
}

/// With ping_timeout None the peer is never failed, and pings keep going
/// out at the interval (they are what keeps NAT and proxies from dropping
/// an idle connection).
#[test]
fn keepalive_without_timeout_keeps_pinging() {
    let t = Instant::now();
    let config = Config::default()
        .with_ping_interval(Some(Duration::from_secs(1)))
        .with_ping_timeout(None);
    let mut c = conn_at(Role::Client, config, t);
    keepalive_ping(&mut c, at(t, 1000));
    assert_eq!(c.poll_timeout(), Some(at(t, 2000)));
    keepalive_ping(&mut c, at(t, 2000));
    c.handle_timeout(at(t, 60_000));
    assert!(events(&mut c).is_empty());
    assert_eq!(c.state(), State::Open);
}

/// Keepalive disabled: no timer at all.
#[test]
fn no_keepalive_no_timer() {
    let t = Instant::now();
    let mut c = conn(Role::Server, t);
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(at(t, 3_600_000));
    assert!(!c.has_transmit());
}

// ---- outgoing fragmentation ----

fn fragmenting(size: usize) -> Config {
    config().with_fragment_size(size)
}

/// A message larger than fragment_size goes out as fragment_size frames.
#[test]
fn large_messages_are_fragmented() {
    for role in ROLES {
        let mut c = conn_at(role, fragmenting(1000), Instant::now());
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        c.send(Message::binary(payload.clone())).unwrap();
        let frames = sent_frames(&mut c);
        assert_eq!(frames.len(), 10);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.opcode, if i == 0 { BINARY } else { CONT }, "frame {i}");
            assert_eq!(f.fin, i == 9, "frame {i}");
            assert_eq!(f.payload.len(), 1000);
        }
        assert_eq!(
            frames
                .iter()
                .flat_map(|f| f.payload.clone())
                .collect::<Vec<_>>(),
            payload
        );
    }
}

/// A ping queued while a large message is being written goes out after the
/// fragment being written, not after the whole message.
#[test]
fn ping_overtakes_a_fragmented_message() {
    for role in ROLES {
        let mut c = conn_at(role, fragmenting(1000), Instant::now());
        c.send(Message::text("x".repeat(10_000))).unwrap();
        let first = decode(&transmit_once(&mut c, usize::MAX));
        assert_eq!(first.len(), 1, "one fragment at a time");
        assert_eq!(
            (first[0].opcode, first[0].fin, first[0].payload.len()),
            (TEXT, false, 1000)
        );

        c.ping(Bytes::from_static(b"now")).unwrap();
        let rest = sent_frames(&mut c);
        assert_eq!(rest.len(), 10);
        assert_eq!(
            (rest[0].opcode, rest[0].payload.as_slice()),
            (PING, &b"now"[..]),
            "{role:?}"
        );
        assert!(rest[1..].iter().all(|f| f.opcode == CONT));
        assert!(rest[9].fin);
    }
}

/// The same holds when the ping is queued right after the message.
#[test]
fn ping_queued_with_a_large_message_is_not_last() {
    let mut c = conn_at(Role::Client, fragmenting(1000), Instant::now());
    c.send(Message::binary(vec![0u8; 10_000])).unwrap();
    c.ping(Bytes::from_static(b"now")).unwrap();
    let frames = sent_frames(&mut c);
    assert_eq!(frames.len(), 11);
    let ping_at = frames.iter().position(|f| f.opcode == PING).unwrap();
    assert!(ping_at <= 1, "ping at {ping_at}");
}

/// A message streamed with send_chunk goes out as one fragmented message,
/// with chunks larger than fragment_size split further.
#[test]
fn streamed_chunks() {
    let mut c = conn_at(Role::Server, fragmenting(4), Instant::now());
    c.send_chunk(DataKind::Text, Bytes::from_static(b"ab"), false)
        .unwrap();
    assert_eq!(c.send(Message::text("other")), Err(Error::ChunkOutOfOrder));
    assert_eq!(
        c.send_chunk(DataKind::Binary, Bytes::new(), false),
        Err(Error::ChunkOutOfOrder)
    );
    c.send_chunk(DataKind::Text, Bytes::from_static(b"cdefgh"), false)
        .unwrap();
    c.send_chunk(DataKind::Text, Bytes::new(), true).unwrap();
    c.send(Message::text("next")).unwrap();
    let frames = sent_frames(&mut c);
    let summary: Vec<(u8, bool, &[u8])> = frames
        .iter()
        .map(|f| (f.opcode, f.fin, f.payload.as_slice()))
        .collect();
    assert_eq!(
        summary,
        [
            (TEXT, false, &b"ab"[..]),
            (CONT, false, b"cdef"),
            (CONT, false, b"gh"),
            (CONT, true, b""),
            (TEXT, true, b"next"),
        ]
    );
}

// ---- flow control ----

/// wants_read() turns false once max_inbound_bytes of messages wait, and
/// true again once the application takes them; input held back meanwhile
/// is parsed then.
#[test]
fn inbound_backpressure() {
    let now = Instant::now();
    let config = config().with_max_inbound_bytes(100);
    let mut c = conn_at(Role::Server, config, now);
    let msgs: Vec<Raw> = (1..=3u8)
        .map(|i| Raw::to(Role::Server, BINARY, [i; 60]))
        .collect();
    c.handle_read(&wire(&msgs[..1]), now);
    assert!(c.wants_read(), "60 < 100 bytes waiting");
    c.handle_read(&wire(&msgs[1..]), now);
    assert!(!c.wants_read(), "120 bytes waiting");
    assert_eq!(c.poll_event(), Some(binary(vec![1; 60])));
    assert!(c.wants_read());
    assert_eq!(c.poll_event(), Some(binary(vec![2; 60])));
    assert_eq!(
        c.poll_event(),
        Some(binary(vec![3; 60])),
        "held-back input is parsed"
    );
    assert_eq!(c.poll_event(), None);
    assert!(c.wants_read());
}

/// max_inbound_events bounds the number of waiting events, whatever their size.
#[test]
fn inbound_event_limit() {
    let now = Instant::now();
    let config = config().with_max_inbound_events(2);
    let mut c = conn_at(Role::Client, config, now);
    let pings: Vec<Raw> = (0..5u8).map(|i| Raw::to(Role::Client, PING, [i])).collect();
    c.handle_read(&wire(&pings), now);
    assert!(!c.wants_read());
    assert_eq!(
        sent_frames(&mut c).len(),
        2,
        "only the pings parsed so far are answered"
    );
    let got = events(&mut c);
    assert_eq!(got.len(), 5);
    assert_eq!(sent_frames(&mut c).len(), 3);
    assert!(c.wants_read());
}

/// is_writable() turns false above write_high_water and true again only
/// below write_low_water.
#[test]
fn writable_hysteresis() {
    let config = config()
        .with_write_high_water(1000)
        .with_write_low_water(200);
    let mut c = conn_at(Role::Server, config, Instant::now());
    assert!(c.is_writable());
    c.send(Message::binary(vec![0u8; 600])).unwrap();
    assert_eq!(c.buffered_amount(), 604);
    assert!(c.is_writable());
    c.send(Message::binary(vec![0u8; 600])).unwrap();
    assert_eq!(c.buffered_amount(), 1208);
    assert!(!c.is_writable());
    transmit_once(&mut c, 708);
    assert_eq!(c.buffered_amount(), 500);
    assert!(!c.is_writable(), "below high water but above low water");
    transmit_once(&mut c, 300);
    assert_eq!(c.buffered_amount(), 200);
    assert!(c.is_writable(), "at low water");
    c.send(Message::binary(vec![0u8; 500])).unwrap();
    assert_eq!(c.buffered_amount(), 704);
    assert!(c.is_writable(), "back under the high mark only");
}

/// With deliver_chunks, a message comes as chunks whose concatenation is
/// the message, fin on the last only, as its bytes arrive.
#[test]
fn chunked_delivery() {
    for role in ROLES {
        let now = Instant::now();
        let config = config().with_deliver_chunks(true);
        let mut c = conn_at(role, config, now);
        let text = "chunks of κόσμε arrive as they come";
        let bytes = text.as_bytes();
        let w = wire(&[
            Raw::to(role, TEXT, &bytes[..10]).fin(false),
            Raw::to(role, PING, "p"),
            Raw::to(role, CONT, &bytes[10..20]).fin(false),
            Raw::to(role, CONT, &bytes[20..]),
        ]);
        let mut got = Vec::new();
        for piece in w.chunks(7) {
            c.handle_read(piece, now);
            got.extend(events(&mut c));
        }
        let mut data = Vec::new();
        let mut fins = Vec::new();
        for ev in &got {
            match ev {
                Event::Chunk { kind, data: d, fin } => {
                    assert_eq!(*kind, DataKind::Text);
                    data.extend_from_slice(d);
                    fins.push(*fin);
                }
                Event::Ping(p) => assert_eq!(p, "p"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(data, bytes);
        assert!(fins.len() > 3, "delivered as it arrives: {fins:?}");
        assert_eq!(fins.iter().filter(|f| **f).count(), 1);
        assert_eq!(fins.last(), Some(&true));
    }
}

/// Chunked delivery still fails fast on invalid UTF-8 and oversized frames.
#[test]
fn chunked_delivery_checks_input() {
    let config = config().with_deliver_chunks(true).with_max_frame_size(50);
    let bytes = wire(&[
        Raw::to(Role::Server, TEXT, b"ok").fin(false),
        Raw::to(Role::Server, CONT, b"\xff"),
    ]);
    let now = Instant::now();
    let mut c = conn_at(Role::Server, config.clone(), now);
    c.handle_read(&bytes, now);
    assert_eq!(
        events(&mut c),
        [
            Event::Chunk {
                kind: DataKind::Text,
                data: Bytes::from_static(b"ok"),
                fin: false
            },
            Event::Error(Error::Protocol(ProtocolError::InvalidUtf8)),
        ]
    );
    assert_eq!(sent_close_code(&mut c), Some(1007));

    let big = Raw::to(Role::Server, BINARY, [0u8; 51]).encode();
    assert_fails(
        Role::Server,
        config,
        &big,
        ProtocolError::FrameTooLarge {
            size: 51,
            limit: 50,
        },
        1009,
    );
}

/// While the application is not taking events (inbound queue full), a
/// missing pong is not held against the peer: the pong may be sitting
/// unread behind the messages.
#[test]
fn keepalive_timeout_waits_while_reading_is_paused() {
    let t = Instant::now();
    let config = keepalive_config().with_max_inbound_bytes(10);
    let mut c = conn_at(Role::Server, config, t);
    c.handle_read(&Raw::to(Role::Server, BINARY, [0u8; 10]).encode(), t);
    assert!(!c.wants_read());
    keepalive_ping(&mut c, at(t, 1000));
    c.handle_timeout(at(t, 2000));
    assert!(!c.has_transmit(), "no failure while paused");
    assert_eq!(c.state(), State::Open);
    assert_eq!(events(&mut c), [binary(vec![0u8; 10])]);
    // Reading again, the grace runs out one timeout later.
    assert_eq!(c.poll_timeout(), Some(at(t, 3000)));
    c.handle_timeout(at(t, 3000));
    assert_eq!(events(&mut c), [Event::Error(Error::KeepaliveTimeout)]);
    assert_eq!(sent_close_code(&mut c), Some(1011));
}

/// Message::Close through send() starts the close handshake like close().
#[test]
fn sending_a_close_message() {
    let mut c = conn(Role::Client, Instant::now());
    let frame = CloseFrame {
        code: CloseCode(4000),
        reason: "app".into(),
    };
    c.send(Message::Close(Some(frame))).unwrap();
    let frames = sent_frames(&mut c);
    assert_eq!(
        (frames[0].close_code(), &frames[0].payload[2..]),
        (Some(4000), &b"app"[..])
    );

    let mut c = conn(Role::Client, Instant::now());
    c.send(Message::Close(None)).unwrap();
    assert_eq!(sent_close_code(&mut c), None);

    let mut c = conn(Role::Client, Instant::now());
    let bad = CloseFrame {
        code: CloseCode::NO_STATUS,
        reason: String::new(),
    };
    assert_eq!(
        c.send(Message::Close(Some(bad))),
        Err(Error::InvalidCloseCode(1005))
    );
}

/// Moves everything `from` has queued to `to`, and returns `to`'s events.
fn pump(from: &mut Connection, to: &mut Connection, now: Instant) -> Vec<Event> {
    let bytes = transmit(from);
    if !bytes.is_empty() {
        to.handle_read(&bytes, now);
    }
    events(to)
}

/// A whole session between a client and a server connection: messages
/// both ways, a ping, then a client-initiated close that ends with the
/// server closing TCP and the client seeing EOF.
#[test]
fn client_and_server_session() {
    let t = Instant::now();
    let mut client = conn(Role::Client, t);
    let mut server = conn(Role::Server, t);

    client.send(Message::text("hello")).unwrap();
    client.ping(Bytes::from_static(b"are you there")).unwrap();
    let got = pump(&mut client, &mut server, t);
    assert_eq!(
        got,
        [
            text("hello"),
            Event::Ping(Bytes::from_static(b"are you there"))
        ]
    );

    server.send(Message::binary(vec![9u8; 70_000])).unwrap();
    let got = pump(&mut server, &mut client, t);
    assert_eq!(
        got,
        [
            Event::Pong {
                payload: Bytes::from_static(b"are you there"),
                latency: None
            },
            binary(vec![9u8; 70_000]),
        ]
    );

    client.close(CloseCode::NORMAL, "bye").unwrap();
    let got = pump(&mut client, &mut server, at(t, 1));
    let bye = CloseFrame {
        code: CloseCode::NORMAL,
        reason: "bye".into(),
    };
    assert_eq!(got, [Event::Close(Some(bye))]);
    assert!(server.is_finished(), "server closes TCP after the echo");
    let got = pump(&mut server, &mut client, at(t, 2));
    assert_eq!(
        got,
        [Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: String::new()
        }))]
    );
    assert!(!client.is_finished());
    client.handle_eof(at(t, 3));
    assert!(client.is_finished());
    assert_eq!(events(&mut client), []);
    assert!(!client.has_transmit() && !server.has_transmit());
}

/// Frames that arrived before EOF but were held back by backpressure are
/// still delivered: EOF ends the input, it does not discard what was read.
/// Here the peer's messages and its close frame all precede its FIN.
#[test]
fn eof_keeps_input_held_back_by_backpressure() {
    for role in ROLES {
        let now = Instant::now();
        let config = config().with_max_inbound_bytes(100);
        let mut c = conn_at(role, config, now);
        let mut frames: Vec<Raw> = (1..=3u8).map(|i| Raw::to(role, BINARY, [i; 60])).collect();
        frames.push(Raw::to(role, CLOSE, close_payload(1000, b"")));
        c.handle_read(&wire(&frames), now);
        assert_eq!(c.poll_event(), Some(binary(vec![1; 60])));
        assert!(
            c.wants_read(),
            "room again, so the adapter reads and sees EOF"
        );
        c.handle_eof(now);
        let normal = CloseFrame {
            code: CloseCode::NORMAL,
            reason: String::new(),
        };
        assert_eq!(
            events(&mut c),
            [
                binary(vec![2; 60]),
                binary(vec![3; 60]),
                Event::Close(Some(normal))
            ],
            "{role:?}"
        );
        assert!(c.is_finished());
    }
}

/// A frame cut short by EOF is an abnormal closure, after the complete
/// frames before it.
#[test]
fn eof_after_held_back_input_with_a_cut_frame() {
    let now = Instant::now();
    let config = config().with_max_inbound_events(1);
    let mut c = conn_at(Role::Server, config, now);
    let bytes = wire(&[
        Raw::to(Role::Server, TEXT, "a"),
        Raw::to(Role::Server, TEXT, "b"),
        Raw::to(Role::Server, TEXT, "cut"),
    ]);
    c.handle_read(&bytes[..bytes.len() - 1], now);
    c.handle_eof(now);
    assert_eq!(
        events(&mut c),
        [text("a"), text("b"), Event::Error(Error::AbnormalClosure)]
    );
}

/// With an idle timeout, a connection that receives nothing for that long
/// starts the close handshake with 1001; any input postpones it.
#[test]
fn idle_timeout_closes_with_1001() {
    for role in ROLES {
        let t = Instant::now();
        let config = config().with_idle_timeout(Some(Duration::from_secs(5)));
        let mut c = conn_at(role, config, t);
        assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(5)));
        c.handle_read(&Raw::to(role, TEXT, "still here").encode(), at(t, 3000));
        assert_eq!(events(&mut c), [text("still here")]);
        assert_eq!(c.poll_timeout(), Some(at(t, 8000)));
        c.handle_timeout(at(t, 7999));
        assert_eq!(c.state(), State::Open);
        c.handle_timeout(at(t, 8000));
        assert_eq!(c.state(), State::Closing, "{role:?}");
        assert_eq!(sent_close_code(&mut c), Some(1001));
    }
}

/// A peer that stops reading cannot keep the connection open: at the close
/// timeout the unsent bytes are dropped, so `is_finished()` with nothing
/// left to transmit tells the adapter to close the socket.
#[test]
fn close_timeout_drops_what_the_peer_never_read() {
    for role in ROLES {
        let t = Instant::now();
        let mut c = conn(role, t);
        c.send(Message::binary(vec![7u8; 100_000])).unwrap();
        c.close(CloseCode::NORMAL, "bye").unwrap();
        // Nothing is ever written: the peer's window is shut.
        assert!(c.has_transmit());
        let deadline = c.poll_timeout().expect("close deadline");
        c.handle_timeout(deadline);
        assert!(c.is_finished(), "{role:?}");
        assert!(!c.has_transmit(), "{role:?}: the queue was dropped");
        assert_eq!(c.buffered_amount(), 0);
        assert_eq!(c.state(), State::Closed);
    }
}
