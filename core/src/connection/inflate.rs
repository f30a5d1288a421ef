//! Inflating permessage-deflate messages in bounded steps.

use super::*;

/// Inflated bytes produced per step, so a compressed message grows its
/// buffer (and checks its limit) a little at a time.
#[cfg(feature = "deflate")]
pub(super) const INFLATE_STEP: usize = 64 << 10;

/// Compressed input inflated at a time when delivering chunks: at most
/// about 4 MiB of output, queued before the inbound limit is checked again.
#[cfg(feature = "deflate")]
pub(super) const COMPRESSED_PIECE: usize = 4 << 10;

impl Connection {
    /// Inflates a piece of a compressed message in bounded steps: into the
    /// message (checking the size limit after every step, so a bomb stops
    /// at the limit) or into chunk events.
    #[cfg(feature = "deflate")]
    pub(super) fn inflate_payload(&mut self, input: &[u8], fin: bool) -> Result<(), ProtocolError> {
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
    pub(super) fn inflate_piece(&mut self, mut input: &[u8]) -> Result<(), ProtocolError> {
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
}
