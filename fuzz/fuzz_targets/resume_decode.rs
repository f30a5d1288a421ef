//! The resume protocol (`tether_resume`).
//!
//! Every message that decodes encodes back to the same bytes. A `Sender`
//! and a `Receiver`, made from arbitrary positions and fed arbitrary
//! messages between the application's own correct calls, never panic: a
//! bad message, including any bad sequence number, is a `ResumeError`.
//! The state they report stays consistent (never more in flight than the
//! window; batches delivered strictly in order).

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tether_resume::{
    BatchWriter, Frame, Incoming, Position, Receiver, ResumeError, Sender, MAX_SEQ,
};
use tether_core::Bytes;

/// A message from the peer: raw bytes, or a well-formed message with
/// arbitrary numbers (far more likely to get past decoding).
#[derive(Debug, Clone, Arbitrary)]
enum Wire {
    Raw(Vec<u8>),
    Resume {
        next_seq: u64,
        window: u32,
        cursor: Vec<u8>,
    },
    Batch {
        seq: u64,
        payload: Vec<u8>,
        cursor: Vec<u8>,
    },
    Ack(u64),
    End(u64),
    /// A number near the current one, to hit the edges.
    Near(u8, i8),
}

impl Wire {
    fn bytes(&self, near: u64) -> Bytes {
        let frame = match self {
            Wire::Raw(b) => return Bytes::copy_from_slice(b),
            Wire::Resume {
                next_seq,
                window,
                cursor,
            } => Frame::Resume {
                position: Position {
                    next_seq: *next_seq,
                    cursor: Bytes::copy_from_slice(cursor),
                },
                window: *window,
            },
            Wire::Batch {
                seq,
                payload,
                cursor,
            } => {
                let mut w = BatchWriter::with_capacity(payload.len());
                w.payload_mut().extend_from_slice(payload);
                return w.finish(*seq, &cursor[..cursor.len().min(300)]);
            }
            Wire::Ack(seq) => Frame::Ack { seq: *seq },
            Wire::End(n) => Frame::End { next_seq: *n },
            Wire::Near(kind, d) => {
                let n = near.wrapping_add(*d as i64 as u64);
                match kind % 3 {
                    0 => Frame::Ack { seq: n },
                    1 => Frame::End { next_seq: n },
                    _ => {
                        return BatchWriter::default().finish(n, b"c");
                    }
                }
            }
        };
        frame.encode()
    }
}

/// What the application or the peer does next.
#[derive(Debug, Arbitrary)]
enum Step {
    /// A message arrives from the peer.
    Peer(Wire),
    /// Sender: send a batch if the window allows; receiver: commit up to
    /// the batch this many back from the newest.
    App(u8),
    /// Sender: the source is exhausted.
    End,
}

#[derive(Debug, Arbitrary)]
struct Input {
    sender: bool,
    first: Wire,
    position: u64,
    window: u32,
    max_window: u32,
    cursor: Vec<u8>,
    steps: Vec<Step>,
}

fn check_round_trip(msg: &Bytes) {
    if let Ok(frame) = Frame::decode(msg) {
        let again = frame.encode();
        assert_eq!(&again, msg, "{frame:?} encodes differently");
        assert_eq!(Frame::decode(&again), Ok(frame));
    }
}

fn run_sender(input: &Input) {
    let hello = input.first.bytes(input.position);
    check_round_trip(&hello);
    let Ok((mut sender, position)) = Sender::accept(&hello, input.max_window) else {
        return;
    };
    assert!(sender.window() >= 1 && sender.window() <= input.max_window.max(1));
    assert_eq!(sender.next_seq(), position.next_seq);
    for step in &input.steps {
        match step {
            Step::Peer(w) => {
                let msg = w.bytes(sender.next_seq());
                check_round_trip(&msg);
                if sender.handle(&msg).is_err() {
                    return;
                }
            }
            Step::App(_) => {
                if sender.can_send() {
                    let before = sender.next_seq();
                    let msg = match sender.batch(BatchWriter::default(), b"cursor") {
                        Ok(msg) => msg,
                        // Numbers run out only at MAX_SEQ: the connection
                        // closes.
                        Err(e) => {
                            assert_eq!(e, ResumeError::SequenceOutOfRange(before));
                            assert!(before >= MAX_SEQ);
                            return;
                        }
                    };
                    match Frame::decode(&msg) {
                        Ok(Frame::Batch(b)) => assert_eq!(b.seq, before),
                        other => panic!("batch encoded as {other:?}"),
                    }
                }
            }
            Step::End => {
                let msg = sender.end();
                assert_eq!(
                    Frame::decode(&msg),
                    Ok(Frame::End {
                        next_seq: sender.next_seq()
                    })
                );
            }
        }
        assert!(sender.in_flight() <= u64::from(sender.window()));
    }
}

fn run_receiver(input: &Input) {
    let position = Position {
        next_seq: input.position,
        cursor: Bytes::copy_from_slice(&input.cursor),
    };
    let (mut receiver, hello) = Receiver::new(&position, input.window);
    // A stored position past MAX_SEQ (never one after a decoded batch)
    // makes a RESUME the sender refuses.
    let expected = if position.next_seq <= MAX_SEQ {
        Ok(Frame::Resume {
            position: position.clone(),
            window: input.window,
        })
    } else {
        Err(ResumeError::SequenceOutOfRange(position.next_seq))
    };
    assert_eq!(Frame::decode(&hello), expected);
    let mut received: Vec<u64> = Vec::new();
    let mut committed: Option<u64> = None;
    let mut next = input.position;
    for step in std::iter::once(&Step::Peer(input.first.clone())).chain(&input.steps) {
        match step {
            Step::Peer(w) => {
                let msg = w.bytes(next);
                check_round_trip(&msg);
                match receiver.handle(&msg) {
                    Ok(Incoming::Batch(b)) => {
                        assert_eq!(b.seq, next, "batch out of order accepted");
                        let after = b.position_after();
                        assert_eq!(after.cursor, b.cursor);
                        next = after.next_seq;
                        received.push(b.seq);
                    }
                    Ok(Incoming::End) => {}
                    Err(_) => return,
                }
            }
            Step::App(back) => {
                // The application commits a batch it received, never going
                // back before its last commit.
                let Some(&seq) = received.iter().rev().nth(*back as usize % 4) else {
                    continue;
                };
                if committed.is_some_and(|c| seq < c) {
                    continue;
                }
                let ack = receiver.committed(seq);
                assert_eq!(Frame::decode(&ack), Ok(Frame::Ack { seq }));
                committed = Some(seq);
            }
            Step::End => {
                let _ = receiver.is_complete();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Raw bytes straight into the decoder first: the seeds are real
    // messages, and this is the cheapest path to every decode branch.
    check_round_trip(&Bytes::copy_from_slice(data));
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    if input.sender {
        run_sender(&input);
    } else {
        run_receiver(&input);
    }
});
