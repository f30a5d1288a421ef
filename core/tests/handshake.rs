//! The sans-IO opening handshake: the client's request and its checks of
//! the response, the server's checks of the request and its responses,
//! size limits and deadlines.

use std::time::{Duration, Instant};

use tether_core::handshake::server::error_response;
use tether_core::handshake::{
    accept_key, Accept, ClientHandshake, ClientRequest, HandshakeError, HandshakeLimits,
    ServerHandshake,
};
use tether_core::{http, Bytes, Config, Event, Message, Role, Xoshiro256};

// ---- helpers ----

fn request(protocols: &[&str]) -> ClientRequest {
    ClientRequest::default()
        .with_host("example.com:8080".into())
        .with_path("/chat?room=1".into())
        .with_origin(Some("https://example.com".into()))
        .with_protocols(protocols.iter().map(|p| p.to_string()).collect())
}

/// A client handshake from `seed`: its state and the request bytes.
fn client(seed: u64, protocols: &[&str]) -> (ClientHandshake, String) {
    let mut rng = Xoshiro256::from_seed(seed);
    let (hs, bytes) = ClientHandshake::new(
        &request(protocols),
        HandshakeLimits::default(),
        &mut rng,
        Instant::now(),
    )
    .expect("valid request");
    (hs, String::from_utf8(bytes).expect("ASCII request"))
}

/// The value of header `name` in an HTTP head (first match, any case).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// A 101 response for `key` with the given extra header lines.
fn response_for(key: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
        accept_key(key.as_bytes())
    )
}

/// A client handshake that offered `protocols`, fed `make(key)`.
fn client_result(
    protocols: &[&str],
    make: impl Fn(&str) -> String,
) -> Result<Option<tether_core::handshake::ClientResponse>, HandshakeError> {
    let (mut hs, req) = client(1, protocols);
    let key = header(&req, "Sec-WebSocket-Key").unwrap().to_owned();
    hs.handle_read(make(&key).as_bytes())
}

/// A valid request from a browser-like client, with the RFC 6455 example key.
const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn valid_request_with(replace: &str, with: &str) -> String {
    let req = format!(
        "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    assert!(req.contains(replace), "{replace:?} not in the request");
    req.replacen(replace, with, 1)
}

fn valid_request() -> String {
    valid_request_with("GET", "GET")
}

fn server() -> ServerHandshake {
    ServerHandshake::new(HandshakeLimits::default(), Instant::now())
}

/// The server's verdict on `request`, read in one piece.
fn server_result(request: &str) -> Result<Option<http::Request<()>>, HandshakeError> {
    server().handle_read(request.as_bytes())
}

/// The status line of an encoded response.
fn status_line(response: &[u8]) -> String {
    let s = String::from_utf8_lossy(response);
    s.split("\r\n").next().unwrap().to_owned()
}

// ---- client request ----

/// The request carries every header RFC 6455 requires, and a fresh
/// 16-byte base64 key.
#[test]
fn client_request_has_required_headers() {
    let (_, req) = client(1, &["chat", "superchat"]);
    assert!(req.starts_with("GET /chat?room=1 HTTP/1.1\r\n"), "{req}");
    assert!(req.ends_with("\r\n\r\n"));
    assert_eq!(header(&req, "Host"), Some("example.com:8080"));
    assert_eq!(header(&req, "Upgrade"), Some("websocket"));
    assert_eq!(header(&req, "Connection"), Some("Upgrade"));
    assert_eq!(header(&req, "Sec-WebSocket-Version"), Some("13"));
    assert_eq!(header(&req, "Origin"), Some("https://example.com"));
    assert_eq!(
        header(&req, "Sec-WebSocket-Protocol"),
        Some("chat, superchat")
    );
    let key = header(&req, "Sec-WebSocket-Key").unwrap();
    assert_eq!(key.len(), 24);
    assert!(key.ends_with("=="));
    assert!(key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));

    let (_, other) = client(2, &[]);
    let other_key = header(&other, "Sec-WebSocket-Key").unwrap();
    assert_ne!(key, other_key, "a fresh key per seed");
    assert_eq!(
        header(&other, "Sec-WebSocket-Protocol"),
        None,
        "nothing offered, no header"
    );
    assert!(client(1, &[]).1.contains(key), "same seed, same key");
}

