//! The close handshake: close payloads, who closes TCP, the close timeout, failing while events wait.

use crate::*;

// ---- close payloads ----

/// Close payloads must be empty or a sendable code with a UTF-8 reason.
#[test]
fn invalid_close_payloads() {
    for role in ROLES {
        let cases: Vec<(Vec<u8>, ClosePayloadError, u16)> = vec![
            (vec![0x03], ClosePayloadError::Truncated, 1002),
            (
                close_payload(1005, b""),
                ClosePayloadError::InvalidCode(1005),
                1002,
            ),
            (
                close_payload(1006, b""),
                ClosePayloadError::InvalidCode(1006),
                1002,
            ),
            (
                close_payload(999, b""),
                ClosePayloadError::InvalidCode(999),
                1002,
            ),
            (
                close_payload(1015, b""),
                ClosePayloadError::InvalidCode(1015),
                1002,
            ),
            (
                close_payload(1004, b""),
                ClosePayloadError::InvalidCode(1004),
                1002,
            ),
            (
                close_payload(5000, b""),
                ClosePayloadError::InvalidCode(5000),
                1002,
            ),
            (
                close_payload(1000, b"bad \xff reason"),
                ClosePayloadError::InvalidReason,
                1007,
            ),
        ];
        for (payload, err, code) in cases {
            let frame = Raw::to(role, CLOSE, payload).encode();
            assert_fails(
                role,
                config(),
                &frame,
                ProtocolError::InvalidClosePayload(err),
                code,
            );
        }
    }
}

// ---- close handshake ----

/// Receiving a close frame reports it and echoes its code.
#[test]
fn received_close_is_echoed() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        c.handle_read(
            &Raw::to(role, CLOSE, close_payload(4001, b"bye")).encode(),
            now,
        );
        let frame = CloseFrame {
            code: CloseCode(4001),
            reason: "bye".into(),
        };
        assert_eq!(events(&mut c), [Event::Close(Some(frame))]);
        assert_eq!(sent_close_code(&mut c), Some(4001), "{role:?}");
        assert_ne!(c.state(), State::Open);

        // A close without a code is answered without a code.
        let mut c = conn(role, now);
        c.handle_read(&Raw::to(role, CLOSE, b"").encode(), now);
        assert_eq!(events(&mut c), [Event::Close(None)]);
        assert_eq!(sent_close_code(&mut c), None);
    }
}

/// The server closes TCP as soon as both close frames have crossed, in
/// either order.
#[test]
fn server_is_finished_after_close_exchange() {
    let now = Instant::now();
    // The server starts the close.
    let mut s = conn(Role::Server, now);
    s.close(CloseCode::NORMAL, "done").unwrap();
    assert_eq!(s.state(), State::Closing);
    assert!(!s.is_finished());
    let frames = sent_frames(&mut s);
    assert_eq!((frames.len(), frames[0].close_code()), (1, Some(1000)));
    assert_eq!(&frames[0].payload[2..], b"done");
    s.handle_read(
        &Raw::to(Role::Server, CLOSE, close_payload(1000, b"")).encode(),
        now,
    );
    assert_eq!(
        events(&mut s),
        [Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: String::new()
        }))]
    );
    assert!(s.is_finished());
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.poll_timeout(), None);
    assert!(!s.wants_read());
    assert!(!s.has_transmit(), "no second close frame");

    // The client starts the close.
    let mut s = conn(Role::Server, now);
    s.handle_read(
        &Raw::to(Role::Server, CLOSE, close_payload(1001, b"")).encode(),
        now,
    );
    assert!(s.is_finished());
    assert_eq!(sent_close_code(&mut s), Some(1001));
}

/// The close handshake is done (a transport error then ends the
/// connection without being its failure) only once the peer's close frame
/// came: not when ours is only sent, not when the connection failed, and
/// still after the close timeout.
#[test]
fn close_handshake_done_needs_the_peers_close() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        assert!(!c.close_handshake_done());
        c.close(CloseCode::NORMAL, "").unwrap();
        assert!(!c.close_handshake_done(), "{role:?}: only ours sent");
        c.handle_read(
            &Raw::to(role, CLOSE, close_payload(1000, b"")).encode(),
            now,
        );
        assert!(c.close_handshake_done(), "{role:?}");
        c.handle_timeout(at(now, 3_600_000));
        assert!(c.close_handshake_done(), "{role:?}: after the timeout");

        // A violation fails the connection: our close goes out, the
        // peer's is not read any more.
        let mut c = conn(role, now);
        c.handle_read(&Raw::to(role, 0x3, "reserved opcode").encode(), now);
        c.handle_read(
            &Raw::to(role, CLOSE, close_payload(1000, b"")).encode(),
            now,
        );
        assert_ne!(c.state(), State::Open);
        assert!(!c.close_handshake_done(), "{role:?}: failed");
    }
}

