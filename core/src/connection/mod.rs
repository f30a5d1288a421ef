//! The WebSocket state machine after the opening handshake.
//!
//! It composes the helpers (frame codec, masking, UTF-8, close codes,
//! keepalive, transmit queue) and owns every policy decision: what a frame
//! means, when to answer, when to fail, when the transport may close.
//! Input comes in through `handle_*`, the application's wishes through the
//! commands, and everything the caller must do next through `poll_*`.

mod close;
#[cfg(feature = "deflate")]
mod inflate;
mod phase;
mod read;
mod receive;
mod send;

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

use phase::Phase;
pub use read::ReadOutcome;
use receive::{InFrame, InMessage};
use send::OwedPongs;

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
    /// The last `read_with` filled its buffer: more is probably waiting,
    /// so the next read goes straight into `read_buf`.
    streaming: bool,
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

    /// Open, closing (and how far), failed or ended.
    phase: Phase,
    /// Both close frames were exchanged; stays true when the phase moves on
    /// (the peer's end of stream, the close timeout).
    close_exchanged: bool,
    close_deadline: Option<Instant>,
    /// When bytes last arrived, for the idle timeout.
    last_input: Instant,
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
            streaming: false,
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
            phase: Phase::Open,
            close_exchanged: false,
            close_deadline: None,
            last_input: now,
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
    pub fn deflate_negotiated(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.decompressor.is_some();
        #[cfg(not(feature = "deflate"))]
        false
    }

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
        self.phase.state(self.role)
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
            if !self.write_blocked {
                trace!(debug, role = ?self.role, buffered, "outbound backpressure released");
            }
        } else if buffered > self.config.write_high_water {
            self.write_blocked = true;
            trace!(debug, role = ?self.role, buffered, "outbound backpressure: writers wait");
        }
        !self.write_blocked
    }

    /// Whether the caller should read from the socket. False while the
    /// application has not taken enough received messages (TCP then pushes
    /// back on the peer) and once the peer has ended its stream.
    pub fn wants_read(&self) -> bool {
        !self.is_finished() && !self.inbound_full()
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
        self.phase.is_finished(self.role)
    }

    /// Whether the close handshake is complete: the peer's close frame came
    /// and ours is queued in reply or was sent before. The connection has
    /// ended as both sides agreed, so a transport error from here on loses
    /// nothing and is not the connection's failure: an HTTP/2 peer that
    /// resets the stream after its close, a reset after the server's FIN.
    /// Drivers end the transport without reporting such an error.
    pub fn close_handshake_done(&self) -> bool {
        self.close_exchanged
    }

    /// Whether all that is left is to read the peer's answer to our close:
    /// our close frame is written (nothing may follow it) and the peer's
    /// has not come. A transport that refuses a write from here on has
    /// lost nothing, and the answer may already wait in its receive buffer
    /// (an HTTP/2 peer resets the stream as it answers, and the reset fails
    /// the next flush), so drivers keep reading, bounded by the close
    /// timeout, and report the write's error only if the answer never comes.
    pub fn awaits_close_reply(&self) -> bool {
        self.phase == Phase::CloseSent && !self.has_transmit()
    }

    pub(super) fn inbound_full(&self) -> bool {
        self.inbound_bytes >= self.config.max_inbound_bytes
            || self.events.len() >= self.config.max_inbound_events
    }
}
