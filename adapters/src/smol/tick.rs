//! Deadlines rounded up onto a shared grid of instants, so that timers
//! due close together fire together.
//!
//! async-io keeps one entry per timer and sleeps until each deadline on
//! its own: a server pinging 10,000 connections every 2 s, each on its
//! own schedule, woke 5,000 times a second for its timers (and again for
//! the pongs), and every wake (a context switch, and a split of the
//! reactor's whole timer map) cost more than the ping. On the grid every
//! timer of a tick fires in one wake, as in tokio's 1 ms timer wheel.
//!
//! The tick is 10 ms: at 10,000 connections pinged every 2 s the server
//! spent 26% of a core on keepalive with exact deadlines, 11% on a 1 ms
//! grid and 6-7% on a 10 ms one (bench `idle-100k --connections 10000`).
//! tether's timers are protocol timeouts of seconds (keepalive, close,
//! handshake) and backoffs; 10 ms late changes none of them.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The grid's step: how late at most a timer fires, and (its inverse)
/// how many wakes a second timers can cause at most.
pub(crate) const TICK: Duration = Duration::from_millis(TICK_MS);
const TICK_MS: u64 = 10;

/// `at` rounded up to the next instant of the grid (itself if it is on
/// one). An instant before the grid began, or too far ahead to round, is
/// returned as it is: it is due already, or is never.
pub(crate) fn round_up(at: Instant) -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let Some(since) = at.checked_duration_since(origin) else {
        return at;
    };
    let tick = TICK.as_nanos();
    let ticks = since.as_nanos().div_ceil(tick);
    u64::try_from(ticks * tick)
        .ok()
        .and_then(|ns| origin.checked_add(Duration::from_nanos(ns)))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_onto_one_grid() {
        let base = round_up(Instant::now());
        assert_eq!(round_up(base), base, "an instant on the grid stays");
        for ns in [1, 250_000, 999_999] {
            let at = base + Duration::from_nanos(ns);
            assert_eq!(round_up(at), base + TICK, "{ns} ns past a tick");
        }
        let next = base + TICK + Duration::from_nanos(1);
        assert_eq!(round_up(next), base + 2 * TICK);
    }

    #[test]
    fn leaves_the_past_and_the_far_future_alone() {
        let now = Instant::now();
        let _ = round_up(now);
        if let Some(before) = now.checked_sub(Duration::from_secs(3600)) {
            assert_eq!(round_up(before), before);
        }
        let far = tether_core::time::deadline_after(now, Duration::MAX);
        assert!(round_up(far) >= far);
    }

    /// Rounding only ever delays: the runtime's timer never fires before
    /// the deadline the driver asked for (which the driver relies on).
    #[test]
    fn smol_timer_never_fires_early() {
        use crate::smol::Smol;
        use crate::transport::Runtime;
        smol::block_on(async {
            for ms in [0, 1, 3, 12] {
                let at = Smol::now() + Duration::from_millis(ms);
                Smol::sleep_until(at).await;
                assert!(Smol::now() >= at, "fired before a deadline {ms} ms ahead");
                let mut sleep = Smol::sleep_until(Smol::now() + Duration::from_secs(3600));
                let at = Smol::now() + Duration::from_millis(ms);
                Smol::reset(&mut sleep, at);
                sleep.await;
                assert!(
                    Smol::now() >= at,
                    "fired before a reset deadline {ms} ms ahead"
                );
            }
        });
    }
}
