//! Graceful shutdown of a server on smol or tokio.
//!
//! A [`Shutdown`] is a cloneable handle shared by the accept loop, the
//! connections and whoever stops the server. [`shutdown`](Shutdown::shutdown)
//! runs the core's [`Drain`] schedule:
//!
//! 1. **draining**: [`signal`](Shutdown::signal) resolves, so the accept
//!    loop ([`Listener::accept_until`](crate::smol::Listener::accept_until))
//!    ends and drops the listener (new connects are refused), and each
//!    connection's task can finish its in-flight work, then close with
//!    [`GOING_AWAY`] itself, or just go on;
//! 2. **closing**, after the drain period (or at once when every
//!    connection has already ended): every watched connection still open
//!    is closed with 1001 "going away" by its own driver, the next time
//!    its task polls it; the application reads the peer's answer as a
//!    `Message::Close` and the stream ends, as after any close;
//! 3. **expired**, at the deadline: the future returns [`Drained`], with
//!    the connections still open counted in `cut`; each of those drivers
//!    fails its connection with `TimedOut` at its next poll. A task that
//!    never polls its connection again is the application's to drop
//!    (`JoinSet::abort_all`, dropping smol's `Task`s).
//!
//! A connection takes part once [`WebSocket::watch`](crate::WebSocket::watch)
//! ties it to the handle; it stops counting when its transport is closed
//! or it is dropped. The mio loop follows the same schedule without
//! futures: `ConnectionSet::drain` (feature `mio`).
//!
//! ```no_run
//! # #[cfg(feature = "smol")]
//! # fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//! use futures_util::{SinkExt, StreamExt};
//! use tether::smol::{Listener, Shutdown};
//! use tether::Message;
//!
//! smol::block_on(async {
//!     let shutdown = Shutdown::new();
//!     let stop = shutdown.clone();
//!     smol::spawn(async move {
//!         // On SIGTERM, say: 5 s to finish work, 15 s in all.
//!         # smol::Timer::after(Duration::from_secs(60)).await;
//!         let drained = stop.shutdown(Duration::from_secs(5), Duration::from_secs(15)).await;
//!         eprintln!("{} closed, {} cut", drained.closed, drained.cut);
//!     })
//!     .detach();
//!
//!     let mut listener = Listener::bind("127.0.0.1:9001").await?;
//!     while let Some((stream, _)) = listener.accept_until(&shutdown).await? {
//!         let shutdown = shutdown.clone();
//!         smol::spawn(async move {
//!             let mut ws = tether::smol::accept(stream).await?;
//!             ws.watch(&shutdown); // closed with 1001 when the drain ends
//!             while let Some(msg) = ws.next().await {
//!                 if let m @ (Message::Text(_) | Message::Binary(_)) = msg? {
//!                     ws.send(m).await?;
//!                 }
//!             }
//!             Ok::<_, tether::Error>(())
//!         })
//!         .detach();
//!     }
//!     Ok(()) // the listener is dropped here: new connects are refused
//! })
//! # }
//! # #[cfg(not(feature = "smol"))] fn main() {}
//! ```

use std::fmt;
use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

pub use tether_core::shutdown::{Drain, DrainPhase, Drained, GOING_AWAY, GOING_AWAY_REASON};

use crate::transport::Runtime;

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const CLOSING: u8 = 2;
const EXPIRED: u8 = 3;

fn phase_of(v: u8) -> Option<DrainPhase> {
    match v {
        DRAINING => Some(DrainPhase::Draining),
        CLOSING => Some(DrainPhase::Closing),
        EXPIRED => Some(DrainPhase::Expired),
        _ => None,
    }
}

/// A handle that stops a server gracefully; clones share one shutdown.
/// On smol and tokio it is [`tether::smol::Shutdown`](crate::smol::Shutdown)
/// and [`tether::tokio::Shutdown`](crate::tokio::Shutdown).
pub struct Shutdown<R: Runtime> {
    shared: Arc<Shared>,
    _runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> Clone for Shutdown<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            _runtime: PhantomData,
        }
    }
}

