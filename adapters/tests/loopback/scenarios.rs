//! The scenarios, each written once against [`Rt`] and run on every
//! runtime by `runtime_suite!` in `main.rs`. A scenario is an
//! `async fn name<R: Rt>()` that panics on failure.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{future, stream, SinkExt, Stream, StreamExt};
use tether::core::handshake::HandshakeError;
use tether::core::{Error as WsError, ProtocolError};
use tether::http::{self, header, HeaderValue, StatusCode};
use tether::{
    Accept, Bytes, ClientOptions, CloseCode, CloseFrame, Config, Error, HandshakeLimits, Message,
    ServerOptions, State,
};

use crate::harness::{Rt, Socket, Task, TxHalf, Ws};
use crate::raw::{self, RawPeer};

const MIB: usize = 1 << 20;

// ---- test data ----

/// One step of splitmix64: a fast, seedable, well-mixed sequence.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `len` pseudo-random bytes determined by `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Exactly `len` bytes of valid UTF-8 determined by `seed`, mostly
/// multi-byte characters (2, 3 and 4 bytes), so that fragment and read
/// boundaries fall inside characters.
pub fn random_text(seed: u64, len: usize) -> String {
    const CHARS: [char; 10] = ['a', 'Z', '7', ' ', 'é', 'ж', '€', '中', '😀', '𝄞'];
    let mut state = seed;
    let mut out = String::with_capacity(len);
    'fill: loop {
        let mut r = splitmix(&mut state);
        for _ in 0..16 {
            let c = CHARS[(r & 0xf) as usize % CHARS.len()];
            r >>= 4;
            if out.len() + c.len_utf8() > len {
                break 'fill;
            }
            out.push(c);
        }
    }
    while out.len() < len {
        out.push('.');
    }
    out
}

fn text(seed: u64, len: usize) -> Message {
    let s = random_text(seed, len);
    if len >= 64 {
        assert!(
            s.chars().count() < len,
            "test text should contain multi-byte characters"
        );
    }
    Message::text(s)
}

fn binary(seed: u64, len: usize) -> Message {
    Message::binary(random_bytes(seed, len))
}

fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode(code),
        reason: reason.to_owned(),
    }))
}

// ---- assertions ----

/// Compares large payloads without printing megabytes on failure.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first differing byte at {first:?}",
            got.len(),
            want.len()
        );
    }
}

fn assert_same_message(got: &Message, want: &Message, what: &str) {
    match (got, want) {
        (Message::Text(g), Message::Text(w)) => assert_same_bytes(g.as_bytes(), w.as_bytes(), what),
        (Message::Binary(g), Message::Binary(w)) => assert_same_bytes(g, w, what),
        _ => panic!("{what}: got {}, want {}", describe(got), describe(want)),
    }
}

fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) => format!("Text of {} bytes", t.len()),
        Message::Binary(b) => format!("Binary of {} bytes", b.len()),
        other => format!("{other:?}"),
    }
}

fn is_closed(r: &Result<(), Error>) -> bool {
    matches!(r, Err(Error::WebSocket(WsError::Closed)))
}

// ---- helpers ----

/// The next item, which must be a message.
async fn next_message<S>(s: &mut S, what: &str) -> Message
where
    S: Stream<Item = Result<Message, Error>> + Unpin,
{
    match s.next().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => panic!("{what}: stream error {e:?}"),
        None => panic!("{what}: stream ended"),
    }
}

/// The next text or binary message, skipping pings and pongs (keepalive
/// may send them in a slow run).
async fn next_data<S>(s: &mut S, what: &str) -> Message
where
    S: Stream<Item = Result<Message, Error>> + Unpin,
{
    loop {
        match next_message(s, what).await {
            Message::Ping(_) | Message::Pong(_) => continue,
            m => return m,
        }
    }
}

/// Listens, and spawns a task that accepts one connection with default
/// options and hands it to `handler`. Returns the URL and the task.
async fn serve<R, F, Fut>(handler: F) -> (String, Task<Fut::Output>)
where
    R: Rt,
    F: FnOnce(Ws<R>) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (listener, addr) = R::listen().await;
    let task = R::spawn(async move {
        let tcp = R::accept_tcp(&listener).await;
        let ws = R::accept(tcp).await.expect("server: handshake");
        handler(ws).await
    });
    (format!("ws://{addr}/"), task)
}

