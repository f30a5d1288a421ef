//! Graceful shutdown, sans-IO: which close a server sends when it goes
//! away, and when.
//!
//! A server that stops (a deploy, a restart) stops accepting, lets the
//! connections it has finish their in-flight work for a drain period,
//! then closes each one with 1001 "going away" (RFC 6455 §7.4.1: "a
//! server going down"), and gives the close handshakes until a deadline,
//! after which whatever is still open is cut. A [`Drain`] holds those two
//! instants and says which phase a given instant falls in; every adapter
//! (the async `Shutdown`, the mio loop's drain) follows it, so the code,
//! the reason and the order of the phases are decided here once. The
//! close handshake itself is the connection's (its close timeout applies
//! too). Clients read 1001 as "come back" (see
//! [`backoff`](crate::backoff)).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tether_core::shutdown::{Drain, DrainPhase};
//!
//! let t0 = Instant::now();
//! let drain = Drain::new(t0, Duration::from_secs(5), Duration::from_secs(30));
//! assert_eq!(drain.phase(t0), DrainPhase::Draining);
//! assert_eq!(drain.phase(t0 + Duration::from_secs(5)), DrainPhase::Closing);
//! assert_eq!(drain.phase(t0 + Duration::from_secs(30)), DrainPhase::Expired);
//! ```

use std::time::{Duration, Instant};

use crate::close::CloseCode;
use crate::time::deadline_after;

/// The close code of a server going away: 1001.
pub const GOING_AWAY: CloseCode = CloseCode::GOING_AWAY;

/// The reason sent with [`GOING_AWAY`].
pub const GOING_AWAY_REASON: &str = "going away";

/// Where a shutdown stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DrainPhase {
    /// Not accepting; open connections finish their in-flight work and
    /// may close themselves (with [`GOING_AWAY`]) once done.
    Draining,
    /// The drain period is over: every connection still open is closed
    /// with [`GOING_AWAY`], and its close handshake runs.
    Closing,
    /// The deadline passed: connections still open are cut without
    /// waiting for their close handshake, and reported.
    Expired,
}

/// The schedule of one shutdown: when the drain period ends and when the
/// deadline falls, both fixed when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drain {
    close_at: Instant,
    deadline: Instant,
}

impl Drain {
    /// A shutdown starting at `now`: connections get `drain` to finish
    /// their work, and everything must be closed within `deadline` of
    /// `now` (the drain included). A drain longer than the deadline is
    /// cut to it. Durations too large for the clock mean "never" (see
    /// [`deadline_after`]).
    pub fn new(now: Instant, drain: Duration, deadline: Duration) -> Self {
        let deadline = deadline_after(now, deadline);
        Self {
            close_at: deadline_after(now, drain).min(deadline),
            deadline,
        }
    }

    /// When open connections are closed with [`GOING_AWAY`].
    pub fn close_at(&self) -> Instant {
        self.close_at
    }

    /// When connections still open are cut.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The phase at `now`.
    pub fn phase(&self, now: Instant) -> DrainPhase {
        if now >= self.deadline {
            DrainPhase::Expired
        } else if now >= self.close_at {
            DrainPhase::Closing
        } else {
            DrainPhase::Draining
        }
    }

    /// The next instant the phase changes after `now`; `None` once
    /// expired.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        match self.phase(now) {
            DrainPhase::Draining => Some(self.close_at),
            DrainPhase::Closing => Some(self.deadline),
            DrainPhase::Expired => None,
        }
    }
}

/// How a shutdown ended: how many connections closed by the deadline and
/// how many were still open then (cut, or left to the caller to drop).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Drained {
    /// Connections that ended (close handshake done, or failed) before
    /// the deadline.
    pub closed: usize,
    /// Connections still open at the deadline.
    pub cut: usize,
}

impl Drained {
    /// Whether every connection closed in time.
    pub fn is_clean(&self) -> bool {
        self.cut == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn phases_follow_the_drain_then_the_deadline() {
        let t0 = Instant::now();
        let d = Drain::new(t0, s(5), s(30));
        assert_eq!(d.next_change(t0), Some(t0 + s(5)));
        assert_eq!(d.phase(t0 + s(4)), DrainPhase::Draining);
        assert_eq!(d.phase(t0 + s(29)), DrainPhase::Closing);
        assert_eq!(d.next_change(t0 + s(29)), Some(t0 + s(30)));
        assert_eq!(d.next_change(t0 + s(31)), None);
    }

    #[test]
    fn a_drain_longer_than_the_deadline_is_cut_to_it() {
        let t0 = Instant::now();
        let d = Drain::new(t0, s(60), s(10));
        assert_eq!(d.close_at(), t0 + s(10));
        assert_eq!(d.phase(t0 + s(10)), DrainPhase::Expired);
    }

    #[test]
    fn no_drain_closes_at_once_and_never_means_never() {
        let t0 = Instant::now();
        let d = Drain::new(t0, Duration::ZERO, Duration::MAX);
        assert_eq!(d.phase(t0), DrainPhase::Closing);
        assert!(d.deadline() > t0 + s(365 * 24 * 3600));
    }
}
