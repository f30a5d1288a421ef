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
    /// `payload` is a whole encoded frame ([`Outbox::push_prepared`]),
    /// queued as it is.
    framed: bool,
}

pub(crate) struct Outbox {
    mask: bool,
    segments: VecDeque<Bytes>,
    front_written: usize,
    staging: BytesMut,
    /// Bytes framed and not yet written (segments + staging).
    wire_bytes: usize,
    /// Data waiting to be framed, and a close to frame after it. Boxed and
    /// `Some` only while not empty: most connections never queue a message
    /// larger than a fragment, and an idle one holds nothing here.
    later: Option<Box<Later>>,
}

#[derive(Default)]
struct Later {
    pending: VecDeque<Pending>,
    /// Payload bytes in `pending`.
    bytes: usize,
    close: Option<Bytes>,
}

impl Outbox {
    pub(crate) fn new(mask: bool) -> Self {
        Self {
            mask,
            segments: VecDeque::new(),
            front_written: 0,
            staging: BytesMut::new(),
            wire_bytes: 0,
            later: None,
        }
    }

    /// Bytes queued, framed or not.
    pub(crate) fn buffered(&self) -> usize {
        self.wire_bytes
            + self
                .later
                .as_ref()
                .map_or(0, |l| l.bytes + l.close.as_ref().map_or(0, |c| c.len() + 2))
    }

    /// Whether nothing at all waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.wire_bytes == 0 && self.later.is_none()
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
        if self.later.is_none() && payload.len() <= fragment && self.wire_bytes < fragment {
            self.push_frame(fin, rsv, opcode, &payload, rng);
        } else {
            let later = self.later.get_or_insert_with(Default::default);
            later.bytes += payload.len();
            later.pending.push_back(Pending {
                opcode,
                rsv,
                payload,
                offset: 0,
                fin,
                framed: false,
            });
        }
    }

    /// Queues a frame encoded elsewhere (a [`PreparedMessage`]'s, shared
    /// by many connections) behind whatever is pending, as one segment:
    /// a reference, never a copy, and never split into fragments.
    ///
    /// [`PreparedMessage`]: crate::PreparedMessage
    pub(crate) fn push_prepared(&mut self, frame: Bytes, fragment: usize) {
        if self.later.is_none() && self.wire_bytes < fragment {
            self.push_segment(frame);
        } else {
            let later = self.later.get_or_insert_with(Default::default);
            later.bytes += frame.len();
            later.pending.push_back(Pending {
                opcode: OpCode::Continuation,
                rsv: 0,
                payload: frame,
                offset: 0,
                fin: true,
                framed: true,
            });
        }
    }

    fn push_segment(&mut self, frame: Bytes) {
        self.wire_bytes += frame.len();
        self.seal();
        self.segments.push_back(frame);
    }

    /// Queues a close frame after all pending data.
    pub(crate) fn push_close_after_data(&mut self, payload: Bytes, rng: &mut dyn RandomSource) {
        match &mut self.later {
            None => self.push_frame(true, 0, OpCode::Close, &payload, rng),
            Some(later) => later.close = Some(payload),
        }
    }

    /// Frames pending data until about one fragment is ready to write.
    fn refill(&mut self, fragment: usize, rng: &mut dyn RandomSource) {
        while self.wire_bytes < fragment {
            let Some(later) = self.later.as_mut() else {
                return;
            };
            let Some(p) = later.pending.front_mut() else {
                // Only the close is left: frame it and hold nothing more.
                let close = later.close.take();
                self.later = None;
                if let Some(close) = close {
                    self.push_frame(true, 0, OpCode::Close, &close, rng);
                }
                return;
            };
            if p.framed {
                let frame = later.pending.pop_front().expect("front").payload;
                later.bytes -= frame.len();
                if later.pending.is_empty() && later.close.is_none() {
                    self.later = None;
                }
                self.push_segment(frame);
                continue;
            }
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
                later.pending.pop_front();
            }
            later.bytes -= n;
            if later.pending.is_empty() && later.close.is_none() {
                self.later = None;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Xoshiro256;

    fn drain(out: &mut Outbox, rng: &mut Xoshiro256) -> Vec<u8> {
        let mut wire = Vec::new();
        loop {
            let mut iov = [IoSlice::new(&[]); 4];
            let n = out.slices(16, rng, &mut iov);
            if n == 0 {
                return wire;
            }
            let len: usize = iov[..n].iter().map(|s| s.len()).sum();
            iov[..n].iter().for_each(|s| wire.extend_from_slice(s));
            out.advance(len);
        }
    }

    /// A message larger than a fragment and a close behind it go out in
    /// order, and once written the queue holds no allocation.
    #[test]
    fn fragments_then_close_then_nothing_held() {
        let mut rng = Xoshiro256::from_seed(1);
        let mut out = Outbox::new(false);
        out.push_data(
            OpCode::Binary,
            0,
            Bytes::from(vec![7u8; 40]),
            true,
            16,
            &mut rng,
        );
        out.push_close_after_data(Bytes::from_static(&[3, 232]), &mut rng);
        assert!(out.later.is_some());
        assert_eq!(out.buffered(), 40 + 4);
        let wire = drain(&mut out, &mut rng);
        // Three frames of 16, 16 and 8 bytes, then the close.
        let mut expect = vec![0x02, 16];
        expect.extend([7; 16]);
        expect.extend([0x00, 16]);
        expect.extend([7; 16]);
        expect.extend([0x80, 8]);
        expect.extend([7; 8]);
        expect.extend([0x88, 2, 3, 232]);
        assert_eq!(wire, expect);
        assert!(out.is_empty());
        assert!(out.later.is_none());
        assert_eq!(out.staging.capacity(), 0);
        assert_eq!(out.segments.capacity(), 0);
    }
}