/// Like [`serve`], with `accept_with` and the given options.
async fn serve_with_options<R, F, Fut>(
    options: ServerOptions,
    handler: F,
) -> (String, Task<Fut::Output>)
where
    R: Rt,
    F: FnOnce(Ws<R>) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (listener, addr) = R::listen().await;
    let task = R::spawn(async move {
        let tcp = R::accept_tcp(&listener).await;
        let ws = R::accept_with(tcp, options, |_| Ok(Accept::default()))
            .await
            .expect("server: handshake");
        handler(ws).await
    });
    (format!("ws://{addr}/"), task)
}

/// Every item of the stream, to its end.
async fn drain<S>(s: &mut S, limit: usize) -> Vec<Result<Message, Error>>
where
    S: Stream<Item = Result<Message, Error>> + Unpin,
{
    let mut items = Vec::new();
    while let Some(item) = s.next().await {
        items.push(item);
        assert!(items.len() <= limit, "more than {limit} items: {items:?}");
    }
    items
}

/// Echoes text and binary messages until the stream ends; returns the
/// other messages it saw (pings, close), in order.
async fn echo<R: Rt>(mut ws: Ws<R>) -> Vec<Message> {
    let mut control = Vec::new();
    while let Some(m) = ws.next().await {
        match m.expect("echo server: stream error") {
            m @ (Message::Text(_) | Message::Binary(_)) => {
                ws.send(m).await.expect("echo server: send")
            }
            other => control.push(other),
        }
    }
    control
}

/// `seen` without pings and pongs: in a run slowed down past the default
/// keepalive interval, either side may ping on its own.
fn without_keepalive(seen: Vec<Message>) -> Vec<Message> {
    seen.into_iter()
        .filter(|m| !matches!(m, Message::Ping(_) | Message::Pong(_)))
        .collect()
}

/// Reads the echoes of `want`, in order.
async fn expect_echoes<S>(rx: &mut S, want: &[Message])
where
    S: Stream<Item = Result<Message, Error>> + Unpin,
{
    for (i, w) in want.iter().enumerate() {
        let what = format!("echo {i} of {}", want.len());
        let got = next_data(rx, &what).await;
        assert_same_message(&got, w, &what);
    }
}

// ---- 1. echo of every length encoding ----

/// Payload sizes at the frame header's length boundaries, an empty one,
/// and one spanning many fragments and reads.
const ECHO_SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 16 * MIB];

async fn echo_sizes<R: Rt>(options: Option<ClientOptions>, make: fn(u64, usize) -> Message) {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let mut ws = match options {
        None => R::connect(&url).await,
        Some(options) => R::connect_with(&url, options).await,
    }
    .expect("connect");
    for (i, len) in ECHO_SIZES.into_iter().enumerate() {
        let msg = make(i as u64, len);
        assert_eq!(msg.len(), len);
        ws.send(msg.clone()).await.expect("send");
        let what = format!("echo of {len} bytes");
        let got = next_data(&mut ws, &what).await;
        assert_same_message(&got, &msg, &what);
    }
    ws.close_handshake(CloseCode::NORMAL, "done")
        .await
        .expect("close");
    assert_eq!(
        without_keepalive(server.await),
        vec![close_message(1000, "done")]
    );
}

/// Client options that offer no compression, so that frames carry the
/// payload as is (with the default options, peers built with the
/// `deflate` feature compress).
fn uncompressed() -> ClientOptions {
    #[allow(unused_mut)]
    let mut options = ClientOptions::default();
    #[cfg(feature = "deflate")]
    options.deflate.clear();
    options
}

pub async fn echo_text_sizes<R: Rt>() {
    echo_sizes::<R>(None, text).await;
}

pub async fn echo_binary_sizes<R: Rt>() {
    echo_sizes::<R>(None, binary).await;
}

pub async fn echo_sizes_uncompressed<R: Rt>() {
    echo_sizes::<R>(Some(uncompressed()), text).await;
    echo_sizes::<R>(Some(uncompressed()), binary).await;
}

// ---- 2. many small messages, pipelined ----

const SMALL_COUNT: usize = 10_000;
const SMALL_SIZE: usize = 64;

fn small_messages() -> Vec<Message> {
    (0..SMALL_COUNT as u64)
        .map(|i| {
            if i % 2 == 0 {
                binary(i, SMALL_SIZE)
            } else {
                text(i, SMALL_SIZE)
            }
        })
        .collect()
}

