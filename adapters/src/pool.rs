//! A pool of client connections for applications that talk to the same
//! endpoints at high frequency: a connection is checked out, used, and
//! returned for the next caller instead of paying a TCP and WebSocket
//! handshake each time.
//!
//! Per endpoint (URL, compared as written) at most `max_per_endpoint`
//! connections are open; a checkout beyond that waits, up to
//! `checkout_timeout`, for one to come back. Before an idle connection is
//! reused it must answer a ping within `health_check`; one that does not,
//! that has closed, or that received anything but pongs while idle (a
//! stale answer meant for the previous user) is dropped and another one
//! tried or made. Idle connections older than `idle_timeout` are closed
//! with 1001 when their endpoint is next checked out, or by
//! [`Pool::evict_idle`].
//!
//! The check sees what has arrived: a reply still in flight when a
//! connection was returned cannot be told from a quiet connection, so
//! read your replies before dropping the guard, or [`Pooled::discard`] it.
//!
//! Idle connections are not driven while they sit in the pool (there is
//! no background task, so the pool works on any runtime): the peer's
//! pings are answered and keepalive resumes at the next checkout. Keep
//! `idle_timeout` below the server's ping timeout.
//!
//! ```no_run
//! # #[cfg(feature = "smol")]
//! # fn main() -> Result<(), tether::Error> {
//! use futures_util::{SinkExt, StreamExt};
//! use tether::pool::{Pool, PoolOptions};
//! use tether::{ClientOptions, Message};
//!
//! smol::block_on(async {
//!     let pool = Pool::smol(ClientOptions::default(), PoolOptions::default());
//!     for n in 0..3 {
//!         let mut ws = pool.checkout("ws://127.0.0.1:9001/").await?;
//!         ws.send(Message::text(format!("request {n}"))).await?;
//!         let reply = ws.next().await.transpose()?;
//!         println!("{reply:?}");
//!     } // each guard returns its connection here; the next loop reuses it
//!     Ok(())
//! })
//! # }
//! # #[cfg(not(feature = "smol"))] fn main() {}
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tether_core::handshake::HandshakeError;
use tether_core::{Bytes, CloseCode, Message, State};

use crate::connector::{self, Connector};
use crate::handshake::ClientOptions;
use crate::random::os_rng;
use crate::{Error, WebSocket};

/// Limits and timers of a [`Pool`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolOptions {
    /// Most connections open to one endpoint, idle and checked out
    /// together (at least 1).
    pub max_per_endpoint: usize,
    /// Idle connections older than this are closed rather than reused.
    pub idle_timeout: Duration,
    /// Before reuse, an idle connection must answer a ping within this
    /// time; `None` reuses without asking (only the local state is checked).
    pub health_check: Option<Duration>,
    /// How long a checkout waits for a connection when the endpoint is at
    /// its maximum.
    pub checkout_timeout: Duration,
    /// Time allowed to connect a new connection (TCP and handshake).
    pub connect_timeout: Duration,
}

tether_core::__with_setters!(PoolOptions {
    with_max_per_endpoint => max_per_endpoint: usize,
    with_idle_timeout => idle_timeout: Duration,
    with_health_check => health_check: Option<Duration>,
    with_checkout_timeout => checkout_timeout: Duration,
    with_connect_timeout => connect_timeout: Duration,
});

