//! The WebSocket state machine after the opening handshake.
//!
//! It composes the helpers (frame codec, masking, UTF-8, close codes,
//! keepalive, transmit queue) and owns every policy decision: what a frame
//! means, when to answer, when to fail, when the transport may close.
//! Input comes in through `handle_*`, the application's wishes through the
//! commands, and everything the caller must do next through `poll_*`.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use crate::close::{encode_close_payload, parse_close_payload, CloseCode, CloseFrame};
use crate::config::Config;
#[cfg(feature = "deflate")]
use crate::deflate::{Compressor, Decompressor, DeflateParams};
use crate::error::{Error, ProtocolError};
use crate::frame::{FrameHeader, HeaderError, OpCode};
use crate::keepalive::{Due, Keepalive};
use crate::mask::apply_mask;
use crate::message::{DataKind, Message, Text};
use crate::outbox::Outbox;
use crate::rng::RandomSource;
use crate::time::deadline_after;
use crate::utf8::Utf8Validator;

/// Pongs owed but not yet framed. A peer that floods pings while not
/// reading would otherwise grow the transmit queue without bound; past this
/// many, only the latest pings are answered (RFC 6455 section 5.5.3 allows
/// answering just the most recent one).
const MAX_OWED_PONGS: usize = 32;

/// RSV1 in the low three bits of a header's RSV field: a compressed message.
#[cfg(feature = "deflate")]
const RSV1: u8 = 0b100;

/// Inflated bytes produced per step, so a compressed message grows its
/// buffer (and checks its limit) a little at a time.
#[cfg(feature = "deflate")]
const INFLATE_STEP: usize = 64 << 10;

/// Compressed input inflated at a time when delivering chunks: at most
/// about 4 MiB of output, queued before the inbound limit is checked again.
#[cfg(feature = "deflate")]
const COMPRESSED_PIECE: usize = 4 << 10;

/// Events the queue makes room for when it is first used (it is freed
/// when drained).
const EVENTS_START: usize = 16;

/// Most bytes [`Connection::read_buf`] offers at once when reading a large
/// frame straight into its message. The part offered is zero-filled once
/// (later offers reuse it), so the step bounds memory touched ahead of the
/// data while keeping reads large.
const DIRECT_READ_STEP: usize = 256 << 10;

/// Reads at least this long are searched for a trailing frame whose
/// payload can go straight to its message (see `before_trailing_payload`).
const WALK_MIN: usize = 16 << 10;

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Masks what it sends; expects unmasked frames.
    Client,
    /// Expects masked frames; sends unmasked ones; closes TCP first.
    Server,
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// A close frame was sent or received, or the connection failed; the
    /// close handshake is under way.
    Closing,
    /// Nothing more will be read or written; the transport should be
    /// closed once [`Connection::poll_transmit`] has nothing left.
    Closed,
}

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A whole text or binary message.
    Message(Message),
    /// Part of a data message, when [`Config::deliver_chunks`] is set.
    /// Chunks of one message arrive in order; the last has `fin`. Text
    /// chunks are validated as they come, but a chunk may end inside a
    /// multi-byte character.
    Chunk {
        /// Text or binary, the same for every chunk of a message.
        kind: DataKind,
        /// The bytes.
        data: Bytes,
        /// Last chunk of the message.
        fin: bool,
    },
    /// The peer pinged; the pong is already queued.
    Ping(Bytes),
    /// A pong arrived; `latency` is set when it answers a keepalive ping.
    Pong {
        /// The pong's payload.
        payload: Bytes,
        /// Round trip of the keepalive ping it answers.
        latency: Option<Duration>,
    },
    /// The peer's close frame (`None`: it carried no code).
    Close(Option<CloseFrame>),
    /// The connection failed: the peer broke the protocol or a limit, a
    /// keepalive ping went unanswered, or TCP ended without a close frame.
    /// It comes after every event that preceded the failure, and a close
    /// frame with the matching code is queued when it is taken, so the
    /// application may still answer the messages before it.
    Error(Error),
}

/// Header of the frame whose payload is being read.
#[derive(Debug)]
struct InFrame {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    mask_offset: usize,
    remaining: u64,
}

/// How many bytes at the front of `data` are whole frames followed by the
/// header of a data frame whose payload goes past `data`; 0 when `data`
/// ends otherwise. Looks past the first frame only if `walk`: a trailing
/// payload in a small read is cheap to copy twice, and every header
/// walked is decoded again by the parser.
fn before_trailing_payload(data: &[u8], walk: bool) -> usize {
    let mut at = 0;
    while let Ok(Some((h, len))) = FrameHeader::decode(&data[at..]) {
        let end = (at + len) as u64 + h.payload_len;
        if end > data.len() as u64 {
            return if h.opcode & 0x8 == 0 { at + len } else { 0 };
        }
        if !walk {
            return 0;
        }
        at = end as usize;
    }
    0
}

/// A data message being assembled (or streamed as chunks).
#[derive(Debug)]
struct InMessage {
    kind: DataKind,
    data: BytesMut,
    /// Bytes on the wire so far.
    size: u64,
    /// RSV1 was set on the first frame: the payload is deflated.
    compressed: bool,
    /// Delivered as chunks (the setting when the message began).
    chunked: bool,
    /// While a frame is read straight into `data`: how much of it is
    /// payload; the rest is zeroed room for the next read.
    filled: Option<usize>,
}

