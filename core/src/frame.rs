//! Frame header codec (RFC 6455 section 5.2).
//!
//! Only the header is coded here; payloads are streamed by the connection so
//! that a frame never has to be held whole.

/// The largest header: 2 fixed bytes, 8 length bytes, 4 mask bytes.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// Continues a fragmented message.
    Continuation,
    /// First frame of a text message.
    Text,
    /// First frame of a binary message.
    Binary,
    /// Close control frame.
    Close,
    /// Ping control frame.
    Ping,
    /// Pong control frame.
    Pong,
}

impl OpCode {
    /// The opcode for a wire value, or `None` for the reserved values
    /// 3-7 and 0xB-0xF.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong: at most 125 bytes, never fragmented.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A decoded or to-be-encoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of its message.
    pub fin: bool,
    /// The three RSV bits, in the low bits (RSV1 = 4, RSV2 = 2, RSV3 = 1).
    pub rsv: u8,
    /// Raw opcode; see [`OpCode::from_u8`].
    pub opcode: u8,
    /// Masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub payload_len: u64,
}

/// Header bytes that no valid frame starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// A 64-bit length with the most significant bit set.
    LengthOverflow,
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`. `Ok(None)` means more bytes
    /// are needed; `Ok(Some((header, n)))` means the header took `n` bytes.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, HeaderError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        let (payload_len, len_bytes) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(b) => (u16::from_be_bytes([b[0], b[1]]) as u64, 2),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let v = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                    if v >> 63 != 0 {
                        return Err(HeaderError::LengthOverflow);
                    }
                    (v, 8)
                }
                None => return Ok(None),
            },
            n => (n as u64, 0),
        };
        let mut len = 2 + len_bytes;
        let mask = if masked {
            let Some(k) = buf.get(len..len + 4) else {
                return Ok(None);
            };
            len += 4;
            Some([k[0], k[1], k[2], k[3]])
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv: (b0 >> 4) & 0x7,
                opcode: b0 & 0x0F,
                mask,
                payload_len,
            },
            len,
        )))
    }

    /// Encodes the header into `out`, using the shortest length form, and
    /// returns how many bytes it took.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x7) << 4) | (self.opcode & 0x0F);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut len = match self.payload_len {
            n @ 0..=125 => {
                out[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[len..len + 4].copy_from_slice(&key);
            len += 4;
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    #[test]
    fn rfc_examples() {
        // RFC 6455 section 5.7.
        let (h, n) = FrameHeader::decode(&[0x81, 0x05, b'H']).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.payload_len, h.mask, n),
            (true, 1, 5, None, 2)
        );
        let (h, n) = FrameHeader::decode(&[0x01, 0x03]).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.payload_len, n), (false, 1, 3, 2));
        let (h, n) = FrameHeader::decode(&[0x82, 0x7E, 0x01, 0x00])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        let bytes = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        let (h, n) = FrameHeader::decode(&bytes).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn incomplete_headers_ask_for_more() {
        let full = [0x81, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..full.len() {
            assert_eq!(FrameHeader::decode(&full[..cut]), Ok(None), "cut {cut}");
        }
        assert!(FrameHeader::decode(&full).unwrap().is_some());
    }

    #[test]
    fn rejects_length_with_top_bit() {
        let bytes = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::decode(&bytes),
            Err(HeaderError::LengthOverflow)
        );
    }

    quickcheck! {
        fn round_trip(fin: bool, rsv: u8, opcode: u8, mask: Option<(u8, u8, u8, u8)>, len: u64) -> TestResult {
            let header = FrameHeader {
                fin,
                rsv: rsv & 7,
                opcode: opcode & 0xF,
                mask: mask.map(|m| [m.0, m.1, m.2, m.3]),
                payload_len: len >> 1,
            };
            let mut out = [0u8; MAX_HEADER_LEN];
            let n = header.encode(&mut out);
            TestResult::from_bool(FrameHeader::decode(&out[..n]) == Ok(Some((header, n))))
        }
    }
}
