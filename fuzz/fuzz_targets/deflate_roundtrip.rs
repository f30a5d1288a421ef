//! tether's level-1 deflate encoder, end to end: arbitrary messages sent
//! compressed by a client `Connection` (whole, or streamed in chunks so
//! each chunk is its own sync-flushed piece) and read by a server whose
//! inflater has exactly the negotiated window, must come back byte for
//! byte, with no error event, whatever the window, context takeover and
//! fragment size.
//!
//! Input: three settings bytes (window bits, flags, fragment size), then
//! messages, each a length byte (times 97, to reach past the window now
//! and then) and a repeat count byte over data taken from the rest.

#![no_main]

use std::io::IoSlice;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tether_core::deflate::{client_accept, client_offer, parse_extensions, server_accept};
use tether_core::{
    Bytes, Config, Connection, DataKind, DeflateConfig, Event, Message, Role, Xoshiro256,
};

fn transmit(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut iov = [IoSlice::new(&[]); 16];
        let n = conn.poll_transmit(&mut iov);
        let before = out.len();
        for s in &iov[..n] {
            out.extend_from_slice(s);
        }
        let wrote = out.len() - before;
        if wrote == 0 {
            return out;
        }
        conn.advance_transmit(wrote);
    }
}

fuzz_target!(|data: &[u8]| {
    let [bits, flags, fragment, rest @ ..] = data else {
        return;
    };
    let cfg = DeflateConfig::default()
        .with_level(1)
        .with_max_window_bits(9 + bits % 7)
        .with_no_context_takeover(flags & 1 != 0)
        .with_threshold(0);
    let offer = client_offer(std::slice::from_ref(&cfg));
    let (sp, response) = server_accept(
        &DeflateConfig::default(),
        &parse_extensions([offer.as_str()]),
    )
    .expect("server accepts a tether offer");
    let cp = client_accept(
        std::slice::from_ref(&cfg),
        &parse_extensions([response.as_str()])[0],
    )
    .expect("client accepts the answer");
    assert_eq!(sp.peer_window_bits, cp.own_window_bits);
    let config = Config::without_keepalive()
        .with_fragment_size(16 + usize::from(*fragment) * 64)
        .with_max_message_size(1 << 26);
    let now = Instant::now();
    let mut c = Connection::new(
        Role::Client,
        config.clone(),
        Box::new(Xoshiro256::from_seed(1)),
        now,
    )
    .with_deflate(Some(cp));
    let mut s = Connection::new(
        Role::Server,
        config,
        Box::new(Xoshiro256::from_seed(2)),
        now,
    )
    .with_deflate(Some(sp));

    let mut sent = Vec::new();
    let mut rest = rest;
    while let [len, repeat, more @ ..] = rest {
        let take = (usize::from(*len) * 97).min(more.len());
        let (unit, tail) = more.split_at(take);
        rest = tail;
        let msg: Vec<u8> = unit.repeat(1 + usize::from(*repeat % 8));
        if repeat & 0x80 != 0 && !msg.is_empty() {
            // Streamed: one compressed piece per chunk.
            let step = 1 + usize::from(*len);
            let pieces: Vec<&[u8]> = msg.chunks(step).collect();
            for (i, p) in pieces.iter().enumerate() {
                c.send_chunk(
                    DataKind::Binary,
                    Bytes::copy_from_slice(p),
                    i + 1 == pieces.len(),
                )
                .expect("send_chunk");
            }
        } else {
            c.send(Message::binary(msg.clone())).expect("send");
        }
        sent.push(msg);
    }
    s.handle_read(&transmit(&mut c), now);
    let mut got = Vec::new();
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::Message(Message::Binary(b)) => got.push(b.to_vec()),
            Event::Error(e) => panic!("server error: {e:?}"),
            _ => {}
        }
    }
    assert!(
        got == sent,
        "{} messages sent, {} came back equal or not",
        sent.len(),
        got.len()
    );
});
