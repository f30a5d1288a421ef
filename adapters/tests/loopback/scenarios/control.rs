//! Ping and pong, and the timers: keepalive, close and handshake timeouts.

use super::*;

// ---- 3. ping / pong ----

pub async fn ping_pong<R: Rt>() {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let mut ws = R::connect(&url).await.expect("connect");
    let payloads = [
        Bytes::from_static(b"tether ping"),
        Bytes::new(),
        Bytes::from(random_bytes(3, 125)),
    ];
    for p in &payloads {
        ws.send(Message::Ping(p.clone())).await.expect("send ping");
        let got = next_message(&mut ws, "pong").await;
        assert_eq!(
            got,
            Message::Pong(p.clone()),
            "the server answers a ping with its payload"
        );
    }
    // A control payload over 125 bytes is refused, and the connection
    // stays usable.
    let too_long = ws.send(Message::Ping(Bytes::from(vec![0u8; 126]))).await;
    assert!(
        matches!(
            too_long,
            Err(Error::WebSocket(WsError::ControlPayloadTooLong(126)))
        ),
        "{too_long:?}"
    );
    ws.send(Message::text("still open")).await.expect("send");
    assert_eq!(
        next_data(&mut ws, "echo").await,
        Message::text("still open")
    );
    ws.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");
    let mut want: Vec<Message> = payloads.iter().cloned().map(Message::Ping).collect();
    want.push(close_message(1000, ""));
    assert_eq!(server.await, want, "what the server saw");
}

// ---- 10. timers: keepalive, close and handshake timeouts ----

pub(crate) fn with_config(config: Config) -> ServerOptions {
    ServerOptions::default().with_config(config)
}

/// The server pings on its own; the tether client answers while its
/// stream is read; the server measures the round trip.
pub async fn keepalive_measures_latency<R: Rt>() {
    let interval = Duration::from_millis(50);
    let config = Config::default()
        .with_ping_interval(Some(interval))
        .with_ping_timeout(Some(Duration::from_secs(30)));
    let (url, server) =
        serve_with_options::<R, _, _>(with_config(config), |mut ws: Ws<R>| async move {
            // The client sends nothing of its own: the first message is
            // the answer to the first keepalive ping.
            match next_message(&mut ws, "server").await {
                Message::Pong(p) => {
                    assert_eq!(p.len(), 8, "the keepalive pong echoes the ping payload")
                }
                other => panic!("server: unexpected {other:?}"),
            }
            let latency = ws.latency();
            ws.close_handshake(CloseCode::NORMAL, "measured")
                .await
                .expect("server close");
            latency
        })
        .await;
    // All of it is I/O: on a paused clock, held, and moved on one ping
    // interval once the connection is up (both ends exist by then).
    let mut ws = R::io(R::connect(&url)).await.expect("connect");
    let (items, ()) = R::io(future::join(drain(&mut ws, 1000), R::advance(interval))).await;
    let (close, pings) = items.split_last().expect("at least the close");
    assert!(
        matches!(close, Ok(m) if *m == close_message(1000, "measured")),
        "last item: {close:?}"
    );
    assert!(!pings.is_empty(), "the client saw no ping");
    for p in pings {
        assert!(matches!(p, Ok(Message::Ping(b)) if b.len() == 8), "{p:?}");
    }
    assert!(server.await.is_some(), "the server measured no latency");
}

/// A peer that never answers pings fails the connection with 1011.
pub async fn keepalive_timeout_closes_1011<R: Rt>() {
    let config = Config::default()
        .with_ping_interval(Some(Duration::from_millis(50)))
        .with_ping_timeout(Some(Duration::from_millis(100)));
    let (listener, addr) = R::listen().await;
    let peer = raw::spawn(move || {
        let mut peer = RawPeer::upgrade(addr);
        let ping = peer.read_frame();
        let close = peer.read_frame();
        (ping, close, peer.read_to_end())
    });
    let tcp = R::accept_tcp(&listener).await;
    // The handshake waits on the peer; the keepalive then runs on the
    // clock alone (the peer never answers).
    let mut ws = R::io(R::accept_with(tcp, with_config(config), |_| {
        Ok(Accept::default())
    }))
    .await
    .expect("server: handshake");
    let items = drain(&mut ws, 1).await;
    let ((ping_op, ping), (close_op, close), rest) = raw::join(peer);

    assert!(
        matches!(
            items[..],
            [Err(Error::WebSocket(WsError::KeepaliveTimeout))]
        ),
        "server: {items:?}"
    );
    assert_eq!(
        items[0].as_ref().err().and_then(Error::close_code),
        Some(tether::CloseCode::INTERNAL_ERROR)
    );
    assert_eq!((ping_op, ping.len()), (0x89, 8), "a keepalive ping first");
    assert_eq!(close_op, 0x88, "then a close frame");
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1011, "close code");
    assert!(rest.is_empty(), "then EOF: {rest:?}");
}

