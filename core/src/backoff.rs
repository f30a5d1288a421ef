//! Reconnection policy, sans-IO: how long to wait before the next attempt
//! ([`Backoff`]) and which failures are worth another attempt
//! ([`RetryPolicy`]).
//!
//! Like the rest of the core it reads no clock and no global random source:
//! the caller passes the instants a connection came up and went down, and
//! the random source the jitter is drawn from. A test drives it with a fake
//! clock and a seeded [`Xoshiro256`](crate::Xoshiro256), instant for instant.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tether_core::backoff::{Backoff, BackoffConfig, Failure, RetryPolicy};
//! use tether_core::Xoshiro256;
//!
//! let mut rng = Xoshiro256::from_seed(1);
//! let mut backoff = Backoff::new(BackoffConfig::default().with_jitter(0.0));
//! assert_eq!(backoff.next_delay(&mut rng), Some(Duration::from_millis(100)));
//! assert_eq!(backoff.next_delay(&mut rng), Some(Duration::from_millis(200)));
//!
//! // A connection that stays up for `reset_after` starts the series over.
//! let t0 = Instant::now();
//! backoff.connected(t0);
//! backoff.disconnected(t0 + Duration::from_secs(60));
//! assert_eq!(backoff.next_delay(&mut rng), Some(Duration::from_millis(100)));
//!
//! let policy = RetryPolicy::default();
//! assert!(policy.should_retry(&Failure::HttpStatus(503)));
//! assert!(!policy.should_retry(&Failure::Close(1008)));
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use crate::close::CloseFrame;
use crate::error::Error;
use crate::handshake::HandshakeError;
use crate::proxy::{ProxyError, Socks5Failure};
use crate::rng::RandomSource;

/// Settings of a [`Backoff`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Each further retry waits this many times longer (values below 1, or
    /// not finite, are taken as 1: the delay never shrinks by itself).
    pub factor: f64,
    /// No delay is longer than this, jitter included.
    pub max: Duration,
    /// Fraction of each delay that is randomized, clamped to `0..=1`: a
    /// delay `d` becomes uniform in `[d * (1 - jitter), d]`. 0 is no jitter;
    /// 0.5 is "equal jitter"; 1 is "full jitter" (anywhere in `[0, d]`).
    pub jitter: f64,
    /// A connection that stayed up at least this long counts as a success:
    /// when it goes down, the delays start over from `initial` and the
    /// attempt count from zero. A shorter one does not, so a server that
    /// accepts and drops at once is retried ever more slowly.
    pub reset_after: Duration,
    /// Most retries in a row (delays handed out since the last reset)
    /// before giving up; `None` retries forever.
    pub max_attempts: Option<u32>,
}

crate::__with_setters!(BackoffConfig {
    with_initial => initial: Duration,
    with_factor => factor: f64,
    with_max => max: Duration,
    with_jitter => jitter: f64,
    with_reset_after => reset_after: Duration,
    with_max_attempts => max_attempts: Option<u32>,
});

impl Default for BackoffConfig {
    /// 100 ms doubling up to 30 s, half of each delay randomized, reset
    /// after 30 s up, no limit on attempts.
    ///
    /// Why: 100 ms rides out a listener restart without hammering it;
    /// doubling reaches the 30 s cap in nine steps (about a minute of
    /// trying); 30 s keeps a long outage costing one connection attempt
    /// per client per half-minute. Equal jitter (0.5) spreads a crowd of
    /// clients that lost the same server over half the window, which
    /// breaks up the reconnect stampede, while still guaranteeing half
    /// the delay, so a client never retries at once after a failure (full
    /// jitter can draw a zero wait). A connection that lived 30 s, the
    /// cap, was a real session, so the next loss starts over quickly.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            factor: 2.0,
            max: Duration::from_secs(30),
            jitter: 0.5,
            reset_after: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

/// Exponential backoff with jitter, reset after a connection that lasted
/// or that got work done.
///
/// Call [`next_delay`](Self::next_delay) after each failure (a failed
/// attempt or a lost connection) and wait that long before the next
/// attempt; report [`connected`](Self::connected) and
/// [`disconnected`](Self::disconnected) so a long session resets it, and
/// [`progressed`](Self::progressed) when a session did useful work, so a
/// short but productive one resets it too.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempts: u32,
    up_since: Option<Instant>,
    /// The session under way made progress (see `progressed`).
    progressed: bool,
    /// The last session ended with the server going away and had nothing
    /// else to earn a reset (see `ended`).
    went_away: bool,
}

