//! A client that reconnects after connection loss, with exponential
//! backoff and jitter from the core's sans-IO [`Backoff`].
//!
//! The [`Reconnector`] makes connections; the application runs each
//! session and reports how it ended. Which failures are retried is the
//! [`RetryPolicy`]'s decision, and every attempt, delay and outcome is
//! handed to an observer as a [`ReconnectEvent`].
//!
//! ```no_run
//! # #[cfg(feature = "smol")]
//! # fn main() -> Result<(), tether::Error> {
//! use futures_util::StreamExt;
//! use tether::reconnect::{Failure, ReconnectOptions, Reconnector};
//! use tether::{ClientOptions, Message};
//!
//! smol::block_on(async {
//!     let mut rc = Reconnector::smol("ws://127.0.0.1:9001/", ClientOptions::default(),
//!         ReconnectOptions::default())
//!         .on_event(|ev| eprintln!("{ev:?}"));
//!     loop {
//!         let mut ws = rc.connect().await?; // retries by itself; Err: gave up
//!         let mut end = Failure::Close(1006);
//!         while let Some(item) = ws.next().await {
//!             match item {
//!                 Ok(Message::Close(frame)) => end = Failure::from_close(frame.as_ref()),
//!                 Ok(msg) => println!("{msg:?}"),
//!                 Err(e) => end = Failure::from(&e),
//!             }
//!         }
//!         rc.session_ended(end)?; // Err: the policy does not retry this end
//!     }
//! })
//! # }
//! # #[cfg(not(feature = "smol"))] fn main() {}
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

pub use tether_core::backoff::{Backoff, BackoffConfig, Failure, RetryPolicy};
use tether_core::handshake::HandshakeError;
use tether_core::RandomSource;

use crate::connector::{self, Connector};
use crate::handshake::ClientOptions;
use crate::random::os_rng;
use crate::{Error, WebSocket};

/// How a [`Reconnector`] retries.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReconnectOptions {
    /// Delays between attempts.
    pub backoff: BackoffConfig,
    /// Which failures are retried.
    pub retry: RetryPolicy,
    /// Time allowed for one attempt: TCP connect and opening handshake.
    /// An attempt that takes longer fails with [`Failure::Timeout`].
    pub connect_timeout: Duration,
}

tether_core::__with_setters!(ReconnectOptions {
    with_backoff => backoff: BackoffConfig,
    with_retry => retry: RetryPolicy,
    with_connect_timeout => connect_timeout: Duration,
});

