//! A `Connection` (either role, deflate on or off, tiny limits) fed bytes
//! a peer sends: real frames from a peer `Connection` (compressed when
//! deflate is on), hand-made frames with arbitrary header fields, and raw
//! junk, read through `handle_read` or `read_buf`/`commit_read` in
//! arbitrary pieces, interleaved with event polls and partial writes.
//!
//! Two modes, chosen by the input:
//!
//! - split: only reads, polls and writes. The events must be the same as
//!   when all the bytes arrive in one read and are drained at the end.
//!   Chunks ([`Event::Chunk`]) are compared as the bytes between other
//!   events, since they follow the reads by design; the valid prefix a
//!   streamed message delivered before an error may differ in length.
//! - chaos: also timers, EOF, switching chunk delivery, and application
//!   sends of every kind, at arbitrary times.
//!
//! In both, after every step: no panic; whole messages are within
//! `max_message_size` and text is UTF-8; the events waiting stay within
//! the inbound limits plus what one frame can add; while the application
//! sends nothing, the transmit queue stays within the write high-water
//! mark plus the capped owed pongs, a close and keepalive pings; what is
//! written is well-formed frames (masked by a client only, data frames
//! within `fragment_size`, nothing after a close). At the end: the close
//! frame written carries the code of what closed the connection first:
//! the application's close, the echo of the peer's, the close code of an
//! [`Event::Error`], or the timer that fired.

#![no_main]

use std::io::IoSlice;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tether_core::frame::{FrameHeader, MAX_HEADER_LEN};
use tether_core::mask::apply_mask;
use tether_core::{
    Bytes, CloseCode, CloseFrame, Config, Connection, DataKind, DeflateConfig, DeflateParams,
    Error, Event, Message, Role, State, Xoshiro256,
};

/// Bytes of fixed settings at the front of the input.
const SETUP_LEN: usize = 16;

/// Owed pongs a connection keeps (`MAX_OWED_PONGS` in connection.rs).
const MAX_OWED_PONGS: usize = 32;

/// The largest control frame on the wire: 125 bytes, 2 of header, 4 of mask.
const MAX_CONTROL_FRAME: usize = 131;

/// Compressed bytes inflated at a time into chunks (`COMPRESSED_PIECE`),
/// and deflate's largest expansion of them.
const COMPRESSED_PIECE: usize = 4 << 10;
const MAX_INFLATE_RATIO: usize = 1032;

struct Setup {
    role: Role,
    config: Config,
    /// This connection's permessage-deflate parameters; the peer's mirror them.
    deflate: Option<DeflateParams>,
    peer_fragment: usize,
    chaos: bool,
    seed: u64,
}

/// A limit from one byte: 0 a roomy one, 255 one past the 16-bit length
/// form, anything else tiny.
fn size(b: u8) -> usize {
    match b {
        0 => 1 << 16,
        255 => 70_000,
        b => b as usize,
    }
}

impl Setup {
    fn parse(b: &[u8; SETUP_LEN]) -> Self {
        let flags = b[0];
        let role = if flags & 1 != 0 {
            Role::Client
        } else {
            Role::Server
        };
        let timers = flags & 0x10 != 0;
        let write_high_water = match b[7] {
            0 => 1 << 20,
            n => n as usize * 8,
        };
        let config = Config::default()
            .with_max_frame_size(size(b[1]))
            .with_max_message_size(size(b[2]))
            .with_max_inbound_bytes(size(b[3]))
            .with_max_inbound_events(match b[4] {
                0 => 1024,
                n => (n % 8) as usize,
            })
            .with_fragment_size(size(b[5]))
            .with_read_chunk_size(size(b[6]))
            .with_deliver_chunks(flags & 4 != 0)
            .with_write_high_water(write_high_water)
            .with_write_low_water(write_high_water / 2)
            .with_ping_interval(timers.then(|| Duration::from_millis(300)))
            .with_ping_timeout(timers.then(|| Duration::from_millis(300)))
            .with_close_timeout(Duration::from_millis(500))
            .with_idle_timeout((flags & 0x20 != 0).then(|| Duration::from_millis(1000)));
        let deflate = (flags & 2 != 0).then(|| DeflateParams {
            config: DeflateConfig::default()
                .with_level(b[9] % 10)
                .with_mem_level(1 + (b[9] >> 4) % 9)
                .with_threshold(b[10] as usize),
            own_window_bits: 8 + (b[8] >> 4) % 8,
            own_no_context_takeover: flags & 0x80 != 0,
            peer_window_bits: 8 + b[8] % 8,
            peer_no_context_takeover: flags & 0x40 != 0,
        });
        Self {
            role,
            config,
            deflate,
            peer_fragment: size(b[11]),
            chaos: flags & 8 != 0,
            seed: u64::from(u32::from_le_bytes([b[12], b[13], b[14], b[15]])),
        }
    }