impl Backoff {
    /// A backoff with no attempt made yet.
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            attempts: 0,
            up_since: None,
            progressed: false,
            went_away: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// The delay before the next attempt, counting it as one more attempt;
    /// `None` once `max_attempts` delays were handed out since the last
    /// reset (the caller should give up).
    #[must_use]
    pub fn next_delay(&mut self, rng: &mut dyn RandomSource) -> Option<Duration> {
        if self.config.max_attempts.is_some_and(|m| self.attempts >= m) {
            return None;
        }
        let base = self.base_delay(self.attempts);
        self.attempts = self.attempts.saturating_add(1);
        let jitter = clamp_unit(self.config.jitter);
        if jitter == 0.0 {
            return Some(base);
        }
        // Uniform in [0, 1) from the top 53 bits (f64's mantissa).
        let mut b = [0u8; 8];
        rng.fill(&mut b);
        let u = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
        // base * (1 - jitter * u): within [base * (1 - jitter), base].
        let cut = base.as_secs_f64() * jitter * u;
        Some(base.saturating_sub(Duration::from_secs_f64(cut)))
    }

    /// The delay before jitter for the retry after `n` earlier ones:
    /// `initial * factor^n`, capped at `max`.
    pub fn base_delay(&self, n: u32) -> Duration {
        let c = &self.config;
        let factor = if c.factor.is_finite() && c.factor > 1.0 {
            c.factor
        } else {
            1.0
        };
        let max = c.max.as_secs_f64();
        let grown = c.initial.as_secs_f64() * factor.powi(n.min(i32::MAX as u32) as i32);
        if grown.is_finite() && grown < max {
            Duration::from_secs_f64(grown)
        } else {
            c.max
        }
    }

    /// A connection came up at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.up_since = Some(now);
        self.progressed = false;
    }

    /// The session under way did useful work (a resumable transfer
    /// committed a batch, say): when it ends, the series starts over
    /// however short it was. Uptime alone cannot tell a productive session
    /// cut every few hundred milliseconds from a server that accepts and
    /// fails at once; the application can, and only the first earns the
    /// quick retry. Ignored while no connection is up.
    pub fn progressed(&mut self) {
        if self.up_since.is_some() {
            self.progressed = true;
        }
    }

    /// The connection went down at `now`. If it stayed up at least
    /// `reset_after`, or [`progressed`](Self::progressed) was reported,
    /// the series starts over; otherwise the next delay continues to grow.
    /// [`ended`](Self::ended) also knows how it ended.
    pub fn disconnected(&mut self, now: Instant) {
        self.session_over(now, false);
    }

    /// The connection went down at `now`, ending as `how` says. Like
    /// [`disconnected`](Self::disconnected), except that a server going
    /// away ([`Failure::is_going_away`]: a drain for a deploy or restart)
    /// is not a failure: the series starts over, so the client comes back
    /// after the first (jittered) delay however short the session was,
    /// and a new server that is not up yet meets the normal growth from
    /// there. Only the first such end in a row counts: a server that
    /// says "going away" on every connection, with no session lasting or
    /// making progress in between, is retried ever more slowly like any
    /// server that drops at once.
    pub fn ended(&mut self, now: Instant, how: &Failure) {
        self.session_over(now, how.is_going_away());
    }

    fn session_over(&mut self, now: Instant, going_away: bool) {
        let progressed = std::mem::take(&mut self.progressed);
        let Some(since) = self.up_since.take() else {
            return;
        };
        let lasted = now.saturating_duration_since(since) >= self.config.reset_after;
        let earned = lasted || progressed;
        if earned || (going_away && !self.went_away) {
            self.reset();
        }
        self.went_away = going_away && !earned;
    }

    /// Starts the series over, as if no attempt had failed.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// Delays handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

