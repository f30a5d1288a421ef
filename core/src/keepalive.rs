//! Ping/pong keepalive: detects a dead peer and keeps idle connections
//! alive through proxies and NAT.
//!
//! Each ping carries a fresh random payload, and only the pong echoing it
//! counts, so an unsolicited or stale pong cannot hide a dead peer.

use std::time::{Duration, Instant};

use crate::config::Config;
use crate::time::deadline_after;

/// Ping payload length: enough randomness that a stale pong never matches.
const PAYLOAD_LEN: usize = 8;

/// The interval and timeout are the connection's `Config` ones, passed in
/// rather than copied: every idle connection holds one of these.
#[derive(Debug)]
pub(crate) struct Keepalive {
    next_ping: Option<Instant>,
    outstanding: Option<([u8; PAYLOAD_LEN], Instant)>,
    latency: Option<Duration>,
}

/// What the keepalive wants done at a given instant.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    Nothing,
    Ping,
    TimedOut,
}

impl Keepalive {
    pub(crate) fn new(config: &Config, now: Instant) -> Self {
        Self {
            next_ping: config.ping_interval.map(|i| deadline_after(now, i)),
            outstanding: None,
            latency: None,
        }
    }

    /// The next instant something is due.
    pub(crate) fn deadline(&self, config: &Config) -> Option<Instant> {
        match (self.outstanding, config.ping_timeout) {
            (Some((_, sent)), Some(t)) => Some(deadline_after(sent, t)),
            // Without a timeout an unanswered ping does not stop the next.
            _ => self.next_ping,
        }
    }

    /// Checks the timers. `paused` says the application is not reading
    /// (local backpressure); the pong may sit unread in the socket then, so
    /// a missing pong is not held against the peer.
    pub(crate) fn poll(&mut self, config: &Config, now: Instant, paused: bool) -> Due {
        match (self.outstanding, config.ping_timeout) {
            (Some((payload, sent)), Some(t)) if now >= deadline_after(sent, t) => {
                if paused {
                    self.outstanding = Some((payload, now));
                    Due::Nothing
                } else {
                    Due::TimedOut
                }
            }
            (Some(_), Some(_)) => Due::Nothing,
            _ => match self.next_ping {
                Some(at) if now >= at => Due::Ping,
                _ => Due::Nothing,
            },
        }
    }

    /// Records a ping just sent with `payload`.
    pub(crate) fn ping_sent(&mut self, config: &Config, payload: [u8; PAYLOAD_LEN], now: Instant) {
        self.outstanding = Some((payload, now));
        self.next_ping = config.ping_interval.map(|i| deadline_after(now, i));
    }

    /// A new random payload for the next ping.
    pub(crate) fn payload(rng: &mut dyn crate::rng::RandomSource) -> [u8; PAYLOAD_LEN] {
        let mut p = [0; PAYLOAD_LEN];
        rng.fill(&mut p);
        p
    }

    /// Handles a pong; returns the round trip if it answers our ping.
    pub(crate) fn pong(&mut self, payload: &[u8], now: Instant) -> Option<Duration> {
        match self.outstanding {
            Some((p, sent)) if p[..] == *payload => {
                self.outstanding = None;
                let rtt = now.saturating_duration_since(sent);
                self.latency = Some(rtt);
                Some(rtt)
            }
            _ => None,
        }
    }

    pub(crate) fn latency(&self) -> Option<Duration> {
        self.latency
    }
}