/// Only the peer's answer is left to read once our close frame is
/// written and before the answer comes: not while data or the close
/// still wait to be written, not after the answer, not after a failure.
#[test]
fn awaits_close_reply_once_our_close_is_written() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        assert!(!c.awaits_close_reply(), "{role:?}: open");
        c.send(Message::binary(vec![1; 100])).unwrap();
        c.close(CloseCode::NORMAL, "").unwrap();
        assert!(!c.awaits_close_reply(), "{role:?}: not written yet");
        assert_eq!(sent_close_code(&mut c), Some(1000));
        assert!(c.awaits_close_reply(), "{role:?}: written");
        c.handle_read(
            &Raw::to(role, CLOSE, close_payload(1000, b"")).encode(),
            now,
        );
        assert!(!c.awaits_close_reply(), "{role:?}: answered");

        let mut c = conn(role, now);
        c.handle_read(&Raw::to(role, 0x3, "reserved opcode").encode(), now);
        while c.poll_event().is_some() {}
        assert_eq!(sent_close_code(&mut c), Some(1002));
        assert!(!c.awaits_close_reply(), "{role:?}: failed");
    }
}

/// A client that has exchanged close frames waits for the server to end
/// TCP; EOF then finishes it without an error.
#[test]
fn client_waits_for_eof_after_close_exchange() {
    let now = Instant::now();
    let mut c = conn(Role::Client, now);
    c.handle_read(
        &Raw::to(Role::Client, CLOSE, close_payload(1000, b"")).encode(),
        now,
    );
    assert_eq!(sent_close_code(&mut c), Some(1000));
    assert!(!c.is_finished());
    assert!(c.close_handshake_done());
    assert_eq!(c.state(), State::Closing);
    c.handle_eof(at(now, 10));
    assert!(c.is_finished());
    assert!(c.close_handshake_done(), "still done after EOF");
    assert_eq!(c.state(), State::Closed);
    assert_eq!(
        events(&mut c),
        [Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: String::new()
        }))],
        "no AbnormalClosure after a close handshake"
    );
}

/// A client whose server never ends TCP gives up at the close timeout.
#[test]
fn client_gives_up_at_close_timeout() {
    let now = Instant::now();
    let config = config().with_close_timeout(Duration::from_secs(3));
    let mut c = conn_at(Role::Client, config, now);
    c.close(CloseCode::GOING_AWAY, "").unwrap();
    assert_eq!(sent_close_code(&mut c), Some(1001));
    assert_eq!(c.poll_timeout(), Some(at(now, 3000)));
    c.handle_read(
        &Raw::to(Role::Client, CLOSE, close_payload(1001, b"")).encode(),
        at(now, 1000),
    );
    assert!(!c.has_transmit(), "the client's close is not sent twice");
    assert!(!c.is_finished());
    c.handle_timeout(at(now, 2999));
    assert!(!c.is_finished());
    c.handle_timeout(at(now, 3000));
    assert!(c.is_finished());
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.poll_timeout(), None);
}

/// A server whose client never answers its close gives up too.
#[test]
fn server_gives_up_at_close_timeout() {
    let now = Instant::now();
    let mut s = conn(Role::Server, now);
    s.close(CloseCode::NORMAL, "").unwrap();
    let deadline = now + s.config().close_timeout;
    assert_eq!(s.poll_timeout(), Some(deadline));
    s.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!s.is_finished());
    s.handle_timeout(deadline);
    assert!(s.is_finished());
}

/// Data received after our close, before the peer's, is still delivered.
#[test]
fn data_after_our_close_is_delivered() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        c.close(CloseCode::NORMAL, "").unwrap();
        c.handle_read(
            &wire(&[
                Raw::to(role, TEXT, "still"),
                Raw::to(role, CLOSE, close_payload(1000, b"")),
            ]),
            now,
        );
        assert_eq!(events(&mut c).first(), Some(&text("still")));
    }
}

