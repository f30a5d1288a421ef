//! `read_with`: which buffer each read goes to (the caller's scratch, or
//! the core's while data streams), end of stream, a read that gets
//! nothing, and the same messages whichever way the bytes came.

use std::io;
use std::task::Poll;

use crate::*;

/// A socket's input, handed out at most `limit` bytes per read; empty is
/// "would block".
struct Peer {
    data: Vec<u8>,
    at: usize,
}

impl Peer {
    fn new(data: Vec<u8>) -> Self {
        Self { data, at: 0 }
    }

    fn read(&mut self, buf: &mut [u8], limit: usize) -> io::Result<usize> {
        let n = buf.len().min(limit).min(self.data.len() - self.at);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Where a read went.
#[derive(Debug, PartialEq)]
enum Into {
    Scratch,
    /// The core's buffer, of this length.
    Core(usize),
}

/// One `read_with` of at most `limit` bytes from `peer`; where it went.
fn read(c: &mut Connection, scratch: &mut [u8], peer: &mut Peer, limit: usize) -> Into {
    let scratch_at = scratch.as_ptr();
    let mut into = None;
    let now = Instant::now();
    let _ = c.read_with(
        scratch,
        || now,
        |buf| {
            into = Some(if std::ptr::eq(buf.as_ptr(), scratch_at) {
                Into::Scratch
            } else {
                Into::Core(buf.len())
            });
            peer.read(buf, limit)
        },
    );
    into.expect("read called once")
}

/// `n` masked binary frames of 100 bytes, as a client sends them, and the
/// events they make.
fn small_frames(n: usize) -> (Vec<u8>, Vec<Event>) {
    let frames: Vec<Raw> = (0..n)
        .map(|i| Raw::to(Role::Server, BINARY, [i as u8; 100]))
        .collect();
    let events = (0..n).map(|i| binary(vec![i as u8; 100])).collect();
    (wire(&frames), events)
}

/// A read that fills the scratch makes the next one go to the core's
/// buffer (`read_chunk_size`), until a read falls short; then the scratch
/// again. The messages come out whole either way.
#[test]
fn a_full_read_streams_into_the_cores_buffer() {
    let (bytes, want) = small_frames(200);
    let chunk = config().read_chunk_size;
    let mut c = conn(Role::Server, Instant::now());
    let mut scratch = vec![0; 1000];
    let mut peer = Peer::new(bytes);
    let mut got = Vec::new();
    let mut step = |c: &mut Connection, limit| {
        let into = read(c, &mut scratch, &mut peer, limit);
        got.extend(events(c));
        into
    };
    assert_eq!(step(&mut c, 300), Into::Scratch, "short: not streaming");
    assert_eq!(step(&mut c, usize::MAX), Into::Scratch, "fills the scratch");
    assert_eq!(step(&mut c, 500), Into::Core(chunk), "streaming; short");
    assert_eq!(step(&mut c, usize::MAX), Into::Scratch, "fills the scratch");
    assert_eq!(step(&mut c, usize::MAX), Into::Core(chunk), "fills it");
    assert_eq!(step(&mut c, usize::MAX), Into::Core(chunk), "the rest");
    assert_eq!(step(&mut c, usize::MAX), Into::Scratch, "would block");
    assert_eq!(got, want);
}

/// While a large frame is under way, a streaming read goes straight into
/// its message: the buffer offered is the rest of the payload, not a
/// `read_chunk_size` one.
#[test]
fn a_large_frame_streams_into_its_message() {
    let payload: Vec<u8> = (0..200_000).map(|i| (i % 251) as u8).collect();
    for role in ROLES {
        let bytes = Raw::to(role, BINARY, &payload).encode();
        let header = bytes.len() - payload.len();
        let mut c = conn(role, Instant::now());
        let mut scratch = vec![0; 4096];
        let mut peer = Peer::new(bytes);
        assert_eq!(
            read(&mut c, &mut scratch, &mut peer, usize::MAX),
            Into::Scratch
        );
        let rest = payload.len() - (4096 - header);
        assert_eq!(
            read(&mut c, &mut scratch, &mut peer, usize::MAX),
            Into::Core(rest),
            "{role:?}"
        );
        assert_eq!(events(&mut c), [binary(payload.clone())], "{role:?}");
    }
}

/// With no scratch (a shared one is busy), reads go to the core's buffer,
/// short or not.
#[test]
fn an_empty_scratch_reads_into_the_cores_buffer() {
    let (bytes, want) = small_frames(20);
    let chunk = config().read_chunk_size;
    let mut c = conn(Role::Server, Instant::now());
    let mut peer = Peer::new(bytes);
    for limit in [50, 700, usize::MAX] {
        assert_eq!(read(&mut c, &mut [], &mut peer, limit), Into::Core(chunk));
    }
    assert_eq!(events(&mut c), want);
}

/// Puts `c` in the streaming state: one read fills `scratch` with whole
/// frames, whose events are taken.
fn start_streaming(c: &mut Connection, scratch: &mut [u8]) {
    let (bytes, want) = small_frames(scratch.len() / 106);
    assert_eq!(bytes.len(), scratch.len(), "whole frames fill the scratch");
    let mut peer = Peer::new(bytes);
    assert_eq!(read(c, scratch, &mut peer, usize::MAX), Into::Scratch);
    assert_eq!(events(c), want);
}

/// A read of 0 bytes is the end of stream, whichever buffer it went to,
/// and whatever type the read returns: the 1006 error, and no more reads.
#[test]
fn a_read_of_nothing_is_the_end_of_stream() {
    fn check<T: tether_core::ReadOutcome>(path: &str, streaming: bool, scratch_len: usize, eof: T) {
        let now = Instant::now();
        let mut c = conn(Role::Server, now);
        let mut scratch = vec![0; scratch_len];
        if streaming {
            start_streaming(&mut c, &mut scratch);
        }
        let _: T = c.read_with(&mut scratch, || now, |_| eof);
        assert_eq!(
            events(&mut c),
            [Event::Error(Error::AbnormalClosure)],
            "{path}"
        );
        assert!(!c.wants_read(), "{path}");
    }
    for (path, streaming, scratch_len) in [
        ("scratch", false, 1060),
        ("streaming", true, 1060),
        ("no scratch", false, 0),
    ] {
        check::<io::Result<usize>>(path, streaming, scratch_len, Ok(0));
        check::<Poll<io::Result<usize>>>(path, streaming, scratch_len, Poll::Ready(Ok(0)));
        check::<io::Result<Option<usize>>>(path, streaming, scratch_len, Ok(Some(0)));
    }
}

/// A read that gets nothing (would block, an error, Pending) hands the
/// core's buffer back, so an idle connection holds none, and ends the
/// streaming: the next read goes to the scratch.
#[test]
fn a_read_that_gets_nothing_keeps_no_buffer() {
    fn check<T: tether_core::ReadOutcome + std::fmt::Debug>(nothing: impl Fn() -> T) {
        let now = Instant::now();
        let chunk = config().read_chunk_size;
        let mut c = conn(Role::Server, now);
        let mut scratch = vec![0; 1060];
        start_streaming(&mut c, &mut scratch);
        let mut len = 0;
        let (r, kept) = counting::retained_by(|| {
            c.read_with(
                &mut scratch,
                || now,
                |buf| {
                    len = buf.len();
                    nothing()
                },
            )
        });
        assert_eq!(len, chunk, "{r:?}: streaming, so the core's buffer");
        assert!(kept < 1024, "{r:?}: {kept} bytes kept");
        assert_eq!(events(&mut c), [], "{r:?}");
        assert!(c.wants_read(), "{r:?}");
        let mut peer = Peer::new(Raw::to(Role::Server, TEXT, "next").encode());
        assert_eq!(
            read(&mut c, &mut scratch, &mut peer, usize::MAX),
            Into::Scratch
        );
        assert_eq!(events(&mut c), [text("next")], "{r:?}");
    }
    check(|| -> io::Result<usize> { Err(io::ErrorKind::WouldBlock.into()) });
    check(|| -> io::Result<usize> { Err(io::ErrorKind::ConnectionReset.into()) });
    check(|| -> Poll<io::Result<usize>> { Poll::Pending });
    check(|| -> io::Result<Option<usize>> { Ok(None) });
}

/// The messages are byte for byte the same whichever buffers the reads
/// went to: scratches of every size, reads cut anywhere, reads that get
/// nothing in between, large and fragmented messages, text and binary.
#[test]
fn messages_are_the_same_on_every_path() {
    let big: Vec<u8> = (0..150_000).map(|i| (i % 253) as u8).collect();
    let tail: Vec<u8> = (0..40_000).map(|i| (i % 7) as u8).collect();
    let accents = "é".repeat(25_000);
    for role in ROLES {
        let mut frames = vec![
            Raw::to(role, BINARY, "first"),
            Raw::to(role, BINARY, &big).fin(false),
            Raw::to(role, PING, "p"),
            Raw::to(role, CONT, &tail),
            Raw::to(role, TEXT, &accents),
        ];
        frames.extend((0..300).map(|i| Raw::to(role, BINARY, [i as u8; 70])));
        frames.push(Raw::to(role, TEXT, "last"));
        let bytes = wire(&frames);
        let mut whole = big.clone();
        whole.extend_from_slice(&tail);
        let mut want = vec![
            binary(&b"first"[..]),
            Event::Ping(Bytes::from_static(b"p")),
            binary(whole),
            Event::Message(Message::text(accents.clone())),
        ];
        want.extend((0..300).map(|i| binary(vec![i as u8; 70])));
        want.push(text("last"));

        for scratch_len in [0, 1, 7, 1000, 4096, 64 << 10] {
            // A fixed pseudo-random sequence of read limits, 0 being a
            // read that would block.
            let mut seed = 0x2545_f491_u32 ^ scratch_len as u32;
            let mut limit = move || {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                match seed % 8 {
                    0 => 0,
                    1 => 1 + seed as usize % 10,
                    2..=4 => 1 + seed as usize % 5000,
                    _ => usize::MAX,
                }
            };
            let mut c = conn(role, Instant::now());
            let mut scratch = vec![0; scratch_len];
            let mut peer = Peer::new(bytes.clone());
            let (mut got, mut paths) = (Vec::new(), [0; 2]);
            while peer.at < bytes.len() {
                match read(&mut c, &mut scratch, &mut peer, limit()) {
                    Into::Scratch => paths[0] += 1,
                    Into::Core(_) => paths[1] += 1,
                }
                got.extend(events(&mut c));
            }
            assert_eq!(got, want, "{role:?}, scratch of {scratch_len}");
            if scratch_len > 0 {
                assert!(
                    paths[0] > 0 && paths[1] > 0,
                    "{role:?}, scratch of {scratch_len}: both paths taken, {paths:?}"
                );
            }
        }
    }
}