    fn connection(&self, now: Instant) -> Connection {
        Connection::new(
            self.role,
            self.config.clone(),
            Box::new(Xoshiro256::from_seed(self.seed)),
            now,
        )
        .with_deflate(self.deflate.clone())
    }

    /// The other end, with the mirror image of the deflate agreement.
    fn peer(&self, now: Instant) -> Connection {
        let role = match self.role {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        let config = Config::without_keepalive().with_fragment_size(self.peer_fragment);
        let deflate = self.deflate.as_ref().map(|d| DeflateParams {
            config: d.config.clone(),
            own_window_bits: d.peer_window_bits,
            own_no_context_takeover: d.peer_no_context_takeover,
            peer_window_bits: d.own_window_bits,
            peer_no_context_takeover: d.own_no_context_takeover,
        });
        Connection::new(
            role,
            config,
            Box::new(Xoshiro256::from_seed(!self.seed)),
            now,
        )
        .with_deflate(deflate)
    }
}

/// What the peer puts on the wire next.
#[derive(Debug, Arbitrary)]
enum PeerStep {
    Text(String),
    Binary(Vec<u8>),
    /// Not compressed even with deflate on.
    Uncompressed(bool, Vec<u8>),
    /// A streamed message's piece: text or binary, bytes, last.
    Chunk(bool, Vec<u8>, bool),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    /// Bytes as they are.
    Raw(Vec<u8>),
    /// A frame with any header fields; masked as the receiver expects
    /// unless `flip_mask`.
    Frame {
        fin: bool,
        rsv: u8,
        opcode: u8,
        flip_mask: bool,
        key: [u8; 4],
        payload: Vec<u8>,
    },
    /// Only a header, claiming any length.
    Header {
        b0: u8,
        masked: bool,
        len: u64,
    },
    /// Drops the last few bytes written so far (a frame cut short).
    Cut(u8),
}

/// What the application does next.
#[derive(Debug, Arbitrary)]
enum AppSend {
    Text(String),
    Binary(Vec<u8>),
    Uncompressed(Vec<u8>),
    Chunk(bool, Vec<u8>, bool),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
    CloseWithoutCode,
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Reads the next `len` bytes (times 256 if `big`), by way of `how`.
    Read {
        len: u8,
        big: bool,
        how: u8,
    },
    /// Takes up to this many events (255: all).
    Poll(u8),
    /// A socket that takes at most this many bytes (0: all).
    Write(u16),
    // Chaos only:
    Timeout(u16),
    Send(AppSend),
    Chunks(bool),
    Eof,
}

fn bytes(v: &[u8]) -> Bytes {
    Bytes::copy_from_slice(v)
}

/// Builds the bytes the peer sends.
fn peer_wire(setup: &Setup, raw: &[u8], steps: &[PeerStep]) -> Vec<u8> {
    let mut wire = raw.to_vec();
    let mut peer = setup.peer(Instant::now());
    let to_server = setup.role == Role::Server;
    for step in steps {
        // Errors (sending after a close, chunks out of order) are the
        // peer's business: the step is skipped.
        let _ = match step {
            PeerStep::Text(s) => peer.send(Message::text(s.clone())),
            PeerStep::Binary(b) => peer.send(Message::binary(bytes(b))),
            PeerStep::Uncompressed(text, b) => peer.send_uncompressed(if *text {
                Message::text(String::from_utf8_lossy(b).into_owned())
            } else {
                Message::binary(bytes(b))
            }),
            PeerStep::Chunk(text, b, fin) => {
                let kind = if *text {
                    DataKind::Text
                } else {
                    DataKind::Binary
                };
                peer.send_chunk(kind, bytes(b), *fin)
            }
            PeerStep::Ping(p) => peer.send(Message::Ping(bytes(&p[..p.len().min(125)]))),
            PeerStep::Pong(p) => peer.send(Message::Pong(bytes(&p[..p.len().min(125)]))),
            PeerStep::Close(c) => peer.send(Message::Close(c.as_ref().map(|(code, reason)| {
                CloseFrame {
                    code: CloseCode(*code),
                    reason: reason.clone(),
                }
            }))),
            PeerStep::Raw(b) => {
                drain(&mut peer, &mut wire, usize::MAX);
                wire.extend_from_slice(b);
                Ok(())
            }
            PeerStep::Frame {
                fin,
                rsv,
                opcode,
                flip_mask,
                key,
                payload,
            } => {
                drain(&mut peer, &mut wire, usize::MAX);
                let mask = (to_server != *flip_mask).then_some(*key);
                let header = FrameHeader {
                    fin: *fin,
                    rsv: rsv & 7,
                    opcode: opcode & 0xF,
                    mask,
                    payload_len: payload.len() as u64,
                };
                let mut head = [0; MAX_HEADER_LEN];
                let n = header.encode(&mut head);
                wire.extend_from_slice(&head[..n]);
                let start = wire.len();
                wire.extend_from_slice(payload);
                if let Some(key) = mask {
                    apply_mask(&mut wire[start..], key, 0);
                }
                Ok(())
            }
            PeerStep::Header { b0, masked, len } => {
                drain(&mut peer, &mut wire, usize::MAX);
                let header = FrameHeader {
                    fin: b0 & 0x80 != 0,
                    rsv: (b0 >> 4) & 7,
                    opcode: b0 & 0xF,
                    mask: masked.then_some([1, 2, 3, 4]),
                    payload_len: *len,
                };
                let mut head = [0; MAX_HEADER_LEN];
                let n = header.encode(&mut head);
                wire.extend_from_slice(&head[..n]);
                Ok(())
            }
            PeerStep::Cut(n) => {
                drain(&mut peer, &mut wire, usize::MAX);
                wire.truncate(wire.len().saturating_sub(*n as usize % 16));
                Ok(())
            }
        };
    }
    drain(&mut peer, &mut wire, usize::MAX);
    wire
}

/// One write of at most `limit` bytes of what `c` has queued, appended to
/// `out`; returns how many.
fn write_once(c: &mut Connection, out: &mut Vec<u8>, limit: usize) -> usize {
    let start = out.len();
    {
        let mut iov = [IoSlice::new(&[]); 8];
        let n = c.poll_transmit(&mut iov);
        for s in &iov[..n] {
            let take = s.len().min(limit - (out.len() - start));
            out.extend_from_slice(&s[..take]);
        }
    }
    let written = out.len() - start;
    c.advance_transmit(written);
    written
}

/// Writes everything `c` has queued.
fn drain(c: &mut Connection, out: &mut Vec<u8>, limit: usize) {
    while write_once(c, out, limit) > 0 {}
}

/// The close code a connection must write.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// This code, or none (an empty close payload).
    Code(Option<u16>),
    /// A timer closed it: 1011 if a keepalive ping went unanswered, else
    /// the idle timeout's 1001.
    Timer,
}