/// Extra request headers (auth, cookies) are written.
#[test]
fn client_request_extra_headers() {
    let mut req = request(&[]);
    req.headers
        .insert("authorization", "Bearer t0ken".parse().unwrap());
    let (_, bytes) = ClientHandshake::new(
        &req,
        HandshakeLimits::default(),
        &mut Xoshiro256::from_seed(3),
        Instant::now(),
    )
    .expect("valid request");
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(header(&text, "Authorization"), Some("Bearer t0ken"));
}

/// URLs become Host and path; other schemes and user info are refused.
#[test]
fn client_request_from_url() {
    let r = ClientRequest::from_url("ws://example.com:9001/runCase?case=3&agent=x").unwrap();
    assert_eq!(
        (r.host.as_str(), r.path.as_str()),
        ("example.com:9001", "/runCase?case=3&agent=x")
    );
    let r = ClientRequest::from_url("wss://example.com").unwrap();
    assert_eq!((r.host.as_str(), r.path.as_str()), ("example.com", "/"));
    for bad in [
        "http://example.com/",
        "ws://user:pw@example.com/",
        "not a url",
        "ws:///nohost",
    ] {
        assert!(
            matches!(
                ClientRequest::from_url(bad),
                Err(HandshakeError::Malformed(_))
            ),
            "{bad}"
        );
    }
}

// ---- client checks of the response ----

/// A correct 101 is accepted, with the chosen subprotocol.
#[test]
fn client_accepts_valid_response() {
    let resp = client_result(&["chat", "superchat"], |k| {
        response_for(k, "Sec-WebSocket-Protocol: superchat\r\n")
    })
    .unwrap()
    .expect("complete");
    assert_eq!(resp.protocol.as_deref(), Some("superchat"));
    assert_eq!(resp.response.status(), 101);
}

/// Token lists and case are handled as HTTP says.
#[test]
fn client_accepts_token_lists_and_any_case() {
    let extra_forms = [
        ("Upgrade: websocket", "uPgRaDe: WebSocket"),
        ("Connection: Upgrade", "Connection: keep-alive, Upgrade"),
        ("Connection: Upgrade", "CONNECTION: upgrade"),
    ];
    for (from, to) in extra_forms {
        let result = client_result(&[], |k| response_for(k, "").replace(from, to));
        assert!(matches!(result, Ok(Some(_))), "{to}: {result:?}");
    }
}

/// Any status but 101 is a rejection carrying the status.
#[test]
fn client_reports_non_101_status() {
    for status in [200, 301, 400, 403, 426, 503] {
        let result = client_result(&[], |_| {
            format!("HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\n\r\n")
        });
        assert_eq!(result.unwrap_err(), HandshakeError::Rejected(status));
    }
}

/// Missing or wrong Upgrade and Connection headers are refused.
#[test]
fn client_requires_upgrade_and_connection() {
    let cases = [
        ("Upgrade: websocket\r\n", "", "Upgrade"),
        ("Upgrade: websocket", "Upgrade: h2c", "Upgrade"),
        ("Connection: Upgrade\r\n", "", "Connection"),
        (
            "Connection: Upgrade",
            "Connection: keep-alive",
            "Connection",
        ),
        ("Connection: Upgrade", "Connection: upgraded", "Connection"),
    ];
    for (from, to, name) in cases {
        let result = client_result(&[], |k| response_for(k, "").replace(from, to));
        assert_eq!(
            result.unwrap_err(),
            HandshakeError::BadHeader(name),
            "{to:?}"
        );
    }
}