impl Default for PoolOptions {
    /// 8 per endpoint, idle 60 s, health check 2 s, checkout wait 10 s,
    /// connect 10 s.
    fn default() -> Self {
        Self {
            max_per_endpoint: 8,
            idle_timeout: Duration::from_secs(60),
            health_check: Some(Duration::from_secs(2)),
            checkout_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A pool of client connections on runtime `R`, keyed by URL. Cloning it
/// is cheap and shares the connections.
pub struct Pool<R: Connector> {
    shared: Arc<Shared<R>>,
}

impl<R: Connector> Clone for Pool<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<R: Connector> fmt::Debug for Pool<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

struct Shared<R: Connector> {
    client: ClientOptions,
    options: PoolOptions,
    endpoints: Mutex<HashMap<String, Endpoint<R>>>,
    /// Health check ping payloads: unique, so only the answer to this
    /// ping counts.
    ping_seq: AtomicU64,
}

struct Endpoint<R: Connector> {
    /// Returned connections and when; the most recent last.
    idle: Vec<(WebSocket<R::Transport, R>, Instant)>,
    /// Connections open: idle, checked out, or being connected/checked.
    open: usize,
    /// Bumped whenever a connection or a slot is given back.
    version: u64,
    waiters: Vec<Waker>,
}

impl<R: Connector> Default for Endpoint<R> {
    fn default() -> Self {
        Self {
            idle: Vec::new(),
            open: 0,
            version: 0,
            waiters: Vec::new(),
        }
    }
}

impl<R: Connector> Endpoint<R> {
    fn notify(&mut self) {
        self.version = self.version.wrapping_add(1);
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }

    fn unused(&self) -> bool {
        self.open == 0 && self.waiters.is_empty()
    }
}

/// What a checkout does next. Lives for one step on the stack, so the
/// size of the connection it may carry does not matter.
#[allow(clippy::large_enum_variant)]
enum Step<R: Connector> {
    Reuse(WebSocket<R::Transport, R>),
    Connect,
    Wait(u64),
}

#[cfg(feature = "smol")]
impl Pool<crate::smol::Smol> {
    /// A pool of smol connections.
    pub fn smol(client: ClientOptions, options: PoolOptions) -> Self {
        Self::new(client, options)
    }
}

#[cfg(feature = "tokio")]
impl Pool<crate::tokio::Tokio> {
    /// A pool of tokio connections.
    pub fn tokio(client: ClientOptions, options: PoolOptions) -> Self {
        Self::new(client, options)
    }
}

impl<R: Connector> Pool<R> {
    /// A pool on runtime `R`; new connections use `client`.
    pub fn new(client: ClientOptions, mut options: PoolOptions) -> Self {
        options.max_per_endpoint = options.max_per_endpoint.max(1);
        let mut seed = [0u8; 8];
        os_rng().fill(&mut seed);
        Self {
            shared: Arc::new(Shared {
                client,
                options,
                endpoints: Mutex::new(HashMap::new()),
                ping_seq: AtomicU64::new(u64::from_ne_bytes(seed)),
            }),
        }
    }

    /// The settings.
    pub fn options(&self) -> &PoolOptions {
        &self.shared.options
    }

    /// A connection to `url`: an idle one that passes the health check,
    /// else a new one. Waits up to `checkout_timeout` while the endpoint
    /// has `max_per_endpoint` connections open (then an I/O error of kind
    /// `TimedOut`); a connect that fails returns its error.
    pub async fn checkout(&self, url: &str) -> Result<Pooled<R>, Error> {
        let shared = &self.shared;
        let deadline = connector::deadline_after::<R>(shared.options.checkout_timeout);
        loop {
            let (step, expired) = shared.next_step(url);
            for ws in expired {
                close_quietly(ws, "idle timeout");
            }
            match step {
                Step::Reuse(ws) => {
                    let slot = Slot::new(shared, url);
                    if let Some(ws) = shared.check(ws).await {
                        return Ok(Pooled::new(slot, ws));
                    }
                    // Unhealthy: `check` dropped it, `slot` frees its place;
                    // try the next idle one or connect.
                }
                Step::Connect => {
                    let slot = Slot::new(shared, url);
                    let connect_by = connector::deadline_after::<R>(shared.options.connect_timeout);
                    let ws = connector::within::<R, _>(
                        connect_by,
                        R::connect(url, shared.client.clone()),
                    )
                    .await
                    .unwrap_or_else(|| Err(HandshakeError::TimedOut.into()))?;
                    return Ok(Pooled::new(slot, ws));
                }
                Step::Wait(version) => {
                    let freed = poll_fn(|cx| shared.poll_changed(url, version, cx));
                    if connector::within::<R, _>(deadline, freed).await.is_none() {
                        return Err(Error::Io(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "no connection to {url} became free within {:?} ({} open)",
                                shared.options.checkout_timeout, shared.options.max_per_endpoint
                            ),
                        )));
                    }
                }
            }
        }
    }

    /// Closes (with 1001) idle connections older than `idle_timeout`, on
    /// every endpoint; returns how many. Checkouts do this for their own
    /// endpoint; call it periodically to release the others.
    pub fn evict_idle(&self) -> usize {
        let expired: Vec<_> = {
            let mut endpoints = self.shared.lock();
            let now = R::now();
            let mut expired = Vec::new();
            for ep in endpoints.values_mut() {
                expired.extend(self.shared.take_expired(ep, now));
            }
            endpoints.retain(|_, ep| !ep.unused());
            expired
        };
        let n = expired.len();
        for ws in expired {
            close_quietly(ws, "idle timeout");
        }
        n
    }

    /// Idle connections to `url`.
    pub fn idle_count(&self, url: &str) -> usize {
        self.shared.lock().get(url).map_or(0, |ep| ep.idle.len())
    }

    /// Open connections to `url`: idle, checked out, or being made.
    pub fn open_count(&self, url: &str) -> usize {
        self.shared.lock().get(url).map_or(0, |ep| ep.open)
    }
}

impl<R: Connector> Shared<R> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Endpoint<R>>> {
        // The map stays consistent between statements; keep going after
        // a panic elsewhere.
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes an idle connection or a slot for a new one, or says to wait;
    /// also hands back the endpoint's expired idle connections to close.
    fn next_step(&self, url: &str) -> (Step<R>, Vec<WebSocket<R::Transport, R>>) {
        let mut endpoints = self.lock();
        let ep = endpoints.entry(url.to_owned()).or_default();
        let expired = self.take_expired(ep, R::now());
        // Most recently returned first: the likeliest alive, and the
        // others age out when traffic drops.
        let step = if let Some((ws, _)) = ep.idle.pop() {
            Step::Reuse(ws)
        } else if ep.open < self.options.max_per_endpoint {
            ep.open += 1;
            Step::Connect
        } else {
            Step::Wait(ep.version)
        };
        (step, expired)
    }

