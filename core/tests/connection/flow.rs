//! Limits and flow control: frame and message sizes, inbound backpressure, writable hysteresis, chunked delivery, a whole session.

use crate::control::{keepalive_config, keepalive_ping};
use crate::*;

// ---- limits ----

/// A frame over max_frame_size fails with 1009 as soon as its header is
/// read, before any payload is buffered.
#[test]
fn frame_over_max_frame_size_fails_with_1009() {
    for role in ROLES {
        let config = common::config().with_max_frame_size(100);
        let ok = Raw::to(role, BINARY, [7u8; 100]).encode();
        let now = Instant::now();
        let mut c = conn_at(role, config.clone(), now);
        c.handle_read(&ok, now);
        assert_eq!(events(&mut c), [binary(vec![7u8; 100])]);

        let frame = Raw::to(role, BINARY, [7u8; 101]).encode();
        let header_len = if role == Role::Server { 8 } else { 4 };
        let error = ProtocolError::FrameTooLarge {
            size: 101,
            limit: 100,
        };
        assert_fails(role, config, &frame[..header_len], error, 1009);
    }
}

/// A message over max_message_size (all fragments together) fails with 1009
/// at the header of the fragment that crosses the limit.
#[test]
fn message_over_max_message_size_fails_with_1009() {
    for role in ROLES {
        let config = common::config().with_max_message_size(100);
        let exact = wire(&[
            Raw::to(role, BINARY, [1u8; 60]).fin(false),
            Raw::to(role, CONT, [2u8; 40]),
        ]);
        let now = Instant::now();
        let mut c = conn_at(role, config.clone(), now);
        c.handle_read(&exact, now);
        assert_eq!(
            events(&mut c),
            [binary([[1u8; 60].as_slice(), &[2u8; 40]].concat())]
        );

        let first = Raw::to(role, BINARY, [1u8; 60]).fin(false).encode();
        let second = Raw::to(role, CONT, [2u8; 60]).encode();
        let header_len = if role == Role::Server { 6 } else { 2 };
        let bytes = [first.as_slice(), &second[..header_len]].concat();
        let error = ProtocolError::MessageTooLarge {
            size: 120,
            limit: 100,
        };
        assert_fails(role, config, &bytes, error, 1009);
    }
}

// ---- flow control ----

/// wants_read() turns false once max_inbound_bytes of messages wait, and
/// true again once the application takes them; input held back meanwhile
/// is parsed then.
#[test]
fn inbound_backpressure() {
    let now = Instant::now();
    let config = config().with_max_inbound_bytes(100);
    let mut c = conn_at(Role::Server, config, now);
    let msgs: Vec<Raw> = (1..=3u8)
        .map(|i| Raw::to(Role::Server, BINARY, [i; 60]))
        .collect();
    c.handle_read(&wire(&msgs[..1]), now);
    assert!(c.wants_read(), "60 < 100 bytes waiting");
    c.handle_read(&wire(&msgs[1..]), now);
    assert!(!c.wants_read(), "120 bytes waiting");
    assert_eq!(c.poll_event(), Some(binary(vec![1; 60])));
    assert!(c.wants_read());
    assert_eq!(c.poll_event(), Some(binary(vec![2; 60])));
    assert_eq!(
        c.poll_event(),
        Some(binary(vec![3; 60])),
        "held-back input is parsed"
    );
    assert_eq!(c.poll_event(), None);
    assert!(c.wants_read());
}

/// max_inbound_events bounds the number of waiting events, whatever their size.
#[test]
fn inbound_event_limit() {
    let now = Instant::now();
    let config = config().with_max_inbound_events(2);
    let mut c = conn_at(Role::Client, config, now);
    let pings: Vec<Raw> = (0..5u8).map(|i| Raw::to(Role::Client, PING, [i])).collect();
    c.handle_read(&wire(&pings), now);
    assert!(!c.wants_read());
    assert_eq!(
        sent_frames(&mut c).len(),
        2,
        "only the pings parsed so far are answered"
    );
    let got = events(&mut c);
    assert_eq!(got.len(), 5);
    assert_eq!(sent_frames(&mut c).len(), 3);
    assert!(c.wants_read());
}

