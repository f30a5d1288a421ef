//! Property tests: the parser does not care how the input is split, what
//! a connection sends its peer reads back unchanged, arbitrary input never
//! panics or grows buffers without bound, and the incremental UTF-8
//! validator agrees with `std`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult, Testable};
use tether_core::utf8::Utf8Validator;
use tether_core::{
    Bytes, Config, Connection, DataKind, Error, Event, Message, ProtocolError, Role, State,
    Xoshiro256,
};

/// Runs a property on more cases than quickcheck's default.
fn check<A: Testable>(cases: u64, prop: A) {
    QuickCheck::new().tests(cases).quickcheck(prop);
}

/// A number in `0..n` (0 when `n` is 0).
fn below(g: &mut Gen, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        usize::arbitrary(g) % n
    }
}

/// True about one time in `n`.
fn one_in(g: &mut Gen, n: usize) -> bool {
    below(g, n) == 0
}

/// A ping payload: arbitrary bytes, at most 125 of them.
fn ping_payload(g: &mut Gen) -> Vec<u8> {
    let mut p = Vec::<u8>::arbitrary(g);
    p.truncate(below(g, 126));
    p
}

/// Sorted cut points in `0..=len`, duplicates allowed (empty pieces).
fn cuts(g: &mut Gen, len: usize, max: usize) -> Vec<usize> {
    let mut c: Vec<usize> = (0..below(g, max + 1)).map(|_| below(g, len + 1)).collect();
    c.sort_unstable();
    c
}

/// `data` cut at `cuts` (which are reduced modulo its length and sorted).
fn pieces<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts {
        out.push(&data[start..c]);
        start = c;
    }
    out.push(&data[start..]);
    out
}

/// An arbitrary data payload: mostly short, sometimes just over a length
/// form boundary, now and then past 64 KiB.
#[derive(Clone, Debug)]
struct Payload {
    kind: DataKind,
    data: Vec<u8>,
}

impl Arbitrary for Payload {
    fn arbitrary(g: &mut Gen) -> Self {
        let kind = if bool::arbitrary(g) {
            DataKind::Text
        } else {
            DataKind::Binary
        };
        let mut data = match kind {
            DataKind::Text => String::arbitrary(g).into_bytes(),
            DataKind::Binary => Vec::<u8>::arbitrary(g),
        };
        let target = match below(g, 200) {
            0 => 65_530 + below(g, 12),
            1..=30 => 120 + below(g, 20),
            _ => 0,
        };
        if !data.is_empty() {
            // Repeat whole strings, so text stays valid UTF-8.
            let unit = data.clone();
            while data.len() < target {
                data.extend_from_slice(&unit);
            }
        }
        Self { kind, data }
    }
}

impl Payload {
    fn message(&self) -> Message {
        match self.kind {
            DataKind::Text => {
                Message::text(String::from_utf8(self.data.clone()).expect("text payload"))
            }
            DataKind::Binary => Message::binary(self.data.clone()),
        }
    }
}

/// What the application does on the sending side.
#[derive(Clone, Debug)]
enum Step {
    /// A message streamed as chunks (cut anywhere, even inside a code
    /// point), with a ping queued after some of them.
    Streamed {
        payload: Payload,
        cuts: Vec<usize>,
        pings: Vec<Option<Vec<u8>>>,
    },
    /// A whole message, fragmented only by `fragment_size`.
    Whole(Payload),
    /// A ping on its own.
    Ping(Vec<u8>),
    /// Let the socket take up to this many bytes now, which changes where
    /// later pings land among the fragments.
    Write(usize),
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Self {
        match below(g, 10) {
            0..=3 => {
                let payload = Payload::arbitrary(g);
                let cuts = cuts(g, payload.data.len(), 4);
                let pings = (0..=cuts.len())
                    .map(|_| one_in(g, 3).then(|| ping_payload(g)))
                    .collect();
                Step::Streamed {
                    payload,
                    cuts,
                    pings,
                }
            }
            4..=6 => Step::Whole(Payload::arbitrary(g)),
            7 => Step::Ping(ping_payload(g)),
            _ => Step::Write(below(g, 300)),
        }
    }
}

/// What a receiver should see: the messages and pings, each in order.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    messages: Vec<Message>,
    pings: Vec<Bytes>,
}