    /// Removes the endpoint's idle connections older than `idle_timeout`
    /// and frees their places.
    fn take_expired(&self, ep: &mut Endpoint<R>, now: Instant) -> Vec<WebSocket<R::Transport, R>> {
        let timeout = self.options.idle_timeout;
        let mut expired = Vec::new();
        let mut i = 0;
        while i < ep.idle.len() {
            if now.saturating_duration_since(ep.idle[i].1) >= timeout {
                expired.push(ep.idle.remove(i).0);
            } else {
                i += 1;
            }
        }
        if !expired.is_empty() {
            ep.open -= expired.len();
            ep.notify();
        }
        expired
    }

    fn poll_changed(&self, url: &str, version: u64, cx: &mut Context<'_>) -> Poll<()> {
        let mut endpoints = self.lock();
        match endpoints.get_mut(url) {
            Some(ep) if ep.version == version => {
                if !ep.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    ep.waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }

    /// Puts a connection back as idle.
    fn give_back(&self, url: &str, ws: WebSocket<R::Transport, R>) {
        let mut endpoints = self.lock();
        let ep = endpoints.entry(url.to_owned()).or_default();
        ep.idle.push((ws, R::now()));
        ep.notify();
    }

    /// Frees the place of a connection that is gone.
    fn release(&self, url: &str) {
        let mut endpoints = self.lock();
        if let Some(ep) = endpoints.get_mut(url) {
            ep.open = ep.open.saturating_sub(1);
            ep.notify();
            if ep.unused() && ep.idle.is_empty() {
                endpoints.remove(url);
            }
        }
    }

    /// The health check: the connection, if it is open and (when the
    /// check is on) answers a ping in time with nothing else arriving
    /// first; `None` after closing it otherwise.
    async fn check(
        &self,
        mut ws: WebSocket<R::Transport, R>,
    ) -> Option<WebSocket<R::Transport, R>> {
        if ws.connection().state() != State::Open {
            return None;
        }
        let Some(timeout) = self.options.health_check else {
            return Some(ws);
        };
        let seq = self.ping_seq.fetch_add(1, Ordering::Relaxed);
        let payload = Bytes::copy_from_slice(&seq.to_be_bytes());
        let answered = connector::within::<R, _>(
            connector::deadline_after::<R>(timeout),
            ping_pong(&mut ws, payload),
        )
        .await;
        if answered == Some(true) {
            Some(ws)
        } else {
            close_quietly(ws, "health check failed");
            None
        }
    }
}

/// Pings and waits for the pong with the same payload. The peer's pings
/// and other pongs are skipped; anything else (data, close, an error, the
/// end) fails the check.
async fn ping_pong<S: crate::Transport, R: crate::Runtime>(
    ws: &mut WebSocket<S, R>,
    payload: Bytes,
) -> bool {
    if ws.send(Message::Ping(payload.clone())).await.is_err() {
        return false;
    }
    loop {
        match ws.next().await {
            Some(Ok(Message::Pong(p))) if p == payload => return true,
            Some(Ok(Message::Pong(_) | Message::Ping(_))) => {}
            _ => return false,
        }
    }
}

/// Sends a 1001 close if the socket takes it at once, then drops the
/// connection without waiting for the peer's answer.
fn close_quietly<S: crate::Transport, R: crate::Runtime>(mut ws: WebSocket<S, R>, why: &str) {
    let _ = ws.close(CloseCode::GOING_AWAY, why).now_or_never();
}

/// A place counted in `open`, freed on drop unless a [`Pooled`] took it.
struct Slot<R: Connector> {
    shared: Arc<Shared<R>>,
    url: String,
    armed: bool,
}

impl<R: Connector> Slot<R> {
    fn new(shared: &Arc<Shared<R>>, url: &str) -> Self {
        Self {
            shared: shared.clone(),
            url: url.to_owned(),
            armed: true,
        }
    }
}

impl<R: Connector> Drop for Slot<R> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.release(&self.url);
        }
    }
}

