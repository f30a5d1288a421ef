//! Close codes and reasons (RFC 6455 sections 5.5.1 and 7.4).

use std::fmt;

/// A close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no code was present. Never sent on the wire.
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection ended without a close frame. Never sent on the wire.
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: message data did not match its type (text that is not UTF-8).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the endpoint hit an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway got a bad answer upstream.
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: the TLS handshake failed. Never sent on the wire.
    pub const TLS_HANDSHAKE: Self = Self(1015);

    /// Whether the code may appear in a close frame: the assigned codes
    /// other than 1004-1006 and 1015, and the registered (3000-3999) and
    /// private (4000-4999) ranges.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(v: u16) -> Self {
        Self(v)
    }
}

impl From<CloseCode> for u16 {
    fn from(c: CloseCode) -> u16 {
        c.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The code and reason of a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most 123 bytes of UTF-8.
    pub reason: String,
}

/// The largest reason that fits in a control frame with its code.
pub const MAX_REASON_LEN: usize = 123;

/// Why a received close frame payload is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClosePayloadError {
    /// A one-byte payload: a code needs two.
    Truncated,
    /// A code that may not be sent (1005, 1006, 1015, unassigned ones).
    InvalidCode(u16),
    /// A reason that is not UTF-8.
    InvalidReason,
}

/// Parses a close frame payload: empty (no status) or a code then a reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ClosePayloadError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ClosePayloadError::Truncated),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(ClosePayloadError::InvalidCode(code.0));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ClosePayloadError::InvalidReason)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

/// Encodes a close payload. The reason is cut to [`MAX_REASON_LEN`] bytes,
/// at a character boundary, so the frame stays a valid control frame.
pub fn encode_close_payload(frame: Option<&CloseFrame>, out: &mut Vec<u8>) {
    if let Some(frame) = frame {
        out.extend_from_slice(&frame.code.0.to_be_bytes());
        out.extend_from_slice(truncate_reason(&frame.reason).as_bytes());
    }
}

/// The longest prefix of `reason` that fits a close frame.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert!(CloseCode(ok).is_sendable(), "{ok}");
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(bad).is_sendable(), "{bad}");
        }
    }

    #[test]
    fn parses_payloads() {
        assert_eq!(parse_close_payload(b""), Ok(None));
        assert_eq!(
            parse_close_payload(b"\x03"),
            Err(ClosePayloadError::Truncated)
        );
        assert_eq!(
            parse_close_payload(b"\x03\xed"),
            Err(ClosePayloadError::InvalidCode(1005))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xff"),
            Err(ClosePayloadError::InvalidReason)
        );
        let frame = parse_close_payload(b"\x03\xe8bye").unwrap().unwrap();
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode::NORMAL, "bye")
        );
    }

    #[test]
    fn long_reasons_are_cut_at_a_char_boundary() {
        let reason = "é".repeat(100);
        let cut = truncate_reason(&reason);
        assert!(cut.len() <= MAX_REASON_LEN && cut.len() == 122);
        let mut out = Vec::new();
        encode_close_payload(
            Some(&CloseFrame {
                code: CloseCode::NORMAL,
                reason,
            }),
            &mut out,
        );
        assert_eq!(out.len(), 124);
    }
}