/// Nothing can be sent once the close handshake has started.
#[test]
fn sending_after_close_fails() {
    for role in ROLES {
        let now = Instant::now();
        // After our own close.
        let mut c = conn(role, now);
        c.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(c.send(Message::text("x")), Err(Error::Closed));
        assert_eq!(c.send(Message::binary(&b"x"[..])), Err(Error::Closed));
        assert_eq!(c.ping(Bytes::new()), Err(Error::Closed));
        assert_eq!(
            c.send_chunk(DataKind::Binary, Bytes::new(), true),
            Err(Error::Closed)
        );
        // A second close is a no-op.
        c.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(sent_close_code(&mut c), Some(1000));

        // After the peer's close.
        let mut c = conn(role, now);
        c.handle_read(&Raw::to(role, CLOSE, b"").encode(), now);
        assert_eq!(c.send(Message::text("x")), Err(Error::Closed), "{role:?}");

        // After a failure.
        let mut c = conn(role, now);
        c.handle_read(&Raw::to(role, 3, b"").encode(), now);
        let _ = events(&mut c);
        assert_eq!(c.send(Message::text("x")), Err(Error::Closed), "{role:?}");
    }
}

/// close() refuses codes that may not appear on the wire.
#[test]
fn close_with_invalid_code_is_refused() {
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let mut c = conn(Role::Client, Instant::now());
        assert_eq!(
            c.close(CloseCode(code), ""),
            Err(Error::InvalidCloseCode(code))
        );
        assert_eq!(c.state(), State::Open);
        assert!(!c.has_transmit());
    }
}

/// A long close reason is cut to fit a control frame.
#[test]
fn close_reason_is_truncated() {
    let mut c = conn(Role::Server, Instant::now());
    c.close(CloseCode::NORMAL, &"é".repeat(100)).unwrap();
    let frames = sent_frames(&mut c);
    assert!(frames[0].payload.len() <= 125);
    assert!(std::str::from_utf8(&frames[0].payload[2..]).is_ok());
}

/// Data queued before close() goes out before the close frame.
#[test]
fn close_goes_out_after_queued_data() {
    let config = config().with_fragment_size(10);
    let mut c = conn_at(Role::Server, config, Instant::now());
    c.send(Message::binary(vec![1u8; 35])).unwrap();
    c.close(CloseCode::NORMAL, "").unwrap();
    let frames = sent_frames(&mut c);
    let ops: Vec<u8> = frames.iter().map(|f| f.opcode).collect();
    assert_eq!(ops, [BINARY, CONT, CONT, CONT, CLOSE]);
}

/// A message read before a violation in the same read is delivered first,
/// and a reply sent in answer goes out before the close frame.
#[test]
fn deferred_failure_lets_the_application_answer() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        let bytes = wire(&[
            Raw::to(role, TEXT, "question"),
            Raw::to(role, TEXT, "bad").rsv(2),
        ]);
        c.handle_read(&bytes, now);
        assert!(
            !c.has_transmit(),
            "no close before the application has seen the message"
        );
        assert_eq!(c.poll_event(), Some(text("question")));
        c.send(Message::text("answer")).unwrap();
        assert_eq!(
            c.poll_event(),
            Some(Event::Error(Error::Protocol(ProtocolError::ReservedBits(
                2
            ))))
        );
        assert_eq!(c.poll_event(), None);
        let frames = sent_frames(&mut c);
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(
            (frames[0].opcode, frames[0].payload.as_slice()),
            (TEXT, &b"answer"[..])
        );
        assert_eq!(frames[1].close_code(), Some(1002));
        assert_eq!(c.send(Message::text("too late")), Err(Error::Closed));
    }
}

/// TCP ending without a close frame is an abnormal closure.
#[test]
fn eof_without_close_is_abnormal() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        // Half a frame, then EOF.
        c.handle_read(&Raw::to(role, TEXT, "cut short").encode()[..4], now);
        c.handle_eof(now);
        assert_eq!(events(&mut c), [Event::Error(Error::AbnormalClosure)]);
        assert!(c.is_finished());
        assert!(!c.close_handshake_done(), "no close frame came");
        assert_eq!(c.state(), State::Closed);
        assert!(!c.wants_read());
        assert!(!c.has_transmit(), "no close frame into a closed stream");
        c.handle_eof(now);
        assert_eq!(events(&mut c), [], "EOF is reported once");
    }
}

