//! The scenarios, each written once against [`Rt`] and run on every
//! runtime by `runtime_suite!` in `main.rs`. A scenario is an
//! `async fn name<R: Rt>()` that panics on failure.

pub(crate) use std::future::Future;
pub(crate) use std::sync::Arc;
pub(crate) use std::time::Duration;

pub(crate) use futures_util::{future, stream, SinkExt, Stream, StreamExt};
pub(crate) use tether::core::handshake::HandshakeError;
pub(crate) use tether::core::{Error as WsError, ProtocolError};
pub(crate) use tether::http::{self, header, HeaderValue, StatusCode};
pub(crate) use tether::{
    Accept, Bytes, ClientOptions, CloseCode, CloseFrame, Config, Error, HandshakeLimits, Message,
    ServerOptions, State,
};

pub(crate) use crate::harness::{Rt, Socket, Task, TxHalf, Ws};
pub(crate) use crate::raw::{self, RawPeer};

pub(crate) const MIB: usize = 1 << 20;

mod close;
mod control;
mod echo;
mod halves;
mod handshake;

pub use close::*;
pub use control::*;
pub use echo::*;
pub use halves::*;
pub use handshake::*;

// ---- test data ----

/// One step of splitmix64: a fast, seedable, well-mixed sequence.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
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

pub(crate) fn text(seed: u64, len: usize) -> Message {
    let s = random_text(seed, len);
    if len >= 64 {
        assert!(
            s.chars().count() < len,
            "test text should contain multi-byte characters"
        );
    }
    Message::text(s)
}

pub(crate) fn binary(seed: u64, len: usize) -> Message {
    Message::binary(random_bytes(seed, len))
}

pub(crate) fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode(code),
        reason: reason.to_owned(),
    }))
}

// ---- assertions ----

/// Compares large payloads without printing megabytes on failure.
pub(crate) fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first differing byte at {first:?}",
            got.len(),
            want.len()
        );
    }
}

pub(crate) fn assert_same_message(got: &Message, want: &Message, what: &str) {
    match (got, want) {
        (Message::Text(g), Message::Text(w)) => assert_same_bytes(g.as_bytes(), w.as_bytes(), what),
        (Message::Binary(g), Message::Binary(w)) => assert_same_bytes(g, w, what),
        _ => panic!("{what}: got {}, want {}", describe(got), describe(want)),
    }
}

pub(crate) fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) => format!("Text of {} bytes", t.len()),
        Message::Binary(b) => format!("Binary of {} bytes", b.len()),
        other => format!("{other:?}"),
    }
}

pub(crate) fn is_closed(r: &Result<(), Error>) -> bool {
    matches!(r, Err(Error::WebSocket(WsError::Closed)))
}

// ---- helpers ----

/// The next item, which must be a message.
pub(crate) async fn next_message<S>(s: &mut S, what: &str) -> Message
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
pub(crate) async fn next_data<S>(s: &mut S, what: &str) -> Message
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
pub(crate) async fn serve<R, F, Fut>(handler: F) -> (String, Task<Fut::Output>)
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
pub(crate) async fn serve_with_options<R, F, Fut>(
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
pub(crate) async fn drain<S>(s: &mut S, limit: usize) -> Vec<Result<Message, Error>>
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
pub(crate) async fn echo<R: Rt>(mut ws: Ws<R>) -> Vec<Message> {
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
pub(crate) fn without_keepalive(seen: Vec<Message>) -> Vec<Message> {
    seen.into_iter()
        .filter(|m| !matches!(m, Message::Ping(_) | Message::Pong(_)))
        .collect()
}

/// Reads the echoes of `want`, in order.
pub(crate) async fn expect_echoes<S>(rx: &mut S, want: &[Message])
where
    S: Stream<Item = Result<Message, Error>> + Unpin,
{
    for (i, w) in want.iter().enumerate() {
        let what = format!("echo {i} of {}", want.len());
        let got = next_data(rx, &what).await;
        assert_same_message(&got, w, &what);
    }
}
