//! Reading frames: every payload length form, input cut anywhere, reads straight into the message.

use crate::*;

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
