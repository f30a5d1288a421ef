//! The resumable-transfer protocol (`tether_resume::protocol`): its messages,
//! its checks, and a model transfer cut at random points that must end with
//! every item stored exactly once.

use bytes::Bytes;
use quickcheck::{quickcheck, Arbitrary, Gen, TestResult};
use tether_core::CloseCode;
use tether_resume::{
    Batch, BatchWriter, Frame, Incoming, Position, Receiver, ResumeError, Sender, MAX_SEQ,
};

fn batch(seq: u64, payload: &[u8], cursor: &[u8]) -> Bytes {
    let mut w = BatchWriter::with_capacity(payload.len());
    w.payload_mut().extend_from_slice(payload);
    w.finish(seq, cursor)
}

#[test]
fn every_message_round_trips() {
    let frames = [
        Frame::Resume {
            position: Position {
                next_seq: 7,
                cursor: Bytes::from_static(b"id>41999"),
            },
            window: 4,
        },
        Frame::Resume {
            position: Position::default(),
            window: 1,
        },
        Frame::Batch(Batch {
            seq: MAX_SEQ - 1,
            cursor: Bytes::from_static(b"c"),
            payload: Bytes::from_static(b"rows"),
        }),
        Frame::Batch(Batch {
            seq: 0,
            cursor: Bytes::new(),
            payload: Bytes::new(),
        }),
        Frame::Ack { seq: 3 },
        Frame::End { next_seq: 12 },
    ];
    for f in frames {
        assert_eq!(Frame::decode(&f.encode()), Ok(f));
    }
}

#[test]
fn the_wire_format_is_the_documented_one() {
    assert_eq!(
        &batch(1, b"ab", b"xyz")[..],
        b"\x02\0\0\0\0\0\0\0\x01abxyz\0\x03"
    );
    let resume = Frame::Resume {
        position: Position {
            next_seq: 2,
            cursor: Bytes::from_static(b"k"),
        },
        window: 3,
    };
    assert_eq!(
        &resume.encode()[..],
        b"\x01\x01\0\0\0\0\0\0\0\x02\0\0\0\x03k"
    );
    assert_eq!(
        &Frame::Ack { seq: 5 }.encode()[..],
        b"\x03\0\0\0\0\0\0\0\x05"
    );
    assert_eq!(
        &Frame::End { next_seq: 9 }.encode()[..],
        b"\x04\0\0\0\0\0\0\0\x09"
    );
}

