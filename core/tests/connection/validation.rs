//! What a peer may not send: masking by role, header checks, UTF-8, each failing with its close code.

use crate::*;

// ---- masking ----

/// A server must fail the connection on an unmasked client frame (1002).
#[test]
fn server_rejects_unmasked_frames() {
    let frame = Raw::new(TEXT, "hi").encode();
    assert_fails(
        Role::Server,
        config(),
        &frame,
        ProtocolError::UnmaskedFrame,
        1002,
    );
}

/// A client must fail the connection on a masked server frame (1002).
#[test]
fn client_rejects_masked_frames() {
    let frame = Raw::new(TEXT, "hi").mask(Some(KEY)).encode();
    assert_fails(
        Role::Client,
        config(),
        &frame,
        ProtocolError::MaskedFrame,
        1002,
    );
}

/// Masking applies to control frames too.
#[test]
fn masking_is_checked_on_control_frames() {
    let ping = Raw::new(PING, "x").encode();
    assert_fails(
        Role::Server,
        config(),
        &ping,
        ProtocolError::UnmaskedFrame,
        1002,
    );
    let ping = Raw::new(PING, "x").mask(Some(KEY)).encode();
    assert_fails(
        Role::Client,
        config(),
        &ping,
        ProtocolError::MaskedFrame,
        1002,
    );
}

// ---- header checks ----

/// RSV bits without a negotiated extension are a protocol error.
#[test]
fn reserved_bits_fail_with_1002() {
    for role in ROLES {
        for rsv in [1, 2, 4, 7] {
            let frame = Raw::to(role, TEXT, "x").rsv(rsv).encode();
            assert_fails(
                role,
                config(),
                &frame,
                ProtocolError::ReservedBits(rsv),
                1002,
            );
        }
    }
}

/// Reserved opcodes (3-7, 0xB-0xF) are a protocol error.
#[test]
fn reserved_opcodes_fail_with_1002() {
    for role in ROLES {
        for op in (3..=7).chain(0xB..=0xF) {
            let frame = Raw::to(role, op, "").encode();
            assert_fails(
                role,
                config(),
                &frame,
                ProtocolError::ReservedOpcode(op),
                1002,
            );
        }
    }
}

