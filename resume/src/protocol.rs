//! The protocol itself, sans-IO: its messages ([`Frame`]), a [`Sender`]
//! and a [`Receiver`], with no clock, no I/O and no runtime.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use tether_core::CloseCode;

/// The protocol version this module speaks.
pub const VERSION: u8 = 1;

/// The subprotocol name to negotiate (`Sec-WebSocket-Protocol`).
pub const SUBPROTOCOL: &str = "tether.resume.v1";

/// Longest cursor a batch can carry (its length is a `u16`).
pub const MAX_CURSOR_LEN: usize = u16::MAX as usize;

/// Largest "next sequence number" a position can hold, so the last batch
/// is `MAX_SEQ - 1`. It is `i64::MAX`, so a position fits the signed 64-bit
/// integers SQL databases store; a larger number on the wire is malformed,
/// and `seq + 1` can never overflow.
pub const MAX_SEQ: u64 = i64::MAX as u64;

const RESUME: u8 = 0x01;
const BATCH: u8 = 0x02;
const ACK: u8 = 0x03;
const END: u8 = 0x04;

/// Where a receiver stands: the next batch it wants and the cursor after
/// the last one it committed. Store it in the same transaction as the data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Position {
    /// Sequence number of the next batch.
    pub next_seq: u64,
    /// The sender's cursor after the last committed batch (empty: start).
    pub cursor: Bytes,
}

/// One batch as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Its sequence number.
    pub seq: u64,
    /// The sender's cursor just after it.
    pub cursor: Bytes,
    /// The application's bytes.
    pub payload: Bytes,
}

impl Batch {
    /// The position to store when this batch commits.
    pub fn position_after(&self) -> Position {
        Position {
            // A decoded batch's number is below MAX_SEQ; one built by hand
            // may not be.
            next_seq: self.seq.saturating_add(1),
            cursor: self.cursor.clone(),
        }
    }
}

/// A decoded protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Receiver to sender: start (again) here.
    Resume {
        /// The receiver's position.
        position: Position,
        /// Most unacknowledged batches the receiver accepts.
        window: u32,
    },
    /// Sender to receiver: data.
    Batch(Batch),
    /// Receiver to sender: every batch up to `seq` is committed.
    Ack {
        /// The last committed batch.
        seq: u64,
    },
    /// Sender to receiver: no batch after `next_seq - 1`.
    End {
        /// One past the last batch.
        next_seq: u64,
    },
}

/// A message that breaks the protocol. The connection should be closed
/// with [`close_code`](Self::close_code) and the reason from `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeError {
    /// Too short, an unknown type, or a cursor longer than the message.
    Malformed(&'static str),
    /// RESUME of a version this side does not speak.
    Version(u8),
    /// A message this side does not expect in its role or state.
    Unexpected(&'static str),
    /// A sequence number past [`MAX_SEQ`] (a batch's, past `MAX_SEQ - 1`),
    /// or a sender asked to number a batch past it.
    SequenceOutOfRange(u64),
    /// A batch out of order: a gap, a repeat, or data after END.
    Sequence {
        /// The sequence number expected.
        expected: u64,
        /// The one that arrived.
        got: u64,
    },
    /// An ack for a batch not sent, or before one already acknowledged.
    AckOutOfRange {
        /// The ack's sequence number.
        seq: u64,
        /// The oldest unacknowledged batch.
        unacked: u64,
        /// The next batch to send.
        next: u64,
    },
    /// END does not match the batches received.
    EndMismatch {
        /// What the receiver expected next.
        expected: u64,
        /// What END says.
        got: u64,
    },
}

impl ResumeError {
    /// Close code for the violation: 1008, a policy violation, because the
    /// WebSocket framing itself was fine. 1008 is not retried by default:
    /// a peer that breaks the protocol will break it again.
    pub fn close_code(&self) -> CloseCode {
        CloseCode::POLICY_VIOLATION
    }
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed resume message: {what}"),
            Self::Version(v) => write!(f, "resume protocol version {v} not supported"),
            Self::SequenceOutOfRange(n) => {
                write!(f, "sequence number {n} out of range (limit {MAX_SEQ})")
            }
            Self::Unexpected(what) => write!(f, "unexpected resume message: {what}"),
            Self::Sequence { expected, got } => {
                write!(f, "batch {got} out of order (expected {expected})")
            }
            Self::AckOutOfRange { seq, unacked, next } => {
                write!(
                    f,
                    "ack {seq} outside the unacknowledged batches {unacked}..{next}"
                )
            }
            Self::EndMismatch { expected, got } => {
                write!(f, "END at {got} but the next batch is {expected}")
            }
        }
    }
}

