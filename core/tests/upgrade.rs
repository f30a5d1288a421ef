//! The server handshake on a parsed request head (`ServerUpgrade`): the
//! same checks, negotiation and accept hook as the byte-level
//! `ServerHandshake`, for an HTTP/1.1 upgrade and for an HTTP/2 extended
//! CONNECT (RFC 8441).
#![cfg(feature = "deflate")]

use std::time::Instant;

use tether_core::handshake::{
    accept_key, Accept, HandshakeError, HandshakeLimits, Mode, Refusal, ServerHandshake,
    ServerUpgrade, Upgraded,
};
use tether_core::{
    http, Bytes, CloseCode, Config, Connection, DeflateConfig, Event, Message, Role, State,
    Xoshiro256,
};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// An HTTP/1.1 upgrade request with `change` applied to its builder.
fn h1(change: impl FnOnce(http::request::Builder) -> http::request::Builder) -> http::Request<()> {
    let b = http::Request::get("/chat?room=1")
        .version(http::Version::HTTP_11)
        .header("host", "example.com")
        .header("upgrade", "websocket")
        .header("connection", "keep-alive, Upgrade")
        .header("sec-websocket-key", KEY)
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "chat, superchat");
    change(b).body(()).unwrap()
}

/// An HTTP/2 extended CONNECT as hyper hands it over: the authority in
/// the URI, no key, no Upgrade or Connection.
fn h2(change: impl FnOnce(http::request::Builder) -> http::request::Builder) -> http::Request<()> {
    let b = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri("https://example.com/chat?room=1")
        .version(http::Version::HTTP_2)
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "chat, superchat");
    change(b).body(()).unwrap()
}

fn same(b: http::request::Builder) -> http::request::Builder {
    b
}

fn rng() -> Box<Xoshiro256> {
    Box::new(Xoshiro256::from_seed(7))
}

fn accept(upgrade: ServerUpgrade, decision: Accept) -> Result<Upgraded, Box<Refusal>> {
    upgrade.accept(
        Ok(decision),
        Config::without_keepalive(),
        rng(),
        Instant::now(),
    )
}

/// The request as bytes, for the byte-level handshake.
fn to_bytes(request: &http::Request<()>) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", request.method(), request.uri()).into_bytes();
    for (name, value) in request.headers() {
        out.extend_from_slice(format!("{name}: ").as_bytes());
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Parses an HTTP/1.1 response head into status and headers.
fn parse_response(bytes: &[u8]) -> http::Response<()> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut r = httparse::Response::new(&mut headers);
    assert!(r.parse(bytes).unwrap().is_complete());
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(r.code.unwrap()).unwrap();
    for h in r.headers.iter() {
        response.headers_mut().append(
            http::HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(h.value).unwrap(),
        );
    }
    response
}

/// An HTTP/1.1 request is accepted with the 101 and the accept key, the
/// subprotocol chosen and the application's headers: the same response,
/// header for header, as the byte-level handshake writes for the same
/// request.
#[test]
fn an_http1_request_gets_the_byte_level_response() {
    let request = h1(same);
    let upgrade = ServerUpgrade::new(&request, None).unwrap();
    assert_eq!(upgrade.mode(), Mode::Upgrade);
    assert_eq!(upgrade.offered_protocols(), ["chat", "superchat"]);
    let mut decision = Accept::default().with_protocol(Some("superchat".into()));
    decision
        .headers
        .insert("set-cookie", "id=1".parse().unwrap());
    let up = accept(upgrade, decision.clone()).unwrap();
    assert_eq!(up.response.status(), 101);
    let h = up.response.headers();
    assert_eq!(h["upgrade"], "websocket");
    assert_eq!(h["connection"], "Upgrade");
    assert_eq!(h["sec-websocket-accept"], accept_key(KEY.as_bytes()));
    assert_eq!(h["sec-websocket-protocol"], "superchat");
    assert_eq!(h["set-cookie"], "id=1");
    assert_eq!(up.protocol.as_deref(), Some("superchat"));
    assert_eq!(up.connection.role(), Role::Server);

    let mut hs = ServerHandshake::new(HandshakeLimits::default(), Instant::now());
    hs.handle_read(&to_bytes(&request)).unwrap().unwrap();
    let bytes = hs.accept(&decision).unwrap();
    let parsed = parse_response(&bytes);
    assert_eq!(parsed.status(), up.response.status());
    assert_eq!(parsed.headers(), up.response.headers());
}

