//! Pings and pongs: answers within bounds, keepalive pings, latency and the ping timeout.

use crate::*;

// ---- ping and pong ----

/// A ping is answered with a pong carrying the same payload.
#[test]
fn ping_is_answered_with_the_same_payload() {
    for role in ROLES {
        for payload in [&b""[..], b"hello", &[0xAB; 125]] {
            let now = Instant::now();
            let mut c = conn(role, now);
            c.handle_read(&Raw::to(role, PING, payload).encode(), now);
            assert_eq!(
                events(&mut c),
                [Event::Ping(Bytes::copy_from_slice(payload))]
            );
            let frames = sent_frames(&mut c);
            assert_eq!(frames.len(), 1);
            assert_eq!((frames[0].opcode, frames[0].fin), (PONG, true));
            assert_eq!(frames[0].payload, payload, "{role:?}");
        }
    }
}

/// A peer that floods pings while never reading its socket cannot grow the
/// transmit queue without bound: past the high-water mark only the latest
/// pings are answered, and those answers still go out before a close.
#[test]
fn ping_flood_is_answered_within_bounds() {
    for role in ROLES {
        let now = Instant::now();
        let config = config()
            .with_write_high_water(4096)
            .with_write_low_water(1024);
        let mut c = conn_at(role, config, now);
        for i in 0..10_000u32 {
            let payload = format!("{i:0>100}");
            c.handle_read(&Raw::to(role, PING, payload).encode(), now);
            while c.poll_event().is_some() {}
        }
        // 4096 framed bytes at most before the mark, plus 32 owed pongs of
        // 100 bytes, each with its header.
        assert!(
            c.buffered_amount() <= 4096 + 114 + 32 * 102,
            "{}",
            c.buffered_amount()
        );
        c.close(CloseCode::NORMAL, "").unwrap();
        let frames = sent_frames(&mut c);
        let (last, pongs) = frames.split_last().unwrap();
        assert_eq!(last.opcode, CLOSE, "{role:?}: the close comes last");
        assert!(pongs.iter().all(|f| f.opcode == PONG));
        // The newest ping is among those answered.
        assert_eq!(
            pongs.last().unwrap().payload,
            format!("{:0>100}", 9_999).as_bytes()
        );
    }
}

/// A ping between the fragments of a message is answered at once and does
/// not disturb the message.
#[test]
fn ping_between_fragments() {
    for role in ROLES {
        let now = Instant::now();
        let mut c = conn(role, now);
        c.handle_read(
            &wire(&[
                Raw::to(role, TEXT, "Hel").fin(false),
                Raw::to(role, PING, "p1"),
                Raw::to(role, CONT, "lo, ").fin(false),
                Raw::to(role, PONG, "unsolicited"),
                Raw::to(role, CONT, "world"),
            ]),
            now,
        );
        assert_eq!(
            events(&mut c),
            [
                Event::Ping(Bytes::from_static(b"p1")),
                Event::Pong {
                    payload: Bytes::from_static(b"unsolicited"),
                    latency: None
                },
                text("Hello, world"),
            ]
        );
        let frames = sent_frames(&mut c);
        assert_eq!(
            frames
                .iter()
                .map(|f| (f.opcode, f.payload.clone()))
                .collect::<Vec<_>>(),
            [(PONG, b"p1".to_vec())]
        );
    }
}

/// Ping and pong payloads over 125 bytes are refused locally.
#[test]
fn sending_long_control_payloads_is_refused() {
    let mut c = conn(Role::Client, Instant::now());
    assert_eq!(
        c.ping(Bytes::from(vec![0; 126])),
        Err(Error::ControlPayloadTooLong(126))
    );
    assert_eq!(
        c.send(Message::Pong(Bytes::from(vec![0; 200]))),
        Err(Error::ControlPayloadTooLong(200))
    );
    assert!(!c.has_transmit());
    c.ping(Bytes::from(vec![0; 125])).unwrap();
    assert_eq!(sent_frames(&mut c)[0].payload, vec![0; 125]);
}

// ---- keepalive ----

pub(crate) fn keepalive_config() -> Config {
    Config::default()
        .with_ping_interval(Some(Duration::from_secs(1)))
        .with_ping_timeout(Some(Duration::from_secs(1)))
}

