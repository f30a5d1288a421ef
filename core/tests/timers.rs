//! Timers under load, on a fake clock: the keepalive keeps running while a
//! 100 MiB message is being written (its ping goes out between fragments,
//! a pong arriving mid-message counts), a keepalive failure ends at the
//! close timeout when the peer is gone, and a handshake trickled in byte by
//! byte still times out at its first deadline.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tether_core::handshake::{HandshakeError, HandshakeLimits, ServerHandshake};
use tether_core::mask::apply_mask;
use tether_core::{Bytes, Config, Connection, Error, Event, Message, Role, State};

const MIB: usize = 1 << 20;
/// The large message: 100 fragments of the default fragment size.
const BIG: usize = 100 * MIB;

fn keepalive_1s() -> Config {
    Config::default()
        .with_ping_interval(Some(Duration::from_secs(1)))
        .with_ping_timeout(Some(Duration::from_secs(1)))
}

/// 100 MiB whose bytes repeat with a period of 251 (a prime, so no two
/// fragments are alike and a fragment out of place is seen).
fn big_payload() -> Bytes {
    let period: Vec<u8> = (0..251u8).collect();
    let mut v = period.repeat(BIG / 251 + 1);
    v.truncate(BIG);
    Bytes::from(v)
}

/// A frame read back from the wire; data payloads are checked against the
/// message as they arrive and not kept.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// A data frame: op code, fin, payload length.
    Data(u8, bool, usize),
    /// A control frame and its payload.
    Control(u8, Vec<u8>),
}

/// Parses the byte stream a connection writes, however it is cut, and
/// checks that the data frames carry `message` in order.
struct WireReader {
    buf: Vec<u8>,
    message: Bytes,
    /// How much of `message` the data frames have carried so far.
    offset: usize,
}

impl WireReader {
    fn new(message: Bytes) -> Self {
        Self {
            buf: Vec::new(),
            message,
            offset: 0,
        }
    }

    /// Takes written bytes; returns the frames they complete.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Seen> {
        self.buf.extend_from_slice(bytes);
        let mut seen = Vec::new();
        while let Some((h, n)) = tether_core::frame::FrameHeader::decode(&self.buf).expect("header")
        {
            let len = h.payload_len as usize;
            if self.buf.len() < n + len {
                break;
            }
            let mut payload = self.buf[n..n + len].to_vec();
            self.buf.drain(..n + len);
            if let Some(key) = h.mask {
                apply_mask(&mut payload, key, 0);
            }
            if is_control(h.opcode) {
                seen.push(Seen::Control(h.opcode, payload));
            } else {
                let end = self.offset + len;
                assert!(
                    end <= self.message.len() && payload[..] == self.message[self.offset..end],
                    "data frame at message offset {} does not carry the message's bytes",
                    self.offset
                );
                self.offset = end;
                seen.push(Seen::Data(h.opcode, h.fin, len));
            }
        }
        seen
    }
}

/// One write of at most `limit` bytes, as a socket taking part of what it
/// is offered would do; returns the frames that write completes.
fn write(c: &mut Connection, limit: usize, wire: &mut WireReader) -> Vec<Seen> {
    let bytes = transmit_once(c, limit);
    assert!(!bytes.is_empty(), "the connection had nothing to write");
    wire.feed(&bytes)
}

fn data(first: bool, len: usize) -> Seen {
    Seen::Data(if first { BINARY } else { CONT }, false, len)
}

