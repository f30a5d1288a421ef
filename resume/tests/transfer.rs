//! `tether_resume` on real connections: a full transfer across runtimes,
//! and what each kind of bad input or local failure does: a receiver or a
//! sender that breaks the protocol is closed with 1008 and reported as
//! `Error::Protocol`; a failing source or store closes with 1011 and is
//! reported as `Error::Local`; the receiver's position always ends at what
//! its store committed.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{stream, SinkExt, StreamExt};
use tether::core::Bytes;
use tether::{CloseCode, Message};
use tether_resume::Error;
use tether_resume::{Batch, BatchWriter, Frame, Position, ResumeError};

/// A source of `n` batches of one byte each (the batch's index); the
/// cursor is the index too.
fn source(
    from: &Position,
    n: u8,
) -> impl futures_util::Stream<Item = io::Result<(BatchWriter, Bytes)>> {
    let start = from.cursor.first().map_or(0, |c| c + 1);
    stream::iter((start..n).map(|i| {
        let mut w = BatchWriter::default();
        w.payload_mut().push(i);
        Ok((w, Bytes::copy_from_slice(&[i])))
    }))
}

/// An in-memory store: the sink commits at once and reports it.
type Store = Arc<Mutex<Vec<Batch>>>;

fn store(
    fail_at: Option<u64>,
) -> (
    Store,
    impl futures_util::Sink<Batch, Error = io::Error> + Unpin,
    impl futures_util::Stream<Item = io::Result<u64>> + Unpin,
) {
    let kept: Store = Arc::default();
    let (done_tx, done_rx) = smol::channel::unbounded();
    let sink = Box::pin(futures_util::sink::unfold(
        (kept.clone(), done_tx),
        move |(kept, done), batch: Batch| async move {
            if Some(batch.seq) == fail_at {
                return Err(io::Error::other("disk full"));
            }
            let seq = batch.seq;
            kept.lock().unwrap().push(batch);
            done.send(Ok(seq)).await.map_err(io::Error::other)?;
            Ok((kept, done))
        },
    ));
    (kept, sink, Box::pin(done_rx))
}

/// Runs `server` on each accepted connection of a fresh listener, on a
/// smol thread.
fn server<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(tether::smol::WebSocket<smol::net::TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        smol::block_on(async {
            let listener = smol::net::TcpListener::try_from(listener).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                let ws = tether::smol::accept(stream).await.unwrap();
                smol::spawn(handler(ws)).detach();
            }
        })
    });
    addr
}

/// The close code a connection ends with, reading it to its end (which
/// also sends the answer to the peer's close).
async fn close_code<S>(ws: &mut S) -> Option<u16>
where
    S: futures_util::Stream<Item = Result<Message, tether::Error>> + Unpin,
{
    let mut code = None;
    while let Some(msg) = ws.next().await {
        if let Ok(Message::Close(frame)) = msg {
            code = frame.map(|f| f.code.0);
        }
    }
    code
}

#[test]
fn a_transfer_completes_from_a_smol_sender_to_a_tokio_receiver() {
    let addr = server(|mut ws| async move {
        let served = tether_resume::serve(&mut ws, 3, |from| source(from, 50))
            .await
            .unwrap();
        assert!(served.complete);
        assert_eq!(served.batches, 50);
        assert_eq!(served.close.map(|f| f.code), Some(CloseCode::NORMAL));
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (kept, mut sink, mut committed) = store(None);
        let mut position = Position::default();
        let mut ws = tether::tokio::connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        let received = tether_resume::receive(&mut ws, &mut position, 3, &mut sink, &mut committed)
            .await
            .unwrap();
        assert!(received.complete);
        assert_eq!(received.batches, 50);
        let kept = kept.lock().unwrap();
        let payloads: Vec<u8> = kept.iter().map(|b| b.payload[0]).collect();
        assert_eq!(payloads, (0..50).collect::<Vec<u8>>());
        assert_eq!(position.next_seq, 50);
        assert_eq!(&position.cursor[..], &[49]);
    });
}