/// The protocol state machine of one WebSocket connection.
///
/// ```
/// use std::time::Instant;
/// use tether_core::{Config, Connection, Event, Message, Role, Xoshiro256};
///
/// let now = Instant::now();
/// let mut server = Connection::new(Role::Server, Config::default(), Box::new(Xoshiro256::from_seed(1)), now);
/// // A masked text frame "Hi" from a client (mask key 0).
/// server.handle_read(&[0x81, 0x82, 0, 0, 0, 0, b'H', b'i'], now);
/// assert_eq!(server.poll_event(), Some(Event::Message(Message::text("Hi"))));
/// server.send(Message::text("Hi")).unwrap();
/// let mut iov = [std::io::IoSlice::new(&[]); 8];
/// let n = server.poll_transmit(&mut iov);
/// let written: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
/// assert_eq!(written, [0x81, 0x02, b'H', b'i']);
/// server.advance_transmit(written.len());
/// ```
pub struct Connection {
    role: Role,
    config: Config,
    rng: Box<dyn RandomSource>,
    now: Instant,

    rbuf: BytesMut,
    read_base: Option<usize>,
    /// The last `read_buf` pointed into the message being assembled.
    read_direct: bool,
    frame: Option<InFrame>,
    message: Option<InMessage>,
    utf8: Utf8Validator,
    events: VecDeque<Event>,
    inbound_bytes: usize,

    out: Outbox,
    /// Pongs to send, framed once the transmit queue has room.
    owed_pongs: OwedPongs,
    /// Kind of the streamed message being sent, and whether it is compressed.
    sending: Option<(DataKind, bool)>,
    write_blocked: bool,
    /// Boxed: only connections that negotiated deflate pay for them.
    #[cfg(feature = "deflate")]
    compressor: Option<Box<Compressor>>,
    #[cfg(feature = "deflate")]
    decompressor: Option<Box<Decompressor>>,