impl std::error::Error for ResumeError {}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ResumeError> {
    b.get(at..at + 8)
        .map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")))
        .ok_or(ResumeError::Malformed("truncated integer"))
}

/// A "next sequence number" from the wire: at most [`MAX_SEQ`].
fn next_seq_at(b: &[u8], at: usize) -> Result<u64, ResumeError> {
    let n = u64_at(b, at)?;
    if n > MAX_SEQ {
        return Err(ResumeError::SequenceOutOfRange(n));
    }
    Ok(n)
}

/// A batch's sequence number from the wire: below [`MAX_SEQ`], so the
/// position after it is valid.
fn seq_at(b: &[u8], at: usize) -> Result<u64, ResumeError> {
    let n = u64_at(b, at)?;
    if n >= MAX_SEQ {
        return Err(ResumeError::SequenceOutOfRange(n));
    }
    Ok(n)
}

impl Frame {
    /// Decodes one message; `msg` is shared, not copied, into the batch's
    /// payload and cursor.
    pub fn decode(msg: &Bytes) -> Result<Frame, ResumeError> {
        let b = &msg[..];
        let (&kind, _) = b
            .split_first()
            .ok_or(ResumeError::Malformed("empty message"))?;
        match kind {
            RESUME => {
                let version = *b.get(1).ok_or(ResumeError::Malformed("no version"))?;
                if version != VERSION {
                    return Err(ResumeError::Version(version));
                }
                let next_seq = next_seq_at(b, 2)?;
                let window = b
                    .get(10..14)
                    .map(|s| u32::from_be_bytes(s.try_into().expect("4 bytes")))
                    .ok_or(ResumeError::Malformed("truncated window"))?;
                Ok(Frame::Resume {
                    position: Position {
                        next_seq,
                        cursor: msg.slice(14..),
                    },
                    window,
                })
            }
            BATCH => {
                let seq = seq_at(b, 1)?;
                if b.len() < 11 {
                    return Err(ResumeError::Malformed("truncated batch"));
                }
                let len_at = b.len() - 2;
                let cursor_len = u16::from_be_bytes([b[len_at], b[len_at + 1]]) as usize;
                let cursor_at = len_at
                    .checked_sub(cursor_len)
                    .filter(|&at| at >= 9)
                    .ok_or(ResumeError::Malformed("cursor longer than the batch"))?;
                Ok(Frame::Batch(Batch {
                    seq,
                    payload: msg.slice(9..cursor_at),
                    cursor: msg.slice(cursor_at..len_at),
                }))
            }
            ACK if b.len() == 9 => Ok(Frame::Ack { seq: seq_at(b, 1)? }),
            END if b.len() == 9 => Ok(Frame::End {
                next_seq: next_seq_at(b, 1)?,
            }),
            ACK | END => Err(ResumeError::Malformed("wrong length")),
            _ => Err(ResumeError::Malformed("unknown message type")),
        }
    }

    /// Encodes the message (a batch's payload is copied; [`BatchWriter`]
    /// avoids that).
    #[must_use]
    pub fn encode(&self) -> Bytes {
        match self {
            Frame::Resume { position, window } => {
                let mut b = BytesMut::with_capacity(14 + position.cursor.len());
                b.put_u8(RESUME);
                b.put_u8(VERSION);
                b.put_u64(position.next_seq);
                b.put_u32(*window);
                b.put_slice(&position.cursor);
                b.freeze()
            }
            Frame::Batch(batch) => {
                let mut w = BatchWriter::with_capacity(batch.payload.len());
                w.payload_mut().extend_from_slice(&batch.payload);
                w.finish(batch.seq, &batch.cursor)
            }
            Frame::Ack { seq } => short(ACK, *seq),
            Frame::End { next_seq } => short(END, *next_seq),
        }
    }
}

