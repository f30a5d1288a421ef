//! How connections end: close codes and reasons, a peer that vanishes, a protocol violation, a reset.

use super::*;

// ---- 4. close codes and reasons ----

/// Records every message until the stream ends, then tries to send.
pub(crate) async fn record<R: Rt>(mut ws: Ws<R>) -> (Vec<Message>, Result<(), Error>, State) {
    let mut seen = Vec::new();
    while let Some(m) = ws.next().await {
        seen.push(m.expect("server: stream error"));
    }
    let late = ws.send(Message::text("too late")).await;
    (seen, late, ws.state())
}

pub async fn close_from_client<R: Rt>() {
    let (url, server) = serve::<R, _, _>(record::<R>).await;
    let mut ws = R::connect(&url).await.expect("connect");
    ws.close_handshake(CloseCode(4001), "bye")
        .await
        .expect("close");
    assert_eq!(ws.state(), State::Closed);
    let late = ws.send(Message::text("too late")).await;
    assert!(is_closed(&late), "client send after close: {late:?}");
    assert!(ws.next().await.is_none(), "client stream after close");

    let (seen, late, state) = server.await;
    assert_eq!(
        seen,
        vec![close_message(4001, "bye")],
        "server saw the code and reason, then the end"
    );
    assert!(is_closed(&late), "server send after close: {late:?}");
    assert_eq!(state, State::Closed);
}

pub async fn close_from_server<R: Rt>() {
    let (url, server) = serve::<R, _, _>(|mut ws: Ws<R>| async move {
        ws.close_handshake(CloseCode(4002), "server says bye")
            .await
            .expect("server close");
        let late = ws.send(Message::text("too late")).await;
        (late, ws.state())
    })
    .await;
    let mut ws = R::connect(&url).await.expect("connect");
    let got = next_message(&mut ws, "client").await;
    assert_eq!(got, close_message(4002, "server says bye"));
    assert!(
        ws.next().await.is_none(),
        "the client stream ends after the server's close"
    );
    let late = ws.send(Message::text("too late")).await;
    assert!(is_closed(&late), "client send after close: {late:?}");
    assert_eq!(ws.state(), State::Closed);

    let (late, state) = server.await;
    assert!(is_closed(&late), "server send after close: {late:?}");
    assert_eq!(state, State::Closed);
}

pub async fn close_invalid_code<R: Rt>() {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let mut ws = R::connect(&url).await.expect("connect");
    let direct = ws.close_handshake(CloseCode::NO_STATUS, "nope").await;
    assert!(
        matches!(
            direct,
            Err(Error::WebSocket(WsError::InvalidCloseCode(1005)))
        ),
        "close(1005): {direct:?}"
    );
    let via_sink = ws.send(close_message(1006, "nope")).await;
    assert!(
        matches!(
            via_sink,
            Err(Error::WebSocket(WsError::InvalidCloseCode(1006)))
        ),
        "send(Close(1006)): {via_sink:?}"
    );
    assert_eq!(ws.state(), State::Open);
    ws.send(Message::text("still open")).await.expect("send");
    assert_eq!(
        next_data(&mut ws, "echo").await,
        Message::text("still open")
    );
    ws.close_handshake(CloseCode::GOING_AWAY, "")
        .await
        .expect("close");
    // No close frame left before the valid one.
    assert_eq!(
        without_keepalive(server.await),
        vec![close_message(1001, "")]
    );
}

// ---- 5. a peer that vanishes mid-message ----