/// The accept value must be derived from our key.
#[test]
fn client_checks_accept_key() {
    let wrong = client_result(&[], |_| response_for("dGhlIHNhbXBsZSBub25jZQ==", ""));
    assert_eq!(wrong.unwrap_err(), HandshakeError::AcceptMismatch);
    let missing = client_result(&[], |k| {
        let r = response_for(k, "");
        let line = format!("Sec-WebSocket-Accept: {}\r\n", accept_key(k.as_bytes()));
        r.replace(&line, "")
    });
    assert_eq!(missing.unwrap_err(), HandshakeError::AcceptMismatch);
}

/// A subprotocol the client did not offer, or more than one, is refused.
#[test]
fn client_refuses_unoffered_subprotocol() {
    let result = client_result(&["chat"], |k| {
        response_for(k, "Sec-WebSocket-Protocol: superchat\r\n")
    });
    assert!(matches!(result, Err(HandshakeError::UnexpectedProtocol(p)) if p == "superchat"));
    let result = client_result(&[], |k| response_for(k, "Sec-WebSocket-Protocol: chat\r\n"));
    assert!(matches!(result, Err(HandshakeError::UnexpectedProtocol(_))));
    let result = client_result(&["chat", "superchat"], |k| {
        response_for(k, "Sec-WebSocket-Protocol: chat, superchat\r\n")
    });
    assert!(matches!(result, Err(HandshakeError::UnexpectedProtocol(_))));
}