fn short(kind: u8, n: u64) -> Bytes {
    let mut b = [0u8; 9];
    b[0] = kind;
    b[1..].copy_from_slice(&n.to_be_bytes());
    Bytes::copy_from_slice(&b)
}

/// Builds a BATCH message in place: encode the payload into
/// [`payload_mut`](Self::payload_mut), then [`finish`](Self::finish) with
/// the cursor of the last item, so the payload is never copied.
#[derive(Debug)]
pub struct BatchWriter {
    buf: Vec<u8>,
}

impl Default for BatchWriter {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl BatchWriter {
    /// A writer with room for `payload` bytes.
    pub fn with_capacity(payload: usize) -> Self {
        let mut buf = Vec::with_capacity(9 + payload + 10);
        buf.push(BATCH);
        buf.extend_from_slice(&[0; 8]);
        Self { buf }
    }

    /// The payload bytes written so far; append to it.
    pub fn payload_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Payload bytes written so far.
    pub fn payload_len(&self) -> usize {
        self.buf.len() - 9
    }

    /// The finished message.
    ///
    /// # Panics
    /// If `cursor` is longer than [`MAX_CURSOR_LEN`]: the sender's cursors
    /// are its own, so that is a bug in the sender, not bad input.
    #[must_use]
    pub fn finish(mut self, seq: u64, cursor: &[u8]) -> Bytes {
        let len = u16::try_from(cursor.len()).expect("cursor longer than 65535 bytes");
        self.buf[1..9].copy_from_slice(&seq.to_be_bytes());
        self.buf.extend_from_slice(cursor);
        self.buf.extend_from_slice(&len.to_be_bytes());
        Bytes::from(self.buf)
    }
}

/// The sending side of one connection. It holds no state that must
/// outlive the connection: make a new one from each RESUME.
#[derive(Debug, Clone)]
pub struct Sender {
    window: u32,
    /// Oldest batch not yet acknowledged.
    unacked: u64,
    /// Sequence number of the next batch.
    next_seq: u64,
    ended: bool,
}

impl Sender {
    /// Starts a connection from the receiver's RESUME. The window is the
    /// smaller of the receiver's and `max_window` (and at least 1).
    pub fn new(position: &Position, receiver_window: u32, max_window: u32) -> Self {
        Self {
            window: receiver_window.min(max_window).max(1),
            unacked: position.next_seq,
            next_seq: position.next_seq,
            ended: false,
        }
    }

    /// Reads the receiver's first message, which must be RESUME.
    pub fn accept(msg: &Bytes, max_window: u32) -> Result<(Self, Position), ResumeError> {
        match Frame::decode(msg)? {
            Frame::Resume { position, window } => {
                Ok((Self::new(&position, window, max_window), position))
            }
            _ => Err(ResumeError::Unexpected("first message is not RESUME")),
        }
    }

    /// The window in use.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// Batches sent and not yet acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.next_seq - self.unacked
    }

    /// True while another batch may be sent now (a sender at [`MAX_SEQ`]
    /// may still call [`batch`](Self::batch), which then fails).
    pub fn can_send(&self) -> bool {
        !self.ended && self.in_flight() < u64::from(self.window)
    }

    /// Sequence number the next batch gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Numbers and finishes a batch. Fails when its number would pass
    /// [`MAX_SEQ`] (a receiver resumed too close to it): close with 1008.
    ///
    /// # Panics
    /// When called after [`end`](Self::end): a bug in the caller.
    pub fn batch(&mut self, writer: BatchWriter, cursor: &[u8]) -> Result<Bytes, ResumeError> {
        assert!(!self.ended, "batch after END");
        if self.next_seq >= MAX_SEQ {
            return Err(ResumeError::SequenceOutOfRange(self.next_seq));
        }
        let msg = writer.finish(self.next_seq, cursor);
        self.next_seq += 1;
        Ok(msg)
    }

