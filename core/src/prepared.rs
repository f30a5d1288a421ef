//! A data message framed once and sent to many connections: the way to
//! broadcast. The frame (header and payload, unmasked as a server sends
//! it) lives in one shared [`Bytes`]; each connection queues a reference
//! to it, not a copy, and the bytes leave from that one buffer.

use bytes::{Bytes, BytesMut};

use crate::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::message::{DataKind, Message, Text};

/// A text or binary message encoded once for
/// [`Connection::send_prepared`](crate::Connection::send_prepared).
///
/// Cheap to clone (two reference counts), `Send` and `Sync`, so one
/// prepared message can be handed to connections on any thread.
///
/// ```
/// use tether_core::{Message, PreparedMessage};
///
/// let tick = PreparedMessage::new(Message::text("{\"price\":42}")).unwrap();
/// assert_eq!(&tick.frame()[..], b"\x81\x0c{\"price\":42}");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PreparedMessage {
    kind: DataKind,
    /// Header and payload, one final unmasked frame.
    frame: Bytes,
    /// Where the payload starts in `frame`.
    head_len: usize,
}

impl PreparedMessage {
    /// Frames a text or binary message (copying its payload once). Other
    /// messages are given back: pings, pongs and closes are per
    /// connection.
    pub fn new(message: Message) -> Result<Self, Message> {
        match message {
            Message::Text(t) => Ok(Self::framed(DataKind::Text, t.as_bytes())),
            Message::Binary(b) => Ok(Self::framed(DataKind::Binary, &b)),
            other => Err(other),
        }
    }

    /// A text message.
    pub fn text(text: impl Into<Text>) -> Self {
        Self::framed(DataKind::Text, text.into().as_bytes())
    }

    /// A binary message.
    pub fn binary(data: impl AsRef<[u8]>) -> Self {
        Self::framed(DataKind::Binary, data.as_ref())
    }

    fn framed(kind: DataKind, payload: &[u8]) -> Self {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: opcode(kind).as_u8(),
            mask: None,
            payload_len: payload.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode(&mut head);
        let mut frame = BytesMut::with_capacity(head_len + payload.len());
        frame.extend_from_slice(&head[..head_len]);
        frame.extend_from_slice(payload);
        Self {
            kind,
            frame: frame.freeze(),
            head_len,
        }
    }

    /// Text or binary.
    pub fn kind(&self) -> DataKind {
        self.kind
    }

    /// The encoded frame, exactly what a server connection writes.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The message's payload (a view into the frame, no copy).
    pub fn payload(&self) -> Bytes {
        self.frame.slice(self.head_len..)
    }

    /// The payload's length.
    pub fn payload_len(&self) -> usize {
        self.frame.len() - self.head_len
    }

    /// The frame's opcode.
    pub(crate) fn opcode(&self) -> OpCode {
        opcode(self.kind)
    }
}

fn opcode(kind: DataKind) -> OpCode {
    match kind {
        DataKind::Text => OpCode::Text,
        DataKind::Binary => OpCode::Binary,
    }
}

impl std::fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("kind", &self.kind)
            .field("len", &self.payload_len())
            .finish()
    }
}
