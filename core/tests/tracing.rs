//! With the `tracing` feature, the connection's lifecycle shows as events
//! of target `tether`: the handshake, who closed and with which code, a
//! failure and its code, a keepalive timeout, backpressure engaged and
//! released. Without it nothing is compiled in (the other test binaries).

#![cfg(feature = "tracing")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tether_core::handshake::{Accept, HandshakeLimits, ServerHandshake};
use tether_core::{CloseCode, Config, Role};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records each event as "message field=value ...".
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "tether"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn recorded(f: impl FnOnce()) -> Vec<String> {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), f);
    let lines = recorder.0.lock().unwrap().clone();
    lines
}

fn has(lines: &[String], start: &str, fields: &[&str]) -> bool {
    lines
        .iter()
        .any(|l| l.starts_with(start) && fields.iter().all(|f| l.contains(f)))
}

#[test]
fn the_close_handshake_says_who_closed_and_with_what() {
    let lines = recorded(|| {
        let now = Instant::now();
        let mut server = conn_at(Role::Server, config(), now);
        server.close(CloseCode::GOING_AWAY, "restart").unwrap();
        let mut client = conn_at(Role::Client, config(), now);
        client.handle_read(&transmit(&mut server), now);
        let _ = events(&mut client);
    });
    assert!(
        has(
            &lines,
            "closing",
            &["code=1001", "reason=\"restart\"", "role=Server"]
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            "peer closed",
            &["code=1001", "answered=true", "role=Client"]
        ),
        "{lines:#?}"
    );
}

#[test]
fn failures_and_timeouts_carry_their_codes() {
    let lines = recorded(|| {
        let now = Instant::now();
        // A server receiving an unmasked frame.
        let mut server = conn_at(Role::Server, config(), now);
        server.handle_read(&Raw::new(0x1, "x").mask(None).encode(), now);
        let _ = events(&mut server);
        // A keepalive ping nobody answers.
        let keepalive = Config::default()
            .with_ping_interval(Some(Duration::from_secs(1)))
            .with_ping_timeout(Some(Duration::from_secs(1)));
        let mut c = conn_at(Role::Client, keepalive, now);
        c.handle_timeout(at(now, 1000));
        let _ = transmit(&mut c);
        c.handle_timeout(at(now, 2000));
        // TCP ends without a close frame.
        let mut d = conn_at(Role::Client, config(), now);
        d.handle_eof(now);
    });
    assert!(
        has(&lines, "connection failed", &["code=1002"]),
        "{lines:#?}"
    );
    assert!(has(&lines, "keepalive ping unanswered", &[]), "{lines:#?}");
    assert!(
        has(&lines, "connection failed", &["code=1011"]),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "peer ended TCP without a close frame", &[]),
        "{lines:#?}"
    );
}

#[test]
fn backpressure_engaged_and_released() {
    let lines = recorded(|| {
        let now = Instant::now();
        let mut c = conn_at(Role::Server, config().with_max_inbound_events(2), now);
        let frames: Vec<Raw> = (0..3)
            .map(|_| Raw::to(Role::Server, 0x2, [1u8; 10]))
            .collect();
        c.handle_read(&wire(&frames), now);
        let _ = events(&mut c);
        let mut w = conn_at(
            Role::Server,
            config().with_write_high_water(10).with_write_low_water(0),
            now,
        );
        w.send(tether_core::Message::binary(vec![0u8; 100]))
            .unwrap();
        assert!(!w.is_writable());
        let _ = transmit(&mut w);
        assert!(w.is_writable());
    });
    for line in [
        "inbound backpressure: the application is behind",
        "inbound backpressure released",
        "outbound backpressure: writers wait",
        "outbound backpressure released",
    ] {
        assert!(has(&lines, line, &[]), "{line}: {lines:#?}");
    }
}

#[test]
fn the_handshake_says_how_it_went() {
    let lines = recorded(|| {
        let mut hs = ServerHandshake::new(HandshakeLimits::default(), Instant::now());
        let request = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        hs.handle_read(request.as_bytes()).unwrap().unwrap();
        let _ = hs.answer(Ok(Accept::default()));
        let _ = tether_core::handshake::Answer::failed(
            tether_core::handshake::HandshakeError::UnsupportedVersion,
        );
    });
    assert!(has(&lines, "handshake accepted", &[]), "{lines:#?}");
    assert!(
        has(&lines, "handshake request refused", &["status=426"]),
        "{lines:#?}"
    );
}
