//! The transmit queue: frames waiting for the socket.
//!
//! Small frames are coalesced into one staging buffer so a burst of
//! messages leaves in one write; a large unmasked payload is queued as its
//! own segment and never copied. Data messages larger than the fragment
//! size wait in `pending` and are framed one fragment at a time, just
//! before the socket can take them, so a control frame queued meanwhile
//! goes out after the current fragment instead of after the whole message.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Bytes, BytesMut};

use crate::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::mask::apply_mask;
use crate::rng::RandomSource;

/// Unmasked payloads up to this size are copied next to their header;
/// larger ones are written from the caller's buffer.
const COPY_LIMIT: usize = 4 << 10;

/// Capacity the staging buffer starts with, so a burst of small frames
/// is coalesced without growing it step by step.
const STAGING_START: usize = 4 << 10;

struct Pending {
    opcode: OpCode,
    /// RSV bits of the message's first frame (RSV1: compressed).
    rsv: u8,
    payload: Bytes,
    offset: usize,
    fin: bool,
}

pub(crate) struct Outbox {
    mask: bool,
    segments: VecDeque<Bytes>,
    front_written: usize,
    staging: BytesMut,
    /// Bytes framed and not yet written (segments + staging).
    wire_bytes: usize,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    close_after_pending: Option<Bytes>,
}

impl Outbox {
    pub(crate) fn new(mask: bool) -> Self {
        Self {
            mask,
            segments: VecDeque::new(),
            front_written: 0,
            staging: BytesMut::new(),
            wire_bytes: 0,
            pending: VecDeque::new(),
            pending_bytes: 0,
            close_after_pending: None,
        }
    }

    /// Bytes queued, framed or not.
    pub(crate) fn buffered(&self) -> usize {
        self.wire_bytes
            + self.pending_bytes
            + self.close_after_pending.as_ref().map_or(0, |c| c.len() + 2)
    }

    /// Whether nothing at all waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.wire_bytes == 0 && self.pending.is_empty() && self.close_after_pending.is_none()
    }

    /// Frames a whole payload now, ahead of any pending data. Used for
    /// control frames and for data when nothing is pending.
    pub(crate) fn push_frame(
        &mut self,
        fin: bool,
        rsv: u8,
        opcode: OpCode,
        payload: &Bytes,
        rng: &mut dyn RandomSource,
    ) {
        let mask = self.mask.then(|| rng.next_u32().to_ne_bytes());
        let header = FrameHeader {
            fin,
            rsv,
            opcode: opcode.as_u8(),
            mask,
            payload_len: payload.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode(&mut head);
        self.wire_bytes += head_len + payload.len();
        if self.staging.capacity() == 0 {
            // Allocated on first use and freed when the queue drains.
            self.staging.reserve(STAGING_START);
        }
        self.staging.extend_from_slice(&head[..head_len]);
        if let Some(key) = mask {
            let start = self.staging.len();
            self.staging.extend_from_slice(payload);
            apply_mask(&mut self.staging[start..], key, 0);
        } else if payload.len() <= COPY_LIMIT {
            self.staging.extend_from_slice(payload);
        } else {
            self.seal();
            self.segments.push_back(payload.clone());
        }
    }

    /// Queues data behind whatever is pending. `opcode` is `Continuation`
    /// for a later chunk of a streamed message; `rsv` applies to its first
    /// frame only.
    pub(crate) fn push_data(
        &mut self,
        opcode: OpCode,
        rsv: u8,
        payload: Bytes,
        fin: bool,
        fragment: usize,
        rng: &mut dyn RandomSource,
    ) {
        if self.pending.is_empty() && payload.len() <= fragment && self.wire_bytes < fragment {
            self.push_frame(fin, rsv, opcode, &payload, rng);
        } else {
            self.pending_bytes += payload.len();
            self.pending.push_back(Pending {
                opcode,
                rsv,
                payload,
                offset: 0,
                fin,
            });
        }
    }

    /// Queues a close frame after all pending data.
    pub(crate) fn push_close_after_data(&mut self, payload: Bytes, rng: &mut dyn RandomSource) {
        if self.pending.is_empty() {
            self.push_frame(true, 0, OpCode::Close, &payload, rng);
        } else {
            self.close_after_pending = Some(payload);
        }
    }

    /// Frames pending data until about one fragment is ready to write.
    fn refill(&mut self, fragment: usize, rng: &mut dyn RandomSource) {
        while self.wire_bytes < fragment {
            let Some(p) = self.pending.front_mut() else {
                if let Some(close) = self.close_after_pending.take() {
                    self.push_frame(true, 0, OpCode::Close, &close, rng);
                }
                return;
            };
            let n = (p.payload.len() - p.offset).min(fragment);
            let piece = p.payload.slice(p.offset..p.offset + n);
            let (opcode, rsv) = if p.offset == 0 {
                (p.opcode, p.rsv)
            } else {
                (OpCode::Continuation, 0)
            };
            p.offset += n;
            let done = p.offset == p.payload.len();
            let fin = done && p.fin;
            if done {
                self.pending.pop_front();
            }
            self.pending_bytes -= n;
            self.push_frame(fin, rsv, opcode, &piece, rng);
        }
    }

    fn seal(&mut self) {
        if !self.staging.is_empty() {
            self.segments.push_back(self.staging.split().freeze());
        }
    }

    /// Fills `iov` with the bytes to write next, in order, and returns how
    /// many slices it used (0: nothing to write).
    pub(crate) fn slices<'a>(
        &'a mut self,
        fragment: usize,
        rng: &mut dyn RandomSource,
        iov: &mut [IoSlice<'a>],
    ) -> usize {
        self.refill(fragment, rng);
        self.seal();
        let mut n = 0;
        for (i, seg) in self.segments.iter().enumerate() {
            if n == iov.len() {
                break;
            }
            let bytes = if i == 0 {
                &seg[self.front_written..]
            } else {
                &seg[..]
            };
            iov[n] = IoSlice::new(bytes);
            n += 1;
        }
        n
    }

    /// Marks `n` bytes as written.
    pub(crate) fn advance(&mut self, mut n: usize) {
        self.wire_bytes -= n;
        while n > 0 {
            let front = self
                .segments
                .front()
                .expect("advanced past the queued bytes");
            let left = front.len() - self.front_written;
            if n < left {
                self.front_written += n;
                return;
            }
            n -= left;
            self.front_written = 0;
            self.segments.pop_front();
        }
        if self.segments.is_empty() && self.staging.is_empty() {
            // Drained: free what an idle connection need not hold (the
            // staging buffer's spare room keeps its whole allocation alive).
            self.staging = BytesMut::new();
            self.segments = VecDeque::new();
        }
    }
}
