//! Close frame payloads (RFC 6455 sections 5.5.1 and 7.4): the parser
//! accepts exactly the empty payload and a sendable code with a UTF-8
//! reason, and what it accepts encodes back to the same bytes; the encoder
//! always writes a payload that fits a control frame and parses back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_core::{
    encode_close_payload, parse_close_payload, CloseCode, CloseFrame, ClosePayloadError,
    MAX_REASON_LEN,
};

/// RFC 6455 section 7.4 (with IANA's 1012-1014): the codes a close frame
/// may carry, written out independently of `CloseCode::is_sendable`.
fn sendable(code: u16) -> bool {
    (1000..=1003).contains(&code) || (1007..=1014).contains(&code) || (3000..=4999).contains(&code)
}

fuzz_target!(|payload: &[u8]| {
    let parsed = parse_close_payload(payload);
    match payload {
        [] => assert_eq!(parsed, Ok(None)),
        [_] => assert_eq!(parsed, Err(ClosePayloadError::Truncated)),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            let expected = if !sendable(code) {
                Err(ClosePayloadError::InvalidCode(code))
            } else if let Ok(r) = std::str::from_utf8(reason) {
                Ok(Some(CloseFrame {
                    code: CloseCode(code),
                    reason: r.to_owned(),
                }))
            } else {
                Err(ClosePayloadError::InvalidReason)
            };
            assert_eq!(parsed, expected);
        }
    }

    // Whatever parsed encodes back to the same bytes when it fits a control
    // frame, and to a prefix cut at a character boundary when it does not.
    if let Ok(frame) = &parsed {
        let mut out = Vec::new();
        encode_close_payload(frame.as_ref(), &mut out);
        if payload.len() <= 2 + MAX_REASON_LEN {
            assert_eq!(out, payload);
        } else {
            check_cut(frame.as_ref().unwrap(), &out);
        }
    }

    // Any code and any text (the input read as lossy UTF-8) encode to at
    // most 125 bytes that parse back iff the code is sendable.
    if let [hi, lo, rest @ ..] = payload {
        let frame = CloseFrame {
            code: CloseCode(u16::from_be_bytes([*hi, *lo])),
            reason: String::from_utf8_lossy(rest).into_owned(),
        };
        let mut out = Vec::new();
        encode_close_payload(Some(&frame), &mut out);
        assert_eq!(frame.code.is_sendable(), sendable(frame.code.0));
        match parse_close_payload(&out) {
            Ok(Some(back)) => {
                assert!(sendable(frame.code.0));
                assert_eq!(back.code, frame.code);
            }
            Err(ClosePayloadError::InvalidCode(c)) => {
                assert!(!sendable(c));
                assert_eq!(c, frame.code.0);
            }
            other => panic!("{frame:?} encoded to {out:?}, which parses as {other:?}"),
        }
        check_cut(&frame, &out);
    }
});

/// `out` is the frame's code and the longest prefix of its reason that
/// fits (cut at a character boundary, so at most 3 bytes short of 123).
fn check_cut(frame: &CloseFrame, out: &[u8]) {
    assert!(out.len() <= 125, "close payload of {} bytes", out.len());
    assert_eq!(out[..2], frame.code.0.to_be_bytes());
    let reason = std::str::from_utf8(&out[2..]).expect("reason cut inside a character");
    assert!(frame.reason.starts_with(reason));
    if frame.reason.len() <= MAX_REASON_LEN {
        assert_eq!(reason, frame.reason);
    } else {
        assert!(reason.len() > MAX_REASON_LEN - 4);
    }
}