impl<R: Runtime> Default for Shutdown<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Runtime> fmt::Debug for Shutdown<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Shutdown")
            .field("phase", &self.phase())
            .field("open", &state.open)
            .field("closed", &state.closed)
            .finish()
    }
}

/// What the handle, its connections and its signals share.
#[derive(Default)]
struct Shared {
    /// Read on every drive of every watched connection, so one atomic
    /// load is all a connection pays while the server runs.
    phase: AtomicU8,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Whom to wake when the phase moves: watched connections (their
    /// driver's waker, set once) and pending signals.
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
    /// Watched connections that have not ended.
    open: usize,
    /// Watched connections that ended.
    closed: usize,
    /// The `shutdown` futures (one per caller), waiting for `open` to
    /// reach zero.
    waiters: Vec<Waker>,
}

impl State {
    fn insert(&mut self, waker: Option<Waker>) -> usize {
        match self.free.pop() {
            Some(key) => {
                self.wakers[key] = waker;
                key
            }
            None => {
                self.wakers.push(waker);
                self.wakers.len() - 1
            }
        }
    }

    fn remove(&mut self, key: usize) {
        self.wakers[key] = None;
        self.free.push(key);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves counts that are still
        // consistent (every update is one statement).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the phase forward (never back), wakes everyone if it moved,
    /// and says how the connections stand at that moment. Under the lock
    /// that ends connections, so each is counted closed or open, once.
    fn advance(&self, to: u8) -> Drained {
        let (wakers, drained) = {
            let state = self.lock();
            let moved = self.phase.fetch_max(to, Ordering::AcqRel) < to;
            let wakers: Vec<Waker> = if moved {
                state.wakers.iter().flatten().cloned().collect()
            } else {
                Vec::new()
            };
            let drained = Drained {
                closed: state.closed,
                cut: state.open,
            };
            (wakers, drained)
        };
        for w in wakers {
            w.wake();
        }
        drained
    }
}

impl<R: Runtime> Shutdown<R> {
    /// A handle for a server that is running.
    pub fn new() -> Self {
        Self {
            shared: Arc::default(),
            _runtime: PhantomData,
        }
    }

    /// Where the shutdown stands; `None` while the server runs.
    pub fn phase(&self) -> Option<DrainPhase> {
        phase_of(self.shared.phase.load(Ordering::Acquire))
    }

    /// Whether the shutdown has started: connections should finish what
    /// they are doing and take no new work.
    pub fn is_draining(&self) -> bool {
        self.phase().is_some()
    }

    /// A future that resolves when the shutdown starts (at once if it
    /// has): for the accept loop, and for a connection's task to learn
    /// that draining began.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            shared: self.shared.clone(),
            key: None,
        }
    }

    /// Watched connections that have not ended.
    pub fn open(&self) -> usize {
        self.shared.lock().open
    }

    /// Stops the server: signals the drain, waits up to `drain` for the
    /// connections to finish (less if they all end sooner), has every
    /// connection still open closed with 1001, and returns when all have
    /// ended, or at `deadline` (counted from the call, the drain included)
    /// with the ones still open counted as cut. See the
    /// [module](self) for what each party does. Calling it again (from a
    /// clone) joins the shutdown under way with its own deadline.
    pub async fn shutdown(&self, drain: Duration, deadline: Duration) -> Drained {
        let plan = Drain::new(R::now(), drain, deadline);
        self.shared.advance(DRAINING);
        if !self.wait_until_ended(plan.close_at()).await {
            self.shared.advance(CLOSING);
            if !self.wait_until_ended(plan.deadline()).await {
                return self.shared.advance(EXPIRED);
            }
        }
        // All ended: connections watched from now on close at once.
        self.shared.advance(CLOSING)
    }