/// A connection under test, with what the checks need to know about it.
struct Driver {
    c: Connection,
    role: Role,
    config: Config,
    deflate: bool,
    start: Instant,
    now: Instant,
    events: Vec<Event>,
    /// Every byte written, and how many of them were checked as frames.
    out: Vec<u8>,
    checked: usize,
    seen_close_frame: bool,
    /// Whether the message being written is compressed, if one is under way.
    out_message: Option<bool>,
    app_sent: bool,
    first_close: Option<Expect>,
    keepalive_failed: bool,
    eof: bool,
    /// EOF came before whatever closed the connection: no close is owed.
    eof_first: bool,
    /// When the connection stopped being open (the close timer starts).
    closing_since: Option<Instant>,
    close_timer_ran: bool,
    timeouts: usize,
    /// A chunked message being received: its kind and (for text, while
    /// small) its bytes.
    chunked: Option<(DataKind, Vec<u8>)>,
}

impl Driver {
    fn new(setup: &Setup) -> Self {
        let start = Instant::now();
        Self {
            c: setup.connection(start),
            role: setup.role,
            config: setup.config.clone(),
            deflate: setup.deflate.is_some(),
            start,
            now: start,
            events: Vec::new(),
            out: Vec::new(),
            checked: 0,
            seen_close_frame: false,
            out_message: None,
            app_sent: false,
            first_close: None,
            keepalive_failed: false,
            eof: false,
            eof_first: false,
            closing_since: None,
            close_timer_ran: false,
            timeouts: 0,
            chunked: None,
        }
    }