/// Runs the steps on a sender of `role` and returns the bytes it wrote.
fn run_sender(role: Role, steps: &[Step], fragment_size: usize, seed: u64) -> (Vec<u8>, Expected) {
    let config = config().with_fragment_size(fragment_size);
    let mut c = Connection::new(
        role,
        config,
        Box::new(Xoshiro256::from_seed(seed)),
        Instant::now(),
    );
    let mut wire = Vec::new();
    let mut expected = Expected::default();
    for step in steps {
        match step {
            Step::Streamed {
                payload,
                cuts,
                pings,
            } => {
                let parts = pieces(&payload.data, cuts);
                for (i, (part, ping)) in parts.iter().zip(pings).enumerate() {
                    let fin = i + 1 == parts.len();
                    c.send_chunk(payload.kind, Bytes::copy_from_slice(part), fin)
                        .unwrap();
                    if let Some(p) = ping {
                        c.ping(Bytes::copy_from_slice(p)).unwrap();
                        expected.pings.push(Bytes::copy_from_slice(p));
                    }
                }
                expected.messages.push(payload.message());
            }
            Step::Whole(payload) => {
                c.send(payload.message()).unwrap();
                expected.messages.push(payload.message());
            }
            Step::Ping(p) => {
                c.ping(Bytes::copy_from_slice(p)).unwrap();
                expected.pings.push(Bytes::copy_from_slice(p));
            }
            Step::Write(n) => wire.extend(transmit_once(&mut c, *n)),
        }
    }
    wire.extend(transmit(&mut c));
    assert!(!c.has_transmit());
    assert_eq!(c.buffered_amount(), 0);
    (wire, expected)
}

/// How the receiving side reads: piece sizes and read path per piece.
#[derive(Clone, Debug)]
struct Reads {
    cuts: Vec<usize>,
    /// Per piece: read through read_buf/commit_read instead of handle_read.
    zero_copy: Vec<bool>,
    /// Per piece: take events right after it (else they pile up).
    poll: Vec<bool>,
}

impl Arbitrary for Reads {
    fn arbitrary(g: &mut Gen) -> Self {
        Self {
            cuts: Vec::arbitrary(g),
            zero_copy: Vec::arbitrary(g),
            poll: Vec::arbitrary(g),
        }
    }
}

/// Feeds `bytes` to `c` in the pieces `reads` gives, and returns every event.
fn feed(c: &mut Connection, bytes: &[u8], reads: &Reads, now: Instant) -> Vec<Event> {
    let mut got = Vec::new();
    for (i, piece) in pieces(bytes, &reads.cuts).into_iter().enumerate() {
        if reads.zero_copy.get(i).copied().unwrap_or(false) {
            let mut rest = piece;
            while !rest.is_empty() {
                let buf = c.read_buf();
                let n = buf.len().min(rest.len());
                buf[..n].copy_from_slice(&rest[..n]);
                c.commit_read(n, now);
                rest = &rest[n..];
            }
        } else {
            c.handle_read(piece, now);
        }
        if reads.poll.get(i).copied().unwrap_or(true) {
            got.extend(events(c));
        }
    }
    got.extend(events(c));
    got
}

fn receiver(role: Role, config: Config) -> Connection {
    Connection::new(
        role,
        config,
        Box::new(Xoshiro256::from_seed(7)),
        Instant::now(),
    )
}

/// The messages and pings among `events`; panics on anything else.
fn observed(events: &[Event]) -> Expected {
    let mut seen = Expected::default();
    for ev in events {
        match ev {
            Event::Message(m) => seen.messages.push(m.clone()),
            Event::Ping(p) => seen.pings.push(p.clone()),
            other => panic!("unexpected event {other:?}"),
        }
    }
    seen
}