#[test]
fn a_receiver_resumes_where_its_store_is() {
    let addr = server(|mut ws| async move {
        let _ = tether_resume::serve(&mut ws, 4, |from| source(from, 20)).await;
    });
    smol::block_on(async {
        let (kept, mut sink, mut committed) = store(None);
        // As if batches 0..=9 were committed on an earlier connection.
        let mut position = Position {
            next_seq: 10,
            cursor: Bytes::from_static(&[9]),
        };
        let mut ws = tether::smol::connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        let received = tether_resume::receive(&mut ws, &mut position, 4, &mut sink, &mut committed)
            .await
            .unwrap();
        assert!(received.complete);
        let kept = kept.lock().unwrap();
        let seqs: Vec<u64> = kept.iter().map(|b| b.seq).collect();
        assert_eq!(seqs, (10..20).collect::<Vec<u64>>());
        assert_eq!(kept[0].payload[0], 10, "the sender read from the cursor");
    });
}

#[test]
fn a_receiver_that_breaks_the_protocol_gets_1008() {
    let (tx, rx) = smol::channel::unbounded();
    let addr = server(move |mut ws| {
        let tx = tx.clone();
        async move {
            let result = tether_resume::serve(&mut ws, 4, |from| source(from, 20)).await;
            tx.send(result.map(|_| ()).map_err(|e| e.to_string()))
                .await
                .unwrap();
        }
    });
    smol::block_on(async {
        // Text instead of RESUME.
        let mut ws = tether::smol::connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(1008));
        let err = rx.recv().await.unwrap().unwrap_err();
        assert!(err.contains("text message"), "{err}");

        // An ack for a batch never sent.
        let mut ws = tether::smol::connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        let hello = Frame::Resume {
            position: Position::default(),
            window: 1,
        };
        ws.send(Message::Binary(hello.encode())).await.unwrap();
        ws.send(Message::Binary(Frame::Ack { seq: 7 }.encode()))
            .await
            .unwrap();
        assert_eq!(close_code(&mut ws).await, Some(1008));
        let err = rx.recv().await.unwrap().unwrap_err();
        assert!(err.contains("ack 7"), "{err}");

        // Garbage.
        let mut ws = tether::smol::connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        ws.send(Message::binary(vec![0x09, 1, 2])).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(1008));
        assert!(rx.recv().await.unwrap().is_err());
    });
}

#[test]
fn a_sender_that_skips_a_batch_gets_1008_and_the_position_keeps_what_committed() {
    let (tx, rx) = smol::channel::unbounded();
    let addr = server(move |mut ws| {
        let tx = tx.clone();
        async move {
            let _hello = ws.next().await;
            for seq in [0u64, 2] {
                let mut w = BatchWriter::default();
                w.payload_mut().push(seq as u8);
                ws.send(Message::Binary(w.finish(seq, &[seq as u8])))
                    .await
                    .unwrap();
            }
            tx.send(close_code(&mut ws).await).await.unwrap();
        }
    });
    smol::block_on(async {
        let (kept, mut sink, mut committed) = store(None);
        let mut position = Position::default();
        let mut ws = tether::smol::connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        let err = tether_resume::receive(&mut ws, &mut position, 4, &mut sink, &mut committed)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Protocol(ResumeError::Sequence {
                    expected: 1,
                    got: 2
                })
            ),
            "{err:?}"
        );
        assert_eq!(rx.recv().await.unwrap(), Some(1008));
        assert_eq!(kept.lock().unwrap().len(), 1);
        assert_eq!(position.next_seq, 1, "batch 0 committed, batch 2 refused");
    });
}