    fn read(&mut self, piece: &[u8], how: u8) {
        match how % 4 {
            0 => self.c.handle_read(piece, self.now),
            1 | 2 => {
                let mut rest = piece;
                while !rest.is_empty() {
                    let buf = self.c.read_buf();
                    assert!(!buf.is_empty(), "read_buf offered nothing");
                    let mut n = buf.len().min(rest.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    if how % 4 == 2 {
                        // A short commit: the rest is offered again.
                        n = n.div_ceil(2);
                    }
                    self.c.commit_read(n, self.now);
                    rest = &rest[n..];
                }
            }
            _ => {
                // A read_buf the socket had nothing for.
                let _ = self.c.read_buf();
                self.c.handle_read(piece, self.now);
            }
        }
        self.after();
    }

    fn poll(&mut self, n: u8) {
        for _ in 0..n {
            let Some(ev) = self.c.poll_event() else {
                break;
            };
            self.on_event(ev);
            self.after();
        }
    }

    fn poll_all(&mut self) {
        while let Some(ev) = self.c.poll_event() {
            self.on_event(ev);
            self.after();
        }
    }

    fn write(&mut self, limit: u16) {
        let limit = if limit == 0 {
            usize::MAX
        } else {
            limit as usize
        };
        write_once(&mut self.c, &mut self.out, limit);
        self.check_frames();
        self.after();
    }

    fn write_all(&mut self) {
        drain(&mut self.c, &mut self.out, usize::MAX);
        self.check_frames();
    }

    fn timeout(&mut self, ms: u16) {
        self.now += Duration::from_millis(u64::from(ms % 2000));
        let open = self.c.state() == State::Open;
        self.c.handle_timeout(self.now);
        self.timeouts += 1;
        if open && self.c.state() != State::Open && self.first_close.is_none() {
            self.first_close = Some(Expect::Timer);
        }
        self.after();
    }

    fn eof(&mut self) {
        self.c.handle_eof(self.now);
        if !self.eof && self.first_close.is_none() {
            self.eof_first = true;
        }
        self.eof = true;
        self.after();
    }

    fn send(&mut self, s: &AppSend) {
        let open = self.c.state() == State::Open && !self.eof;
        let r = match s {
            AppSend::Text(t) => self.c.send(Message::text(t.clone())),
            AppSend::Binary(b) => self.c.send(Message::binary(bytes(b))),
            AppSend::Uncompressed(b) => self.c.send_uncompressed(Message::binary(bytes(b))),
            AppSend::Chunk(text, b, fin) => {
                let kind = if *text {
                    DataKind::Text
                } else {
                    DataKind::Binary
                };
                self.c.send_chunk(kind, bytes(b), *fin)
            }
            AppSend::Ping(p) => self.c.send(Message::Ping(bytes(p))),
            AppSend::Pong(p) => self.c.send(Message::Pong(bytes(p))),
            AppSend::Close(code, reason) => {
                let r = self.c.close(CloseCode(*code), reason);
                assert_eq!(r.is_ok(), CloseCode(*code).is_sendable());
                if r.is_ok() && open && self.first_close.is_none() {
                    self.first_close = Some(Expect::Code(Some(*code)));
                }
                r
            }
            AppSend::CloseWithoutCode => {
                if open && self.first_close.is_none() {
                    self.first_close = Some(Expect::Code(None));
                }
                self.c.send(Message::Close(None))
            }
        };
        match s {
            AppSend::Close(..) | AppSend::CloseWithoutCode => {}
            _ => {
                if r.is_ok() {
                    self.app_sent = true;
                } else if open {
                    // Open connections refuse only what the API forbids.
                    assert!(
                        matches!(
                            r,
                            Err(Error::ControlPayloadTooLong(_) | Error::ChunkOutOfOrder)
                        ),
                        "{s:?} refused: {r:?}"
                    );
                }
            }
        }
        self.after();
    }

    fn on_event(&mut self, ev: Event) {
        // The peer's close and an error each end the connection's events.
        if let Some(last @ (Event::Close(_) | Event::Error(_))) = self.events.last() {
            panic!("{ev:?} after {last:?}");
        }
        let max = self.config.max_message_size;
        match &ev {
            Event::Message(m) => {
                assert!(m.len() <= max, "message of {} > {max}", m.len());
                match m {
                    Message::Text(t) => {
                        assert!(std::str::from_utf8(t.as_bytes()).is_ok())
                    }
                    Message::Binary(_) => {}
                    other => panic!("control message as an event: {other:?}"),
                }
                assert!(self.chunked.is_none(), "message inside a chunked one");
            }
            Event::Chunk { kind, data, fin } => {
                let (k, acc) = self.chunked.get_or_insert_with(|| (*kind, Vec::new()));
                assert_eq!(*k, *kind, "chunk kind changed inside a message");
                if *kind == DataKind::Text && acc.len() < 1 << 20 {
                    acc.extend_from_slice(data);
                }
                if *fin {
                    let (k, acc) = self.chunked.take().unwrap();
                    if k == DataKind::Text && acc.len() < 1 << 20 {
                        assert!(std::str::from_utf8(&acc).is_ok(), "chunked text not UTF-8");
                    }
                }
            }
            Event::Ping(p) | Event::Pong { payload: p, .. } => assert!(p.len() <= 125),
            Event::Close(f) => {
                if self.first_close.is_none() {
                    self.first_close = Some(Expect::Code(f.as_ref().map(|f| f.code.0)));
                }
            }
            Event::Error(e) => {
                self.chunked = None;
                match e {
                    Error::Protocol(p) => {
                        if self.first_close.is_none() {
                            self.first_close = Some(Expect::Code(Some(p.close_code().0)));
                        }
                    }
                    Error::KeepaliveTimeout => {
                        self.keepalive_failed = true;
                        assert!(self.first_close.is_some(), "keepalive failed, still open");
                    }
                    Error::AbnormalClosure => assert!(self.eof),
                    other => panic!("unexpected error event {other:?}"),
                }
            }
            other => panic!("event this target does not know: {other:?}"),
        }
        self.events.push(ev);
    }

    /// Checks after every step.
    fn after(&mut self) {
        if self.c.state() != State::Open && self.closing_since.is_none() {
            self.closing_since = Some(self.now);
        }
        if let Some(since) = self.closing_since {
            if self.timeouts > 0 && self.now >= since + self.config.close_timeout {
                self.close_timer_ran = true;
            }
        }

        // Events waiting: within the inbound limits plus one frame's worth
        // (before EOF: then what was read is parsed regardless).
        if !self.eof {
            let (events, bytes) = self.c.inbound_queued();
            let chunks_of_compressed = self.deflate && self.c.config().deliver_chunks;
            let (extra_events, extra_bytes) = if chunks_of_compressed {
                // Inflating one piece of compressed input, in steps of at
                // least 256 bytes, into chunks.
                let out = COMPRESSED_PIECE * MAX_INFLATE_RATIO + (64 << 10);
                (8 + out / (64 << 10) + 3, out)
            } else {
                let frame = self
                    .config
                    .max_message_size
                    .max(self.config.max_frame_size)
                    .max(125);
                (3, frame)
            };
            let max_events = self.config.max_inbound_events.max(1);
            let max_bytes = self.config.max_inbound_bytes.max(1);
            assert!(
                events <= max_events + extra_events,
                "{events} events waiting (limit {max_events})"
            );
            assert!(
                bytes <= max_bytes + extra_bytes,
                "{bytes} bytes of events waiting (limit {max_bytes})"
            );
        }

        // The transmit queue, while the application sends nothing.
        if !self.app_sent {
            let bound = self.config.write_high_water
                + MAX_CONTROL_FRAME
                + MAX_OWED_PONGS * MAX_CONTROL_FRAME
                + MAX_CONTROL_FRAME
                + 32 * (self.timeouts + 1);
            let buffered = self.c.buffered_amount();
            assert!(buffered <= bound, "{buffered} bytes queued (bound {bound})");
        }
    }

    /// Decodes what was written since the last check.
    fn check_frames(&mut self) {
        loop {
            let rest = &self.out[self.checked..];
            let Some((h, n)) = FrameHeader::decode(rest).expect("written header") else {
                return;
            };
            let len = h.payload_len as usize;
            if rest.len() < n + len {
                return;
            }
            let mut payload = rest[n..n + len].to_vec();
            if let Some(key) = h.mask {
                apply_mask(&mut payload, key, 0);
            }
            self.checked += n + len;
            assert_eq!(h.mask.is_some(), self.role == Role::Client, "masking");
            assert!(!self.seen_close_frame, "frame after a close");
            match h.opcode {
                0..=2 => {
                    assert!(len <= self.config.fragment_size.max(1), "fragment of {len}");
                    match (h.opcode, self.out_message) {
                        (0, None) => panic!("continuation without a message"),
                        (1 | 2, Some(_)) => panic!("new message inside a message"),
                        (0, Some(c)) => assert_eq!(h.rsv, 0, "RSV on a continuation ({c})"),
                        _ => {
                            assert!(h.rsv == 0 || (h.rsv == 4 && self.deflate), "RSV {}", h.rsv);
                        }
                    }
                    self.out_message = if h.fin { None } else { Some(h.rsv != 0) };
                }
                8..=10 => {
                    assert!(len <= 125 && h.fin && h.rsv == 0);
                    if h.opcode == 8 {
                        self.seen_close_frame = true;
                        self.check_close(&payload);
                    }
                }
                op => panic!("opcode {op} written"),
            }
        }
    }

    /// The close frame written: a valid payload with the expected code.
    fn check_close(&self, payload: &[u8]) {
        let frame = tether_core::parse_close_payload(payload).expect("valid close payload");
        let code = frame.map(|f| f.code.0);
        match self.first_close {
            Some(expect @ Expect::Code(_)) => self.assert_code(expect, code),
            // Its cause (or which timer) may not have been polled yet:
            // checked at the end.
            _ => {}
        }
    }

    fn assert_code(&self, expect: Expect, code: Option<u16>) {
        match expect {
            Expect::Code(c) => assert_eq!(code, c, "close code"),
            Expect::Timer => {
                let want = if self.keepalive_failed { 1011 } else { 1001 };
                assert_eq!(code, Some(want), "close code after a timer");
            }
        }
    }

    /// Drains events and output; checks the close frame against its cause.
    fn finish(&mut self) {
        self.poll_all();
        self.write_all();
        let closes: Vec<Option<u16>> = tether_frames(&self.out)
            .into_iter()
            .filter(|(op, _)| *op == 8)
            .map(|(_, p)| {
                tether_core::parse_close_payload(&p)
                    .unwrap()
                    .map(|f| f.code.0)
            })
            .collect();
        assert!(closes.len() <= 1, "{} close frames", closes.len());
        match (self.first_close, closes.first()) {
            (Some(expect), Some(code)) => self.assert_code(expect, *code),
            (None, Some(code)) => panic!("close {code:?} written for no reason seen"),
            (Some(expect), None) => assert!(
                self.eof_first || self.close_timer_ran,
                "no close frame written for {expect:?}"
            ),
            (None, None) => {}
        }
        let _ = self.start;
    }
}

/// Opcode and unmasked payload of every whole frame in `out`.
fn tether_frames(mut out: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while let Ok(Some((h, n))) = FrameHeader::decode(out) {
        let len = h.payload_len as usize;
        if out.len() < n + len {
            break;
        }
        let mut payload = out[n..n + len].to_vec();
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key, 0);
        }
        frames.push((h.opcode, payload));
        out = &out[n + len..];
    }
    frames
}