/// (a) Frames written by one side, in any fragmentation with pings
/// interleaved, any mask keys and any partial writes, give the other side
/// the same events whether they arrive whole or in arbitrary pieces, and
/// those events are the messages and pings that were sent. Every ping is
/// answered.
#[test]
fn split_input_gives_the_same_events() {
    fn prop(from_client: bool, steps: Vec<Step>, fragment: u16, seed: u64, reads: Reads) -> bool {
        let (sender, receiver_role) = if from_client {
            (Role::Client, Role::Server)
        } else {
            (Role::Server, Role::Client)
        };
        let fragment = 1 + fragment as usize % 2000;
        let (bytes, expected) = run_sender(sender, &steps, fragment, seed);
        let now = Instant::now();
        let mut whole = receiver(receiver_role, config());
        let whole_events = feed(
            &mut whole,
            &bytes,
            &Reads {
                cuts: vec![],
                zero_copy: vec![],
                poll: vec![],
            },
            now,
        );
        let mut split = receiver(receiver_role, config());
        let split_events = feed(&mut split, &bytes, &reads, now);
        assert_eq!(split_events, whole_events);
        assert_eq!(observed(&whole_events), expected);
        let pongs: Vec<Bytes> = sent_frames(&mut split)
            .into_iter()
            .map(|f| Bytes::from(f.payload))
            .collect();
        assert_eq!(pongs, expected.pings);
        split.state() == State::Open && split.wants_read()
    }
    check(300, prop as fn(bool, Vec<Step>, u16, u64, Reads) -> bool);
}

/// (a, streaming) With deliver_chunks, any split yields chunks that
/// concatenate to the messages sent, with one fin per message.
#[test]
fn split_input_gives_the_same_chunked_messages() {
    fn prop(steps: Vec<Step>, fragment: u16, seed: u64, reads: Reads) -> bool {
        let fragment = 1 + fragment as usize % 2000;
        let (bytes, expected) = run_sender(Role::Client, &steps, fragment, seed);
        let config = config().with_deliver_chunks(true);
        let mut server = receiver(Role::Server, config);
        let mut messages = Vec::new();
        let mut current: Option<(DataKind, Vec<u8>)> = None;
        for ev in feed(&mut server, &bytes, &reads, Instant::now()) {
            match ev {
                Event::Chunk { kind, data, fin } => {
                    let (k, buf) = current.get_or_insert_with(|| (kind, Vec::new()));
                    assert_eq!(*k, kind);
                    buf.extend_from_slice(&data);
                    if fin {
                        let (kind, data) = current.take().unwrap();
                        messages.push(match kind {
                            DataKind::Text => Message::text(String::from_utf8(data).unwrap()),
                            DataKind::Binary => Message::binary(data),
                        });
                    }
                }
                Event::Ping(_) => {}
                other => panic!("unexpected event {other:?}"),
            }
        }
        current.is_none() && messages == expected.messages
    }
    check(200, prop as fn(Vec<Step>, u16, u64, Reads) -> bool);
}

/// Backpressure changes when input is parsed, never what comes out: a
/// reader that reads only while wants_read() and otherwise takes one event
/// sees exactly the messages and pings sent, also when EOF follows at once.
#[test]
fn backpressure_keeps_every_event() {
    fn prop(
        steps: Vec<Step>,
        seed: u64,
        max_bytes: u8,
        max_events: u8,
        sizes: Vec<u8>,
        eof: bool,
    ) -> bool {
        let (bytes, expected) = run_sender(Role::Client, &steps, 1 << 20, seed);
        let config = config()
            .with_max_inbound_bytes(1 + max_bytes as usize)
            .with_max_inbound_events(1 + max_events as usize % 4);
        let mut c = receiver(Role::Server, config);
        let now = Instant::now();
        let mut got = Vec::new();
        let mut sizes = sizes.iter().cycle();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            if c.wants_read() {
                let n = (1 + *sizes.next().unwrap_or(&50) as usize).min(rest.len());
                c.handle_read(&rest[..n], now);
                rest = &rest[n..];
            } else {
                got.push(c.poll_event().expect("not reading, so events wait"));
            }
        }
        if eof {
            c.handle_eof(now);
        }
        got.extend(events(&mut c));
        if eof {
            assert_eq!(got.pop(), Some(Event::Error(Error::AbnormalClosure)));
        }
        observed(&got) == expected
    }
    check(
        300,
        prop as fn(Vec<Step>, u64, u8, u8, Vec<u8>, bool) -> bool,
    );
}