/// A peer that never answers the close frame: `close()` still returns,
/// after the close timeout, and the server ends TCP. The keepalive timer
/// is armed far in the future first (by reading a message), so the close
/// deadline must move the runtime's timer earlier: if moving it failed,
/// `close()` would wait for the keepalive instead and the scenario would
/// hit its own timeout.
pub async fn close_timeout_without_answer<R: Rt>() {
    let config = Config::default()
        .with_ping_interval(Some(Duration::from_secs(600)))
        .with_close_timeout(Duration::from_millis(200));
    let (listener, addr) = R::listen().await;
    let peer = raw::spawn(move || {
        let mut peer = RawPeer::upgrade(addr);
        let key = [9, 8, 7, 6];
        peer.write(&raw::masked_header(0x1, 2, key));
        peer.write(&raw::mask(b"hi", key));
        let close = peer.read_frame();
        (close, peer.read_to_end())
    });
    let tcp = R::accept_tcp(&listener).await;
    // The peer's bytes are waited for; its silence after the close is
    // left to the clock.
    let mut ws = R::io(R::accept_with(tcp, with_config(config), |_| {
        Ok(Accept::default())
    }))
    .await
    .expect("server: handshake");
    let hi = R::io(next_message(&mut ws, "server")).await;
    assert_eq!(hi, Message::text("hi"));
    let closed = ws.close_handshake(CloseCode(4000), "closing").await;
    let state = ws.state();
    let ((op, payload), rest) = raw::join(peer);

    assert!(closed.is_ok(), "close: {closed:?}");
    assert_eq!(state, State::Closed);
    assert_eq!(op, 0x88);
    assert_eq!(payload, b"\x0f\xa0closing", "code 4000 and the reason");
    assert!(rest.is_empty(), "then EOF: {rest:?}");
}

/// A peer that stalls in the opening handshake, on either side.
pub async fn handshake_timeouts<R: Rt>() {
    let limits = HandshakeLimits::default().with_timeout(Duration::from_millis(200));

    // A client that sends half a request.
    let (listener, addr) = R::listen().await;
    let peer = raw::spawn(move || {
        let mut peer = RawPeer::connect(addr);
        peer.write(b"GET / HTTP/1.1\r\nHost: x\r\n");
        peer.read_to_end()
    });
    let tcp = R::accept_tcp(&listener).await;
    let options = ServerOptions::default().with_limits(limits.clone());
    let accepted = R::accept_with(tcp, options, |_| Ok(Accept::default())).await;
    let _ = raw::join(peer); // it saw the connection end
    assert!(
        matches!(
            accepted,
            Err(Error::WebSocket(WsError::Handshake(
                HandshakeError::TimedOut
            )))
        ),
        "server: {:?}",
        accepted.err()
    );

    // A server that never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let silent = raw::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut peer = RawPeer::from_stream(stream);
        let request = peer.read_head();
        peer.read_to_end();
        request
    });
    let options = ClientOptions::default().with_limits(limits);
    let connected = R::connect_with(&format!("ws://{addr}/silent"), options).await;
    let request = raw::join(silent);
    assert!(
        request.starts_with("GET /silent HTTP/1.1\r\n"),
        "{request:?}"
    );
    assert!(
        matches!(
            connected,
            Err(Error::WebSocket(WsError::Handshake(
                HandshakeError::TimedOut
            )))
        ),
        "client: {:?}",
        connected.err()
    );
}