pub async fn peer_vanishes_mid_message<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let peer = raw::spawn(move || {
        let mut peer = RawPeer::upgrade(addr);
        let key = [0x12, 0x34, 0x56, 0x78];
        // A whole message first: it must still be delivered.
        peer.write(&raw::masked_header(0x1, 6, key));
        peer.write(&raw::mask(b"before", key));
        // Then a frame announcing 1 MiB, a third of it, and a hang-up.
        let part = random_bytes(5, MIB / 3);
        peer.write(&raw::masked_header(0x2, MIB as u64, key));
        peer.write(&raw::mask(&part, key));
    });
    let tcp = R::accept_tcp(&listener).await;
    let mut ws = R::accept(tcp).await.expect("server: handshake");
    let mut items = Vec::new();
    while let Some(item) = ws.next().await {
        items.push(item);
        assert!(items.len() <= 3, "too many items: {items:?}");
    }
    raw::join(peer);
    assert_eq!(
        items.len(),
        2,
        "a message, an error, then the end: {items:?}"
    );
    assert!(
        matches!(&items[0], Ok(m) if *m == Message::text("before")),
        "{:?}",
        items[0]
    );
    assert!(
        matches!(items[1], Err(Error::WebSocket(WsError::AbnormalClosure))),
        "a truncated message and EOF are an abnormal closure: {:?}",
        items[1]
    );
    let late = ws.send(Message::text("too late")).await;
    assert!(late.is_err(), "sending after the peer vanished: {late:?}");
}

// ---- 6. protocol violation from a raw peer ----

pub async fn unmasked_frame_closes_1002<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let peer = raw::spawn(move || {
        let mut peer = RawPeer::upgrade(addr);
        peer.write(&[0x81, 0x05, b'h', b'e', b'l', b'l', b'o']);
        let close = peer.read_frame();
        let rest = peer.read_to_end();
        (close, rest)
    });
    let tcp = R::accept_tcp(&listener).await;
    let mut ws = R::accept(tcp).await.expect("server: handshake");
    let mut items = Vec::new();
    while let Some(item) = ws.next().await {
        items.push(item);
        assert!(items.len() <= 2, "too many items: {items:?}");
    }
    let ((first_byte, payload), rest) = raw::join(peer);

    assert_eq!(items.len(), 1, "one error, then the end: {items:?}");
    assert!(
        matches!(
            items[0],
            Err(Error::WebSocket(WsError::Protocol(
                ProtocolError::UnmaskedFrame
            )))
        ),
        "{:?}",
        items[0]
    );
    assert_eq!(first_byte, 0x88, "a final close frame");
    assert!(
        payload.len() >= 2,
        "the close frame carries a code: {payload:?}"
    );
    assert_eq!(
        u16::from_be_bytes([payload[0], payload[1]]),
        1002,
        "close code"
    );
    assert!(
        std::str::from_utf8(&payload[2..]).is_ok(),
        "the reason is UTF-8"
    );
    // read_to_end returned: the server ended TCP first, without waiting
    // for our close frame, and sent nothing after its own.
    assert!(rest.is_empty(), "bytes after the close frame: {rest:?}");
}

// ---- 12. a connection reset ----

/// The peer resets the connection (RST, no close frame, no FIN). The sink
/// half sees an I/O error when it writes; the stream half must see it too
/// (not a clean end), even though the sink half met it first.
pub async fn reset_reaches_both_halves<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let peer = raw::spawn(move || RawPeer::upgrade(addr).reset());
    let tcp = R::accept_tcp(&listener).await;
    let ws = R::accept(tcp).await.expect("server: handshake");
    raw::join(peer);
    let (mut tx, mut rx) = ws.halves();
    // Sends succeed until the reset is seen; bounded by the scenario timeout.
    let sent = loop {
        match tx.send(Message::text("anyone there?")).await {
            Ok(()) => R::sleep(Duration::from_millis(10)).await,
            Err(e) => break e,
        }
    };
    assert!(matches!(&sent, Error::Io(_)), "sink half: {sent:?}");
    let items = drain(&mut rx, 1).await;
    assert!(
        matches!(&items[..], [Err(Error::Io(_))]),
        "the stream half must report the failure, not a clean end: {items:?}"
    );
}

/// A reset seen by the stream half: an I/O error, then the end; sending
/// afterwards fails.
pub async fn reset_while_reading<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let peer = raw::spawn(move || RawPeer::upgrade(addr).reset());
    let tcp = R::accept_tcp(&listener).await;
    let mut ws = R::accept(tcp).await.expect("server: handshake");
    let items = drain(&mut ws, 1).await;
    raw::join(peer);
    assert!(
        matches!(&items[..], [Err(Error::Io(e))] if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{items:?}"
    );
    let late = ws.send(Message::text("too late")).await;
    assert!(late.is_err(), "send after a reset: {late:?}");
}