    sent_close: bool,
    received_close: bool,
    failed: bool,
    /// A violation found while events before it still wait; the
    /// connection fails when the application reaches it.
    deferred_failure: bool,
    /// Parsing what was read before EOF, past the inbound limits.
    draining: bool,
    eof: bool,
    close_deadline: Option<Instant>,
    /// When bytes last arrived, for the idle timeout.
    last_input: Instant,
    close_timed_out: bool,
    keepalive: Keepalive,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state())
            .field("buffered_amount", &self.buffered_amount())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection whose opening handshake has completed at `now`.
    pub fn new(role: Role, config: Config, rng: Box<dyn RandomSource>, now: Instant) -> Self {
        let config = config.sanitized();
        let keepalive = Keepalive::new(&config, now);
        Self {
            role,
            rng,
            now,
            rbuf: BytesMut::new(),
            read_base: None,
            read_direct: false,
            frame: None,
            message: None,
            utf8: Utf8Validator::new(),
            events: VecDeque::new(),
            inbound_bytes: 0,
            out: Outbox::new(role == Role::Client),
            owed_pongs: OwedPongs::default(),
            sending: None,
            write_blocked: false,
            #[cfg(feature = "deflate")]
            compressor: None,
            #[cfg(feature = "deflate")]
            decompressor: None,
            sent_close: false,
            received_close: false,
            failed: false,
            deferred_failure: false,
            draining: false,
            eof: false,
            close_deadline: None,
            last_input: now,
            close_timed_out: false,
            keepalive,
            config,
        }
    }

    /// Turns on permessage-deflate with the parameters the handshake
    /// agreed on (`None` leaves it off).
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn with_deflate(mut self, params: Option<DeflateParams>) -> Self {
        self.compressor = params.clone().map(|p| Box::new(Compressor::new(p)));
        self.decompressor = params.map(|p| Box::new(Decompressor::new(p)));
        self
    }

    /// Whether permessage-deflate was negotiated.
    pub fn is_compressed(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.decompressor.is_some();
        #[cfg(not(feature = "deflate"))]
        false
    }

    // ---- getters ----

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The connection's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Switches between whole messages and [`Event::Chunk`]s, from the
    /// next message on (a message under way keeps its mode).
    pub fn set_deliver_chunks(&mut self, on: bool) {
        self.config.deliver_chunks = on;
    }

    /// Open, closing or closed.
    pub fn state(&self) -> State {
        if self.is_finished() {
            State::Closed
        } else if self.sent_close || self.received_close || self.failed {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Bytes queued for the socket, framed or not.
    pub fn buffered_amount(&self) -> usize {
        self.out.buffered() + self.owed_pongs.bytes()
    }

    /// Whether a writer may queue more data now. Turns false above
    /// `write_high_water` and true again only below `write_low_water`, so
    /// writers wake in batches rather than per byte.
    #[must_use]
    pub fn is_writable(&mut self) -> bool {
        let buffered = self.buffered_amount();
        if self.write_blocked {
            self.write_blocked = buffered > self.config.write_low_water;
        } else if buffered > self.config.write_high_water {
            self.write_blocked = true;
        }
        !self.write_blocked
    }

    /// Whether the caller should read from the socket. False while the
    /// application has not taken enough received messages (TCP then pushes
    /// back on the peer) and once the peer has ended its stream.
    pub fn wants_read(&self) -> bool {
        !self.eof && !self.is_finished() && !self.inbound_full()
    }

    /// Events waiting for [`poll_event`](Self::poll_event) and the bytes
    /// they hold, which the inbound limits bound. For the fuzz targets,
    /// which check that bound from outside.
    #[doc(hidden)]
    pub fn inbound_queued(&self) -> (usize, usize) {
        (self.events.len(), self.inbound_bytes)
    }

    /// Round trip of the last answered keepalive ping.
    pub fn latency(&self) -> Option<Duration> {
        self.keepalive.latency()
    }

    /// Whether the transport should be closed once the transmit queue is
    /// empty: the close handshake is over (or failed, or timed out), or the
    /// peer ended its stream.
    pub fn is_finished(&self) -> bool {
        if self.close_timed_out || self.eof {
            return true;
        }
        // The server closes TCP first (RFC 6455 section 7.1.1); the client
        // waits for that, bounded by the close timeout.
        self.role == Role::Server && self.sent_close && (self.received_close || self.failed)
    }

    fn inbound_full(&self) -> bool {
        self.inbound_bytes >= self.config.max_inbound_bytes
            || self.events.len() >= self.config.max_inbound_events
    }

    // ---- input from the world ----

    /// A buffer to read socket bytes into, to be followed by
    /// [`commit_read`](Self::commit_read) with the number of bytes read.
    /// Reading here saves the copy [`handle_read`](Self::handle_read) makes.
    ///
    /// While a large frame is under way the buffer is the message's own, so
    /// its payload is read in place, without a copy. Otherwise reading small
    /// amounts through `handle_read` is cheaper: this buffer is zero-filled
    /// each time, and stays allocated until read into.
    pub fn read_buf(&mut self) -> &mut [u8] {
        self.read_direct = false;
        if let Some(base) = self.read_base.take() {
            self.rbuf.truncate(base);
        }
        if let Some(want) = self.direct_room(self.config.read_chunk_size as u64) {
            let want = want.min(DIRECT_READ_STEP as u64) as usize;
            self.rbuf = BytesMut::new();
            self.read_direct = true;
            let m = self.message.as_mut().expect("checked by direct_room");
            let filled = *m.filled.get_or_insert(m.data.len());
            if m.data.len() < filled + want {
                m.data.resize(filled + want, 0);
            }
            return &mut m.data[filled..filled + want];
        }
        let len = self.rbuf.len();
        self.rbuf.resize(len + self.config.read_chunk_size, 0);
        self.read_base = Some(len);
        &mut self.rbuf[len..]
    }

    /// Takes `n` bytes read into [`read_buf`](Self::read_buf).
    pub fn commit_read(&mut self, n: usize, now: Instant) {
        if std::mem::take(&mut self.read_direct) {
            self.now = now;
            if n > 0 {
                self.last_input = now;
            }
            let r = self.take_direct_read(n);
            return self.after_parse(r);
        }
        let base = self.read_base.take().expect("commit_read without read_buf");
        assert!(
            n <= self.rbuf.len() - base,
            "committed more than read_buf gave"
        );
        self.rbuf.truncate(base + n);
        self.now = now;
        if n > 0 {
            self.last_input = now;
        }
        self.process()
    }

    /// Takes bytes read from the socket.
    ///
    /// The payload of a frame that does not end within `data` is copied
    /// straight into its message; the rest goes through the read buffer,
    /// from which whole frames become messages without another copy.
    pub fn handle_read(&mut self, mut data: &[u8], now: Instant) {
        self.read_direct = false;
        if let Some(base) = self.read_base.take() {
            self.rbuf.truncate(base);
        }
        self.now = now;
        if !data.is_empty() {
            self.last_input = now;
        }
        while !data.is_empty() && self.rbuf.is_empty() {
            if let Some(room) = self.direct_room(0) {
                let n = room.min(data.len() as u64) as usize;
                let m = self.message.as_mut().expect("checked by direct_room");
                if let Some(filled) = m.filled.take() {
                    m.data.truncate(filled);
                }
                m.filled = Some(m.data.len());
                m.data.extend_from_slice(&data[..n]);
                data = &data[n..];
                let r = self.take_direct_read(n);
                self.after_parse(r);
                continue;
            }
            if self.frame.is_some() || self.failed || self.deferred_failure || self.received_close {
                break;
            }
            // Whole frames go through the read buffer, where each becomes a
            // message without another copy. Of a data frame that goes past
            // `data`, only the header does: its payload is copied straight
            // into its message on the next turn.
            let take = before_trailing_payload(data, data.len() >= WALK_MIN);
            if take == 0 {
                break;
            }
            self.rbuf.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.process();
        }
        if !data.is_empty() {
            self.rbuf.extend_from_slice(data);
        }
        self.process()
    }

    /// The peer ended its byte stream (read returned 0). Without a close
    /// frame before it, that is [`Error::AbnormalClosure`] (an
    /// [`Event::Error`]).
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        if self.eof {
            return;
        }
        self.read_direct = false;
        if let Some(base) = self.read_base.take() {
            self.rbuf.truncate(base);
        }
        // Frames read before the end still count, even those held back by
        // backpressure (their bytes are in memory already): the peer may
        // have sent its last messages and its close right before FIN.
        self.draining = true;
        self.process();
        self.draining = false;
        self.eof = true;
        self.rbuf = BytesMut::new();
        self.read_base = None;
        if !(self.received_close || self.failed || self.deferred_failure) {
            self.push_event(Event::Error(Error::AbnormalClosure));
        }
    }

    /// Runs the timers due at `now`: keepalive pings, the ping timeout
    /// (fails the connection with 1011) and the close timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if let Some(deadline) = self.close_deadline {
            if now >= deadline && !self.close_timed_out {
                // Give up on the peer: what it has not read by now it never
                // will, and waiting for it would keep the socket open.
                self.close_timed_out = true;
                self.out = Outbox::new(self.role == Role::Client);
                self.owed_pongs.clear();
            }
        }
        // After the peer's EOF, or a violation the application has yet to
        // reach, the connection's end is decided: a keepalive failure or an
        // idle close would be a second end, with another close code.
        if self.sent_close
            || self.received_close
            || self.failed
            || self.deferred_failure
            || self.eof
        {
            return;
        }
        if let Some(idle) = self.config.idle_timeout {
            if now >= deadline_after(self.last_input, idle) {
                // Nothing arrived for too long (pongs count): close politely.
                let _ = self.close(CloseCode::GOING_AWAY, "idle timeout");
                return;
            }
        }
        match self.keepalive.poll(&self.config, now, self.inbound_full()) {
            Due::Nothing => {}
            Due::Ping => {
                let payload = Keepalive::payload(&mut *self.rng);
                self.keepalive.ping_sent(&self.config, payload, now);
                let payload = Bytes::copy_from_slice(&payload);
                self.out
                    .push_frame(true, 0, OpCode::Ping, &payload, &mut *self.rng);
            }
            Due::TimedOut => {
                self.fail_with(CloseCode::INTERNAL_ERROR, "keepalive ping timed out");
                self.push_event(Event::Error(Error::KeepaliveTimeout));
            }
        }
    }

    // ---- commands ----

    /// Queues a message. Text and binary go out in order behind earlier
    /// data; ping and pong go out ahead of pending data; close starts the
    /// close handshake after the data queued before it.
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        match message {
            Message::Text(t) => self.send_data(OpCode::Text, t.into_bytes(), true),
            Message::Binary(b) => self.send_data(OpCode::Binary, b, true),
            Message::Ping(p) => self.send_control(OpCode::Ping, p),
            Message::Pong(p) => self.send_control(OpCode::Pong, p),
            Message::Close(frame) => match frame {
                Some(f) => self.close(f.code, &f.reason),
                None => self.close_without_code(),
            },
        }
    }

    fn send_data(&mut self, opcode: OpCode, payload: Bytes, compress: bool) -> Result<(), Error> {
        if self.sent_close || self.failed || self.eof {
            return Err(Error::Closed);
        }
        if self.sending.is_some() {
            return Err(Error::ChunkOutOfOrder);
        }
        let (rsv, payload) = self.maybe_compress(payload, compress, true, true);
        self.out.push_data(
            opcode,
            rsv,
            payload,
            true,
            self.config.fragment_size,
            &mut *self.rng,
        );
        Ok(())
    }

    /// Queues a text or binary message without compressing it, even when
    /// permessage-deflate is on (already-compressed data, say).
    pub fn send_uncompressed(&mut self, message: Message) -> Result<(), Error> {
        match message {
            Message::Text(t) => self.send_data(OpCode::Text, t.into_bytes(), false),
            Message::Binary(b) => self.send_data(OpCode::Binary, b, false),
            other => self.send(other),
        }
    }

    /// Deflates `payload` when compression is on and wanted: returns the RSV
    /// bits for the message's first frame and the bytes to send. A whole
    /// message below the threshold goes out as it is.
    #[allow(unused_variables)]
    fn maybe_compress(
        &mut self,
        payload: Bytes,
        wanted: bool,
        whole: bool,
        end: bool,
    ) -> (u8, Bytes) {
        #[cfg(feature = "deflate")]
        if let Some(c) = self.compressor.as_mut().filter(|_| wanted) {
            if !whole || payload.len() >= c.threshold() {
                let mut out = Vec::with_capacity(payload.len() / 2 + 16);
                c.compress(&payload, &mut out, end);
                return (RSV1, Bytes::from(out));
            }
        }
        (0, payload)
    }

    /// Queues one chunk of a message streamed out piece by piece. The first
    /// chunk gives the kind; the one with `fin` ends the message. Each
    /// chunk becomes one or more frames, so the message is never held whole.
    pub fn send_chunk(&mut self, kind: DataKind, data: Bytes, fin: bool) -> Result<(), Error> {
        if self.sent_close || self.failed || self.eof {
            return Err(Error::Closed);
        }
        let (opcode, compress) = match self.sending {
            None => match kind {
                DataKind::Text => (OpCode::Text, self.is_compressed()),
                DataKind::Binary => (OpCode::Binary, self.is_compressed()),
            },
            Some((k, compressed)) if k == kind => (OpCode::Continuation, compressed),
            Some(_) => return Err(Error::ChunkOutOfOrder),
        };
        self.sending = if fin { None } else { Some((kind, compress)) };
        // Each chunk is deflated on its own with a sync flush, so the
        // message is compressed piece by piece as it is produced.
        let (rsv, data) = self.maybe_compress(data, compress, false, fin);
        let rsv = if opcode == OpCode::Continuation {
            0
        } else {
            rsv
        };
        self.out.push_data(
            opcode,
            rsv,
            data,
            fin,
            self.config.fragment_size,
            &mut *self.rng,
        );
        Ok(())
    }

    fn send_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), Error> {
        if self.sent_close || self.failed || self.eof {
            return Err(Error::Closed);
        }
        if payload.len() > 125 {
            return Err(Error::ControlPayloadTooLong(payload.len()));
        }
        self.out
            .push_frame(true, 0, opcode, &payload, &mut *self.rng);
        Ok(())
    }

    /// Sends a ping. Its pong arrives as [`Event::Pong`].
    pub fn ping(&mut self, payload: Bytes) -> Result<(), Error> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Starts the close handshake with `code` and `reason` (cut to 123
    /// bytes). Data queued before still goes out first. Closing twice is a
    /// no-op.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !code.is_sendable() {
            return Err(Error::InvalidCloseCode(code.0));
        }
        let mut payload = Vec::with_capacity(2 + reason.len().min(123));
        encode_close_payload(
            Some(&CloseFrame {
                code,
                reason: reason.to_owned(),
            }),
            &mut payload,
        );
        self.queue_close(Bytes::from(payload));
        Ok(())
    }

    fn close_without_code(&mut self) -> Result<(), Error> {
        self.queue_close(Bytes::new());
        Ok(())
    }

    fn queue_close(&mut self, payload: Bytes) {
        if self.sent_close || self.failed || self.eof {
            return;
        }
        self.sent_close = true;
        self.close_deadline = Some(deadline_after(self.now, self.config.close_timeout));
        self.frame_owed_pongs(true);
        self.out.push_close_after_data(payload, &mut *self.rng);
    }

    /// Fails the connection: drops unsent data, sends a close frame with
    /// `code` and ignores all further input.
    fn fail_with(&mut self, code: CloseCode, reason: &str) {
        if self.failed {
            return;
        }
        self.failed = true;
        self.frame = None;
        self.message = None;
        self.rbuf = BytesMut::new();
        self.read_base = None;
        if !self.sent_close && !self.eof {
            // Data queued before the failure (answers to messages the
            // application already had) still goes out, then the close.
            self.sent_close = true;
            let mut payload = Vec::new();
            encode_close_payload(
                Some(&CloseFrame {
                    code,
                    reason: reason.to_owned(),
                }),
                &mut payload,
            );
            self.frame_owed_pongs(true);
            self.out
                .push_close_after_data(Bytes::from(payload), &mut *self.rng);
        }
        self.close_deadline = Some(deadline_after(self.now, self.config.close_timeout));
    }

    // ---- what the caller must do next ----

    /// The next event, if any. Taking events makes room for more input
    /// when [`wants_read`](Self::wants_read) was false.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let Some(ev) = self.events.pop_front() else {
            // Drained: an idle connection holds no queue.
            self.events = VecDeque::new();
            return None;
        };
        self.inbound_bytes -= event_bytes(&ev);
        if let Event::Error(Error::Protocol(e)) = &ev {
            if self.deferred_failure {
                self.deferred_failure = false;
                self.fail_with(e.close_code(), &e.to_string());
            }
        }
        self.read_direct = false;
        if let Some(base) = self.read_base.take() {
            // A read_buf that was not committed (the read would block).
            self.rbuf.truncate(base);
        }
        if self.events.is_empty() && !self.rbuf.is_empty() {
            // Input held back by backpressure: parse it now that there is room.
            self.process();
        }
        Some(ev)
    }

    /// Fills `iov` with the bytes to write next and returns how many slices
    /// it used (0 when nothing is queued). Write them (vectored, as many as
    /// the socket takes), then call [`advance_transmit`](Self::advance_transmit).
    #[must_use]
    pub fn poll_transmit<'a>(&'a mut self, iov: &mut [IoSlice<'a>]) -> usize {
        self.frame_owed_pongs(false);
        self.out
            .slices(self.config.fragment_size, &mut *self.rng, iov)
    }

    /// Marks `n` bytes from the last [`poll_transmit`](Self::poll_transmit)
    /// as written.
    pub fn advance_transmit(&mut self, n: usize) {
        self.out.advance(n);
    }

    /// Whether bytes wait to be written.
    pub fn has_transmit(&self) -> bool {
        !self.out.is_empty() || !self.owed_pongs.is_empty()
    }

    /// Frames owed pongs while the transmit queue is below its high-water
    /// mark, or all of them before a close frame (nothing may follow it).
    fn frame_owed_pongs(&mut self, before_close: bool) {
        while before_close || self.out.buffered() < self.config.write_high_water {
            let Some(p) = self.owed_pongs.pop_front() else {
                return;
            };
            self.out
                .push_frame(true, 0, OpCode::Pong, &p, &mut *self.rng);
        }
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) should be
    /// called, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            // A failed server is finished at once, yet its close frame may
            // sit behind data a dead peer never reads: the close timeout
            // still bounds that wait.
            return self
                .close_deadline
                .filter(|_| self.has_transmit() && !self.close_timed_out);
        }
        if self.sent_close || self.received_close || self.failed {
            return self.close_deadline;
        }
        let idle = self
            .config
            .idle_timeout
            .map(|t| deadline_after(self.last_input, t));
        match (self.keepalive.deadline(&self.config), idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- parsing ----

    fn process(&mut self) {
        if self.failed || self.deferred_failure || self.received_close {
            // Nothing after a close or a violation is read; dropping it
            // keeps memory bounded while we wait for the peer to hang up.
            self.rbuf = BytesMut::new();
            return;
        }
        let r = self.parse();
        self.after_parse(r);
    }

    /// Turns a violation into a failure (now, or once the application has
    /// taken the events before it), and frees the read buffer once it is
    /// empty, so an idle connection holds none.
    fn after_parse(&mut self, r: Result<(), ProtocolError>) {
        if self.rbuf.is_empty() && self.read_base.is_none() {
            self.rbuf = BytesMut::new();
        }
        if let Err(e) = r {
            // Stop reading either way; fail now if the application has seen
            // everything before the violation, else when it gets there.
            self.frame = None;
            self.message = None;
            self.rbuf = BytesMut::new();
            if self.events.is_empty() {
                self.fail_with(e.close_code(), &e.to_string());
            } else {
                self.deferred_failure = true;
            }
            self.push_event(Event::Error(Error::Protocol(e)));
        }
    }

    /// How many payload bytes may go straight into the message being
    /// assembled: for an uncompressed message delivered whole, whose frame
    /// has at least `min` bytes to come and nothing buffered before them.
    fn direct_room(&self, min: u64) -> Option<u64> {
        if !self.rbuf.is_empty()
            || self.failed
            || self.deferred_failure
            || self.received_close
            || self.eof
            || self.inbound_full()
        {
            return None;
        }
        let frame = self.frame.as_ref()?;
        let m = self.message.as_ref()?;
        if frame.opcode.is_control()
            || m.chunked
            || m.compressed
            || frame.remaining == 0
            || frame.remaining < min
        {
            return None;
        }
        Some(frame.remaining)
    }

    /// Takes `n` payload bytes put into the message past `filled` (by a
    /// read into `read_buf`, or copied by `handle_read`).
    fn take_direct_read(&mut self, n: usize) -> Result<(), ProtocolError> {
        // The connection may have failed between read_buf and commit_read,
        // dropping the message: the bytes are then ignored.
        let (Some(frame), Some(m)) = (self.frame.as_mut(), self.message.as_mut()) else {
            return Ok(());
        };
        let start = m.filled.unwrap_or(m.data.len());
        assert!(
            n as u64 <= frame.remaining && start + n <= m.data.len(),
            "committed more than read_buf gave"
        );
        let end = start + n;
        if let Some(key) = frame.mask {
            frame.mask_offset = apply_mask(&mut m.data[start..end], key, frame.mask_offset);
        }
        if m.kind == DataKind::Text {
            self.utf8
                .feed(&m.data[start..end])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        m.filled = Some(end);
        frame.remaining -= n as u64;
        if frame.remaining > 0 {
            return Ok(());
        }
        let fin = frame.fin;
        self.frame = None;
        m.data.truncate(end);
        m.filled = None;
        if fin {
            if m.kind == DataKind::Text && !self.utf8.is_complete() {
                return Err(ProtocolError::InvalidUtf8);
            }
            let m = self.message.take().expect("message");
            self.finish_message(m);
        }
        Ok(())
    }

    fn push_event(&mut self, ev: Event) {
        if self.events.capacity() == 0 {
            // Room for a burst, rather than growing 4, 8, 16.
            self.events.reserve(EVENTS_START);
        }
        self.inbound_bytes += event_bytes(&ev);
        self.events.push_back(ev);
    }

    fn parse(&mut self) -> Result<(), ProtocolError> {
        while !self.received_close
            && !self.failed
            && !self.deferred_failure
            && !self.eof
            && (self.draining || !self.inbound_full())
        {
            let Some(frame) = &mut self.frame else {
                if !self.parse_header()? {
                    return Ok(());
                }
                continue;
            };
            if frame.opcode.is_control() {
                if (self.rbuf.len() as u64) < frame.remaining {
                    return Ok(());
                }
                let mut payload = self.rbuf.split_to(frame.remaining as usize);
                if let Some(key) = frame.mask {
                    apply_mask(&mut payload, key, 0);
                }
                let opcode = frame.opcode;
                self.frame = None;
                self.handle_control(opcode, payload.freeze())?;
                continue;
            }
            #[allow(unused_mut)]
            let mut n = frame.remaining.min(self.rbuf.len() as u64) as usize;
            #[cfg(feature = "deflate")]
            if self
                .message
                .as_ref()
                .is_some_and(|m| m.compressed && m.chunked)
            {
                // Deflate expands up to about 1032:1: chunks inflate from a
                // bounded piece of input at a time, so the inbound limit,
                // checked between pieces, bounds what they queue.
                n = n.min(COMPRESSED_PIECE);
            }
            if n == 0 && frame.remaining > 0 {
                return Ok(());
            }
            let mut chunk = self.rbuf.split_to(n);
            if let Some(key) = frame.mask {
                frame.mask_offset = apply_mask(&mut chunk, key, frame.mask_offset);
            }
            frame.remaining -= n as u64;
            let frame_done = frame.remaining == 0;
            let fin = frame_done && frame.fin;
            if frame_done {
                self.frame = None;
            }
            let message = self.message.as_mut().expect("data frame without a message");
            #[cfg(feature = "deflate")]
            if message.compressed {
                self.inflate_payload(&chunk, fin)?;
                continue;
            }
            if message.kind == DataKind::Text {
                self.utf8
                    .feed(&chunk)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
                if fin && !self.utf8.is_complete() {
                    return Err(ProtocolError::InvalidUtf8);
                }
            }
            if message.chunked {
                let kind = message.kind;
                if fin {
                    self.message = None;
                }
                if n > 0 || fin {
                    self.push_event(Event::Chunk {
                        kind,
                        data: chunk.freeze(),
                        fin,
                    });
                }
            } else {
                if let Some(filled) = message.filled.take() {
                    message.data.truncate(filled);
                }
                if message.data.is_empty() && fin {
                    // The whole message is this one chunk: hand it over
                    // without copying.
                    message.data = chunk;
                } else {
                    message.data.extend_from_slice(&chunk);
                }
                if fin {
                    let m = self.message.take().expect("message");
                    self.finish_message(m);
                }
            }
        }
        Ok(())
    }

    /// Inflates a piece of a compressed message in bounded steps: into the
    /// message (checking the size limit after every step, so a bomb stops
    /// at the limit) or into chunk events.
    #[cfg(feature = "deflate")]
    fn inflate_payload(&mut self, input: &[u8], fin: bool) -> Result<(), ProtocolError> {
        self.inflate_piece(input)?;
        if fin {
            self.inflate_piece(Decompressor::tail())?;
            if let Some(d) = self.decompressor.as_mut() {
                d.end_message();
            }
            let m = self.message.take().expect("message");
            if m.kind == DataKind::Text && !self.utf8.is_complete() {
                return Err(ProtocolError::InvalidUtf8);
            }
            if m.chunked {
                self.push_event(Event::Chunk {
                    kind: m.kind,
                    data: Bytes::new(),
                    fin: true,
                });
            } else {
                self.finish_message(m);
            }
        }
        Ok(())
    }

    #[cfg(feature = "deflate")]
    fn inflate_piece(&mut self, mut input: &[u8]) -> Result<(), ProtocolError> {
        let limit = self.config.max_message_size;
        let chunks = self.message.as_ref().is_some_and(|m| m.chunked);
        // Output room of the first step follows the input, so that a tiny
        // frame does not zero a whole step; later steps (zlib had more) are
        // full ones.
        let mut step = input.len().saturating_mul(4).clamp(256, INFLATE_STEP);
        loop {
            let m = self
                .message
                .as_mut()
                .expect("compressed frame without a message");
            let d = self
                .decompressor
                .as_mut()
                .expect("RSV1 accepted without deflate");
            if chunks {
                m.data.clear();
            }
            let start = m.data.len();
            let room = if chunks {
                step
            } else {
                // One byte past the limit is enough to know it was passed.
                step.min((limit - start.min(limit)).saturating_add(1))
            };
            m.data.resize(start + room, 0);
            let (used, wrote, corrupt) = match d.inflate(input, &mut m.data[start..]) {
                Ok((used, wrote)) => (used, wrote, false),
                Err(e) => (0, e.wrote, true),
            };
            m.data.truncate(start + wrote);
            input = &input[used..];
            // Faults are reported in the order of the inflated bytes (text
            // within the limit, then the limit, then corrupt data after
            // them), so the error does not depend on how much one step
            // inflated, that is on how reads cut the frames.
            if m.kind == DataKind::Text {
                let end = if chunks {
                    m.data.len()
                } else {
                    m.data.len().min(limit)
                };
                self.utf8
                    .feed(&m.data[start.min(end)..end])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            if !chunks && m.data.len() > limit {
                return Err(ProtocolError::MessageTooLarge {
                    size: m.data.len() as u64,
                    limit,
                });
            }
            if corrupt {
                return Err(ProtocolError::InvalidCompressedData);
            }
            if chunks && wrote > 0 {
                let (kind, data) = (m.kind, m.data.split().freeze());
                self.push_event(Event::Chunk {
                    kind,
                    data,
                    fin: false,
                });
            }
            // Done when the input is used up and zlib had room to spare
            // (nothing more is pending inside it).
            if (input.is_empty() && wrote < room) || (used == 0 && wrote == 0) {
                return Ok(());
            }
            step = (step * 2).min(INFLATE_STEP);
        }
    }

    fn finish_message(&mut self, m: InMessage) {
        let data = m.data.freeze();
        let msg = match m.kind {
            DataKind::Text => Message::Text(Text::from_validated(data)),
            DataKind::Binary => Message::Binary(data),
        };
        self.push_event(Event::Message(msg));
    }

    /// Reads and checks the next frame header. Returns false when more
    /// bytes are needed.
    fn parse_header(&mut self) -> Result<bool, ProtocolError> {
        let (h, len) = match FrameHeader::decode(&self.rbuf) {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(false),
            Err(HeaderError::LengthOverflow) => return Err(ProtocolError::LengthOverflow),
        };
        let opcode = OpCode::from_u8(h.opcode).ok_or(ProtocolError::ReservedOpcode(h.opcode))?;
        // RSV1 marks a compressed message: only with permessage-deflate,
        // and only on a message's first frame (RFC 7692 section 6).
        let compressed = h.rsv == 0b100
            && self.is_compressed()
            && matches!(opcode, OpCode::Text | OpCode::Binary);
        if h.rsv != 0 && !compressed {
            return Err(ProtocolError::ReservedBits(h.rsv));
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if opcode.is_control() {
            if h.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLong(h.payload_len));
            }
            if !h.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
        } else {
            if h.payload_len > self.config.max_frame_size as u64 {
                return Err(ProtocolError::FrameTooLarge {
                    size: h.payload_len,
                    limit: self.config.max_frame_size,
                });
            }
            let kind = match opcode {
                OpCode::Text => Some(DataKind::Text),
                OpCode::Binary => Some(DataKind::Binary),
                _ => None,
            };
            match (kind, &mut self.message) {
                (None, None) => return Err(ProtocolError::UnexpectedContinuation),
                (Some(_), Some(_)) => return Err(ProtocolError::ExpectedContinuation),
                (Some(kind), None) => {
                    self.utf8.reset();
                    self.message = Some(InMessage {
                        kind,
                        data: BytesMut::new(),
                        size: 0,
                        compressed,
                        chunked: self.config.deliver_chunks,
                        filled: None,
                    });
                }
                (None, Some(_)) => {}
            }
            let m = self.message.as_mut().expect("message");
            m.size += h.payload_len;
            // A compressed message's limit applies to its inflated size.
            if !m.chunked && !m.compressed && m.size > self.config.max_message_size as u64 {
                return Err(ProtocolError::MessageTooLarge {
                    size: m.size,
                    limit: self.config.max_message_size,
                });
            }
            let buffered = (self.rbuf.len() - len) as u64;
            if !m.chunked
                && !m.compressed
                && m.data.capacity() == 0
                && (!h.fin || h.payload_len > buffered)
            {
                // Reserve for the whole frame (or two, when more follow), so
                // the payload is read in place and never moved. The sizes
                // were checked against the limits above; the memory only
                // becomes resident as the payload arrives.
                let want = if h.fin {
                    h.payload_len
                } else {
                    h.payload_len.saturating_mul(2)
                };
                m.data
                    .reserve(want.min(self.config.max_message_size as u64) as usize);
            }
        }
        self.rbuf.advance(len);
        self.frame = Some(InFrame {
            opcode,
            fin: h.fin,
            mask: h.mask,
            mask_offset: 0,
            remaining: h.payload_len,
        });
        Ok(true)
    }

    fn handle_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), ProtocolError> {
        match opcode {
            OpCode::Ping => {
                if !self.sent_close {
                    self.owed_pongs.push(payload.clone());
                    self.frame_owed_pongs(false);
                }
                self.push_event(Event::Ping(payload));
            }
            OpCode::Pong => {
                let latency = self.keepalive.pong(&payload, self.now);
                self.push_event(Event::Pong { payload, latency });
            }
            OpCode::Close => {
                let frame =
                    parse_close_payload(&payload).map_err(ProtocolError::InvalidClosePayload)?;
                self.received_close = true;
                self.rbuf = BytesMut::new();
                if !self.sent_close {
                    // Echo the code (RFC 6455 section 5.5.1); data the
                    // application queued before still goes out first.
                    let mut echo = Vec::new();
                    if let Some(f) = &frame {
                        echo.extend_from_slice(&f.code.0.to_be_bytes());
                    }
                    self.sent_close = true;
                    self.frame_owed_pongs(true);
                    self.out
                        .push_close_after_data(Bytes::from(echo), &mut *self.rng);
                }
                if self.close_deadline.is_none() {
                    self.close_deadline = Some(deadline_after(self.now, self.config.close_timeout));
                }
                self.push_event(Event::Close(frame));
            }
            _ => unreachable!("not a control opcode"),
        }
        Ok(())
    }
}