/// Events with each run of chunks joined: chunk boundaries follow the reads.
#[derive(Debug, PartialEq)]
enum Seen {
    Event(Event),
    Data(DataKind, Vec<u8>, bool),
}

fn joined(events: &[Event]) -> Vec<Seen> {
    let mut out = Vec::new();
    for ev in events {
        match ev {
            Event::Chunk { kind, data, fin } => {
                if let Some(Seen::Data(k, d, false)) = out.last_mut() {
                    assert_eq!(k, kind);
                    d.extend_from_slice(data);
                    if *fin {
                        out.pop().map(|s| match s {
                            Seen::Data(k, d, _) => out.push(Seen::Data(k, d, true)),
                            _ => unreachable!(),
                        });
                    }
                } else {
                    out.push(Seen::Data(*kind, data.to_vec(), *fin));
                }
            }
            other => out.push(Seen::Event(other.clone())),
        }
    }
    // Empty runs say nothing.
    out.retain(|s| !matches!(s, Seen::Data(_, d, false) if d.is_empty()));
    out
}

/// Split and whole reads saw the same, but for the valid prefix of a
/// streamed message cut off by an error.
fn same_events(whole: &[Event], split: &[Event]) {
    let (mut a, mut b) = (joined(whole), joined(split));
    let cut_prefix = |v: &mut Vec<Seen>| {
        let n = v.len();
        if n >= 2 {
            if let (Seen::Data(_, _, false), Seen::Event(Event::Error(_))) = (&v[n - 2], &v[n - 1])
            {
                return v.remove(n - 2).into_data();
            }
        }
        if n >= 3 {
            // The error may be followed by the EOF's.
            if let (Seen::Data(_, _, false), Seen::Event(Event::Error(_))) = (&v[n - 3], &v[n - 2])
            {
                return v.remove(n - 3).into_data();
            }
        }
        None
    };
    let pa = cut_prefix(&mut a);
    let pb = cut_prefix(&mut b);
    assert_eq!(a, b, "events depend on the reads");
    if let (Some(pa), Some(pb)) = (&pa, &pb) {
        assert!(
            pa.starts_with(pb) || pb.starts_with(pa),
            "different data before the error"
        );
    }
}