/// is_writable() turns false above write_high_water and true again only
/// below write_low_water.
#[test]
fn writable_hysteresis() {
    let config = config()
        .with_write_high_water(1000)
        .with_write_low_water(200);
    let mut c = conn_at(Role::Server, config, Instant::now());
    assert!(c.is_writable());
    c.send(Message::binary(vec![0u8; 600])).unwrap();
    assert_eq!(c.buffered_amount(), 604);
    assert!(c.is_writable());
    c.send(Message::binary(vec![0u8; 600])).unwrap();
    assert_eq!(c.buffered_amount(), 1208);
    assert!(!c.is_writable());
    transmit_once(&mut c, 708);
    assert_eq!(c.buffered_amount(), 500);
    assert!(!c.is_writable(), "below high water but above low water");
    transmit_once(&mut c, 300);
    assert_eq!(c.buffered_amount(), 200);
    assert!(c.is_writable(), "at low water");
    c.send(Message::binary(vec![0u8; 500])).unwrap();
    assert_eq!(c.buffered_amount(), 704);
    assert!(c.is_writable(), "back under the high mark only");
}

/// With deliver_chunks, a message comes as chunks whose concatenation is
/// the message, fin on the last only, as its bytes arrive.
#[test]
fn chunked_delivery() {
    for role in ROLES {
        let now = Instant::now();
        let config = config().with_deliver_chunks(true);
        let mut c = conn_at(role, config, now);
        let text = "chunks of κόσμε arrive as they come";
        let bytes = text.as_bytes();
        let w = wire(&[
            Raw::to(role, TEXT, &bytes[..10]).fin(false),
            Raw::to(role, PING, "p"),
            Raw::to(role, CONT, &bytes[10..20]).fin(false),
            Raw::to(role, CONT, &bytes[20..]),
        ]);
        let mut got = Vec::new();
        for piece in w.chunks(7) {
            c.handle_read(piece, now);
            got.extend(events(&mut c));
        }
        let mut data = Vec::new();
        let mut fins = Vec::new();
        for ev in &got {
            match ev {
                Event::Chunk { kind, data: d, fin } => {
                    assert_eq!(*kind, DataKind::Text);
                    data.extend_from_slice(d);
                    fins.push(*fin);
                }
                Event::Ping(p) => assert_eq!(p, "p"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(data, bytes);
        assert!(fins.len() > 3, "delivered as it arrives: {fins:?}");
        assert_eq!(fins.iter().filter(|f| **f).count(), 1);
        assert_eq!(fins.last(), Some(&true));
    }
}

/// Chunked delivery still fails fast on invalid UTF-8 and oversized frames.
#[test]
fn chunked_delivery_checks_input() {
    let config = config().with_deliver_chunks(true).with_max_frame_size(50);
    let bytes = wire(&[
        Raw::to(Role::Server, TEXT, b"ok").fin(false),
        Raw::to(Role::Server, CONT, b"\xff"),
    ]);
    let now = Instant::now();
    let mut c = conn_at(Role::Server, config.clone(), now);
    c.handle_read(&bytes, now);
    assert_eq!(
        events(&mut c),
        [
            Event::Chunk {
                kind: DataKind::Text,
                data: Bytes::from_static(b"ok"),
                fin: false
            },
            Event::Error(Error::Protocol(ProtocolError::InvalidUtf8)),
        ]
    );
    assert_eq!(sent_close_code(&mut c), Some(1007));

    let big = Raw::to(Role::Server, BINARY, [0u8; 51]).encode();
    assert_fails(
        Role::Server,
        config,
        &big,
        ProtocolError::FrameTooLarge {
            size: 51,
            limit: 50,
        },
        1009,
    );
}

/// While the application is not taking events (inbound queue full), a
/// missing pong is not held against the peer: the pong may be sitting
/// unread behind the messages.
#[test]
fn keepalive_timeout_waits_while_reading_is_paused() {
    let t = Instant::now();
    let config = keepalive_config().with_max_inbound_bytes(10);
    let mut c = conn_at(Role::Server, config, t);
    c.handle_read(&Raw::to(Role::Server, BINARY, [0u8; 10]).encode(), t);
    assert!(!c.wants_read());
    keepalive_ping(&mut c, at(t, 1000));
    c.handle_timeout(at(t, 2000));
    assert!(!c.has_transmit(), "no failure while paused");
    assert_eq!(c.state(), State::Open);
    assert_eq!(events(&mut c), [binary(vec![0u8; 10])]);
    // Reading again, the grace runs out one timeout later.
    assert_eq!(c.poll_timeout(), Some(at(t, 3000)));
    c.handle_timeout(at(t, 3000));
    assert_eq!(events(&mut c), [Event::Error(Error::KeepaliveTimeout)]);
    assert_eq!(sent_close_code(&mut c), Some(1011));
}

/// Message::Close through send() starts the close handshake like close().
#[test]
fn sending_a_close_message() {
    let mut c = conn(Role::Client, Instant::now());
    let frame = CloseFrame {
        code: CloseCode(4000),
        reason: "app".into(),
    };
    c.send(Message::Close(Some(frame))).unwrap();
    let frames = sent_frames(&mut c);
    assert_eq!(
        (frames[0].close_code(), &frames[0].payload[2..]),
        (Some(4000), &b"app"[..])
    );

    let mut c = conn(Role::Client, Instant::now());
    c.send(Message::Close(None)).unwrap();
    assert_eq!(sent_close_code(&mut c), None);

    let mut c = conn(Role::Client, Instant::now());
    let bad = CloseFrame {
        code: CloseCode::NO_STATUS,
        reason: String::new(),
    };
    assert_eq!(
        c.send(Message::Close(Some(bad))),
        Err(Error::InvalidCloseCode(1005))
    );
}

/// Moves everything `from` has queued to `to`, and returns `to`'s events.
fn pump(from: &mut Connection, to: &mut Connection, now: Instant) -> Vec<Event> {
    let bytes = transmit(from);
    if !bytes.is_empty() {
        to.handle_read(&bytes, now);
    }
    events(to)
}

/// A whole session between a client and a server connection: messages
/// both ways, a ping, then a client-initiated close that ends with the
/// server closing TCP and the client seeing EOF.
#[test]
fn client_and_server_session() {
    let t = Instant::now();
    let mut client = conn(Role::Client, t);
    let mut server = conn(Role::Server, t);

    client.send(Message::text("hello")).unwrap();
    client.ping(Bytes::from_static(b"are you there")).unwrap();
    let got = pump(&mut client, &mut server, t);
    assert_eq!(
        got,
        [
            text("hello"),
            Event::Ping(Bytes::from_static(b"are you there"))
        ]
    );

    server.send(Message::binary(vec![9u8; 70_000])).unwrap();
    let got = pump(&mut server, &mut client, t);
    assert_eq!(
        got,
        [
            Event::Pong {
                payload: Bytes::from_static(b"are you there"),
                latency: None
            },
            binary(vec![9u8; 70_000]),
        ]
    );

    client.close(CloseCode::NORMAL, "bye").unwrap();
    let got = pump(&mut client, &mut server, at(t, 1));
    let bye = CloseFrame {
        code: CloseCode::NORMAL,
        reason: "bye".into(),
    };
    assert_eq!(got, [Event::Close(Some(bye))]);
    assert!(server.is_finished(), "server closes TCP after the echo");
    let got = pump(&mut server, &mut client, at(t, 2));
    assert_eq!(
        got,
        [Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: String::new()
        }))]
    );
    assert!(!client.is_finished());
    client.handle_eof(at(t, 3));
    assert!(client.is_finished());
    assert_eq!(events(&mut client), []);
    assert!(!client.has_transmit() && !server.has_transmit());
}