/// (b) Encode then decode round-trips, in both directions, for any
/// messages, fragment size and mask keys; every frame respects the
/// fragment size and the sender's masking rule.
#[test]
fn encode_decode_round_trip() {
    fn prop(from_client: bool, payloads: Vec<Payload>, fragment: u16, seed: u64) -> bool {
        let (sender, receiver_role) = if from_client {
            (Role::Client, Role::Server)
        } else {
            (Role::Server, Role::Client)
        };
        let fragment = 1 + fragment as usize % 70_000;
        let steps: Vec<Step> = payloads.iter().cloned().map(Step::Whole).collect();
        let (bytes, expected) = run_sender(sender, &steps, fragment, seed);
        for f in decode(&bytes) {
            assert_eq!(f.masked, from_client);
            assert!(
                f.payload.len() <= fragment,
                "frame of {} > {fragment}",
                f.payload.len()
            );
        }
        let mut r = receiver(receiver_role, config());
        r.handle_read(&bytes, Instant::now());
        observed(&events(&mut r)) == expected
    }
    check(200, prop as fn(bool, Vec<Payload>, u16, u64) -> bool);
}

/// Different seeds give different mask keys (so the masked bytes differ),
/// the same seed the same bytes.
#[test]
fn mask_keys_come_from_the_seed() {
    let steps = [Step::Whole(Payload {
        kind: DataKind::Binary,
        data: vec![0; 64],
    })];
    let (a, _) = run_sender(Role::Client, &steps, 1 << 20, 1);
    let (b, _) = run_sender(Role::Client, &steps, 1 << 20, 2);
    let (a2, _) = run_sender(Role::Client, &steps, 1 << 20, 1);
    assert_eq!(a, a2);
    assert_ne!(a, b);
    assert_eq!(a.len(), b.len());
}

/// A frame with arbitrary header fields, mostly close to valid so the
/// parser gets deep, and a payload that may be cut short.
#[derive(Clone, Debug)]
struct FuzzFrame {
    bytes: Vec<u8>,
}

impl Arbitrary for FuzzFrame {
    fn arbitrary(g: &mut Gen) -> Self {
        let opcode = *g
            .choose(&[0u8, 0, 1, 1, 2, 2, 8, 9, 9, 10, 3, 0xB])
            .unwrap();
        let mut payload = Vec::<u8>::arbitrary(g);
        if opcode == 8 && one_in(g, 2) {
            let code = *g
                .choose(&[1000u16, 1001, 1005, 999, 3000, 4999, 5000])
                .unwrap();
            payload.splice(0..0, code.to_be_bytes());
        }
        if one_in(g, 8) {
            payload.resize(126 + below(g, 200), b'x');
        }
        let raw = Raw {
            fin: !one_in(g, 3),
            rsv: if one_in(g, 10) {
                1 + below(g, 7) as u8
            } else {
                0
            },
            opcode,
            mask: if bool::arbitrary(g) {
                Some(<[u8; 4]>::arbitrary(g))
            } else {
                None
            },
            payload,
        };
        let mut bytes = raw.encode();
        if one_in(g, 10) {
            bytes.truncate(below(g, bytes.len() + 1));
        }
        Self { bytes }
    }
}

/// Input for the fuzz property: raw junk or a run of near-frames.
#[derive(Clone, Debug)]
struct Junk(Vec<u8>);

impl Arbitrary for Junk {
    fn arbitrary(g: &mut Gen) -> Self {
        if one_in(g, 3) {
            Junk(Vec::arbitrary(g))
        } else {
            Junk(
                Vec::<FuzzFrame>::arbitrary(g)
                    .into_iter()
                    .flat_map(|f| f.bytes)
                    .collect(),
            )
        }
    }
}