/// Reads of 16 KiB and more are searched past whole frames for a large
/// one (see `handle_read`); bad frames found that way fail as anywhere:
/// a reserved opcode whole or cut off, and a bad length after a good frame.
#[test]
fn bad_frames_in_large_reads_fail_with_1002() {
    for role in ROLES {
        let whole = Raw::to(role, 3, vec![1u8; 20_000]).encode();
        assert_fails(
            role,
            config(),
            &whole,
            ProtocolError::ReservedOpcode(3),
            1002,
        );
        let cut = Raw::to(role, 3, vec![1u8; 40_000]).encode();
        assert_fails(
            role,
            config(),
            &cut[..20_000],
            ProtocolError::ReservedOpcode(3),
            1002,
        );

        let big = vec![2u8; 20_000];
        let mut bytes = Raw::to(role, BINARY, &big).encode();
        bytes.extend_from_slice(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        if role == Role::Server {
            let at = bytes.len() - 9;
            bytes[at] |= 0x80;
            bytes.extend_from_slice(&KEY);
        }
        let now = Instant::now();
        let mut c = conn(role, now);
        c.handle_read(&bytes, now);
        assert_eq!(
            events(&mut c),
            [
                binary(big.clone()),
                Event::Error(Error::Protocol(ProtocolError::LengthOverflow))
            ],
            "{role:?}"
        );
        assert_eq!(sent_close_code(&mut c), Some(1002), "{role:?}");
    }
}

/// Control frames carry at most 125 bytes.
#[test]
fn long_control_frames_fail_with_1002() {
    for role in ROLES {
        for op in [PING, PONG, CLOSE] {
            let frame = Raw::to(role, op, [b'a'; 126]).encode();
            assert_fails(
                role,
                config(),
                &frame,
                ProtocolError::ControlFrameTooLong(126),
                1002,
            );
        }
        // 125 is fine.
        let ev = receive(role, &[Raw::to(role, PING, [b'a'; 125])]);
        assert_eq!(ev, [Event::Ping(Bytes::from(vec![b'a'; 125]))]);
    }
}

/// Control frames may not be fragmented.
#[test]
fn fragmented_control_frames_fail_with_1002() {
    for role in ROLES {
        for op in [PING, PONG, CLOSE] {
            let frame = Raw::to(role, op, "x").fin(false).encode();
            assert_fails(
                role,
                config(),
                &frame,
                ProtocolError::FragmentedControlFrame,
                1002,
            );
        }
    }
}

/// A continuation with nothing to continue is a protocol error.
#[test]
fn continuation_without_a_message_fails_with_1002() {
    for role in ROLES {
        let frame = Raw::to(role, CONT, "x").encode();
        assert_fails(
            role,
            config(),
            &frame,
            ProtocolError::UnexpectedContinuation,
            1002,
        );
        // Also after a message has ended.
        let bytes = wire(&[
            Raw::to(role, TEXT, "a").fin(false),
            Raw::to(role, CONT, "b"),
        ]);
        let mut c = conn(role, Instant::now());
        c.handle_read(&bytes, Instant::now());
        assert_eq!(events(&mut c), [text("ab")]);
        c.handle_read(&Raw::to(role, CONT, "c").encode(), Instant::now());
        assert_eq!(
            events(&mut c),
            [Event::Error(Error::Protocol(
                ProtocolError::UnexpectedContinuation
            ))]
        );
        assert_eq!(sent_close_code(&mut c), Some(1002));
    }
}

/// A new text or binary frame inside a fragmented message is a protocol error.
#[test]
fn new_message_inside_fragmented_message_fails_with_1002() {
    for role in ROLES {
        for op in [TEXT, BINARY] {
            let bytes = wire(&[Raw::to(role, TEXT, "a").fin(false), Raw::to(role, op, "b")]);
            assert_fails(
                role,
                config(),
                &bytes,
                ProtocolError::ExpectedContinuation,
                1002,
            );
        }
    }
}

/// A 64-bit length with its top bit set is a protocol error.
#[test]
fn length_with_top_bit_fails_with_1002() {
    for role in ROLES {
        let mut bytes = vec![0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        if role == Role::Server {
            bytes[1] |= 0x80;
            bytes.extend_from_slice(&KEY);
        }
        assert_fails(role, config(), &bytes, ProtocolError::LengthOverflow, 1002);
    }
}

// ---- UTF-8 ----

/// Text that is not UTF-8 fails with 1007, in one frame or across fragments.
#[test]
fn invalid_utf8_fails_with_1007() {
    for role in ROLES {
        let bad = [
            wire(&[Raw::to(role, TEXT, b"abc\xff")]),
            // A code point cut across fragments and completed with a bad byte.
            wire(&[
                Raw::to(role, TEXT, b"\xce").fin(false),
                Raw::to(role, CONT, b"A"),
            ]),
            // A message ending inside a code point.
            wire(&[
                Raw::to(role, TEXT, b"ok").fin(false),
                Raw::to(role, CONT, b"\xe2\x82"),
            ]),
            // A surrogate, spread over three fragments.
            wire(&[
                Raw::to(role, TEXT, b"\xed").fin(false),
                Raw::to(role, CONT, b"\xa0").fin(false),
                Raw::to(role, CONT, b"\x80"),
            ]),
        ];
        for bytes in bad {
            assert_fails(role, config(), &bytes, ProtocolError::InvalidUtf8, 1007);
        }
        // A code point cut across fragments is fine when it completes.
        let ev = receive(
            role,
            &[
                Raw::to(role, TEXT, b"\xe2\x82").fin(false),
                Raw::to(role, CONT, b"\xac!"),
            ],
        );
        assert_eq!(ev, [text("€!")], "{role:?}");
    }
}

/// Invalid text fails as soon as it is seen, before the message ends: in a
/// non-final fragment, and in the first bytes of a frame whose rest has not
/// arrived.
#[test]
fn invalid_utf8_fails_fast() {
    for role in ROLES {
        let first_fragment = Raw::to(role, TEXT, b"fine\xc0\xaf").fin(false).encode();
        assert_fails(
            role,
            config(),
            &first_fragment,
            ProtocolError::InvalidUtf8,
            1007,
        );

        let frame = Raw::to(role, TEXT, b"\xff and much more to come").encode();
        let header_len = if role == Role::Server { 6 } else { 2 };
        assert_fails(
            role,
            config(),
            &frame[..header_len + 1],
            ProtocolError::InvalidUtf8,
            1007,
        );
    }
}

/// Binary payloads are not fed to the UTF-8 validator: a text message after
/// a binary one that ended inside a "code point" is validated on its own.
#[test]
fn utf8_state_is_per_text_message() {
    for role in ROLES {
        let ev = receive(
            role,
            &[
                Raw::to(role, BINARY, b"\xe2\x82"),
                Raw::to(role, TEXT, b"\xac"),
            ],
        );
        let error = Event::Error(Error::Protocol(ProtocolError::InvalidUtf8));
        assert_eq!(ev, [binary(&b"\xe2\x82"[..]), error], "{role:?}");
        let ev = receive(
            role,
            &[
                Raw::to(role, BINARY, b"\xe2\x82"),
                Raw::to(role, TEXT, b"ok"),
            ],
        );
        assert_eq!(ev, [binary(&b"\xe2\x82"[..]), text("ok")], "{role:?}");
    }
}