/// Frames that arrived before EOF but were held back by backpressure are
/// still delivered: EOF ends the input, it does not discard what was read.
/// Here the peer's messages and its close frame all precede its FIN.
#[test]
fn eof_keeps_input_held_back_by_backpressure() {
    for role in ROLES {
        let now = Instant::now();
        let config = config().with_max_inbound_bytes(100);
        let mut c = conn_at(role, config, now);
        let mut frames: Vec<Raw> = (1..=3u8).map(|i| Raw::to(role, BINARY, [i; 60])).collect();
        frames.push(Raw::to(role, CLOSE, close_payload(1000, b"")));
        c.handle_read(&wire(&frames), now);
        assert_eq!(c.poll_event(), Some(binary(vec![1; 60])));
        assert!(
            c.wants_read(),
            "room again, so the adapter reads and sees EOF"
        );
        c.handle_eof(now);
        let normal = CloseFrame {
            code: CloseCode::NORMAL,
            reason: String::new(),
        };
        assert_eq!(
            events(&mut c),
            [
                binary(vec![2; 60]),
                binary(vec![3; 60]),
                Event::Close(Some(normal))
            ],
            "{role:?}"
        );
        assert!(c.is_finished());
    }
}

/// A frame cut short by EOF is an abnormal closure, after the complete
/// frames before it.
#[test]
fn eof_after_held_back_input_with_a_cut_frame() {
    let now = Instant::now();
    let config = config().with_max_inbound_events(1);
    let mut c = conn_at(Role::Server, config, now);
    let bytes = wire(&[
        Raw::to(Role::Server, TEXT, "a"),
        Raw::to(Role::Server, TEXT, "b"),
        Raw::to(Role::Server, TEXT, "cut"),
    ]);
    c.handle_read(&bytes[..bytes.len() - 1], now);
    c.handle_eof(now);
    assert_eq!(
        events(&mut c),
        [text("a"), text("b"), Event::Error(Error::AbnormalClosure)]
    );
}