/// Runs the timer at `when` and returns the payload of the ping it sent.
pub(crate) fn keepalive_ping(c: &mut Connection, when: Instant) -> Vec<u8> {
    c.handle_timeout(when);
    let frames = sent_frames(c);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].opcode, PING);
    frames[0].payload.clone()
}

/// The keepalive ping goes out at the interval, and its pong gives the
/// round trip time.
#[test]
fn keepalive_ping_and_latency() {
    for role in ROLES {
        let t = Instant::now();
        let mut c = conn_at(role, keepalive_config(), t);
        assert_eq!(c.poll_timeout(), Some(at(t, 1000)));
        c.handle_timeout(at(t, 999));
        assert!(!c.has_transmit(), "no ping before the interval");

        let payload = keepalive_ping(&mut c, at(t, 1000));
        assert!(!payload.is_empty());
        assert_eq!(c.poll_timeout(), Some(at(t, 2000)), "pong deadline");

        c.handle_read(&Raw::to(role, PONG, &payload).encode(), at(t, 1250));
        let latency = Some(Duration::from_millis(250));
        assert_eq!(
            events(&mut c),
            [Event::Pong {
                payload: payload.clone().into(),
                latency
            }]
        );
        assert_eq!(c.latency(), latency);
        // Answered: the next ping is due an interval after the last one.
        assert_eq!(c.poll_timeout(), Some(at(t, 2000)));
        c.handle_timeout(at(t, 2000));
        assert!(events(&mut c).is_empty(), "no timeout once answered");
        let second = keepalive_ping(&mut c, at(t, 2000));
        assert_ne!(second, payload, "each ping has a fresh payload");
    }
}

/// A pong that does not echo the keepalive ping's payload does not count.
#[test]
fn unmatched_pong_does_not_count() {
    for role in ROLES {
        let t = Instant::now();
        let mut c = conn_at(role, keepalive_config(), t);
        let payload = keepalive_ping(&mut c, at(t, 1000));
        let mut wrong = payload.clone();
        wrong[0] ^= 1;
        c.handle_read(&Raw::to(role, PONG, &wrong).encode(), at(t, 1100));
        assert_eq!(
            events(&mut c),
            [Event::Pong {
                payload: wrong.into(),
                latency: None
            }]
        );
        assert_eq!(c.latency(), None);
        c.handle_timeout(at(t, 2000));
        assert_eq!(events(&mut c), [Event::Error(Error::KeepaliveTimeout)]);
    }
}

/// Without a pong, the connection fails with 1011 at interval + timeout.
#[test]
fn keepalive_timeout_fails_with_1011() {
    for role in ROLES {
        let t = Instant::now();
        let mut c = conn_at(role, keepalive_config(), t);
        keepalive_ping(&mut c, at(t, 1000));
        c.handle_timeout(at(t, 1999));
        assert!(events(&mut c).is_empty());
        assert!(!c.has_transmit());
        c.handle_timeout(at(t, 2000));
        assert_eq!(events(&mut c), [Event::Error(Error::KeepaliveTimeout)]);
        assert_eq!(sent_close_code(&mut c), Some(1011), "{role:?}");
        assert_ne!(c.state(), State::Open);
        assert_eq!(c.send(Message::text("x")), Err(Error::Closed));
    }
}

/// With ping_timeout None the peer is never failed, and pings keep going
/// out at the interval (they are what keeps NAT and proxies from dropping
/// an idle connection).
#[test]
fn keepalive_without_timeout_keeps_pinging() {
    let t = Instant::now();
    let config = Config::default()
        .with_ping_interval(Some(Duration::from_secs(1)))
        .with_ping_timeout(None);
    let mut c = conn_at(Role::Client, config, t);
    keepalive_ping(&mut c, at(t, 1000));
    assert_eq!(c.poll_timeout(), Some(at(t, 2000)));
    keepalive_ping(&mut c, at(t, 2000));
    c.handle_timeout(at(t, 60_000));
    assert!(events(&mut c).is_empty());
    assert_eq!(c.state(), State::Open);
}

/// Keepalive disabled: no timer at all.
#[test]
fn no_keepalive_no_timer() {
    let t = Instant::now();
    let mut c = conn(Role::Server, t);
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(at(t, 3_600_000));
    assert!(!c.has_transmit());
}