#[test]
fn malformed_messages_are_errors_with_1008() {
    let cases: [&[u8]; 9] = [
        b"",
        b"\x09",
        b"\x01",
        b"\x01\x02\0\0\0\0\0\0\0\0\0\0\0\0",
        b"\x01\x01\0\0",
        b"\x02\0\0\0",
        // Cursor length larger than what precedes it.
        b"\x02\0\0\0\0\0\0\0\x01ab\0\x09",
        b"\x03\0\0\0\0\0\0\0\x01\x00",
        b"\x04\0\0",
    ];
    for c in cases {
        let err = Frame::decode(&Bytes::copy_from_slice(c)).unwrap_err();
        assert_eq!(err.close_code(), CloseCode::POLICY_VIOLATION, "{c:?}");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(
        Frame::decode(&Bytes::from_static(b"\x01\x02\0\0\0\0\0\0\0\0\0\0\0\0")),
        Err(ResumeError::Version(2))
    );
}

quickcheck! {
    /// No input panics, and what decodes re-encodes to the same bytes.
    fn arbitrary_bytes_never_panic(data: Vec<u8>) -> bool {
        let msg = Bytes::from(data);
        match Frame::decode(&msg) {
            Ok(f) => f.encode() == msg,
            Err(_) => true,
        }
    }

    fn batches_round_trip(seq: u64, payload: Vec<u8>, cursor: Vec<u8>) -> bool {
        let seq = seq % MAX_SEQ;
        let msg = batch(seq, &payload, &cursor);
        Frame::decode(&msg) == Ok(Frame::Batch(Batch {
            seq,
            payload: payload.into(),
            cursor: cursor.into(),
        }))
    }
}

#[test]
fn the_sender_keeps_to_the_window_and_checks_acks() {
    let start = Position {
        next_seq: 10,
        cursor: Bytes::new(),
    };
    let mut s = Sender::new(&start, 3, 8);
    assert_eq!(s.window(), 3);
    for seq in 10..13 {
        assert!(s.can_send());
        let msg = s.batch(BatchWriter::default(), b"").unwrap();
        assert!(matches!(Frame::decode(&msg), Ok(Frame::Batch(b)) if b.seq == seq));
    }
    assert!(
        !s.can_send(),
        "three unacknowledged batches fill a window of 3"
    );
    // An ack for a batch not sent, and one before the window.
    assert!(matches!(
        s.handle(&Frame::Ack { seq: 13 }.encode()),
        Err(ResumeError::AckOutOfRange {
            seq: 13,
            unacked: 10,
            next: 13
        })
    ));
    assert!(s.handle(&Frame::Ack { seq: 9 }.encode()).is_err());
    // A cumulative ack frees two slots at once.
    s.handle(&Frame::Ack { seq: 11 }.encode()).unwrap();
    assert_eq!(s.in_flight(), 1);
    assert!(
        s.handle(&Frame::Ack { seq: 11 }.encode()).is_err(),
        "acks only move forward"
    );
    let end = s.end();
    assert_eq!(Frame::decode(&end), Ok(Frame::End { next_seq: 13 }));
    assert!(!s.can_send());
    assert!(!s.is_done());
    s.handle(&Frame::Ack { seq: 12 }.encode()).unwrap();
    assert!(s.is_done());
    // Receiver-only messages from the wrong side.
    assert!(matches!(s.handle(&end), Err(ResumeError::Unexpected(_))));
    // A window of 0 still lets one batch through, and the sender's own
    // maximum wins over a larger receiver window.
    assert_eq!(Sender::new(&start, 0, 8).window(), 1);
    assert_eq!(Sender::new(&start, 100, 8).window(), 8);
}

#[test]
fn the_sender_wants_resume_first() {
    assert!(Sender::accept(&Frame::Ack { seq: 0 }.encode(), 4).is_err());
    let (s, pos) = Sender::accept(
        &Frame::Resume {
            position: Position {
                next_seq: 5,
                cursor: Bytes::from_static(b"c"),
            },
            window: 2,
        }
        .encode(),
        4,
    )
    .unwrap();
    assert_eq!(
        (s.next_seq(), s.window(), &pos.cursor[..]),
        (5, 2, &b"c"[..])
    );
}

#[test]
fn the_receiver_rejects_gaps_repeats_and_data_after_end() {
    let (mut r, hello) = Receiver::new(&Position::default(), 4);
    assert!(matches!(
        Frame::decode(&hello),
        Ok(Frame::Resume { window: 4, .. })
    ));
    assert!(matches!(
        r.handle(&batch(0, b"a", b"1")),
        Ok(Incoming::Batch(_))
    ));
    assert_eq!(
        r.handle(&batch(0, b"a", b"1")),
        Err(ResumeError::Sequence {
            expected: 1,
            got: 0
        })
    );
    assert_eq!(
        r.handle(&batch(2, b"a", b"1")),
        Err(ResumeError::Sequence {
            expected: 1,
            got: 2
        })
    );
    assert_eq!(
        r.handle(&Frame::End { next_seq: 3 }.encode()),
        Err(ResumeError::EndMismatch {
            expected: 1,
            got: 3
        })
    );
    assert_eq!(
        r.handle(&Frame::End { next_seq: 1 }.encode()),
        Ok(Incoming::End)
    );
    assert!(!r.is_complete(), "batch 0 is not committed yet");
    assert!(
        r.handle(&batch(1, b"a", b"1")).is_err(),
        "nothing after END"
    );
    assert_eq!(Frame::decode(&r.committed(0)), Ok(Frame::Ack { seq: 0 }));
    assert!(r.is_complete());
    assert!(matches!(
        r.handle(&Frame::Ack { seq: 0 }.encode()),
        Err(ResumeError::Unexpected(_))
    ));
}

#[test]
fn a_receiver_already_at_the_end_completes_on_end() {
    let at = Position {
        next_seq: 4,
        cursor: Bytes::from_static(b"done"),
    };
    let (mut r, _) = Receiver::new(&at, 2);
    assert_eq!(
        r.handle(&Frame::End { next_seq: 4 }.encode()),
        Ok(Incoming::End)
    );
    assert!(r.is_complete());
}

// ---- a model transfer, cut at random points ----

/// One step of the model: which party acts next. Deliveries and commits
/// only happen when there is something to deliver or commit.
#[derive(Debug, Clone, Copy)]
enum Step {
    SenderSends,
    DeliverToReceiver,
    DeliverToSender,
    /// The receiver's store commits what it holds, in one transaction.
    Commit,
    /// The connection is cut: both directions lose what is in flight, the
    /// receiver loses what it had not committed.
    Cut,
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Self {
        *g.choose(&[
            Step::SenderSends,
            Step::SenderSends,
            Step::DeliverToReceiver,
            Step::DeliverToReceiver,
            Step::DeliverToSender,
            Step::Commit,
            Step::Cut,
        ])
        .unwrap()
    }
}

/// The receiver's durable store: items plus position, changed together.
#[derive(Default)]
struct Store {
    items: Vec<u32>,
    position: Position,
}

/// One connection's worth of state; a cut throws it away.
struct Link {
    /// `None` until RESUME reached the sender.
    sender: Option<Sender>,
    receiver: Receiver,
    to_sender: Vec<Bytes>,
    to_receiver: Vec<Bytes>,
    /// Received, not committed: (seq, items, position after).
    pending: Vec<(u64, Vec<u32>, Position)>,
    /// Where the sender reads next (from RESUME's cursor).
    read_at: usize,
}

impl Link {
    fn open(store: &Store, window: u32) -> Self {
        let (receiver, hello) = Receiver::new(&store.position, window);
        Link {
            sender: None,
            receiver,
            to_sender: vec![hello],
            to_receiver: Vec::new(),
            pending: Vec::new(),
            read_at: 0,
        }
    }
}

fn cursor_of(index: usize) -> Bytes {
    Bytes::copy_from_slice(&(index as u64).to_be_bytes())
}

fn index_of(cursor: &[u8]) -> usize {
    if cursor.is_empty() {
        0
    } else {
        u64::from_be_bytes(cursor.try_into().unwrap()) as usize
    }
}

/// Runs a transfer of `total` items in batches of `batch_size` under the
/// given schedule, then to completion without cuts. Returns the store and
/// how many connections it took.
fn transfer(total: usize, batch_size: usize, window: u32, schedule: &[Step]) -> (Store, usize) {
    let source: Vec<u32> = (0..total as u32)
        .map(|i| i.wrapping_mul(2_654_435_761))
        .collect();
    let mut store = Store::default();
    let mut link = Link::open(&store, window);
    let mut connections = 1;
    let mut steps = schedule.iter().copied();
    let mut guard = 0;
    loop {
        guard += 1;
        assert!(guard < 1_000_000, "the transfer does not progress");
        if link.receiver.is_complete() {
            break;
        }
        // After the schedule, a fixed fair order that always progresses.
        let step = steps.next().unwrap_or(match guard % 4 {
            0 => Step::SenderSends,
            1 => Step::DeliverToReceiver,
            2 => Step::Commit,
            _ => Step::DeliverToSender,
        });
        match step {
            Step::Cut => {
                link = Link::open(&store, window);
                connections += 1;
            }
            Step::SenderSends => {
                let Some(sender) = link.sender.as_mut() else {
                    continue;
                };
                if !sender.can_send() {
                    continue;
                }
                if link.read_at >= total {
                    link.to_receiver.push(sender.end());
                    continue;
                }
                let end = (link.read_at + batch_size).min(total);
                let mut w = BatchWriter::default();
                for item in &source[link.read_at..end] {
                    w.payload_mut().extend_from_slice(&item.to_le_bytes());
                }
                link.to_receiver
                    .push(sender.batch(w, &cursor_of(end)).unwrap());
                link.read_at = end;
            }
            Step::DeliverToReceiver => {
                if link.to_receiver.is_empty() {
                    continue;
                }
                let msg = link.to_receiver.remove(0);
                match link.receiver.handle(&msg).expect("a valid sender") {
                    Incoming::Batch(b) => {
                        let items = b
                            .payload
                            .chunks(4)
                            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                            .collect();
                        link.pending.push((b.seq, items, b.position_after()));
                    }
                    Incoming::End => {}
                }
            }
            Step::Commit => {
                let Some((last, _, position)) = link.pending.last().cloned() else {
                    continue;
                };
                for (_, items, _) in link.pending.drain(..) {
                    store.items.extend(items);
                }
                store.position = position;
                link.to_sender.push(link.receiver.committed(last));
            }
            Step::DeliverToSender => {
                if link.to_sender.is_empty() {
                    continue;
                }
                let msg = link.to_sender.remove(0);
                match link.sender.as_mut() {
                    Some(s) => s.handle(&msg).expect("a valid receiver"),
                    None => {
                        let (s, from) = Sender::accept(&msg, 8).expect("RESUME first");
                        link.read_at = index_of(&from.cursor);
                        link.sender = Some(s);
                    }
                }
            }
        }
    }
    assert_eq!(store.items, source, "every item exactly once, in order");
    (store, connections)
}

#[derive(Debug, Clone)]
struct Scenario {
    total: usize,
    batch_size: usize,
    window: u32,
    schedule: Vec<Step>,
}

impl Arbitrary for Scenario {
    fn arbitrary(g: &mut Gen) -> Self {
        Scenario {
            total: usize::arbitrary(g) % 200,
            batch_size: 1 + usize::arbitrary(g) % 20,
            window: u32::arbitrary(g) % 6,
            schedule: Vec::arbitrary(g),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let me = self.clone();
        Box::new(self.schedule.shrink().map(move |schedule| Scenario {
            schedule,
            ..me.clone()
        }))
    }
}

quickcheck! {
    /// Any cuts at any points (before RESUME arrives, between a batch and
    /// its commit, between a commit and its ack reaching the sender) end
    /// with every item stored exactly once.
    fn cuts_anywhere_lose_and_duplicate_nothing(s: Scenario) -> TestResult {
        let (store, _) = transfer(s.total, s.batch_size, s.window, &s.schedule);
        TestResult::from_bool(store.items.len() == s.total)
    }
}

#[test]
fn cuts_between_commit_and_ack_resend_nothing_committed() {
    use Step::*;
    // RESUME arrives, batch 0 arrives and commits, the connection is cut
    // before the ack reaches the sender: the next connection starts at 1.
    let schedule = [DeliverToSender, SenderSends, DeliverToReceiver, Commit, Cut];
    let (store, connections) = transfer(10, 5, 2, &schedule);
    assert_eq!(connections, 2);
    assert_eq!(store.position.next_seq, 2);
    // And a cut before RESUME is even delivered.
    let (_, connections) = transfer(10, 5, 2, &[Cut, Cut, Cut]);
    assert_eq!(connections, 4);
}

/// Sequence numbers come from the peer: one past [`MAX_SEQ`] is malformed
/// (before, a RESUME at `u64::MAX` made the sender overflow `next_seq`),
/// and a sender resumed at the limit refuses to number another batch
/// instead of wrapping.
#[test]
fn sequence_numbers_past_the_limit_are_errors_not_overflows() {
    let resume = |next_seq| {
        Frame::Resume {
            position: Position {
                next_seq,
                cursor: Bytes::new(),
            },
            window: 4,
        }
        .encode()
    };
    for n in [MAX_SEQ + 1, u64::MAX] {
        assert_eq!(
            Sender::accept(&resume(n), 8).map(|_| ()),
            Err(ResumeError::SequenceOutOfRange(n))
        );
        assert_eq!(
            Frame::decode(&Frame::End { next_seq: n }.encode()),
            Err(ResumeError::SequenceOutOfRange(n))
        );
    }
    for n in [MAX_SEQ, u64::MAX] {
        assert_eq!(
            Frame::decode(&batch(n, b"x", b"c")),
            Err(ResumeError::SequenceOutOfRange(n))
        );
        assert_eq!(
            Frame::decode(&Frame::Ack { seq: n }.encode()),
            Err(ResumeError::SequenceOutOfRange(n))
        );
    }
    assert_eq!(
        ResumeError::SequenceOutOfRange(0).close_code(),
        CloseCode::POLICY_VIOLATION
    );

    // The last batch the space allows, then no more.
    let (mut sender, _) = Sender::accept(&resume(MAX_SEQ - 1), 8).unwrap();
    let last = sender.batch(BatchWriter::default(), b"c").unwrap();
    let Ok(Frame::Batch(b)) = Frame::decode(&last) else {
        panic!("the last batch decodes")
    };
    assert_eq!(b.position_after().next_seq, MAX_SEQ);
    assert_eq!(
        sender.batch(BatchWriter::default(), b"d"),
        Err(ResumeError::SequenceOutOfRange(MAX_SEQ))
    );
    // A batch built by hand at the top of u64 saturates its position.
    let by_hand = Batch {
        seq: u64::MAX,
        cursor: Bytes::new(),
        payload: Bytes::new(),
    };
    assert_eq!(by_hand.position_after().next_seq, u64::MAX);
}