/// A violation waiting behind a message the application has not taken
/// stops the keepalive; its timer must not stay due, or a driver that
/// sleeps until `poll_timeout` would spin on a deadline in the past.
#[test]
fn a_queued_violation_leaves_no_timer_due() {
    for role in ROLES {
        let now = Instant::now();
        let config = config().with_ping_interval(Some(Duration::from_secs(1)));
        let mut c = conn_at(role, config, now);
        c.handle_read(
            &wire(&[
                Raw::to(role, TEXT, "first"),
                Raw::to(role, TEXT, "bad").rsv(4),
            ]),
            now,
        );
        assert_eq!(c.state(), State::Open, "the violation is not reached yet");
        let later = at(now, 5000);
        c.handle_timeout(later);
        assert!(!c.has_transmit(), "{role:?}: no ping or close yet");
        assert!(
            c.poll_timeout().map_or(true, |t| t > later),
            "{role:?}: a deadline in the past: {:?}",
            c.poll_timeout()
        );
        assert_eq!(c.poll_event(), Some(text("first")));
        assert!(matches!(
            c.poll_event(),
            Some(Event::Error(Error::Protocol(_)))
        ));
        assert_eq!(sent_close_code(&mut c), Some(1002));
    }
}

/// After the peer's EOF, data still queued for it is flushed only until
/// the close timeout: a peer that half-closed and never reads must not
/// keep the socket open.
#[test]
fn output_queued_at_eof_is_bounded_by_the_close_timeout() {
    for role in ROLES {
        let now = Instant::now();
        let config = config().with_close_timeout(Duration::from_secs(2));
        let mut c = conn_at(role, config, now);
        c.send(Message::binary(vec![7; 100_000])).unwrap();
        c.handle_eof(at(now, 10));
        assert!(c.is_finished());
        assert!(c.has_transmit());
        assert!(!c.can_close_transport(), "{role:?}: the data is still owed");
        assert_eq!(c.poll_timeout(), Some(at(now, 2010)), "{role:?}");
        c.handle_timeout(at(now, 2010));
        assert!(!c.has_transmit(), "{role:?}: given up on the peer");
        assert!(c.can_close_transport());
        assert_eq!(c.poll_timeout(), None);
    }
}

/// `state()` through each way a connection ends.
#[test]
fn state_follows_each_way_to_the_end() {
    for role in ROLES {
        let now = Instant::now();
        // We close first.
        let mut c = conn(role, now);
        assert_eq!(c.state(), State::Open);
        c.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(c.state(), State::Closing);
        c.handle_read(
            &Raw::to(role, CLOSE, close_payload(1000, b"")).encode(),
            now,
        );
        let after_exchange = match role {
            Role::Server => State::Closed,
            _ => State::Closing,
        };
        assert_eq!(c.state(), after_exchange, "{role:?}");
        c.handle_eof(now);
        assert_eq!(c.state(), State::Closed);

        // The peer closes first.
        let mut c = conn(role, now);
        c.handle_read(
            &Raw::to(role, CLOSE, close_payload(1001, b"")).encode(),
            now,
        );
        assert_eq!(c.state(), after_exchange, "{role:?}");
        assert_eq!(c.send(Message::text("late")), Err(Error::Closed));

        // A violation: closing at once for a server too, until the
        // client has seen its close frame out.
        let mut c = conn(role, now);
        c.handle_read(&Raw::to(role, TEXT, "x").rsv(4).encode(), now);
        let failed = match role {
            Role::Server => State::Closed,
            _ => State::Closing,
        };
        assert_eq!(c.state(), failed, "{role:?}");

        // A violation queued behind a message after our close.
        let mut c = conn(role, now);
        c.close(CloseCode::NORMAL, "").unwrap();
        c.handle_read(
            &wire(&[Raw::to(role, TEXT, "m"), Raw::to(role, TEXT, "x").rsv(4)]),
            now,
        );
        assert_eq!(c.state(), State::Closing);
        assert_eq!(
            c.close(CloseCode::NORMAL, ""),
            Ok(()),
            "closing twice is a no-op"
        );
        let _ = events(&mut c);
        assert_eq!(c.state(), failed, "{role:?}");

        // The close timeout.
        let mut c = conn(role, now);
        c.close(CloseCode::NORMAL, "").unwrap();
        c.handle_timeout(now + c.config().close_timeout);
        assert_eq!(c.state(), State::Closed);
        c.handle_eof(now + c.config().close_timeout);
        assert_eq!(events(&mut c), [], "{role:?}: the end was already decided");
    }
}