fn clamp_unit(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// Why a connection attempt or a session ended, classified for retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// The TCP connection could not be made, or broke during the opening
    /// handshake (refused, unreachable, reset, closed before the response).
    Connect(io::ErrorKind),
    /// The connection or its handshake did not finish in time, or a
    /// keepalive ping went unanswered during the session.
    Timeout,
    /// The server answered the upgrade with this HTTP status instead of 101.
    HttpStatus(u16),
    /// The server's handshake response was invalid (bad accept key, an
    /// extension or subprotocol we did not offer, a malformed head), or
    /// the URL was: a retry would get the same answer.
    Handshake,
    /// The TLS handshake failed: a certificate was refused on either side
    /// (unknown issuer, expired, issued for another name, a client
    /// certificate missing or untrusted), the peer ended it with a fatal
    /// alert, or the TLS settings are unusable. The next attempt meets the
    /// same certificates and settings, so it is not retried by default. A
    /// connection lost during the TLS handshake is [`Failure::Connect`].
    Tls,
    /// The session ended with the close code the peer sent; 1005 when its
    /// close frame carried no code, 1006 when TCP ended without one.
    Close(u16),
    /// We failed the session with this close code: the peer broke the
    /// protocol (1002, 1007) or a limit (1009).
    Protocol(u16),
    /// The socket failed during the session (reset, broken pipe).
    Io(io::ErrorKind),
    /// Anything else: a misuse such as sending after close.
    Other,
}

impl Failure {
    /// The session ended with the peer's close frame (`None`: it had no
    /// code, 1005).
    pub fn from_close(frame: Option<&CloseFrame>) -> Self {
        Self::Close(frame.map_or(1005, |f| f.code.0))
    }

    /// Whether the server ended the session because it is going away
    /// (1001, sent by a server that drains for a shutdown, see
    /// [`shutdown`](crate::shutdown)) or restarting (1012): the server
    /// did nothing wrong and asks to be tried again, so [`Backoff::ended`]
    /// does not count it as a failure.
    pub fn is_going_away(&self) -> bool {
        matches!(self, Self::Close(1001 | 1012))
    }

    /// Classifies an error of the core, met during a session or a
    /// handshake.
    pub fn from_error(e: &Error) -> Self {
        match e {
            Error::Protocol(p) => Self::Protocol(p.close_code().0),
            Error::Handshake(h) => Self::from_handshake(h),
            Error::KeepaliveTimeout => Self::Timeout,
            Error::AbnormalClosure => Self::Close(1006),
            Error::Proxy(p) => Self::from_proxy(p),
            Error::Closed
            | Error::InvalidCloseCode(_)
            | Error::ControlPayloadTooLong(_)
            | Error::ChunkOutOfOrder => Self::Other,
        }
    }

    /// Classifies a failed opening handshake.
    pub fn from_handshake(e: &HandshakeError) -> Self {
        match e {
            HandshakeError::Rejected(status) => Self::HttpStatus(*status),
            HandshakeError::TimedOut => Self::Timeout,
            HandshakeError::Eof => Self::Connect(io::ErrorKind::UnexpectedEof),
            _ => Self::Handshake,
        }
    }
}

impl Failure {
    /// Classifies a proxy that could not open the tunnel, following
    /// [`ProxyError::is_retryable`]: a timeout is [`Failure::Timeout`], a
    /// proxy that closed the connection `Connect(UnexpectedEof)`, any
    /// other retryable refusal (the target or network down, HTTP 408, 429,
    /// 5xx) `Connect(ConnectionRefused)`, and the rest
    /// [`Failure::Handshake`] (not retried by default).
    pub fn from_proxy(e: &ProxyError) -> Self {
        match e {
            ProxyError::TimedOut | ProxyError::Socks5(Socks5Failure::TtlExpired) => Self::Timeout,
            ProxyError::Eof => Self::Connect(io::ErrorKind::UnexpectedEof),
            e if e.is_retryable() => Self::Connect(io::ErrorKind::ConnectionRefused),
            _ => Self::Handshake,
        }
    }
}

impl From<&Error> for Failure {
    fn from(e: &Error) -> Self {
        Self::from_error(e)
    }
}

impl From<Option<&CloseFrame>> for Failure {
    fn from(frame: Option<&CloseFrame>) -> Self {
        Self::from_close(frame)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(kind) => write!(f, "could not connect: {kind}"),
            Self::Timeout => f.write_str("timed out"),
            Self::HttpStatus(s) => write!(f, "server answered HTTP {s}"),
            Self::Handshake => f.write_str("invalid handshake"),
            Self::Tls => f.write_str("TLS handshake failed"),
            Self::Close(c) => write!(f, "peer closed with {c}"),
            Self::Protocol(c) => write!(f, "failed the connection with {c}"),
            Self::Io(kind) => write!(f, "connection lost: {kind}"),
            Self::Other => f.write_str("connection ended"),
        }
    }
}