/// (c) Arbitrary bytes, in arbitrary pieces, to either role with small
/// limits: no panic; events are data, pings and pongs until exactly one
/// final Close or Error (after EOF at the latest); messages respect the
/// limits; the transmit queue stays proportional to the input.
#[test]
fn arbitrary_input_never_panics() {
    fn prop(
        client: bool,
        chunks: bool,
        junk: Junk,
        reads: Reads,
        timer_ms: Vec<u16>,
    ) -> TestResult {
        let role = if client { Role::Client } else { Role::Server };
        let config = Config::default()
            .with_max_frame_size(64)
            .with_max_message_size(128)
            .with_max_inbound_bytes(100)
            .with_max_inbound_events(4)
            .with_deliver_chunks(chunks)
            .with_ping_interval(Some(Duration::from_millis(300)))
            .with_ping_timeout(Some(Duration::from_millis(300)))
            .with_close_timeout(Duration::from_millis(500));
        let t0 = Instant::now();
        let mut c = receiver(role, config);
        let mut got = feed(&mut c, &junk.0, &reads, t0);
        let mut now = t0;
        for ms in timer_ms.iter().take(5) {
            now += Duration::from_millis(u64::from(*ms % 1000));
            c.handle_timeout(now);
            got.extend(events(&mut c));
        }
        // Bounded output: pongs for the pings read, keepalive pings, one close.
        let bound = 3 * junk.0.len() + 64 * (timer_ms.len().min(5) + 1) + 140;
        assert!(
            c.buffered_amount() <= bound,
            "{} buffered for {} bytes in",
            c.buffered_amount(),
            junk.0.len()
        );
        let frames = decode(&transmit(&mut c));
        assert!(frames.iter().filter(|f| f.opcode == CLOSE).count() <= 1);
        c.handle_eof(now);
        got.extend(events(&mut c));

        assert!(c.is_finished());
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.poll_timeout(), None);
        let (last, before) = got
            .split_last()
            .expect("at least the end of the connection");
        assert!(
            matches!(last, Event::Close(_) | Event::Error(_)),
            "ends with {last:?}"
        );
        for ev in before {
            match ev {
                Event::Message(m) => assert!(m.len() <= 128),
                Event::Chunk { data, .. } => assert!(data.len() <= 64),
                Event::Ping(p) | Event::Pong { payload: p, .. } => assert!(p.len() <= 125),
                other => panic!("{other:?} before the end"),
            }
        }
        assert!(!chunks || !before.iter().any(|e| matches!(e, Event::Message(_))));
        assert!(chunks || !before.iter().any(|e| matches!(e, Event::Chunk { .. })));
        TestResult::passed()
    }
    check(
        2000,
        prop as fn(bool, bool, Junk, Reads, Vec<u16>) -> TestResult,
    );
}

/// (d) The incremental validator, fed in arbitrary pieces, agrees with
/// `std::str::from_utf8`, on junk and on text with a flipped byte.
#[test]
fn utf8_validator_agrees_with_std() {
    fn validate(data: &[u8], cuts: &[usize]) -> bool {
        let mut v = Utf8Validator::new();
        pieces(data, cuts).iter().all(|p| v.feed(p).is_ok()) && v.is_complete()
    }
    fn prop(s: String, flip: Option<(usize, u8)>, junk: Vec<u8>, cuts: Vec<usize>) -> bool {
        let mut text = s.into_bytes();
        if let (Some((at, b)), false) = (flip, text.is_empty()) {
            let at = at % text.len();
            text[at] = b;
        }
        validate(&text, &cuts) == std::str::from_utf8(&text).is_ok()
            && validate(&junk, &cuts) == std::str::from_utf8(&junk).is_ok()
    }
    check(
        2000,
        prop as fn(String, Option<(usize, u8)>, Vec<u8>, Vec<usize>) -> bool,
    );
}

/// (d, end to end) A text message of arbitrary bytes, fragmented
/// arbitrarily, is delivered iff it is UTF-8, else fails with 1007.
#[test]
fn text_messages_are_checked_like_std() {
    fn prop(s: String, flip: Option<(usize, u8)>, frag_cuts: Vec<usize>, reads: Reads) -> bool {
        let mut data = s.into_bytes();
        if let (Some((at, b)), false) = (flip, data.is_empty()) {
            let at = at % data.len();
            data[at] = b;
        }
        let parts = pieces(&data, &frag_cuts);
        let frames: Vec<Raw> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Raw::to(Role::Server, if i == 0 { TEXT } else { CONT }, p).fin(i + 1 == parts.len())
            })
            .collect();
        let mut server = receiver(Role::Server, config());
        let got = feed(&mut server, &wire(&frames), &reads, Instant::now());
        match String::from_utf8(data) {
            Ok(s) => got == [Event::Message(Message::text(s))],
            Err(_) => {
                got == [Event::Error(Error::Protocol(ProtocolError::InvalidUtf8))]
                    && sent_close_code(&mut server) == Some(1007)
            }
        }
    }
    check(
        1000,
        prop as fn(String, Option<(usize, u8)>, Vec<usize>, Reads) -> bool,
    );
}