impl Seen {
    fn into_data(self) -> Option<Vec<u8>> {
        match self {
            Seen::Data(_, d, _) => Some(d),
            Seen::Event(_) => None,
        }
    }
}

fn run(data: &[u8]) -> arbitrary::Result<()> {
    let mut u = Unstructured::new(data);
    let mut head = [0u8; SETUP_LEN];
    let n = u.len().min(SETUP_LEN);
    head[..n].copy_from_slice(u.bytes(n)?);
    let setup = Setup::parse(&head);
    // Raw bytes first (the seeds' real frames), then what the peer sends.
    let raw_len = match u.bytes(2) {
        Ok(b) => u16::from_le_bytes([b[0], b[1]]) as usize,
        Err(_) => 0,
    };
    let raw = u.bytes(raw_len.min(u.len()))?;
    let nsteps = u.int_in_range(0..=24)?;
    let mut steps = Vec::new();
    for _ in 0..nsteps {
        steps.push(PeerStep::arbitrary(&mut u)?);
    }
    let wire = peer_wire(&setup, raw, &steps);
    if debug() {
        eprintln!(
            "role {:?} chaos {} deflate {:?}\n{:?}\nwire {:02x?}",
            setup.role, setup.chaos, setup.deflate, setup.config, wire
        );
    }
    let ops: Vec<Op> = u
        .arbitrary_take_rest_iter()?
        .take(256)
        .collect::<Result<_, _>>()?;

    let mut d = Driver::new(&setup);
    let mut at = 0;
    for op in &ops {
        match op {
            Op::Read { len, big, how } => {
                let len = if *big {
                    *len as usize * 256
                } else {
                    *len as usize
                };
                let end = (at + len).min(wire.len());
                d.read(&wire[at..end], *how);
                at = end;
            }
            Op::Poll(n) if *n == 255 => d.poll_all(),
            Op::Poll(n) => d.poll(*n),
            Op::Write(limit) => d.write(*limit),
            _ if !setup.chaos => {}
            Op::Timeout(ms) => d.timeout(*ms),
            Op::Send(s) => d.send(s),
            Op::Chunks(on) => d.c.set_deliver_chunks(*on),
            Op::Eof => d.eof(),
        }
    }
    d.read(&wire[at..], 0);
    d.poll_all();
    d.eof();
    d.finish();

    if !setup.chaos {
        let mut whole = Driver::new(&setup);
        whole.read(&wire, 0);
        whole.poll_all();
        whole.eof();
        whole.finish();
        same_events(&whole.events, &d.events);
    }
    Ok(())
}

/// FUZZ_DEBUG=1 prints the settings and the bytes read, to triage a crash.
fn debug() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FUZZ_DEBUG").is_some())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