/// A checked-out connection. Dropping it returns the connection to the
/// pool, unless it failed or closed: an error or the end from its
/// `Stream` or `Sink`, a close frame received, or a state other than open.
/// [`discard`](Self::discard) drops it for good. It derefs to the
/// [`WebSocket`]; an error met through methods called that way
/// (`next_chunk`, `send_stream`) should be followed by `discard`, though
/// the next checkout's health check would catch a dead connection anyway.
pub struct Pooled<R: Connector> {
    ws: Option<WebSocket<R::Transport, R>>,
    slot: Slot<R>,
    failed: bool,
}

impl<R: Connector> Pooled<R> {
    fn new(mut slot: Slot<R>, ws: WebSocket<R::Transport, R>) -> Self {
        slot.armed = false;
        Self {
            ws: Some(ws),
            slot,
            failed: false,
        }
    }

    /// Drops the connection instead of returning it, and frees its place.
    pub fn discard(mut self) {
        self.failed = true;
    }

    /// Takes the connection out of the pool for good, freeing its place.
    pub fn into_inner(mut self) -> WebSocket<R::Transport, R> {
        self.failed = true;
        self.ws.take().expect("present until drop")
    }

    /// The endpoint it belongs to.
    pub fn url(&self) -> &str {
        &self.slot.url
    }

    fn ws(&mut self) -> Pin<&mut WebSocket<R::Transport, R>> {
        Pin::new(self.ws.as_mut().expect("present until drop"))
    }

    fn note<T>(&mut self, r: Poll<Result<T, Error>>) -> Poll<Result<T, Error>> {
        if let Poll::Ready(Err(_)) = r {
            self.failed = true;
        }
        r
    }
}

impl<R: Connector> fmt::Debug for Pooled<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("url", &self.slot.url)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<R: Connector> Deref for Pooled<R> {
    type Target = WebSocket<R::Transport, R>;
    fn deref(&self) -> &Self::Target {
        self.ws.as_ref().expect("present until drop")
    }
}

impl<R: Connector> DerefMut for Pooled<R> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.ws.as_mut().expect("present until drop")
    }
}

impl<R: Connector> Stream for Pooled<R> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = this.ws().poll_next(cx);
        if matches!(
            item,
            Poll::Ready(None | Some(Err(_)) | Some(Ok(Message::Close(_))))
        ) {
            this.failed = true;
        }
        item
    }
}

impl<R: Connector> Sink<Message> for Pooled<R> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        let r = this.ws().poll_ready(cx);
        this.note(r)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        let this = self.get_mut();
        let r = this.ws().start_send(item);
        if r.is_err() {
            this.failed = true;
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        let r = this.ws().poll_flush(cx);
        this.note(r)
    }

    /// Closing a pooled connection ends it: it is not returned.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.failed = true;
        this.ws().poll_close(cx)
    }
}

impl<R: Connector> Drop for Pooled<R> {
    fn drop(&mut self) {
        let Some(ws) = self.ws.take() else {
            self.slot.shared.release(&self.slot.url);
            return;
        };
        if self.failed || ws.connection().state() != State::Open {
            drop(ws);
            self.slot.shared.release(&self.slot.url);
        } else {
            self.slot.shared.give_back(&self.slot.url, ws);
        }
    }
}