/// While a 100 MiB message goes out in 1 MiB fragments, the keepalive ping
/// due at the interval is written right after the fragment under way (even
/// one the socket took only half of), before the rest of the message; a
/// pong that arrives while the message is still being written answers it
/// (no 1011 at the timeout); and an unanswered ping later in the same
/// message does fail the connection at its timeout.
#[test]
fn keepalive_runs_between_fragments_of_a_100_mib_message() {
    assert_eq!(
        Config::default().fragment_size,
        MIB,
        "the default this test is about"
    );
    let payload = big_payload();
    for role in [Role::Server, Role::Client] {
        let t = Instant::now();
        let mut c = conn_at(role, keepalive_1s(), t);
        let mut wire = WireReader::new(payload.clone());
        c.send(Message::Binary(payload.clone())).unwrap();
        assert!(
            c.buffered_amount() >= BIG,
            "the whole message is queued (not copied: a Bytes clone)"
        );

        // Two whole fragments, then half of the third: the socket is slow.
        assert_eq!(write(&mut c, usize::MAX, &mut wire), [data(true, MIB)]);
        assert_eq!(write(&mut c, usize::MAX, &mut wire), [data(false, MIB)]);
        assert_eq!(write(&mut c, MIB / 2, &mut wire), []);
        assert_eq!(c.poll_timeout(), Some(at(t, 1000)), "ping timer armed");

        // The interval passes: the ping is queued behind the half-written
        // fragment (a frame cannot be cut) and ahead of the 97 MiB left.
        c.handle_timeout(at(t, 1000));
        assert!(events(&mut c).is_empty());
        let mut next = Vec::new();
        while next.len() < 3 {
            next.extend(write(&mut c, usize::MAX, &mut wire));
        }
        let [third, ping, fourth] = &next[..] else {
            panic!("{role:?}: {next:?}");
        };
        assert_eq!(
            *third,
            data(false, MIB),
            "{role:?}: the cut fragment ends first"
        );
        let Seen::Control(PING, ping) = ping else {
            panic!("{role:?}: expected the keepalive ping next, got {ping:?}");
        };
        assert_eq!(ping.len(), 8, "{role:?}: a keepalive ping payload");
        assert_eq!(*fourth, data(false, MIB), "{role:?}: then the data goes on");
        assert_eq!(c.poll_timeout(), Some(at(t, 2000)), "pong deadline");

        // Six more fragments, then the pong arrives mid-message.
        for _ in 0..6 {
            assert_eq!(write(&mut c, usize::MAX, &mut wire), [data(false, MIB)]);
        }
        c.handle_read(&Raw::to(role, PONG, ping).encode(), at(t, 1500));
        let latency = Some(Duration::from_millis(500));
        assert_eq!(
            events(&mut c),
            [Event::Pong {
                payload: Bytes::copy_from_slice(ping),
                latency
            }]
        );
        assert_eq!(c.latency(), latency);

        // At the old pong deadline the connection is fine and pings again.
        assert_eq!(c.poll_timeout(), Some(at(t, 2000)), "next ping");
        c.handle_timeout(at(t, 2000));
        assert!(events(&mut c).is_empty(), "{role:?}: answered, so no 1011");
        assert_eq!(c.state(), State::Open);
        let next = write(&mut c, usize::MAX, &mut wire);
        assert!(
            matches!(&next[..], [Seen::Control(PING, p), d] if p.len() == 8 && *d == data(false, MIB)),
            "{role:?}: the second ping, then data: {next:?}"
        );
        assert_eq!(wire.offset, 11 * MIB);

        // That ping is never answered: the connection fails at its
        // timeout, mid-message, and the 1011 close follows the data
        // already queued (an application that sees the error may still
        // have been answering; the close timeout bounds the wait).
        c.handle_timeout(at(t, 2999));
        assert!(events(&mut c).is_empty());
        c.handle_timeout(at(t, 3000));
        assert_eq!(events(&mut c), [Event::Error(Error::KeepaliveTimeout)]);
        assert_ne!(c.state(), State::Open, "{role:?}");
        let mut rest = Vec::new();
        while c.has_transmit() {
            rest.extend(write(&mut c, usize::MAX, &mut wire));
        }
        let (close, data_frames) = rest.split_last().expect("frames");
        assert_eq!(
            *close,
            Seen::Control(CLOSE, close_payload(1011, b"keepalive ping timed out")),
            "{role:?}"
        );
        assert_eq!(data_frames.len(), 89, "{role:?}");
        assert!(data_frames[..88].iter().all(|f| *f == data(false, MIB)));
        assert_eq!(data_frames[88], Seen::Data(CONT, true, MIB));
        assert_eq!(wire.offset, BIG, "{role:?}: the whole message, in order");
    }
}

/// A pong arriving while the message is written, but before the ping is
/// even on the wire, cannot answer it: only the matching payload counts,
/// and the timer still runs to 1011 when the real answer never comes.
#[test]
fn early_pong_mid_message_does_not_answer_the_queued_ping() {
    let t = Instant::now();
    let mut c = conn_at(Role::Server, keepalive_1s(), t);
    let mut wire = WireReader::new(big_payload());
    c.send(Message::Binary(wire.message.clone())).unwrap();
    assert_eq!(write(&mut c, usize::MAX, &mut wire), [data(true, MIB)]);
    c.handle_timeout(at(t, 1000));
    c.handle_read(&Raw::to(Role::Server, PONG, [0u8; 8]).encode(), at(t, 1100));
    assert!(matches!(
        &events(&mut c)[..],
        [Event::Pong { latency: None, .. }]
    ));
    c.handle_timeout(at(t, 2000));
    assert_eq!(events(&mut c), [Event::Error(Error::KeepaliveTimeout)]);
}

/// The dead-peer path to its end: the keepalive fails with 1011, the peer
/// never reads the close frame nor answers it, and at the close timeout
/// the connection is finished with nothing left to write, so the adapter
/// closes the socket instead of holding it forever.
#[test]
fn keepalive_failure_ends_at_the_close_timeout() {
    for role in [Role::Server, Role::Client] {
        let t = Instant::now();
        let config = keepalive_1s().with_close_timeout(Duration::from_secs(3));
        let mut c = conn_at(role, config, t);
        c.handle_timeout(at(t, 1000));
        c.handle_timeout(at(t, 2000));
        assert_eq!(events(&mut c), [Event::Error(Error::KeepaliveTimeout)]);
        // Nothing is written from here on: the peer's window is shut. (A
        // server is finished at once, but must not wait forever to write
        // its close frame.)
        assert!(c.has_transmit());
        assert_eq!(c.poll_timeout(), Some(at(t, 5000)), "{role:?}");
        c.handle_timeout(at(t, 4999));
        assert!(c.has_transmit(), "{role:?}");
        c.handle_timeout(at(t, 5000));
        assert!(c.is_finished(), "{role:?}");
        assert!(!c.has_transmit(), "{role:?}: unsent bytes dropped");
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.poll_timeout(), None);
        assert!(
            events(&mut c).is_empty(),
            "{role:?}: the failure is reported once"
        );
    }
}