/// The client offers no extension, so any accepted extension is refused.
#[test]
fn client_refuses_any_extension() {
    let result = client_result(&[], |k| {
        response_for(k, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
    });
    assert_eq!(
        result.unwrap_err(),
        HandshakeError::UnexpectedExtension("permessage-deflate".into())
    );
}

/// A response fed a byte at a time completes on its last byte, and bytes
/// after the head (the server's first frames) are handed back.
#[test]
fn client_response_byte_by_byte_with_leftover() {
    let (mut hs, req) = client(9, &[]);
    let key = header(&req, "Sec-WebSocket-Key").unwrap();
    let head = response_for(key, "");
    let frame = [0x81, 0x02, b'h', b'i'];
    let bytes = [head.as_bytes(), &frame].concat();
    for (i, b) in bytes[..head.len() - 1].iter().enumerate() {
        assert!(
            hs.handle_read(std::slice::from_ref(b)).unwrap().is_none(),
            "complete after {i} bytes"
        );
    }
    hs.handle_read(&bytes[head.len() - 1..])
        .unwrap()
        .expect("complete");
    // The connection it hands over has already read the frame.
    let now = Instant::now();
    let mut conn = hs.into_connection(
        Config::without_keepalive(),
        Box::new(Xoshiro256::from_seed(1)),
        now,
    );
    assert_eq!(conn.role(), Role::Client);
    assert_eq!(conn.poll_event(), Some(Event::Message(Message::text("hi"))));
    assert_eq!(conn.poll_event(), None);
}

/// An endless response head fails instead of buffering forever.
#[test]
fn client_refuses_oversized_response() {
    let limits = HandshakeLimits::default().with_max_head_size(1024);
    let (mut hs, _) = ClientHandshake::new(
        &request(&[]),
        limits,
        &mut Xoshiro256::from_seed(1),
        Instant::now(),
    )
    .expect("valid request");
    assert!(hs
        .handle_read(b"HTTP/1.1 101 Switching Protocols\r\nX-Pad: ")
        .unwrap()
        .is_none());
    let mut result = Ok(None);
    for _ in 0..100 {
        result = hs.handle_read(&[b'a'; 64]);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result.unwrap_err(), HandshakeError::HeadTooLarge);
}

/// Garbage is malformed, not a hang.
#[test]
fn client_refuses_garbage() {
    let result = client_result(&[], |_| "\x00\x01\x02 not http\r\n\r\n".to_owned());
    assert!(
        matches!(result, Err(HandshakeError::Malformed(_))),
        "{result:?}"
    );
}

/// The client handshake times out at its deadline.
#[test]
fn client_handshake_timeout() {
    let now = Instant::now();
    let limits = HandshakeLimits::default().with_timeout(Duration::from_secs(5));
    let (hs, _) = ClientHandshake::new(&request(&[]), limits, &mut Xoshiro256::from_seed(1), now)
        .expect("valid request");
    assert_eq!(hs.poll_timeout(), now + Duration::from_secs(5));
    assert_eq!(hs.handle_timeout(now + Duration::from_millis(4999)), Ok(()));
    assert_eq!(
        hs.handle_timeout(now + Duration::from_secs(5)),
        Err(HandshakeError::TimedOut)
    );
}

// ---- server ----

/// A valid request is accepted with the RFC 6455 accept value and the
/// chosen subprotocol; the application sees the headers.
#[test]
fn server_accepts_valid_request() {
    let mut hs = server();
    let req = hs
        .handle_read(valid_request().as_bytes())
        .unwrap()
        .expect("complete");
    assert_eq!(req.method(), http::Method::GET);
    assert_eq!(req.uri().path(), "/chat");
    assert_eq!(req.headers()["origin"], "http://example.com");
    assert_eq!(hs.offered_protocols(), ["chat", "superchat"]);
    let mut accept = Accept::default().with_protocol(Some("superchat".into()));
    accept.headers.insert("set-cookie", "id=1".parse().unwrap());
    let response = String::from_utf8(hs.accept(&accept).unwrap()).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{response}"
    );
    assert!(response.ends_with("\r\n\r\n"));
    assert_eq!(
        header(&response, "Sec-WebSocket-Accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(header(&response, "Upgrade"), Some("websocket"));
    assert_eq!(header(&response, "Connection"), Some("Upgrade"));
    assert_eq!(
        header(&response, "Sec-WebSocket-Protocol"),
        Some("superchat")
    );
    assert_eq!(header(&response, "Set-Cookie"), Some("id=1"));
    assert!(hs.take_leftover().is_empty());
}

/// Without a chosen subprotocol the response carries none.
#[test]
fn server_accepts_without_subprotocol() {
    let mut hs = server();
    hs.handle_read(valid_request().as_bytes()).unwrap().unwrap();
    let response = String::from_utf8(hs.accept(&Accept::default()).unwrap()).unwrap();
    assert_eq!(header(&response, "Sec-WebSocket-Protocol"), None);
}

/// The application may not choose a subprotocol the client did not offer.
#[test]
fn server_refuses_unoffered_subprotocol() {
    let mut hs = server();
    hs.handle_read(valid_request().as_bytes()).unwrap().unwrap();
    let accept = Accept::default().with_protocol(Some("mqtt".into()));
    assert_eq!(
        hs.accept(&accept).unwrap_err(),
        HandshakeError::ProtocolNotOffered("mqtt".into())
    );
}

/// A request split byte by byte completes, and frames sent right behind it
/// are kept for the connection.
#[test]
fn server_request_byte_by_byte_with_leftover() {
    let mut hs = server();
    let req = valid_request();
    let frame = [0x81, 0x80, 1, 2, 3, 4];
    let bytes = [req.as_bytes(), &frame].concat();
    for b in &bytes[..req.len() - 1] {
        assert!(hs.handle_read(std::slice::from_ref(b)).unwrap().is_none());
    }
    assert!(hs.handle_read(&bytes[req.len() - 1..]).unwrap().is_some());
    assert_eq!(&hs.take_leftover()[..], &frame);
}

/// Methods other than GET get 405.
#[test]
fn server_refuses_non_get() {
    let err = server_result(&valid_request_with("GET /chat", "POST /chat")).unwrap_err();
    assert_eq!(err, HandshakeError::MethodNotGet);
    let response = error_response(&err);
    assert!(
        response.starts_with(b"HTTP/1.1 405"),
        "{}",
        status_line(&response)
    );
    assert_eq!(
        header(&String::from_utf8_lossy(&response), "Allow"),
        Some("GET")
    );
}

/// HTTP/1.0 cannot upgrade.
#[test]
fn server_refuses_http_1_0() {
    let err = server_result(&valid_request_with("HTTP/1.1", "HTTP/1.0")).unwrap_err();
    assert_eq!(err, HandshakeError::HttpVersion);
    assert!(status_line(&error_response(&err)).starts_with("HTTP/1.1 505"));
}

/// Host, Upgrade and Connection are required (token lists, any case).
#[test]
fn server_checks_required_headers() {
    let cases = [
        ("Host: server.example.com\r\n", "", "Host"),
        ("Upgrade: websocket\r\n", "", "Upgrade"),
        ("Upgrade: websocket", "Upgrade: h2c", "Upgrade"),
        ("Connection: Upgrade\r\n", "", "Connection"),
        (
            "Connection: Upgrade",
            "Connection: keep-alive",
            "Connection",
        ),
    ];
    for (from, to, name) in cases {
        let err = server_result(&valid_request_with(from, to)).unwrap_err();
        assert_eq!(err, HandshakeError::BadHeader(name), "{to:?}");
        assert!(status_line(&error_response(&err)).starts_with("HTTP/1.1 400"));
    }
    for (from, to) in [
        ("Connection: Upgrade", "Connection: keep-alive, Upgrade"),
        ("Upgrade: websocket", "upgrade: WebSocket"),
    ] {
        assert!(
            server_result(&valid_request_with(from, to))
                .unwrap()
                .is_some(),
            "{to}"
        );
    }
}

/// The key must be base64 of exactly 16 bytes.
#[test]
fn server_checks_the_key() {
    let line = format!("Sec-WebSocket-Key: {RFC_KEY}\r\n");
    let bad_keys = [
        "",
        "Sec-WebSocket-Key: \r\n",
        "Sec-WebSocket-Key: not base64!!\r\n",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j\r\n", // 15 bytes
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZTEy\r\n", // 17+ bytes
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n", // 21 bytes
    ];
    for bad in bad_keys {
        let err = server_result(&valid_request_with(&line, bad)).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::BadHeader("Sec-WebSocket-Key"),
            "{bad:?}"
        );
    }
}

/// Any version but 13 gets 426 naming the supported version.
#[test]
fn server_refuses_other_versions() {
    for version in [
        "Sec-WebSocket-Version: 8\r\n",
        "Sec-WebSocket-Version: 14\r\n",
        "",
    ] {
        let err = server_result(&valid_request_with(
            "Sec-WebSocket-Version: 13\r\n",
            version,
        ))
        .unwrap_err();
        assert_eq!(err, HandshakeError::UnsupportedVersion, "{version:?}");
        let response = String::from_utf8(error_response(&err)).unwrap();
        assert!(response.starts_with("HTTP/1.1 426"), "{response}");
        assert_eq!(header(&response, "Sec-WebSocket-Version"), Some("13"));
    }
}

/// A head past max_head_size fails with 431, even when it never ends.
#[test]
fn server_refuses_oversized_heads() {
    let limits = HandshakeLimits::default().with_max_head_size(512);
    // A complete head that is too large.
    let big = valid_request_with("Origin:", &format!("X-Pad: {}\r\nOrigin:", "a".repeat(600)));
    let err = ServerHandshake::new(limits.clone(), Instant::now())
        .handle_read(big.as_bytes())
        .unwrap_err();
    assert_eq!(err, HandshakeError::HeadTooLarge);
    assert!(status_line(&error_response(&err)).starts_with("HTTP/1.1 431"));

    // A head that never completes: an error once the limit is passed.
    let mut hs = ServerHandshake::new(limits, Instant::now());
    assert!(hs
        .handle_read(b"GET / HTTP/1.1\r\nX-Pad: ")
        .unwrap()
        .is_none());
    let mut fed = 24;
    let err = loop {
        match hs.handle_read(&[b'a'; 100]) {
            Ok(None) => fed += 100,
            Ok(Some(_)) => panic!("no request in padding"),
            Err(e) => break e,
        }
        assert!(fed <= 600, "still buffering after {fed} bytes");
    };
    assert_eq!(err, HandshakeError::HeadTooLarge);
}

/// More header fields than max_headers fails with 431.
#[test]
fn server_refuses_too_many_headers() {
    let limits = HandshakeLimits::default().with_max_headers(8);
    let extra: String = (0..10).map(|i| format!("X-H{i}: v\r\n")).collect();
    let req = valid_request_with("Origin:", &format!("{extra}Origin:"));
    let err = ServerHandshake::new(limits, Instant::now())
        .handle_read(req.as_bytes())
        .unwrap_err();
    assert_eq!(err, HandshakeError::TooManyHeaders);
    assert!(status_line(&error_response(&err)).starts_with("HTTP/1.1 431"));
}

/// Garbage gets 400.
#[test]
fn server_refuses_garbage() {
    let err = server_result("\x16\x03\x01 tls hello\r\n\r\n").unwrap_err();
    assert!(matches!(err, HandshakeError::Malformed(_)), "{err:?}");
    assert!(status_line(&error_response(&err)).starts_with("HTTP/1.1 400"));
}

/// reject() writes the application's status, headers and body.
#[test]
fn server_reject_writes_the_application_response() {
    let mut hs = server();
    hs.handle_read(valid_request().as_bytes()).unwrap().unwrap();
    let response = http::Response::builder()
        .status(403)
        .header("WWW-Authenticate", "Bearer")
        .body(Bytes::from_static(b"go away"))
        .unwrap();
    let bytes = String::from_utf8(hs.reject(&response)).unwrap();
    assert!(bytes.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{bytes}");
    assert_eq!(header(&bytes, "www-authenticate"), Some("Bearer"));
    assert_eq!(header(&bytes, "Content-Length"), Some("7"));
    assert!(bytes.ends_with("\r\n\r\ngo away"), "{bytes}");
}

/// The server handshake times out at its deadline.
#[test]
fn server_handshake_timeout() {
    let now = Instant::now();
    let hs = ServerHandshake::new(HandshakeLimits::default(), now);
    let deadline = now + HandshakeLimits::default().timeout;
    assert_eq!(hs.poll_timeout(), deadline);
    assert_eq!(
        hs.handle_timeout(deadline - Duration::from_millis(1)),
        Ok(())
    );
    assert_eq!(hs.handle_timeout(deadline), Err(HandshakeError::TimedOut));
}

/// A client and a server handshake agree end to end.
#[test]
fn client_and_server_agree() {
    let (mut client, req) = client(5, &["v2.proto", "v1.proto"]);
    let mut server = server();
    server
        .handle_read(req.as_bytes())
        .unwrap()
        .expect("valid request");
    let choice = server.offered_protocols()[1].clone();
    let answer = server.answer(Ok(Accept::default().with_protocol(Some(choice))));
    assert_eq!(answer.result, Ok(Some("v1.proto".to_owned())));
    let resp = client
        .handle_read(&answer.bytes)
        .unwrap()
        .expect("complete");
    assert_eq!(resp.protocol.as_deref(), Some("v1.proto"));

    // Each side hands over its connection, and they talk.
    let now = Instant::now();
    let rng = || Box::new(Xoshiro256::from_seed(2));
    let mut c = client.into_connection(Config::without_keepalive(), rng(), now);
    let mut s = server.into_connection(Config::without_keepalive(), rng(), now);
    assert_eq!(s.role(), Role::Server);
    c.send(Message::text("hello")).unwrap();
    let mut iov = [std::io::IoSlice::new(&[]); 8];
    let n = c.poll_transmit(&mut iov);
    let wire: Vec<u8> = iov[..n].iter().flat_map(|b| b.iter().copied()).collect();
    s.handle_read(&wire, now);
    assert_eq!(s.poll_event(), Some(Event::Message(Message::text("hello"))));
}

/// The server's answer to each decision: the 101, the application's
/// refusal (its status and body), or 400 for a subprotocol the client did
/// not offer; a request that failed its checks gets its error response.
#[test]
fn the_server_answers_each_decision() {
    let answered = |decision| {
        let mut hs = server();
        hs.handle_read(valid_request().as_bytes()).unwrap().unwrap();
        hs.answer(decision)
    };
    let ok = answered(Ok(Accept::default()));
    assert!(ok.bytes.starts_with(b"HTTP/1.1 101 "));
    assert_eq!(ok.result, Ok(None));

    let mut no = http::Response::new(Bytes::from_static(b"go away"));
    *no.status_mut() = http::StatusCode::FORBIDDEN;
    let refused = answered(Err(Box::new(no)));
    assert!(refused.bytes.starts_with(b"HTTP/1.1 403 "));
    assert!(refused.bytes.ends_with(b"go away"));
    assert_eq!(
        refused.result,
        Err(HandshakeError::RejectedByApplication(403))
    );

    let unoffered = answered(Ok(Accept::default().with_protocol(Some("nope".into()))));
    assert!(unoffered.bytes.starts_with(b"HTTP/1.1 400 "));
    assert_eq!(
        unoffered.result,
        Err(HandshakeError::ProtocolNotOffered("nope".into()))
    );

    let failed = tether_core::handshake::Answer::failed(HandshakeError::UnsupportedVersion);
    assert!(failed.bytes.starts_with(b"HTTP/1.1 426 "));
    assert_eq!(failed.result, Err(HandshakeError::UnsupportedVersion));
}

/// Request fields that would break the HTTP head are refused, not written.
#[test]
fn client_request_fields_cannot_inject_headers() {
    let limits = HandshakeLimits::default;
    let mut rng = Xoshiro256::from_seed(9);
    let now = Instant::now();
    let mut bad = vec![];
    let mut r = request(&[]);
    r.host = "example.com\r\nX-Evil: 1".into();
    bad.push(r);
    let mut r = request(&[]);
    r.path = "/a\r\nX-Evil: 1".into();
    bad.push(r);
    let mut r = request(&[]);
    r.path = "no-slash".into();
    bad.push(r);
    let mut r = request(&[]);
    r.origin = Some("http://a\nX: y".into());
    bad.push(r);
    let mut r = request(&[]);
    r.protocols = vec!["chat, evil".into()];
    bad.push(r);
    for r in bad {
        let err = ClientHandshake::new(&r, limits(), &mut rng, now).unwrap_err();
        assert!(
            matches!(err, HandshakeError::Malformed(_)),
            "{r:?}: {err:?}"
        );
    }
}

#[test]
fn a_wss_url_marks_the_request_secure() {
    let plain = ClientRequest::from_url("ws://example.com/a?b").unwrap();
    assert!(!plain.secure);
    for url in ["wss://example.com/a?b", "WSS://example.com/a?b"] {
        let r = ClientRequest::from_url(url).unwrap();
        assert!(r.secure, "{url}");
        assert_eq!((r.host.as_str(), r.path.as_str()), ("example.com", "/a?b"));
    }
    assert!(ClientRequest::from_url("https://example.com/").is_err());
}

/// Each handshake error names its HTTP status where one is involved, and
/// the server's error response carries exactly that status.
#[test]
fn handshake_errors_name_their_http_status() {
    use tether_core::handshake::server::error_response;
    let cases = [
        (HandshakeError::UnsupportedVersion, Some(426)),
        (HandshakeError::HeadTooLarge, Some(431)),
        (HandshakeError::TooManyHeaders, Some(431)),
        (HandshakeError::MethodNotGet, Some(405)),
        (HandshakeError::MethodNotConnect, Some(405)),
        (HandshakeError::NotUpgradable, Some(500)),
        (HandshakeError::HttpVersion, Some(505)),
        (HandshakeError::BadHeader("Upgrade"), Some(400)),
        (HandshakeError::Malformed("x".into()), Some(400)),
        (HandshakeError::Rejected(503), Some(503)),
        (HandshakeError::RejectedByApplication(401), Some(401)),
        (HandshakeError::AcceptMismatch, None),
        (HandshakeError::TimedOut, None),
        (HandshakeError::Eof, None),
    ];
    for (e, status) in cases {
        assert_eq!(e.http_status(), status, "{e:?}");
        let wrapped = tether_core::Error::Handshake(e.clone());
        assert_eq!(wrapped.http_status(), status);
        assert_eq!(wrapped.close_code(), None);
        if let Some(s) = status.filter(|_| {
            !matches!(
                e,
                HandshakeError::Rejected(_) | HandshakeError::RejectedByApplication(_)
            )
        }) {
            let response = error_response(&e);
            assert!(
                response.starts_with(format!("HTTP/1.1 {s} ").as_bytes()),
                "{e:?}"
            );
        }
    }
}

/// Connection errors name the close code they ended the connection with.
#[test]
fn connection_errors_name_their_close_code() {
    use tether_core::{CloseCode, Error, ProtocolError};
    assert_eq!(
        Error::Protocol(ProtocolError::InvalidUtf8).close_code(),
        Some(CloseCode::INVALID_PAYLOAD)
    );
    assert_eq!(
        Error::Protocol(ProtocolError::FrameTooLarge { size: 9, limit: 8 }).close_code(),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );
    assert_eq!(
        Error::KeepaliveTimeout.close_code(),
        Some(CloseCode::INTERNAL_ERROR)
    );
    assert_eq!(
        Error::AbnormalClosure.close_code(),
        Some(CloseCode::ABNORMAL)
    );
    assert_eq!(Error::Closed.close_code(), None);
    assert_eq!(Error::Closed.http_status(), None);
}

/// A malformed byte past max_head_size gives the same error (431) whether
/// the head arrives in one read or in small ones: the outcome depends on
/// the bytes, not on the reads (found by the handshake fuzz targets).
#[test]
fn oversized_head_fails_alike_for_any_reads() {
    let limits = HandshakeLimits::default().with_max_head_size(16);
    let req = b"GET /a-long-path HTTP/1.1\r\n\x00bad\r\n\r\n";
    let response = b"HTTP/1.1 101 Switching Protocols\r\n\x00bad\r\n\r\n";
    let server = |pieces: &[&[u8]]| {
        let mut hs = ServerHandshake::new(limits.clone(), Instant::now());
        pieces
            .iter()
            .find_map(|p| hs.handle_read(p).transpose())
            .map(|r| r.map(|_| ()))
    };
    let client = |pieces: &[&[u8]]| {
        let (mut hs, _) = ClientHandshake::new(
            &request(&[]),
            limits.clone(),
            &mut Xoshiro256::from_seed(1),
            Instant::now(),
        )
        .expect("valid request");
        pieces
            .iter()
            .find_map(|p| hs.handle_read(p).transpose())
            .map(|r| r.map(|_| ()))
    };
    for (run, head) in [
        (&server as &dyn Fn(&[&[u8]]) -> _, &req[..]),
        (&client, &response[..]),
    ] {
        let whole = run(&[head]);
        let split = run(&[&head[..20], &head[20..]]);
        assert_eq!(whole, Some(Err(HandshakeError::HeadTooLarge)));
        assert_eq!(split, whole);
    }
}