/// With an idle timeout, a connection that receives nothing for that long
/// starts the close handshake with 1001; any input postpones it.
#[test]
fn idle_timeout_closes_with_1001() {
    for role in ROLES {
        let t = Instant::now();
        let config = config().with_idle_timeout(Some(Duration::from_secs(5)));
        let mut c = conn_at(role, config, t);
        assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(5)));
        c.handle_read(&Raw::to(role, TEXT, "still here").encode(), at(t, 3000));
        assert_eq!(events(&mut c), [text("still here")]);
        assert_eq!(c.poll_timeout(), Some(at(t, 8000)));
        c.handle_timeout(at(t, 7999));
        assert_eq!(c.state(), State::Open);
        c.handle_timeout(at(t, 8000));
        assert_eq!(c.state(), State::Closing, "{role:?}");
        assert_eq!(sent_close_code(&mut c), Some(1001));
    }
}

/// A peer that stops reading cannot keep the connection open: at the close
/// timeout the unsent bytes are dropped, so `is_finished()` with nothing
/// left to transmit tells the adapter to close the socket.
#[test]
fn close_timeout_drops_what_the_peer_never_read() {
    for role in ROLES {
        let t = Instant::now();
        let mut c = conn(role, t);
        c.send(Message::binary(vec![7u8; 100_000])).unwrap();
        c.close(CloseCode::NORMAL, "bye").unwrap();
        // Nothing is ever written: the peer's window is shut.
        assert!(c.has_transmit());
        let deadline = c.poll_timeout().expect("close deadline");
        c.handle_timeout(deadline);
        assert!(c.is_finished(), "{role:?}");
        assert!(!c.has_transmit(), "{role:?}: the queue was dropped");
        assert_eq!(c.buffered_amount(), 0);
        assert_eq!(c.state(), State::Closed);
    }
}