/// A client that trickles its request a byte at a time does not move the
/// server handshake's deadline: it still times out when first set.
#[test]
fn trickled_handshake_times_out_at_the_first_deadline() {
    let t = Instant::now();
    let limits = HandshakeLimits::default().with_timeout(Duration::from_secs(5));
    let mut hs = ServerHandshake::new(limits, t);
    let request = b"GET / HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\n";
    for (i, b) in request.iter().enumerate() {
        let now = at(t, 40 * i as u64);
        assert_eq!(hs.handle_timeout(now), Ok(()), "byte {i}");
        assert_eq!(hs.handle_read(&[*b]).map(|r| r.is_some()), Ok(false));
    }
    assert_eq!(hs.poll_timeout(), at(t, 5000), "the deadline did not move");
    assert_eq!(hs.handle_timeout(at(t, 4999)), Ok(()));
    assert_eq!(
        hs.handle_timeout(at(t, 5000)),
        Err(HandshakeError::TimedOut)
    );
}

/// Durations too large for the clock (`Duration::MAX` as "never") saturate
/// instead of panicking on `Instant + Duration`: the connection opens,
/// runs its timers, closes, and the handshake starts, with every timer at
/// its largest.
#[test]
fn durations_too_large_for_the_clock_saturate() {
    let now = Instant::now();
    let config = Config::default()
        .with_ping_interval(Some(Duration::MAX))
        .with_ping_timeout(Some(Duration::MAX))
        .with_close_timeout(Duration::MAX)
        .with_idle_timeout(Some(Duration::MAX));
    let mut server = conn_at(Role::Server, config, now);
    let year = Duration::from_secs(365 * 24 * 3600);
    assert!(server.poll_timeout().is_some_and(|t| t >= now + year));
    server.handle_timeout(now + year);
    server.handle_read(&Raw::to(Role::Server, 0x1, "hi").encode(), now);
    assert_eq!(events(&mut server), [Event::Message(Message::text("hi"))]);
    server.close(tether_core::CloseCode::NORMAL, "bye").unwrap();
    assert!(server.poll_timeout().is_some_and(|t| t >= now + year));
    assert_eq!(sent_close_code(&mut server), Some(1000));
    server.handle_read(
        &Raw::to(Role::Server, 0x8, close_payload(1000, b"")).encode(),
        now,
    );
    assert_eq!(server.state(), State::Closed);

    // A peer's close starts the close timer too.
    let mut client = conn_at(Role::Client, server.config().clone(), now);
    client.handle_read(
        &Raw::to(Role::Client, 0x8, close_payload(1001, b"")).encode(),
        now,
    );
    assert!(client.poll_timeout().is_some_and(|t| t >= now + year));

    let limits = HandshakeLimits::default().with_timeout(Duration::MAX);
    let hs = ServerHandshake::new(limits, now);
    assert!(hs.poll_timeout() >= now + year);
    assert_eq!(hs.handle_timeout(now + year), Ok(()));
}

/// After the peer's EOF the keepalive is over: a later timer sends no ping
/// and reports no keepalive failure after the AbnormalClosure that ended
/// the connection (found by fuzz/connection).
#[test]
fn no_keepalive_after_eof() {
    let t0 = Instant::now();
    let mut c = conn_at(Role::Server, keepalive_1s(), t0);
    c.handle_eof(at(t0, 10));
    assert_eq!(events(&mut c), [Event::Error(Error::AbnormalClosure)]);
    for ms in [1_000, 2_000, 3_000, 10_000] {
        c.handle_timeout(at(t0, ms));
    }
    assert_eq!(events(&mut c), []);
    assert!(!c.has_transmit(), "{:?}", sent_frames(&mut c));
}

/// A violation found while earlier events wait decides the connection's
/// end: timers that run before the application reaches it neither ping,
/// nor time out, nor close for idleness, so the application sees one
/// error and the close frame carries its code (found by fuzz/connection).
#[test]
fn no_keepalive_while_a_violation_waits() {
    let t0 = Instant::now();
    let config = keepalive_1s().with_idle_timeout(Some(Duration::from_millis(1500)));
    let mut c = conn_at(Role::Server, config, t0);
    let mut bytes = Raw::to(Role::Server, TEXT, "hi").encode();
    bytes.extend(Raw::new(TEXT, "unmasked").encode());
    c.handle_read(&bytes, t0);
    for ms in [1_000, 2_000, 3_000] {
        c.handle_timeout(at(t0, ms));
    }
    assert_eq!(
        events(&mut c),
        [
            Event::Message(Message::text("hi")),
            Event::Error(Error::Protocol(tether_core::ProtocolError::UnmaskedFrame)),
        ]
    );
    assert_eq!(sent_close_code(&mut c), Some(1002));
}