/// Each HTTP/1.1 check fails with the error (and status) the byte-level
/// handshake gives.
#[test]
fn every_http1_check_is_made() {
    let cases: Vec<(http::Request<()>, HandshakeError)> = vec![
        (h1(|b| b.method("POST")), HandshakeError::MethodNotGet),
        (h1(|b| b.method("CONNECT")), HandshakeError::MethodNotGet),
        (
            h1(|b| b.version(http::Version::HTTP_10)),
            HandshakeError::HttpVersion,
        ),
        (without(h1(same), "host"), HandshakeError::BadHeader("Host")),
        (
            without(h1(same), "upgrade"),
            HandshakeError::BadHeader("Upgrade"),
        ),
        (
            h1(|b| b.header("upgrade", "h2c")).tap_replace("upgrade", "h2c"),
            HandshakeError::BadHeader("Upgrade"),
        ),
        (
            h1(same).tap_replace("connection", "keep-alive"),
            HandshakeError::BadHeader("Connection"),
        ),
        (
            without(h1(same), "sec-websocket-key"),
            HandshakeError::BadHeader("Sec-WebSocket-Key"),
        ),
        (
            h1(same).tap_replace("sec-websocket-key", "c2hvcnQ="),
            HandshakeError::BadHeader("Sec-WebSocket-Key"),
        ),
        (
            h1(same).tap_replace("sec-websocket-version", "8"),
            HandshakeError::UnsupportedVersion,
        ),
        (
            without(h1(same), "sec-websocket-version"),
            HandshakeError::UnsupportedVersion,
        ),
    ];
    for (request, expected) in cases {
        let err = ServerUpgrade::new(&request, None).unwrap_err();
        assert_eq!(err, expected, "{request:?}");
        // The byte-level handshake agrees on the bytes of the same request
        // (HTTP/1.1 on the wire; the version case is its own test there).
        if request.version() == http::Version::HTTP_11 {
            let mut hs = ServerHandshake::new(HandshakeLimits::default(), Instant::now());
            assert_eq!(
                hs.handle_read(&to_bytes(&request)).unwrap_err(),
                expected,
                "bytes of {request:?}"
            );
        }
        // The refusal carries the status the error names.
        let refusal = Refusal::failed(err);
        assert_eq!(
            Some(refusal.response.status().as_u16()),
            expected.http_status()
        );
    }
}

/// An extended CONNECT is accepted with 200, without the key, accept key,
/// Upgrade or Connection (HTTP/2 forbids connection-specific headers),
/// with the subprotocol chosen.
#[test]
fn an_extended_connect_gets_200() {
    let request = h2(same);
    let upgrade = ServerUpgrade::new(&request, Some("websocket")).unwrap();
    assert_eq!(upgrade.mode(), Mode::ExtendedConnect);
    assert_eq!(upgrade.offered_protocols(), ["chat", "superchat"]);
    let up = accept(
        upgrade,
        Accept::default().with_protocol(Some("chat".into())),
    )
    .unwrap();
    assert_eq!(up.response.status(), 200);
    let h = up.response.headers();
    for absent in ["upgrade", "connection", "sec-websocket-accept"] {
        assert!(!h.contains_key(absent), "{absent} in {h:?}");
    }
    assert_eq!(h["sec-websocket-protocol"], "chat");
    assert_eq!(up.protocol.as_deref(), Some("chat"));
    // `:protocol` is a token, compared without case; a Host header serves
    // for the authority.
    let host_only = h2(|b| b.uri("/chat").header("host", "example.com"));
    assert!(ServerUpgrade::new(&host_only, Some("WebSocket")).is_ok());
}

