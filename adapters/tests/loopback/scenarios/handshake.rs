//! The handshake hook (authentication, subprotocols) and frames that arrive with the handshake.

use super::*;

// ---- 7. the handshake hook ----

pub(crate) fn unauthorized() -> Box<http::Response<Bytes>> {
    http::Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, "Bearer")
        .body(Bytes::from_static(b"no token"))
        .map(Box::new)
        .expect("response")
}

/// Accepts `n` connections with `decide` (built per connection) and
/// returns the outcome of each: the handshake error, or the messages
/// seen while echoing.
pub(crate) async fn serve_with<R, D, F>(
    n: usize,
    decide: D,
) -> (
    String,
    Task<Vec<Result<(Option<String>, Vec<Message>), Error>>>,
)
where
    R: Rt,
    D: Fn() -> F + Send + 'static,
    F: FnOnce(&http::Request<()>) -> tether::Decision + Send + 'static,
{
    let (listener, addr) = R::listen().await;
    let task = R::spawn(async move {
        let mut outcomes = Vec::new();
        for _ in 0..n {
            let tcp = R::accept_tcp(&listener).await;
            match R::accept_with(tcp, ServerOptions::default(), decide()).await {
                Ok(ws) => {
                    let protocol = ws.protocol().map(str::to_owned);
                    outcomes.push(Ok((protocol, echo::<R>(ws).await)));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        outcomes
    });
    (format!("ws://{addr}/"), task)
}

pub(crate) fn rejected_by_app(
    r: &Result<(Option<String>, Vec<Message>), Error>,
    status: u16,
) -> bool {
    matches!(r, Err(Error::WebSocket(WsError::Handshake(HandshakeError::RejectedByApplication(s)))) if *s == status)
}

pub(crate) fn rejected<T>(r: &Result<T, Error>) -> Option<u16> {
    match r {
        Err(Error::WebSocket(WsError::Handshake(HandshakeError::Rejected(s)))) => Some(*s),
        _ => None,
    }
}

pub async fn hook_rejects_with_401<R: Rt>() {
    let (url, server) =
        serve_with::<R, _, _>(2, || |_: &http::Request<()>| Err(unauthorized())).await;
    let client = R::connect(&url).await;
    assert_eq!(
        rejected(&client),
        Some(401),
        "client: {:?}",
        client.as_ref().err()
    );

    // The response on the wire: status, the hook's header and body, and
    // the end of the connection.
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .parse()
        .expect("addr");
    let peer = raw::spawn(move || {
        let mut peer = RawPeer::connect(addr);
        peer.write(&raw::upgrade_request(addr, ""));
        String::from_utf8(peer.read_to_end()).expect("UTF-8 response")
    });
    let outcomes = server.await;
    let response = raw::join(peer);
    assert!(response.starts_with("HTTP/1.1 401 "), "{response:?}");
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("\r\nwww-authenticate: bearer\r\n"),
        "{response:?}"
    );
    assert!(lower.contains("\r\ncontent-length: 8\r\n"), "{response:?}");
    assert!(response.ends_with("\r\n\r\nno token"), "{response:?}");

    assert_eq!(outcomes.len(), 2);
    for o in &outcomes {
        assert!(rejected_by_app(o, 401), "server: {o:?}");
        // The helper reads the same status without the three levels.
        assert_eq!(o.as_ref().err().and_then(Error::http_status), Some(401));
    }
    assert_eq!(
        client.as_ref().err().and_then(Error::http_status),
        Some(401)
    );
}

pub async fn hook_checks_authorization<R: Rt>() {
    let (url, server) = serve_with::<R, _, _>(2, || {
        |req: &http::Request<()>| {
            assert_eq!(
                req.uri().path(),
                "/private",
                "the hook sees the request target"
            );
            match req.headers().get(header::AUTHORIZATION) {
                Some(v) if v == "Bearer s3cret" => Ok(Accept::default()),
                _ => Err(unauthorized()),
            }
        }
    })
    .await;
    let url = format!("{url}private");
    let anonymous = R::connect(&url).await;
    assert_eq!(
        rejected(&anonymous),
        Some(401),
        "without credentials: {:?}",
        anonymous.as_ref().err()
    );

    let mut options = ClientOptions::default();
    options.headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer s3cret"),
    );
    let mut ws = R::connect_with(&url, options)
        .await
        .expect("with credentials");
    ws.send(Message::text("let me in")).await.expect("send");
    assert_eq!(next_data(&mut ws, "echo").await, Message::text("let me in"));
    ws.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");

    let outcomes = server.await;
    assert!(rejected_by_app(&outcomes[0], 401), "{:?}", outcomes[0]);
    assert!(
        matches!(&outcomes[1], Ok((None, seen)) if without_keepalive(seen.clone()) == [close_message(1000, "")]),
        "{:?}",
        outcomes[1]
    );
}

pub(crate) fn offered(req: &http::Request<()>) -> Vec<String> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| v.to_str().expect("ASCII").split(','))
        .map(|p| p.trim().to_owned())
        .collect()
}