    /// Waits until no watched connection is open (`true`) or `at` passed
    /// (`false`).
    async fn wait_until_ended(&self, at: std::time::Instant) -> bool {
        let mut sleep = None;
        poll_fn(|cx| {
            {
                let mut state = self.shared.lock();
                if state.open == 0 {
                    return Poll::Ready(true);
                }
                if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    state.waiters.push(cx.waker().clone());
                }
            }
            if R::now() >= at {
                return Poll::Ready(false);
            }
            let sleep = sleep.get_or_insert_with(|| R::sleep_until(at));
            if Pin::new(sleep).poll(cx).is_ready() {
                return Poll::Ready(false);
            }
            Poll::Pending
        })
        .await
    }

    /// Ties a connection to the shutdown: `waker` is its driver's, woken
    /// when the phase moves.
    pub(crate) fn watch(&self, waker: Waker) -> Watch {
        let key = {
            let mut state = self.shared.lock();
            state.open += 1;
            state.insert(Some(waker))
        };
        Watch {
            shared: self.shared.clone(),
            key,
            seen: RUNNING,
        }
    }
}

/// One connection's tie to a [`Shutdown`], held by its driver. Dropping
/// it (the connection ended, or was dropped) counts the connection
/// closed.
pub(crate) struct Watch {
    shared: Arc<Shared>,
    key: usize,
    /// The phase this connection has acted on.
    seen: u8,
}

/// What a connection's driver must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing new.
    None,
    /// Close with [`GOING_AWAY`].
    Close,
    /// Cut the connection: the deadline passed.
    Cut,
}

impl Watch {
    /// What changed since the last call: each of closing and expiry is
    /// reported once.
    pub(crate) fn step(&mut self) -> Step {
        let phase = self.shared.phase.load(Ordering::Acquire);
        if phase == self.seen {
            return Step::None;
        }
        self.seen = phase;
        match phase {
            EXPIRED => Step::Cut,
            CLOSING => Step::Close,
            _ => Step::None,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let waiters = {
            let mut state = self.shared.lock();
            state.remove(self.key);
            state.open -= 1;
            state.closed += 1;
            if state.open == 0 {
                std::mem::take(&mut state.waiters)
            } else {
                Vec::new()
            }
        };
        for w in waiters {
            w.wake();
        }
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch").field("seen", &self.seen).finish()
    }
}

/// Resolves when its [`Shutdown`] starts (see [`Shutdown::signal`]).
pub struct ShutdownSignal {
    shared: Arc<Shared>,
    key: Option<usize>,
}

impl Future for ShutdownSignal {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.shared.phase.load(Ordering::Acquire) != RUNNING {
            return Poll::Ready(());
        }
        {
            let mut state = this.shared.lock();
            match this.key {
                Some(key) => state.wakers[key] = Some(cx.waker().clone()),
                None => this.key = Some(state.insert(Some(cx.waker().clone()))),
            }
        }
        // The phase may have moved before the waker was in place.
        if this.shared.phase.load(Ordering::Acquire) != RUNNING {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for ShutdownSignal {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.shared.lock().remove(key);
        }
    }
}

impl fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = phase_of(self.shared.phase.load(Ordering::Acquire));
        f.debug_struct("ShutdownSignal")
            .field("phase", &phase)
            .finish()
    }
}

/// Runs `accept` until the shutdown starts (`None` then).
#[cfg(any(feature = "smol", feature = "tokio"))]
pub(crate) async fn until<T>(signal: ShutdownSignal, accept: impl Future<Output = T>) -> Option<T> {
    let mut accept = std::pin::pin!(accept);
    let mut signal = signal;
    poll_fn(|cx| {
        // The signal first: once it fired, nothing more is accepted.
        if Pin::new(&mut signal).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        accept.as_mut().poll(cx).map(Some)
    })
    .await
}