/// Each RFC 8441 check: CONNECT (405 with `Allow: CONNECT`), `:protocol
/// websocket`, an authority, version 13 (426).
#[test]
fn every_extended_connect_check_is_made() {
    let cases: Vec<(http::Request<()>, Option<&str>, HandshakeError)> = vec![
        (
            h2(|b| b.method("GET")),
            Some("websocket"),
            HandshakeError::MethodNotConnect,
        ),
        // A GET upgrade sent over HTTP/2 is not an RFC 6455 upgrade.
        (
            h1(|b| b.version(http::Version::HTTP_2)),
            None,
            HandshakeError::MethodNotConnect,
        ),
        (h2(same), None, HandshakeError::BadHeader(":protocol")),
        (
            h2(same),
            Some("connect-udp"),
            HandshakeError::BadHeader(":protocol"),
        ),
        (
            h2(|b| b.uri("/chat")),
            Some("websocket"),
            HandshakeError::BadHeader(":authority"),
        ),
        (
            h2(same).tap_replace("sec-websocket-version", "12"),
            Some("websocket"),
            HandshakeError::UnsupportedVersion,
        ),
    ];
    for (request, protocol, expected) in cases {
        let err = ServerUpgrade::new(&request, protocol).unwrap_err();
        assert_eq!(err, expected, "{request:?}");
        let refusal = Refusal::failed(err);
        assert_eq!(
            Some(refusal.response.status().as_u16()),
            expected.http_status()
        );
        if expected == HandshakeError::MethodNotConnect {
            assert_eq!(refusal.response.status(), 405);
            assert_eq!(refusal.response.headers()["allow"], "CONNECT");
        }
    }
}

/// The byte-level handshake never takes a CONNECT: extended CONNECT
/// exists only in HTTP/2, which is not what comes in as bytes.
#[test]
fn the_byte_level_handshake_refuses_connect() {
    let mut hs = ServerHandshake::new(HandshakeLimits::default(), Instant::now());
    let err = hs
        .handle_read(
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap_err();
    assert_eq!(err, HandshakeError::MethodNotGet);
}

/// The accept hook works alike: the application's refusal is its own
/// response, and a subprotocol the client did not offer is a 400.
#[test]
fn the_decision_is_applied_alike_in_both_modes() {
    for (request, protocol) in [(h1(same), None), (h2(same), Some("websocket"))] {
        let upgrade = || ServerUpgrade::new(&request, protocol).unwrap();
        let mut no = http::Response::new(Bytes::from_static(b"go away"));
        *no.status_mut() = http::StatusCode::FORBIDDEN;
        let refusal = upgrade()
            .accept(Err(Box::new(no)), Config::default(), rng(), Instant::now())
            .unwrap_err();
        assert_eq!(refusal.response.status(), 403);
        assert_eq!(refusal.response.body(), "go away");
        assert_eq!(refusal.error, HandshakeError::RejectedByApplication(403));

        let refusal = accept(
            upgrade(),
            Accept::default().with_protocol(Some("nope".into())),
        )
        .unwrap_err();
        assert_eq!(refusal.response.status(), 400);
        assert_eq!(
            refusal.error,
            HandshakeError::ProtocolNotOffered("nope".into())
        );
    }
}

/// permessage-deflate is negotiated from the request's offers in both
/// modes, as the byte-level handshake negotiates it, and only when the
/// server enables it.
#[test]
fn permessage_deflate_is_negotiated_in_both_modes() {
    let offer = "permessage-deflate; client_max_window_bits";
    let requests = [
        (h1(|b| b.header("sec-websocket-extensions", offer)), None),
        (
            h2(|b| b.header("sec-websocket-extensions", offer)),
            Some("websocket"),
        ),
    ];
    let mut hs = ServerHandshake::new(HandshakeLimits::default(), Instant::now())
        .with_deflate(Some(DeflateConfig::default()));
    hs.handle_read(&to_bytes(&requests[0].0)).unwrap().unwrap();
    let byte_level = hs.deflate_params();
    assert!(byte_level.is_some());
    let element = parse_response(&hs.accept(&Accept::default()).unwrap()).headers()
        ["sec-websocket-extensions"]
        .clone();
    for (request, protocol) in &requests {
        let off = ServerUpgrade::new(request, *protocol).unwrap();
        assert_eq!(off.deflate_params(), None);
        let up = accept(off, Accept::default()).unwrap();
        assert!(!up
            .response
            .headers()
            .contains_key("sec-websocket-extensions"));

        let on = ServerUpgrade::new(request, *protocol)
            .unwrap()
            .with_deflate(Some(DeflateConfig::default()));
        assert_eq!(on.deflate_params(), byte_level);
        let up = accept(on, Accept::default()).unwrap();
        assert_eq!(up.response.headers()["sec-websocket-extensions"], element);
    }
}

/// The connection either mode opens is the same server connection:
/// it reads a client's masked frames, answers a ping, and completes the
/// close handshake.
#[test]
fn both_modes_open_the_same_connection() {
    for (request, protocol) in [(h1(same), None), (h2(same), Some("websocket"))] {
        let now = Instant::now();
        let upgrade = ServerUpgrade::new(&request, protocol).unwrap();
        let mut server = accept(upgrade, Accept::default()).unwrap().connection;
        let mut client = Connection::new(Role::Client, Config::without_keepalive(), rng(), now);
        client.send(Message::text("hello")).unwrap();
        client
            .send(Message::Ping(Bytes::from_static(b"p")))
            .unwrap();
        pump(&mut client, &mut server, now);
        assert_eq!(
            server.poll_event(),
            Some(Event::Message(Message::text("hello")))
        );
        assert_eq!(
            server.poll_event(),
            Some(Event::Ping(Bytes::from_static(b"p")))
        );
        pump(&mut server, &mut client, now);
        assert!(matches!(
            client.poll_event(),
            Some(Event::Pong { payload, .. }) if payload == "p"
        ));
        client.close(CloseCode::NORMAL, "bye").unwrap();
        pump(&mut client, &mut server, now);
        assert!(
            matches!(server.poll_event(), Some(Event::Close(Some(f))) if f.code == CloseCode::NORMAL)
        );
        pump(&mut server, &mut client, now);
        assert!(matches!(client.poll_event(), Some(Event::Close(Some(_)))));
        // The server ends the transport (or the stream) once the close
        // frames are exchanged; the client then is done.
        assert_eq!(server.state(), State::Closed, "{protocol:?}");
        client.handle_eof(now);
        assert_eq!(client.state(), State::Closed, "{protocol:?}");
    }
}

/// Moves every byte `from` has to send into `to`.
fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
    loop {
        let mut iov = [std::io::IoSlice::new(&[]); 16];
        let n = from.poll_transmit(&mut iov);
        let wire: Vec<u8> = iov[..n].iter().flat_map(|b| b.iter().copied()).collect();
        if wire.is_empty() {
            return;
        }
        from.advance_transmit(wire.len());
        to.handle_read(&wire, now);
    }
}

