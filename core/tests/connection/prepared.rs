//! `send_prepared`: a message framed once and queued on many connections.

use std::io::IoSlice;

use tether_core::PreparedMessage;

use super::*;

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// On a server, the bytes on the wire are exactly those `send` writes, at
/// every length form (7-bit, 16-bit, 64-bit), text and binary.
#[test]
fn prepared_bytes_equal_a_normal_send() {
    for n in [0, 1, 125, 126, 300, 65535, 65536, 200_000] {
        let data = payload(n);
        let text = String::from_utf8(data.iter().map(|b| b'a' + b % 26).collect()).unwrap();
        for m in [Message::binary(data.clone()), Message::text(text)] {
            let now = Instant::now();
            let mut plain = conn(Role::Server, now);
            let mut shared = conn(Role::Server, now);
            plain.send(m.clone()).unwrap();
            let prepared = PreparedMessage::new(m.clone()).unwrap();
            shared.send_prepared(&prepared).unwrap();
            assert_eq!(shared.buffered_amount(), plain.buffered_amount());
            let wire = transmit(&mut shared);
            assert_eq!(wire, transmit(&mut plain), "{n} bytes");
            assert_eq!(&wire[..], &prepared.frame()[..]);
        }
    }
}

/// The connection queues a reference to the prepared frame: the slice it
/// offers to write is the prepared bytes themselves, for every connection.
#[test]
fn prepared_frame_is_queued_without_a_copy() {
    let prepared = PreparedMessage::binary(payload(256));
    let now = Instant::now();
    let mut conns: Vec<Connection> = (0..3).map(|_| conn(Role::Server, now)).collect();
    for c in &mut conns {
        c.send_prepared(&prepared).unwrap();
        let mut iov = [IoSlice::new(&[]); 4];
        let n = c.poll_transmit(&mut iov);
        assert_eq!(n, 1);
        assert_eq!(iov[0].as_ptr(), prepared.frame().as_ptr());
        assert_eq!(iov[0].len(), prepared.frame().len());
    }
}

/// Prepared and ordinary messages leave in the order they were queued,
/// also behind a message larger than the fragment size, which is still
/// being framed piece by piece when the prepared one is queued.
#[test]
fn prepared_keeps_order_with_other_data() {
    let now = Instant::now();
    let mut c = conn_at(Role::Server, config().with_fragment_size(16), now);
    c.send(Message::binary(payload(3))).unwrap();
    c.send(Message::binary(payload(40))).unwrap();
    let p = PreparedMessage::text("prepared, longer than a fragment");
    c.send_prepared(&p).unwrap();
    c.send(Message::text("after")).unwrap();
    c.send_prepared(&p).unwrap();
    let frames = sent_frames(&mut c);
    let summary: Vec<(u8, bool, usize)> = frames
        .iter()
        .map(|f| (f.opcode, f.fin, f.payload.len()))
        .collect();
    assert_eq!(
        summary,
        [
            (BINARY, true, 3),
            (BINARY, false, 16),
            (CONT, false, 16),
            (CONT, true, 8),
            // Never fragmented, whatever the fragment size.
            (TEXT, true, 32),
            (TEXT, true, 5),
            (TEXT, true, 32),
        ]
    );
    assert_eq!(frames[4].payload, b"prepared, longer than a fragment");
    assert_eq!(c.buffered_amount(), 0);
}

/// Prepared frames count in the transmit queue like any send: above the
/// high-water mark the connection is not writable, a partial write
/// advances through the shared frame, and draining makes it writable.
#[test]
fn prepared_counts_in_backpressure() {
    let config = config()
        .with_write_high_water(1000)
        .with_write_low_water(200);
    let mut c = conn_at(Role::Server, config, Instant::now());
    let p = PreparedMessage::binary(payload(600));
    c.send_prepared(&p).unwrap();
    assert_eq!(c.buffered_amount(), 604);
    assert!(c.is_writable());
    c.send_prepared(&p).unwrap();
    assert_eq!(c.buffered_amount(), 1208);
    assert!(!c.is_writable());
    let mut wire = transmit_once(&mut c, 700);
    assert_eq!(c.buffered_amount(), 508);
    assert!(!c.is_writable());
    wire.extend(transmit_once(&mut c, 400));
    assert_eq!(c.buffered_amount(), 108);
    assert!(c.is_writable());
    wire.extend(transmit(&mut c));
    let frames = decode(&wire);
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|f| f.payload == payload(600)));
    // The prepared message itself is untouched by the partial writes.
    assert_eq!(&p.frame()[4..], &payload(600)[..]);
}

/// A client masks every frame with a fresh key, so it frames the prepared
/// message itself; the peer reads the same message.
#[test]
fn a_client_masks_a_prepared_message() {
    let now = Instant::now();
    let mut client = conn(Role::Client, now);
    let p = PreparedMessage::text("to the server");
    client.send_prepared(&p).unwrap();
    client.send_prepared(&p).unwrap();
    let frames = sent_frames(&mut client);
    assert_eq!(frames.len(), 2);
    for f in &frames {
        assert!(f.masked);
        assert_eq!(f.payload, b"to the server");
    }
    let mut server = conn(Role::Server, now);
    let mut client = conn(Role::Client, now);
    client.send_prepared(&p).unwrap();
    server.handle_read(&transmit(&mut client), now);
    assert_eq!(events(&mut server), [text("to the server")]);
}

/// Only data messages can be prepared; a closed connection or one in the
/// middle of a streamed message refuses one, as `send` does.
#[test]
fn prepared_refusals() {
    assert_eq!(
        PreparedMessage::new(Message::Ping(Bytes::new())),
        Err(Message::Ping(Bytes::new()))
    );
    let p = PreparedMessage::binary([1, 2, 3]);
    let now = Instant::now();
    let mut c = conn(Role::Server, now);
    c.send_chunk(DataKind::Text, Bytes::from_static(b"half"), false)
        .unwrap();
    assert_eq!(c.send_prepared(&p), Err(Error::ChunkOutOfOrder));
    c.send_chunk(DataKind::Text, Bytes::from_static(b" done"), true)
        .unwrap();
    c.send_prepared(&p).unwrap();
    c.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(c.send_prepared(&p), Err(Error::Closed));
    let frames = sent_frames(&mut c);
    let opcodes: Vec<u8> = frames.iter().map(|f| f.opcode).collect();
    assert_eq!(opcodes, [TEXT, CONT, BINARY, CLOSE]);
}
