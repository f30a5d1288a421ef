//! Receiving: reading into the connection, parsing frames, assembling
//! messages and handing events over.

#[cfg(feature = "deflate")]
use super::inflate::COMPRESSED_PIECE;
use super::*;

/// Events the queue makes room for when it is first used (it is freed
/// when drained).
pub(super) const EVENTS_START: usize = 16;

/// Most bytes [`Connection::read_buf`] offers at once when reading a large
/// frame straight into its message. The part offered is zero-filled once
/// (later offers reuse it), so the step bounds memory touched ahead of the
/// data while keeping reads large.
pub(super) const DIRECT_READ_STEP: usize = 256 << 10;

/// Reads at least this long are searched for a trailing frame whose
/// payload can go straight to its message (see `before_trailing_payload`).
pub(super) const WALK_MIN: usize = 16 << 10;

/// Header of the frame whose payload is being read.
#[derive(Debug)]
pub(super) struct InFrame {
    pub(super) opcode: OpCode,
    pub(super) fin: bool,
    pub(super) mask: Option<[u8; 4]>,
    pub(super) mask_offset: usize,
    pub(super) remaining: u64,
}

/// How many bytes at the front of `data` are whole frames followed by the
/// header of a data frame whose payload goes past `data`; 0 when `data`
/// ends otherwise. Looks past the first frame only if `walk`: a trailing
/// payload in a small read is cheap to copy twice, and every header
/// walked is decoded again by the parser.
pub(super) fn before_trailing_payload(data: &[u8], walk: bool) -> usize {
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
pub(super) struct InMessage {
    pub(super) kind: DataKind,
    pub(super) data: BytesMut,
    /// Bytes on the wire so far.
    pub(super) size: u64,
    /// RSV1 was set on the first frame: the payload is deflated.
    pub(super) compressed: bool,
    /// Delivered as chunks (the setting when the message began).
    pub(super) chunked: bool,
    /// While a frame is read straight into `data`: how much of it is
    /// payload; the rest is zeroed room for the next read.
    pub(super) filled: Option<usize>,
}

impl Connection {
    /// A buffer to read socket bytes into, to be followed by
    /// [`commit_read`](Self::commit_read) with the number of bytes read.
    /// Reading here saves the copy [`handle_read`](Self::handle_read) makes.
    ///
    /// While a large frame is under way the buffer is the message's own, so
    /// its payload is read in place, without a copy. Otherwise reading small
    /// amounts through `handle_read` is cheaper: this buffer is zero-filled
    /// each time, and stays allocated until read into.
    /// [`read_with`](Self::read_with) makes that choice for an adapter.
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
            if self.frame.is_some() || !self.phase.reads_frames() {
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
        if matches!(self.phase, Phase::PeerEnded | Phase::TimedOut) {
            return;
        }
        self.read_direct = false;
        if let Some(base) = self.read_base.take() {
            self.rbuf.truncate(base);
        }
        // Frames read before the end still count, even those held back by
        // backpressure (their bytes are in memory already): the peer may
        // have sent its last messages and its close right before FIN.
        self.process_input(true);
        let abnormal = self.phase.reads_frames();
        self.phase = Phase::PeerEnded;
        self.rbuf = BytesMut::new();
        self.read_base = None;
        // What is still queued may go out to a peer that only half-closed,
        // but a peer that never reads must not hold the socket open.
        if self.close_deadline.is_none() {
            self.close_deadline = Some(deadline_after(now, self.config.close_timeout));
        }
        if abnormal {
            trace!(info, role = ?self.role, "peer ended TCP without a close frame (1006)");
            self.push_event(Event::Error(Error::AbnormalClosure));
        }
    }

    /// The next event, if any. Taking events makes room for more input
    /// when [`wants_read`](Self::wants_read) was false.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        #[cfg(feature = "tracing")]
        let was_full = self.inbound_full();
        let Some(ev) = self.events.pop_front() else {
            // Drained: an idle connection holds no queue.
            self.events = VecDeque::new();
            return None;
        };
        self.inbound_bytes -= event_bytes(&ev);
        #[cfg(feature = "tracing")]
        if was_full && !self.inbound_full() {
            tracing::debug!(target: "tether", role = ?self.role, "inbound backpressure released");
        }
        if let Event::Error(Error::Protocol(e)) = &ev {
            if let Phase::ViolationQueued { .. } = self.phase {
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

    pub(super) fn process(&mut self) {
        self.process_input(false);
    }

    /// Parses what is buffered; `draining` (at the peer's EOF) parses past
    /// the inbound limits, since those bytes are in memory already.
    fn process_input(&mut self, draining: bool) {
        if !self.phase.reads_frames() {
            // Nothing after a close or a violation is read; dropping it
            // keeps memory bounded while we wait for the peer to hang up.
            self.rbuf = BytesMut::new();
            return;
        }
        let r = self.parse(draining);
        self.after_parse(r);
    }

    /// Turns a violation into a failure (now, or once the application has
    /// taken the events before it), and frees the read buffer once it is
    /// empty, so an idle connection holds none.
    pub(super) fn after_parse(&mut self, r: Result<(), ProtocolError>) {
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
            } else if let Phase::Open | Phase::CloseSent = self.phase {
                self.phase = Phase::ViolationQueued {
                    close_sent: self.phase == Phase::CloseSent,
                };
            }
            self.push_event(Event::Error(Error::Protocol(e)));
        }
    }

    /// How many payload bytes may go straight into the message being
    /// assembled: for an uncompressed message delivered whole, whose frame
    /// has at least `min` bytes to come and nothing buffered before them.
    pub(super) fn direct_room(&self, min: u64) -> Option<u64> {
        if !self.rbuf.is_empty() || !self.phase.reads_frames() || self.inbound_full() {
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
    pub(super) fn take_direct_read(&mut self, n: usize) -> Result<(), ProtocolError> {
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

    pub(super) fn push_event(&mut self, ev: Event) {
        if self.events.capacity() == 0 {
            // Room for a burst, rather than growing 4, 8, 16.
            self.events.reserve(EVENTS_START);
        }
        #[cfg(feature = "tracing")]
        let was_full = self.inbound_full();
        self.inbound_bytes += event_bytes(&ev);
        self.events.push_back(ev);
        #[cfg(feature = "tracing")]
        if !was_full && self.inbound_full() {
            tracing::debug!(
                target: "tether",
                role = ?self.role,
                bytes = self.inbound_bytes,
                events = self.events.len(),
                "inbound backpressure: the application is behind, reading stops"
            );
        }
    }

    pub(super) fn parse(&mut self, draining: bool) -> Result<(), ProtocolError> {
        while self.phase.reads_frames() && (draining || !self.inbound_full()) {
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

    pub(super) fn finish_message(&mut self, m: InMessage) {
        let data = m.data.freeze();
        let msg = match m.kind {
            DataKind::Text => Message::Text(Text::from_validated(data)),
            DataKind::Binary => Message::Binary(data),
        };
        self.push_event(Event::Message(msg));
    }

    /// Reads and checks the next frame header. Returns false when more
    /// bytes are needed.
    pub(super) fn parse_header(&mut self) -> Result<bool, ProtocolError> {
        let (h, len) = match FrameHeader::decode(&self.rbuf) {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(false),
            Err(HeaderError::LengthOverflow) => return Err(ProtocolError::LengthOverflow),
        };
        let opcode = OpCode::from_u8(h.opcode).ok_or(ProtocolError::ReservedOpcode(h.opcode))?;
        // RSV1 marks a compressed message: only with permessage-deflate,
        // and only on a message's first frame (RFC 7692 section 6).
        let compressed = h.rsv == 0b100
            && self.deflate_negotiated()
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

    pub(super) fn handle_control(
        &mut self,
        opcode: OpCode,
        payload: Bytes,
    ) -> Result<(), ProtocolError> {
        match opcode {
            OpCode::Ping => {
                if self.phase == Phase::Open {
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
                let answered = self.phase == Phase::CloseSent;
                self.phase = Phase::CloseExchanged;
                self.close_exchanged = true;
                self.rbuf = BytesMut::new();
                trace!(
                    debug,
                    role = ?self.role,
                    code = frame.as_ref().map(|f| f.code.0),
                    reason = frame.as_ref().map(|f| f.reason.as_str()),
                    answered = !answered,
                    "peer closed"
                );
                if !answered {
                    // Echo the code (RFC 6455 section 5.5.1); data the
                    // application queued before still goes out first.
                    let mut echo = Vec::new();
                    if let Some(f) = &frame {
                        echo.extend_from_slice(&f.code.0.to_be_bytes());
                    }
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

pub(super) fn event_bytes(ev: &Event) -> usize {
    match ev {
        Event::Message(m) => m.len(),
        Event::Chunk { data, .. } => data.len(),
        Event::Ping(p) => p.len(),
        Event::Pong { payload, .. } => payload.len(),
        Event::Close(_) | Event::Error(_) => 0,
    }
}