fn without(mut request: http::Request<()>, name: &str) -> http::Request<()> {
    request.headers_mut().remove(name);
    request
}

trait Replace {
    fn tap_replace(self, name: &'static str, value: &'static str) -> Self;
}

impl Replace for http::Request<()> {
    fn tap_replace(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers_mut()
            .insert(name, http::HeaderValue::from_static(value));
        self
    }
}

/// A route serving plain HTTP too tells WebSocket attempts (valid or
/// not) from other requests; `from_parts` judges as `new` does.
#[test]
fn websocket_attempts_are_told_from_other_requests() {
    use tether_core::handshake::requests_websocket;
    let empty = http::HeaderMap::new();
    let get = http::Method::GET;
    let connect = http::Method::CONNECT;
    assert!(requests_websocket(&get, h1(same).headers(), None));
    // Broken, but an attempt: the checks answer it.
    assert!(requests_websocket(
        &get,
        without(h1(same), "sec-websocket-key").headers(),
        None
    ));
    assert!(requests_websocket(&connect, &empty, Some("websocket")));
    assert!(!requests_websocket(&get, &empty, None));
    assert!(!requests_websocket(&connect, &empty, None));
    assert!(!requests_websocket(&connect, &empty, Some("connect-udp")));
    let h2c = h1(same).tap_replace("upgrade", "h2c");
    assert!(!requests_websocket(&get, h2c.headers(), None));

    for (request, protocol) in [(h1(same), None), (h2(same), Some("websocket")), (h2c, None)] {
        let (parts, ()) = request.clone().into_parts();
        let a = ServerUpgrade::new(&request, protocol).map(|u| u.mode());
        let b = ServerUpgrade::from_parts(&parts, protocol).map(|u| u.mode());
        assert_eq!(a, b);
    }
}