pub(crate) fn offering(protocols: &[&str]) -> ClientOptions {
    ClientOptions::default().with_protocols(protocols.iter().map(|p| p.to_string()).collect())
}

pub async fn subprotocol_negotiation<R: Rt>() {
    let (url, server) = serve_with::<R, _, _>(1, || {
        |req: &http::Request<()>| {
            assert_eq!(offered(req), ["a", "b"], "offered in the client's order");
            Ok(Accept::default().with_protocol(Some("b".into())))
        }
    })
    .await;
    let mut ws = R::connect_with(&url, offering(&["a", "b"]))
        .await
        .expect("connect");
    assert_eq!(ws.protocol(), Some("b"), "client's protocol()");
    ws.send(Message::text("in b")).await.expect("send");
    assert_eq!(next_data(&mut ws, "echo").await, Message::text("in b"));
    ws.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");
    let outcomes = server.await;
    assert!(
        matches!(&outcomes[0], Ok((Some(p), _)) if p == "b"),
        "server's protocol(): {:?}",
        outcomes[0]
    );
}

pub async fn subprotocol_not_offered<R: Rt>() {
    let choose_c = || |_: &http::Request<()>| Ok(Accept::default().with_protocol(Some("c".into())));
    let (url, server) = serve_with::<R, _, _>(1, choose_c).await;
    let client = R::connect_with(&url, offering(&["a", "b"])).await;
    assert_eq!(
        rejected(&client),
        Some(400),
        "client: {:?}",
        client.as_ref().err()
    );
    let outcomes = server.await;
    assert!(
        matches!(&outcomes[0], Err(Error::WebSocket(WsError::Handshake(HandshakeError::ProtocolNotOffered(p)))) if p == "c"),
        "{:?}",
        outcomes[0]
    );
}

// ---- 11. frames that arrive together with the handshake ----

/// A client that sends its first frame in the same write as the request,
/// and a server that sends frames in the same write as its 101.
pub async fn frames_glued_to_handshake<R: Rt>() {
    // Server side: frames after the request head.
    let (listener, addr) = R::listen().await;
    let peer = raw::spawn(move || {
        let mut peer = RawPeer::connect(addr);
        let key = [1, 2, 3, 4];
        let mut bytes = raw::upgrade_request(addr, "");
        bytes.extend(raw::masked_header(0x1, 5, key));
        bytes.extend(raw::mask(b"early", key));
        bytes.extend(raw::masked_header(0x8, 2, key));
        bytes.extend(raw::mask(&1000u16.to_be_bytes(), key));
        peer.write(&bytes);
        let head = peer.read_head();
        (head, peer.read_frame(), peer.read_to_end())
    });
    let tcp = R::accept_tcp(&listener).await;
    let mut ws = R::accept(tcp).await.expect("server: handshake");
    let items = drain(&mut ws, 2).await;
    let (head, (op, payload), rest) = raw::join(peer);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head:?}");
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        matches!(&items[0], Ok(m) if *m == Message::text("early")),
        "{:?}",
        items[0]
    );
    assert!(
        matches!(&items[1], Ok(m) if *m == close_message(1000, "")),
        "{:?}",
        items[1]
    );
    assert_eq!(
        (op, payload.as_slice()),
        (0x88, &1000u16.to_be_bytes()[..]),
        "the close echo"
    );
    assert!(rest.is_empty(), "{rest:?}");

    // Client side: frames after the 101 head.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let server = raw::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut peer = RawPeer::from_stream(stream);
        let request = peer.read_head();
        let key = request
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("Sec-WebSocket-Key");
        let mut bytes = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            tether::core::handshake::accept_key(key.as_bytes())
        )
        .into_bytes();
        bytes.extend([0x81, 5]);
        bytes.extend(b"hello");
        bytes.extend([0x88, 5, 0x03, 0xe8]);
        bytes.extend(b"bye");
        peer.write(&bytes);
        // The client's masked close echo: header, key, code.
        let echo = peer.read_exact(8);
        let code = raw::mask(&echo[6..], echo[2..6].try_into().expect("key"));
        (echo[0], code)
        // Dropping the socket ends TCP, as a server should.
    });
    let mut ws = R::connect(&format!("ws://{addr}/")).await.expect("connect");
    let items = drain(&mut ws, 2).await;
    let (op, code) = raw::join(server);
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        matches!(&items[0], Ok(m) if *m == Message::text("hello")),
        "{:?}",
        items[0]
    );
    assert!(
        matches!(&items[1], Ok(m) if *m == close_message(1000, "bye")),
        "{:?}",
        items[1]
    );
    assert_eq!(
        (op, code.as_slice()),
        (0x88, &1000u16.to_be_bytes()[..]),
        "the client's close echo"
    );
}
