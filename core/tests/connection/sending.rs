//! Sending: large messages fragmented, control frames between fragments, streamed chunks.

use crate::*;

// ---- outgoing fragmentation ----

fn fragmenting(size: usize) -> Config {
    config().with_fragment_size(size)
}

/// A message larger than fragment_size goes out as fragment_size frames.
#[test]
fn large_messages_are_fragmented() {
    for role in ROLES {
        let mut c = conn_at(role, fragmenting(1000), Instant::now());
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        c.send(Message::binary(payload.clone())).unwrap();
        let frames = sent_frames(&mut c);
        assert_eq!(frames.len(), 10);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.opcode, if i == 0 { BINARY } else { CONT }, "frame {i}");
            assert_eq!(f.fin, i == 9, "frame {i}");
            assert_eq!(f.payload.len(), 1000);
        }
        assert_eq!(
            frames
                .iter()
                .flat_map(|f| f.payload.clone())
                .collect::<Vec<_>>(),
            payload
        );
    }
}

/// A ping queued while a large message is being written goes out after the
/// fragment being written, not after the whole message.
#[test]
fn ping_overtakes_a_fragmented_message() {
    for role in ROLES {
        let mut c = conn_at(role, fragmenting(1000), Instant::now());
        c.send(Message::text("x".repeat(10_000))).unwrap();
        let first = decode(&transmit_once(&mut c, usize::MAX));
        assert_eq!(first.len(), 1, "one fragment at a time");
        assert_eq!(
            (first[0].opcode, first[0].fin, first[0].payload.len()),
            (TEXT, false, 1000)
        );

        c.ping(Bytes::from_static(b"now")).unwrap();
        let rest = sent_frames(&mut c);
        assert_eq!(rest.len(), 10);
        assert_eq!(
            (rest[0].opcode, rest[0].payload.as_slice()),
            (PING, &b"now"[..]),
            "{role:?}"
        );
        assert!(rest[1..].iter().all(|f| f.opcode == CONT));
        assert!(rest[9].fin);
    }
}

/// The same holds when the ping is queued right after the message.
#[test]
fn ping_queued_with_a_large_message_is_not_last() {
    let mut c = conn_at(Role::Client, fragmenting(1000), Instant::now());
    c.send(Message::binary(vec![0u8; 10_000])).unwrap();
    c.ping(Bytes::from_static(b"now")).unwrap();
    let frames = sent_frames(&mut c);
    assert_eq!(frames.len(), 11);
    let ping_at = frames.iter().position(|f| f.opcode == PING).unwrap();
    assert!(ping_at <= 1, "ping at {ping_at}");
}

/// A message streamed with send_chunk goes out as one fragmented message,
/// with chunks larger than fragment_size split further.
#[test]
fn streamed_chunks() {
    let mut c = conn_at(Role::Server, fragmenting(4), Instant::now());
    c.send_chunk(DataKind::Text, Bytes::from_static(b"ab"), false)
        .unwrap();
    assert_eq!(c.send(Message::text("other")), Err(Error::ChunkOutOfOrder));
    assert_eq!(
        c.send_chunk(DataKind::Binary, Bytes::new(), false),
        Err(Error::ChunkOutOfOrder)
    );
    c.send_chunk(DataKind::Text, Bytes::from_static(b"cdefgh"), false)
        .unwrap();
    c.send_chunk(DataKind::Text, Bytes::new(), true).unwrap();
    c.send(Message::text("next")).unwrap();
    let frames = sent_frames(&mut c);
    let summary: Vec<(u8, bool, &[u8])> = frames
        .iter()
        .map(|f| (f.opcode, f.fin, f.payload.as_slice()))
        .collect();
    assert_eq!(
        summary,
        [
            (TEXT, false, &b"ab"[..]),
            (CONT, false, b"cdef"),
            (CONT, false, b"gh"),
            (CONT, true, b""),
            (TEXT, true, b"next"),
        ]
    );
}