fn event_bytes(ev: &Event) -> usize {
    match ev {
        Event::Message(m) => m.len(),
        Event::Chunk { data, .. } => data.len(),
        Event::Ping(p) => p.len(),
        Event::Pong { payload, .. } => payload.len(),
        Event::Close(_) | Event::Error(_) => 0,
    }
}

/// Pongs owed to the peer's pings, not yet framed: boxed and held only
/// while some are owed, since nearly always none are.
#[derive(Default)]
#[allow(clippy::box_collection)] // The box is the point: 8 bytes inline, not 32.
struct OwedPongs(Option<Box<VecDeque<Bytes>>>);

impl OwedPongs {
    /// Owes a pong; past the limit the oldest is forgotten (a pong need
    /// only answer the most recent ping, RFC 6455 section 5.5.3).
    fn push(&mut self, payload: Bytes) {
        let q = self.0.get_or_insert_with(Default::default);
        if q.len() == MAX_OWED_PONGS {
            q.pop_front();
        }
        q.push_back(payload);
    }

    fn pop_front(&mut self) -> Option<Bytes> {
        let q = self.0.as_mut()?;
        let p = q.pop_front();
        if q.is_empty() {
            self.0 = None;
        }
        p
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn clear(&mut self) {
        self.0 = None;
    }

    /// Their size on the wire (each with a two-byte header).
    fn bytes(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |q| q.iter().map(|p| p.len() + 2).sum())
    }
}
