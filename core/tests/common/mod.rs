//! Helpers shared by the integration tests: building connections, writing
//! raw frames as a peer would, draining and decoding what a connection
//! transmits, and collecting its events.

#![allow(dead_code)] // each test file uses a different subset

pub mod counting;

use std::io::IoSlice;
use std::time::{Duration, Instant};

use tether_core::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use tether_core::mask::apply_mask;
use tether_core::{Config, Connection, Event, Role, Xoshiro256};

/// Config without keepalive, so no ping shows up unless a test asks.
pub fn config() -> Config {
    Config::without_keepalive()
}

/// A connection created at `now` with a fixed seed.
pub fn conn_at(role: Role, config: Config, now: Instant) -> Connection {
    Connection::new(role, config, Box::new(Xoshiro256::from_seed(42)), now)
}

/// A connection without keepalive, created at `now`.
pub fn conn(role: Role, now: Instant) -> Connection {
    conn_at(role, config(), now)
}

/// `base + ms` milliseconds.
pub fn at(base: Instant, ms: u64) -> Instant {
    base + Duration::from_millis(ms)
}

/// The role of the other end.
pub fn peer_of(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// Mask key used for frames a client peer writes by hand.
pub const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame as written on the wire by a hand-made peer, with every field
/// under the test's control (including invalid ones).
#[derive(Debug, Clone)]
pub struct Raw {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

impl Raw {
    /// A final, unmasked frame with no RSV bits.
    pub fn new(opcode: u8, payload: impl AsRef<[u8]>) -> Self {
        Self {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload: payload.as_ref().to_vec(),
        }
    }

    /// A frame correctly masked (or not) for a connection playing `receiver`.
    pub fn to(receiver: Role, opcode: u8, payload: impl AsRef<[u8]>) -> Self {
        let mut f = Self::new(opcode, payload);
        if receiver == Role::Server {
            f.mask = Some(KEY);
        }
        f
    }

    pub fn fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    pub fn rsv(mut self, rsv: u8) -> Self {
        self.rsv = rsv;
        self
    }

    pub fn mask(mut self, mask: Option<[u8; 4]>) -> Self {
        self.mask = mask;
        self
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let header = FrameHeader {
            fin: self.fin,
            rsv: self.rsv,
            opcode: self.opcode,
            mask: self.mask,
            payload_len: self.payload.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut head);
        let mut out = head[..n].to_vec();
        let start = out.len();
        out.extend_from_slice(&self.payload);
        if let Some(key) = self.mask {
            apply_mask(&mut out[start..], key, 0);
        }
        out
    }
}

/// Wire opcodes, for readability.
pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// The bytes of several frames, back to back.
pub fn wire(frames: &[Raw]) -> Vec<u8> {
    frames.iter().flat_map(Raw::encode).collect()
}

/// A close frame payload: code then reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// Writes everything the connection has queued, as a socket taking all of
/// it would, and returns the bytes.
pub fn transmit(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let written = transmit_once(conn, usize::MAX);
        if written.is_empty() {
            return out;
        }
        out.extend_from_slice(&written);
    }
}

/// One `poll_transmit` + `advance_transmit` of at most `limit` bytes (a
/// socket that takes only part of what it is offered). Returns the bytes
/// written.
pub fn transmit_once(conn: &mut Connection, limit: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut iov = [IoSlice::new(&[]); 16];
        let n = conn.poll_transmit(&mut iov);
        for s in &iov[..n] {
            bytes.extend_from_slice(s);
        }
    }
    bytes.truncate(limit);
    conn.advance_transmit(bytes.len());
    bytes
}

/// A frame decoded from a connection's output, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
    /// Header length on the wire (tells which length form was used).
    pub header_len: usize,
}

impl Frame {
    /// The close code of a close frame, if it has one.
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, CLOSE, "not a close frame: {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Decodes frames back to back; panics on a truncated frame.
pub fn decode(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (h, n) = FrameHeader::decode(bytes)
            .expect("valid header")
            .unwrap_or_else(|| panic!("truncated header: {bytes:?}"));
        let len = h.payload_len as usize;
        assert!(bytes.len() >= n + len, "truncated payload");
        let mut payload = bytes[n..n + len].to_vec();
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key, 0);
        }
        frames.push(Frame {
            fin: h.fin,
            rsv: h.rsv,
            opcode: h.opcode,
            masked: h.mask.is_some(),
            payload,
            header_len: n,
        });
        bytes = &bytes[n + len..];
    }
    frames
}

/// Drains and decodes everything queued, checking that the masking matches
/// the sender's role.
pub fn sent_frames(conn: &mut Connection) -> Vec<Frame> {
    let frames = decode(&transmit(conn));
    for f in &frames {
        assert_eq!(
            f.masked,
            conn.role() == Role::Client,
            "masking of {f:?} from a {:?}",
            conn.role()
        );
    }
    frames
}

/// Every event waiting.
pub fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// The close code of the only close frame the connection has queued.
pub fn sent_close_code(conn: &mut Connection) -> Option<u16> {
    let frames = sent_frames(conn);
    let closes: Vec<&Frame> = frames.iter().filter(|f| f.opcode == CLOSE).collect();
    assert_eq!(
        closes.len(),
        1,
        "expected exactly one close frame in {frames:?}"
    );
    assert_eq!(
        frames.last().map(|f| f.opcode),
        Some(CLOSE),
        "close is not the last frame: {frames:?}"
    );
    closes[0].close_code()
}

/// Whether the op code is a control frame's.
pub fn is_control(opcode: u8) -> bool {
    OpCode::from_u8(opcode).is_some_and(OpCode::is_control)
}