/// Which [`Failure`]s are worth another attempt.
///
/// The default follows RFC 6455 and HTTP semantics: failures a later
/// attempt may not meet are retried — connect errors, timeouts, lost
/// connections (socket errors, close code 1006), HTTP 5xx, and close codes
/// 1001 (going away), 1011 (server error), 1012 (restart), 1013 (try again
/// later) and 1014 (bad gateway). Everything else is not: HTTP 4xx (and
/// 1xx-3xx), an invalid handshake, close codes 1000 (done), 1002, 1003,
/// 1007, 1008, 1009, 1010, 1005 (no code) and the application's
/// 3000-4999, TLS failures such as a refused certificate
/// ([`Failure::Tls`]), and misuse ([`Failure::Other`]): the same request
/// would meet the same answer. The builder methods change any of it, e.g.
/// `.retry_status(429)` for a server that rate-limits.
///
/// A close code applies to both [`Failure::Close`] (the peer's) and
/// [`Failure::Protocol`] (ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    connect: bool,
    timeout: bool,
    handshake: bool,
    tls: bool,
    io: bool,
    other: bool,
    statuses: BTreeSet<u16>,
    close_codes: BTreeSet<u16>,
}

/// Close codes retried by default.
pub const RETRIED_CLOSE_CODES: [u16; 6] = [1001, 1006, 1011, 1012, 1013, 1014];

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            connect: true,
            timeout: true,
            handshake: false,
            tls: false,
            io: true,
            other: false,
            statuses: (500..=599).collect(),
            close_codes: RETRIED_CLOSE_CODES.into_iter().collect(),
        }
    }
}

impl RetryPolicy {
    /// Retries nothing; add what should be with the builder methods.
    pub fn none() -> Self {
        Self {
            connect: false,
            timeout: false,
            handshake: false,
            tls: false,
            io: false,
            other: false,
            statuses: BTreeSet::new(),
            close_codes: BTreeSet::new(),
        }
    }

    /// Whether `failure` is worth another attempt.
    pub fn should_retry(&self, failure: &Failure) -> bool {
        match failure {
            Failure::Connect(_) => self.connect,
            Failure::Timeout => self.timeout,
            Failure::HttpStatus(s) => self.statuses.contains(s),
            Failure::Handshake => self.handshake,
            Failure::Tls => self.tls,
            Failure::Close(c) | Failure::Protocol(c) => self.close_codes.contains(c),
            Failure::Io(_) => self.io,
            Failure::Other => self.other,
        }
    }

    /// Retry (or not) connect errors.
    pub fn retry_connect(mut self, on: bool) -> Self {
        self.connect = on;
        self
    }

    /// Retry (or not) timeouts.
    pub fn retry_timeout(mut self, on: bool) -> Self {
        self.timeout = on;
        self
    }

    /// Retry (or not) invalid handshake responses.
    pub fn retry_handshake(mut self, on: bool) -> Self {
        self.handshake = on;
        self
    }

    /// Retry (or not) failed TLS handshakes (off by default: a refused
    /// certificate is refused again until someone changes it).
    pub fn retry_tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Retry (or not) socket errors during a session.
    pub fn retry_io(mut self, on: bool) -> Self {
        self.io = on;
        self
    }

    /// Retry (or not) [`Failure::Other`].
    pub fn retry_other(mut self, on: bool) -> Self {
        self.other = on;
        self
    }

    /// Retry when the server answers with `status`.
    pub fn retry_status(mut self, status: u16) -> Self {
        self.statuses.insert(status);
        self
    }

    /// Do not retry when the server answers with `status`.
    pub fn no_retry_status(mut self, status: u16) -> Self {
        self.statuses.remove(&status);
        self
    }

    /// Retry after a session ended with close `code`.
    pub fn retry_close(mut self, code: u16) -> Self {
        self.close_codes.insert(code);
        self
    }

    /// Do not retry after a session ended with close `code`.
    pub fn no_retry_close(mut self, code: u16) -> Self {
        self.close_codes.remove(&code);
        self
    }
}