    /// The END message, once the source is exhausted.
    #[must_use]
    pub fn end(&mut self) -> Bytes {
        self.ended = true;
        short(END, self.next_seq)
    }

    /// True once END went out and every batch is acknowledged.
    pub fn is_done(&self) -> bool {
        self.ended && self.unacked == self.next_seq
    }

    /// Handles a message from the receiver (ACK).
    pub fn handle(&mut self, msg: &Bytes) -> Result<(), ResumeError> {
        match Frame::decode(msg)? {
            Frame::Ack { seq } => {
                if seq < self.unacked || seq >= self.next_seq {
                    return Err(ResumeError::AckOutOfRange {
                        seq,
                        unacked: self.unacked,
                        next: self.next_seq,
                    });
                }
                self.unacked = seq + 1;
                Ok(())
            }
            Frame::Resume { .. } => Err(ResumeError::Unexpected("second RESUME")),
            Frame::Batch(_) | Frame::End { .. } => Err(ResumeError::Unexpected(
                "sender-only message from the receiver",
            )),
        }
    }
}

/// What a receiver gets from the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A batch to commit, in order.
    Batch(Batch),
    /// The sender has nothing after the batches already received.
    End,
}

/// The receiving side of one connection, made from the stored position.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Next batch expected on this connection.
    expected: u64,
    /// Last batch committed and acknowledged (`None`: none yet on this
    /// connection).
    committed: Option<u64>,
    /// END's sequence number, once it arrived.
    end: Option<u64>,
}

impl Receiver {
    /// Starts a connection from the stored position; returns the RESUME
    /// message to send first.
    #[must_use]
    pub fn new(position: &Position, window: u32) -> (Self, Bytes) {
        let hello = Frame::Resume {
            position: position.clone(),
            window,
        }
        .encode();
        (
            Self {
                expected: position.next_seq,
                committed: position.next_seq.checked_sub(1),
                end: None,
            },
            hello,
        )
    }

    /// Handles a message from the sender.
    pub fn handle(&mut self, msg: &Bytes) -> Result<Incoming, ResumeError> {
        match Frame::decode(msg)? {
            Frame::Batch(batch) => {
                if self.end.is_some() || batch.seq != self.expected {
                    return Err(ResumeError::Sequence {
                        expected: self.end.unwrap_or(self.expected),
                        got: batch.seq,
                    });
                }
                self.expected += 1;
                Ok(Incoming::Batch(batch))
            }
            Frame::End { next_seq } => {
                if self.end.is_some() || next_seq != self.expected {
                    return Err(ResumeError::EndMismatch {
                        expected: self.expected,
                        got: next_seq,
                    });
                }
                self.end = Some(next_seq);
                Ok(Incoming::End)
            }
            Frame::Resume { .. } | Frame::Ack { .. } => Err(ResumeError::Unexpected(
                "receiver-only message from the sender",
            )),
        }
    }

    /// Records that every batch up to `seq` committed; returns the ACK to
    /// send.
    ///
    /// # Panics
    /// If `seq` was not received or is older than an earlier commit: a bug
    /// in the caller.
    #[must_use]
    pub fn committed(&mut self, seq: u64) -> Bytes {
        assert!(seq < self.expected, "commit of batch {seq} not received");
        assert!(
            self.committed.map_or(true, |c| seq >= c),
            "commit of batch {seq} goes backwards"
        );
        self.committed = Some(seq);
        short(ACK, seq)
    }

    /// True once END arrived and everything before it committed: the
    /// transfer is complete; close with 1000.
    pub fn is_complete(&self) -> bool {
        match self.end {
            Some(0) => true,
            Some(end) => self.committed == Some(end - 1),
            None => false,
        }
    }
}