/// `feed` queues without writing, one `flush` writes it all; the echoes
/// are read concurrently so neither side can stall on full buffers.
pub async fn pipelined_feed_flush<R: Rt>() {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let mut ws = R::connect(&url).await.expect("connect");
    let msgs = small_messages();
    // `feed` only queues: the queue grows with every message (by a frame,
    // compressed or not) and nothing leaves before the flush.
    let mut queued = ws.buffered_amount();
    for (i, m) in msgs.iter().enumerate() {
        ws.feed(m.clone()).await.expect("feed");
        let now = ws.buffered_amount();
        assert!(
            now > queued,
            "feed {i}: {now} bytes queued, {queued} before"
        );
        queued = now;
    }
    let (mut tx, mut rx) = ws.halves();
    let send = async {
        tx.flush().await.expect("flush");
        tx
    };
    let recv = async {
        expect_echoes(&mut rx, &msgs).await;
        rx
    };
    let (tx, rx) = future::join(send, recv).await;
    let mut ws = tx.reunite(rx).ok().expect("reunite");
    assert_eq!(ws.buffered_amount(), 0);
    ws.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");
    assert_eq!(
        without_keepalive(server.await),
        vec![close_message(1000, "")]
    );
}

pub async fn pipelined_send_all<R: Rt>() {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let ws = R::connect(&url).await.expect("connect");
    let msgs = small_messages();
    let (mut tx, mut rx) = ws.halves();
    let send = async {
        let mut source = stream::iter(msgs.clone()).map(Ok);
        tx.send_all(&mut source).await.expect("send_all");
        tx
    };
    let recv = async {
        expect_echoes(&mut rx, &msgs).await;
        rx
    };
    let (mut tx, rx) = future::join(send, recv).await;
    tx.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");
    // The stream half sees the server's answer (the code echoed), then the end.
    let mut rx = rx;
    assert_eq!(
        next_message(&mut rx, "stream half").await,
        close_message(1000, "")
    );
    assert!(
        rx.next().await.is_none(),
        "the stream half ends after the close handshake"
    );
    assert_eq!(
        without_keepalive(server.await),
        vec![close_message(1000, "")]
    );
}

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

// ---- 4. close codes and reasons ----