#[test]
fn a_failing_store_closes_1011_and_a_failing_source_too() {
    // The store fails on batch 3.
    let (tx, rx) = smol::channel::unbounded();
    let addr = server(move |mut ws| {
        let tx = tx.clone();
        async move {
            let result = tether_resume::serve(&mut ws, 2, |from| source(from, 20)).await;
            tx.send(
                result
                    .map(|s| s.close.map(|f| f.code.0))
                    .map_err(|e| e.to_string()),
            )
            .await
            .unwrap();
        }
    });
    smol::block_on(async {
        let (kept, mut sink, mut committed) = store(Some(3));
        let mut position = Position::default();
        let mut ws = tether::smol::connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        let err = tether_resume::receive(&mut ws, &mut position, 2, &mut sink, &mut committed)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Local(e) if e.to_string() == "disk full"),
            "{err:?}"
        );
        assert_eq!(rx.recv().await.unwrap(), Ok(Some(1011)));
        assert_eq!(kept.lock().unwrap().len(), 3);
        assert_eq!(position.next_seq, 3);
    });

    // The source fails after two batches.
    let addr = server(|mut ws| async move {
        let failing = source(&Position::default(), 2).chain(stream::once(async {
            Err(io::Error::other("database gone"))
        }));
        let err = tether_resume::serve(&mut ws, 4, |_| failing)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Local(_)), "{err:?}");
    });
    smol::block_on(async {
        let (_, mut sink, mut committed) = store(None);
        let mut position = Position::default();
        let mut ws = tether::smol::connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        let received = tether_resume::receive(&mut ws, &mut position, 4, &mut sink, &mut committed)
            .await
            .unwrap();
        assert!(!received.complete);
        assert_eq!(
            received.close.map(|f| f.code),
            Some(CloseCode::INTERNAL_ERROR)
        );
        assert_eq!(
            position.next_seq, 2,
            "what arrived before the failure is kept"
        );
    });
}

/// A receiver that resumes at a sequence number the sender cannot count
/// past (`u64::MAX` made the sender overflow before) is closed with 1008
/// and reported as `Error::Protocol`, like any other bad number; one that
/// resumes at the very last number gets the one batch left, then 1008.
#[test]
fn a_resume_past_the_sequence_space_gets_1008() {
    use tether_resume::MAX_SEQ;
    let (tx, rx) = smol::channel::unbounded();
    let addr = server(move |mut ws| {
        let tx = tx.clone();
        async move {
            let result = tether_resume::serve(&mut ws, 4, |from| source(from, 20)).await;
            let out_of_range = match result {
                Err(Error::Protocol(ResumeError::SequenceOutOfRange(n))) => Some(n),
                _ => None,
            };
            tx.send(out_of_range).await.unwrap();
        }
    });
    smol::block_on(async {
        for (next_seq, batches) in [
            (u64::MAX, 0),
            (MAX_SEQ + 1, 0),
            (MAX_SEQ, 0),
            (MAX_SEQ - 1, 1),
        ] {
            let mut ws = tether::smol::connect(&format!("ws://{addr}/"))
                .await
                .unwrap();
            let hello = Frame::Resume {
                position: Position {
                    next_seq,
                    cursor: Bytes::new(),
                },
                window: 4,
            };
            ws.send(Message::Binary(hello.encode())).await.unwrap();
            let mut got = 0;
            let mut code = None;
            while let Some(msg) = ws.next().await {
                match msg {
                    Ok(Message::Binary(b)) => {
                        assert!(matches!(Frame::decode(&b), Ok(Frame::Batch(_))));
                        got += 1;
                    }
                    Ok(Message::Close(frame)) => code = frame.map(|f| f.code.0),
                    _ => {}
                }
            }
            assert_eq!((got, code), (batches, Some(1008)), "RESUME at {next_seq}");
            let expected = if next_seq > MAX_SEQ {
                next_seq
            } else {
                MAX_SEQ
            };
            assert_eq!(
                rx.recv().await.unwrap(),
                Some(expected),
                "RESUME at {next_seq}"
            );
        }
    });
}