impl Default for ReconnectOptions {
    /// The default backoff and retry policy, 10 s per attempt.
    fn default() -> Self {
        Self {
            backoff: BackoffConfig::default(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What a [`Reconnector`] did, in order. `attempt` counts from 1 within
/// one call of [`Reconnector::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconnectEvent {
    /// Waiting `delay` before attempt number `attempt`.
    Waiting {
        /// The attempt that follows the wait.
        attempt: u32,
        /// The backoff delay, jitter included.
        delay: Duration,
    },
    /// Attempt number `attempt` starts.
    Attempt {
        /// Its number.
        attempt: u32,
    },
    /// The attempt connected; `connect` returns the connection.
    Connected {
        /// Its number.
        attempt: u32,
    },
    /// The attempt failed; `retry` says whether another one follows.
    Failed {
        /// Its number.
        attempt: u32,
        /// Why.
        failure: Failure,
        /// Whether the policy retries it.
        retry: bool,
    },
    /// The application reported the end of a session.
    Disconnected {
        /// How it ended.
        failure: Failure,
        /// How long the connection had been up.
        up_for: Duration,
        /// Whether the policy retries it.
        retry: bool,
    },
    /// The reconnector stopped: the last failure is not retried, or the
    /// attempts ran out. A later `connect` starts afresh.
    GaveUp {
        /// Attempts made by the `connect` call that gave up (0 when a
        /// session's end was not retried).
        attempts: u32,
        /// The last failure.
        failure: Failure,
    },
}

type Observer = Box<dyn FnMut(&ReconnectEvent) + Send>;

/// A client connection to one URL that is made again after it fails.
///
/// [`connect`](Self::connect) waits the backoff delay (none before the
/// very first attempt, or after giving up), connects, and retries
/// retryable failures by itself. When the application's session ends, it
/// reports how with [`session_ended`](Self::session_ended) and calls
/// `connect` again. A connection that stays up for the backoff's
/// `reset_after`, or whose session reported [`progressed`](Self::progressed),
/// starts the delays over; any other does not, so a server that accepts
/// and drops at once is retried ever more slowly. A session the server
/// ended going away (close 1001, a drain on shutdown: see
/// [`Failure::is_going_away`]) starts them over too: the client comes
/// back after the first delay, as the server asked.
pub struct Reconnector<R: Connector> {
    url: String,
    client: ClientOptions,
    options: ReconnectOptions,
    backoff: Backoff,
    rng: Box<dyn RandomSource>,
    observer: Option<Observer>,
    /// The next attempt waits a backoff delay first.
    wait: bool,
    up_since: Option<Instant>,
    last_failure: Option<Failure>,
    _runtime: PhantomData<fn() -> R>,
}

impl<R: Connector> fmt::Debug for Reconnector<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnector")
            .field("url", &self.url)
            .field("backoff", &self.backoff)
            .field("up", &self.up_since.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "smol")]
impl Reconnector<crate::smol::Smol> {
    /// A reconnecting client on smol.
    pub fn smol(url: &str, client: ClientOptions, options: ReconnectOptions) -> Self {
        Self::new(url, client, options)
    }
}

#[cfg(feature = "tokio")]
impl Reconnector<crate::tokio::Tokio> {
    /// A reconnecting client on tokio.
    pub fn tokio(url: &str, client: ClientOptions, options: ReconnectOptions) -> Self {
        Self::new(url, client, options)
    }
}

impl<R: Connector> Reconnector<R> {
    /// A reconnecting client on runtime `R`; jitter is drawn from a source
    /// seeded by the operating system.
    pub fn new(url: &str, client: ClientOptions, options: ReconnectOptions) -> Self {
        Self {
            url: url.to_owned(),
            client,
            backoff: Backoff::new(options.backoff.clone()),
            options,
            rng: os_rng(),
            observer: None,
            wait: false,
            up_since: None,
            last_failure: None,
            _runtime: PhantomData,
        }
    }

    /// Calls `f` with every event, in order, as it happens.
    pub fn on_event(mut self, f: impl FnMut(&ReconnectEvent) + Send + 'static) -> Self {
        self.observer = Some(Box::new(f));
        self
    }

    /// Draws jitter from `rng` instead (a seeded one for reproducible
    /// delays).
    pub fn with_rng(mut self, rng: Box<dyn RandomSource>) -> Self {
        self.rng = rng;
        self
    }

    /// The URL connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backoff state (attempts since the last reset).
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// Connects, waiting the backoff delay first unless this is the first
    /// attempt (or the first after giving up). Each attempt must connect
    /// and finish the handshake within `connect_timeout`. Failures the
    /// policy retries are retried here; the error is returned when one is
    /// not, or when `max_attempts` ran out (the last attempt's error).
    ///
    /// Calling it while the last connection was not reported ended counts
    /// as [`session_ended`](Self::session_ended) with [`Failure::Other`],
    /// retried whatever the policy says: the application asked.
    pub async fn connect(&mut self) -> Result<WebSocket<R::Transport, R>, Error> {
        if self.up_since.is_some() {
            let up_for = self.mark_down(&Failure::Other);
            self.emit(ReconnectEvent::Disconnected {
                failure: Failure::Other,
                up_for,
                retry: true,
            });
        }
        let mut last_error = None;
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            if self.wait {
                match self.backoff.next_delay(&mut *self.rng) {
                    Some(delay) => {
                        self.emit(ReconnectEvent::Waiting { attempt, delay });
                        connector::sleep::<R>(delay).await;
                    }
                    None => {
                        let failure = self.last_failure.unwrap_or(Failure::Other);
                        return Err(self.give_up(attempt - 1, failure, last_error));
                    }
                }
            }
            self.wait = true;
            self.emit(ReconnectEvent::Attempt { attempt });
            let deadline = connector::deadline_after::<R>(self.options.connect_timeout);
            let outcome =
                connector::within::<R, _>(deadline, R::connect(&self.url, self.client.clone()))
                    .await
                    .unwrap_or_else(|| Err(HandshakeError::TimedOut.into()));
            match outcome {
                Ok(ws) => {
                    let now = R::now();
                    self.backoff.connected(now);
                    self.up_since = Some(now);
                    self.emit(ReconnectEvent::Connected { attempt });
                    return Ok(ws);
                }
                Err(e) => {
                    let failure = attempt_failure(&e);
                    let retry = self.options.retry.should_retry(&failure);
                    self.emit(ReconnectEvent::Failed {
                        attempt,
                        failure,
                        retry,
                    });
                    self.last_failure = Some(failure);
                    if !retry {
                        return Err(self.give_up(attempt, failure, Some(e)));
                    }
                    last_error = Some(e);
                }
            }
        }
    }

    /// The session on the last connection did useful work (a resumable
    /// transfer committed a batch, say): when it ends, the next attempt
    /// waits only the first delay, however short the session was. Without
    /// it only a session up for the backoff's `reset_after` counts as a
    /// success, so a transfer cut every few hundred milliseconds would
    /// wait ever longer while a server that accepts and fails at once
    /// (which reports nothing) still meets the full backoff.
    pub fn progressed(&mut self) {
        self.backoff.progressed();
    }

    /// Reports how the session on the last connection ended: the peer's
    /// close frame (`Failure::from_close(frame.as_ref())`), the error its
    /// stream or sink returned (`&error`), or any [`Failure`]. `Ok` when
    /// the policy retries it (call [`connect`](Self::connect) again),
    /// [`Error::NotRetried`] when not.
    pub fn session_ended(&mut self, how: impl Into<Failure>) -> Result<(), Error> {
        let failure = how.into();
        let up_for = self.mark_down(&failure);
        let retry = self.options.retry.should_retry(&failure);
        self.emit(ReconnectEvent::Disconnected {
            failure,
            up_for,
            retry,
        });
        self.last_failure = Some(failure);
        if retry {
            Ok(())
        } else {
            Err(self.give_up(0, failure, None))
        }
    }

    /// The connection went down now, ending as `how`: the backoff learns
    /// how long it was up and how it ended (a server going away is not a
    /// failure, see `Backoff::ended`), and the next attempt waits.
    fn mark_down(&mut self, how: &Failure) -> Duration {
        let now = R::now();
        let up_for = self
            .up_since
            .take()
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.backoff.ended(now, how);
        self.wait = true;
        up_for
    }

    /// Stops, so that a later `connect` starts afresh, and says why.
    fn give_up(&mut self, attempts: u32, failure: Failure, error: Option<Error>) -> Error {
        self.emit(ReconnectEvent::GaveUp { attempts, failure });
        self.backoff.reset();
        self.wait = false;
        self.last_failure = None;
        error.unwrap_or(Error::NotRetried(failure))
    }

    fn emit(&mut self, event: ReconnectEvent) {
        #[cfg(feature = "tracing")]
        match &event {
            ReconnectEvent::Failed { .. } | ReconnectEvent::GaveUp { .. } => {
                tracing::warn!(target: "tether", url = %self.url, event = ?event, "reconnect");
            }
            _ => tracing::info!(target: "tether", url = %self.url, event = ?event, "reconnect"),
        }
        if let Some(f) = &mut self.observer {
            f(&event);
        }
    }
}

/// Classifies a failed attempt: here a socket error is a connect error
/// (the proxy's too, refusing the TCP connection). A proxy's refusal is
/// the core's `Error::Proxy`, classified by `Failure::from_proxy` (through
/// `Failure::from_error`): a refused password or forbidden target is not
/// retried, a timeout, 5xx or unreachable target is.
fn attempt_failure(e: &Error) -> Failure {
    match e {
        Error::Io(io) => Failure::Connect(io.kind()),
        other => Failure::from(other),
    }
}

/// Classifies an error a session's stream or sink returned: a socket
/// error is a lost connection ([`Failure::Io`]).
impl From<&Error> for Failure {
    fn from(e: &Error) -> Self {
        match e {
            Error::WebSocket(ws) => Failure::from_error(ws),
            Error::Io(io) => Failure::Io(io.kind()),
            Error::Chunked => Failure::Other,
            Error::NotRetried(f) => *f,
            // A URL this build cannot serve: asking again will not help.
            Error::TlsUnavailable => Failure::Handshake,
            // A refused certificate is refused again: not retried by default.
            Error::Tls(_) => Failure::Tls,
        }
    }
}