/// Records every message until the stream ends, then tries to send.
async fn record<R: Rt>(mut ws: Ws<R>) -> (Vec<Message>, Result<(), Error>, State) {
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

// ---- 7. the handshake hook ----

fn unauthorized() -> Box<http::Response<Bytes>> {
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
async fn serve_with<R, D, F>(
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

fn rejected_by_app(r: &Result<(Option<String>, Vec<Message>), Error>, status: u16) -> bool {
    matches!(r, Err(Error::WebSocket(WsError::Handshake(HandshakeError::RejectedByApplication(s)))) if *s == status)
}

fn rejected<T>(r: &Result<T, Error>) -> Option<u16> {
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

fn offered(req: &http::Request<()>) -> Vec<String> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| v.to_str().expect("ASCII").split(','))
        .map(|p| p.trim().to_owned())
        .collect()
}

fn offering(protocols: &[&str]) -> ClientOptions {
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

// ---- 8. split halves in two tasks ----

pub async fn split_reunite<R: Rt>() {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let (url2, server2) = serve::<R, _, _>(echo::<R>).await;
    let ws = R::connect(&url).await.expect("connect");
    let other = R::connect(&url2).await.expect("connect");

    let msgs: Arc<Vec<Message>> = Arc::new(
        (0..1000u64)
            .map(|i| {
                if i % 3 == 0 {
                    text(i, 10 + i as usize)
                } else {
                    binary(i, i as usize)
                }
            })
            .collect(),
    );
    let (tx, mut rx) = ws.halves();
    let (other_tx, other_rx) = other.halves();
    assert!(tx.is_pair_of(&rx) && !tx.is_pair_of(&other_rx));
    // Halves of different connections do not reunite, and come back.
    let (mut tx, other_rx) = tx
        .reunite(other_rx)
        .err()
        .expect("halves of two connections must not reunite");

    let sent = msgs.clone();
    let sender = R::spawn(async move {
        for m in sent.iter() {
            tx.send(m.clone()).await.expect("sink half: send");
        }
        tx
    });
    let want = msgs.clone();
    let receiver = R::spawn(async move {
        expect_echoes(&mut rx, &want).await;
        rx
    });
    let tx = sender.await;
    let rx = receiver.await;

    let mut ws = tx
        .reunite(rx)
        .ok()
        .expect("halves of one connection reunite");
    ws.send(Message::text("after reunite")).await.expect("send");
    assert_eq!(
        next_data(&mut ws, "echo").await,
        Message::text("after reunite")
    );
    ws.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");
    assert_eq!(
        without_keepalive(server.await),
        vec![close_message(1000, "")]
    );

    let mut other = other_tx
        .reunite(other_rx)
        .ok()
        .expect("reunite the other connection");
    other
        .close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close other");
    assert_eq!(
        without_keepalive(server2.await),
        vec![close_message(1000, "")]
    );
}

/// Both halves under backpressure at once: the sink half blocks above
/// the high-water mark while the stream half drives the socket, and the
/// other way round, so each half depends on I/O the other half did.
pub async fn split_under_pressure<R: Rt>() {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let ws = R::connect(&url).await.expect("connect");
    let msgs: Arc<Vec<Message>> = Arc::new(
        (0..400u64)
            .map(|i| match i % 10 {
                0 => binary(i, 256 << 10),
                5 => text(i, 100 << 10),
                _ => binary(i, 1000),
            })
            .collect(),
    );
    let (mut tx, mut rx) = ws.halves();
    let sent = msgs.clone();
    let sender = R::spawn(async move {
        for (i, m) in sent.iter().enumerate() {
            tx.feed(m.clone()).await.expect("sink half: feed");
            if i % 7 == 6 {
                tx.flush().await.expect("sink half: flush");
            }
        }
        tx.flush().await.expect("sink half: flush");
        tx
    });
    let want = msgs.clone();
    let receiver = R::spawn(async move {
        for (i, w) in want.iter().enumerate() {
            if i % 50 == 0 {
                // Stop reading for a moment: the server stalls, then the
                // sink half fills up.
                R::sleep(Duration::from_millis(20)).await;
            }
            let what = format!("echo {i}");
            let got = next_data(&mut rx, &what).await;
            assert_same_message(&got, w, &what);
        }
        rx
    });
    let tx = sender.await;
    let rx = receiver.await;
    let mut ws = tx.reunite(rx).ok().expect("reunite");
    ws.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");
    assert_eq!(
        without_keepalive(server.await),
        vec![close_message(1000, "")]
    );
}

// ---- 9. a slow reader and backpressure ----

const BULK_COUNT: usize = 64;

async fn bulk_sender<R: Rt>(mut ws: Ws<R>) -> usize {
    let mut max_buffered = 0;
    for i in 0..BULK_COUNT {
        ws.feed(binary(1000 + i as u64, MIB))
            .await
            .expect("server: feed");
        max_buffered = max_buffered.max(ws.buffered_amount());
    }
    ws.flush().await.expect("server: flush");
    assert_eq!(ws.buffered_amount(), 0, "flushed");
    while let Some(m) = ws.next().await {
        m.expect("server: stream error");
    }
    max_buffered
}

pub async fn slow_reader_backpressure<R: Rt>() {
    let (url, server) = serve::<R, _, _>(bulk_sender::<R>).await;
    let mut ws = R::connect(&url).await.expect("connect");
    // Read nothing for a while, then slowly: the server must wait rather
    // than queue 64 MiB.
    R::sleep(Duration::from_millis(300)).await;
    let mut total = 0;
    for i in 0..BULK_COUNT {
        if i < 8 {
            R::sleep(Duration::from_millis(25)).await;
        }
        let what = format!("bulk message {i}");
        let got = next_data(&mut ws, &what).await;
        assert_same_message(&got, &binary(1000 + i as u64, MIB), &what);
        total += got.len();
    }
    assert_eq!(total, BULK_COUNT * MIB);
    ws.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");

    let max_buffered = server.await;
    // poll_ready waits while more than write_high_water is queued, so a
    // feed adds at most one message (with its framing, and compression
    // overhead on random bytes) above it.
    let bound = Config::default().write_high_water + MIB + (64 << 10);
    assert!(
        max_buffered <= bound,
        "the server queued up to {max_buffered} bytes (bound {bound}): no backpressure"
    );
}

// ---- 10. timers: keepalive, close and handshake timeouts ----

fn with_config(config: Config) -> ServerOptions {
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