/// The RFC 8441 client and server in the core agree end to end: the
/// client's CONNECT head passes the server's checks, the server's 200
/// passes the client's, both agree on the subprotocol and on
/// permessage-deflate, and their connections talk.
#[test]
fn the_extended_connect_client_and_server_agree() {
    use tether_core::handshake::{ClientRequest, ConnectHandshake};
    let request = ClientRequest::from_url("wss://example.com:8443/chat?room=1")
        .unwrap()
        .with_protocols(vec!["v2".into(), "v1".into()])
        .with_origin(Some("https://example.com".into()))
        .with_deflate(vec![DeflateConfig::default()]);
    let (mut client, head) = ConnectHandshake::new(&request).unwrap();
    assert_eq!(head.method(), http::Method::CONNECT);
    assert_eq!(head.version(), http::Version::HTTP_2);
    assert_eq!(head.uri(), "https://example.com:8443/chat?room=1");
    assert!(!head.headers().contains_key("sec-websocket-key"));
    assert!(!head.headers().contains_key("upgrade"));

    let server = ServerUpgrade::new(&head, Some("websocket"))
        .unwrap()
        .with_deflate(Some(DeflateConfig::default()));
    assert_eq!(server.mode(), Mode::ExtendedConnect);
    assert_eq!(server.offered_protocols(), ["v2", "v1"]);
    let up = accept(server, Accept::default().with_protocol(Some("v1".into()))).unwrap();
    let response = client.handle_response(&up.response).unwrap();
    assert_eq!(response.protocol.as_deref(), Some("v1"));
    assert!(response.deflate.is_some());

    let now = Instant::now();
    let mut c = client.into_connection(Config::without_keepalive(), rng(), now);
    let mut s = up.connection;
    assert!(c.deflate_negotiated() && s.deflate_negotiated());
    c.send(Message::text("hello ".repeat(100))).unwrap();
    pump(&mut c, &mut s, now);
    assert_eq!(
        s.poll_event(),
        Some(Event::Message(Message::text("hello ".repeat(100))))
    );
}

/// The client's checks of the server's answer to an extended CONNECT:
/// anything but a 2xx is `Rejected` with its status; a subprotocol or an
/// extension it did not offer is refused, as over HTTP/1.1.
#[test]
fn the_extended_connect_client_checks_the_response() {
    use tether_core::handshake::{ClientRequest, ConnectHandshake};
    let request = ClientRequest::from_url("ws://example.com/chat")
        .unwrap()
        .with_protocols(vec!["v1".into()])
        .with_deflate(vec![]);
    let (_, head) = ConnectHandshake::new(&request).unwrap();
    assert_eq!(head.uri(), "http://example.com/chat");
    let answer = |status: u16, headers: &[(&'static str, &str)]| {
        let (mut client, _) = ConnectHandshake::new(&request).unwrap();
        let mut response = http::Response::new(());
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        for (n, v) in headers {
            response
                .headers_mut()
                .append(*n, http::HeaderValue::from_str(v).unwrap());
        }
        client.handle_response(&response).map(|r| r.protocol)
    };
    assert_eq!(answer(200, &[]), Ok(None));
    assert_eq!(
        answer(200, &[("sec-websocket-protocol", "v1")]),
        Ok(Some("v1".into()))
    );
    assert_eq!(answer(403, &[]), Err(HandshakeError::Rejected(403)));
    assert_eq!(answer(101, &[]), Err(HandshakeError::Rejected(101)));
    assert_eq!(
        answer(200, &[("sec-websocket-protocol", "v9")]),
        Err(HandshakeError::UnexpectedProtocol("v9".into()))
    );
    assert_eq!(
        answer(200, &[("sec-websocket-extensions", "permessage-deflate")]),
        Err(HandshakeError::UnexpectedExtension(
            "permessage-deflate".into()
        ))
    );
    // A request field that would break the head is refused up front.
    let bad = ClientRequest::from_url("ws://example.com/chat")
        .unwrap()
        .with_protocols(vec!["a b".into()]);
    assert!(matches!(
        ConnectHandshake::new(&bad),
        Err(HandshakeError::Malformed(_))
    ));
}

/// `failed_response` answers with the error's status, and a status no
/// HTTP response can carry (a hand-built `Rejected(42)`) becomes 400
/// instead of a panic.
#[test]
fn a_failed_response_carries_the_status_or_400() {
    use tether_core::handshake::failed_response;
    assert_eq!(
        failed_response(&HandshakeError::Rejected(404)).status(),
        404
    );
    assert_eq!(
        failed_response(&HandshakeError::UnsupportedVersion).status(),
        426
    );
    assert_eq!(failed_response(&HandshakeError::Rejected(42)).status(), 400);
    assert_eq!(
        failed_response(&HandshakeError::Rejected(1000)).status(),
        400
    );
}
