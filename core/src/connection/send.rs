//! Sending: queueing the application's messages, compressing them, and
//! what waits to be written (the outbox and owed pongs).

use super::*;
use crate::prepared::PreparedMessage;

/// Pongs owed but not yet framed. A peer that floods pings while not
/// reading would otherwise grow the transmit queue without bound; past this
/// many, only the latest pings are answered (RFC 6455 section 5.5.3 allows
/// answering just the most recent one).
pub(super) const MAX_OWED_PONGS: usize = 32;

/// RSV1 in the low three bits of a header's RSV field: a compressed message.
#[cfg(feature = "deflate")]
pub(super) const RSV1: u8 = 0b100;

impl Connection {
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

    pub(super) fn send_data(
        &mut self,
        opcode: OpCode,
        payload: Bytes,
        compress: bool,
    ) -> Result<(), Error> {
        if !self.phase.may_send() {
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

    /// Queues a message framed once for many connections: the way to
    /// broadcast. On a server connection the prepared frame itself is
    /// queued, a reference to its shared bytes and no copy, in order with
    /// other data; it goes out as one frame whatever the fragment size.
    ///
    /// Two cases cannot share the frame, and are framed for this
    /// connection as [`send`](Self::send) would, with the same bytes on
    /// the wire: a client connection (every frame a client sends is
    /// masked with a fresh key), and a connection that negotiated
    /// permessage-deflate, where the message is compressed per connection
    /// when `send` would compress it (its size reaches the threshold), so
    /// a broadcast costs the bandwidth a `send` does. Below the threshold
    /// the shared frame is used there too.
    pub fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        if !self.phase.may_send() {
            return Err(Error::Closed);
        }
        if self.sending.is_some() {
            return Err(Error::ChunkOutOfOrder);
        }
        if self.role == Role::Client {
            return self.send_data(message.opcode(), message.payload(), true);
        }
        #[cfg(feature = "deflate")]
        if self
            .compressor
            .as_ref()
            .is_some_and(|c| message.payload_len() >= c.threshold())
        {
            return self.send_data(message.opcode(), message.payload(), true);
        }
        self.out
            .push_prepared(message.frame().clone(), self.config.fragment_size);
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
    pub(super) fn maybe_compress(
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
        if !self.phase.may_send() {
            return Err(Error::Closed);
        }
        let (opcode, compress) = match self.sending {
            None => match kind {
                DataKind::Text => (OpCode::Text, self.deflate_negotiated()),
                DataKind::Binary => (OpCode::Binary, self.deflate_negotiated()),
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

    pub(super) fn send_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), Error> {
        if !self.phase.may_send() {
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

    /// Whether the caller should close the transport now (shut down its
    /// write side, or drop it): the connection is
    /// [finished](Self::is_finished) and everything queued is written.
    pub fn can_close_transport(&self) -> bool {
        self.is_finished() && !self.has_transmit()
    }

    /// Frames owed pongs while the transmit queue is below its high-water
    /// mark, or all of them before a close frame (nothing may follow it).
    pub(super) fn frame_owed_pongs(&mut self, before_close: bool) {
        while before_close || self.out.buffered() < self.config.write_high_water {
            let Some(p) = self.owed_pongs.pop_front() else {
                return;
            };
            self.out
                .push_frame(true, 0, OpCode::Pong, &p, &mut *self.rng);
        }
    }
}

/// Pongs owed to the peer's pings, not yet framed: boxed and held only
/// while some are owed, since nearly always none are.
#[derive(Default)]
#[allow(clippy::box_collection)] // The box is the point: 8 bytes inline, not 32.
pub(super) struct OwedPongs(Option<Box<VecDeque<Bytes>>>);

impl OwedPongs {
    /// Owes a pong; past the limit the oldest is forgotten (a pong need
    /// only answer the most recent ping, RFC 6455 section 5.5.3).
    pub(super) fn push(&mut self, payload: Bytes) {
        let q = self.0.get_or_insert_with(Default::default);
        if q.len() == MAX_OWED_PONGS {
            q.pop_front();
        }
        q.push_back(payload);
    }

    pub(super) fn pop_front(&mut self) -> Option<Bytes> {
        let q = self.0.as_mut()?;
        let p = q.pop_front();
        if q.is_empty() {
            self.0 = None;
        }
        p
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub(super) fn clear(&mut self) {
        self.0 = None;
    }

    /// Their size on the wire (each with a two-byte header).
    pub(super) fn bytes(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |q| q.iter().map(|p| p.len() + 2).sum())
    }
}
