//! Graceful shutdown of the loop: stop accepting, close every connection
//! with 1001 after a drain period, cut what is left at a deadline. The
//! schedule and the close are the core's (`tether_core::shutdown`); this
//! file keeps the books.

use tether_core::shutdown::{Drain, DrainPhase, Drained, GOING_AWAY, GOING_AWAY_REASON};

use super::*;

/// A shutdown under way.
pub(super) struct Draining {
    plan: Drain,
    /// The phase acted on so far.
    acted: DrainPhase,
    /// Connections that ended since the drain started.
    pub(super) ended: usize,
    /// Fixed once every connection has ended or the deadline passed.
    result: Option<Drained>,
}

impl ConnectionSet {
    /// Starts a graceful shutdown: every listener is closed at once (new
    /// connects are refused), connections get `drain` to finish their
    /// work (the application may close them itself with
    /// [`GOING_AWAY`] when done), then
    /// every connection still open is closed with 1001 "going away" (one
    /// still in its opening handshake as soon as it opens), and at
    /// `deadline` (from now, the drain included) those still open are cut:
    /// each gets an [`Event::Error`] (`TimedOut`) and [`Event::Closed`].
    /// Keep polling until [`drained`](Self::drained) says it is over. A
    /// second call changes nothing.
    pub fn drain(&mut self, drain: Duration, deadline: Duration) {
        if self.draining.is_some() {
            return;
        }
        for index in std::mem::take(&mut self.listeners) {
            // Deregistered and dropped: the port is closed.
            self.remove_slot(index);
        }
        self.accept_retry = None;
        self.draining = Some(Draining {
            plan: Drain::new(Instant::now(), drain, deadline),
            acted: DrainPhase::Draining,
            ended: 0,
            result: None,
        });
        // The next pass acts on a drain of zero at once.
        self.drain_tick_closing();
    }

    /// Where the shutdown stands; `None` while the loop runs normally.
    pub fn drain_phase(&self) -> Option<DrainPhase> {
        let d = self.draining.as_ref()?;
        Some(d.acted.max(d.plan.phase(Instant::now())))
    }

    /// How the shutdown ended, once it has: every connection closed
    /// (`cut` 0), or the deadline passed (`cut` counts those it cut).
    /// `None` before, or when no shutdown was started.
    pub fn drained(&self) -> Option<Drained> {
        let d = self.draining.as_ref()?;
        d.result.or((self.live == 0).then_some(Drained {
            closed: d.ended,
            cut: 0,
        }))
    }

    /// When the shutdown's phase changes next, for the poll timeout.
    pub(super) fn drain_deadline(&self) -> Option<Instant> {
        let d = self.draining.as_ref()?;
        if d.result.is_some() || self.live == 0 {
            return None;
        }
        match d.acted {
            DrainPhase::Draining => Some(d.plan.close_at()),
            DrainPhase::Closing => Some(d.plan.deadline()),
            DrainPhase::Expired => None,
        }
    }

    /// Whether connections that open now are to be closed at once.
    pub(super) fn drain_closing(&self) -> bool {
        self.draining
            .as_ref()
            .is_some_and(|d| d.acted >= DrainPhase::Closing)
    }

    /// Closes an open connection with 1001; queued, written on the pass.
    pub(super) fn go_away(&mut self, id: ConnectionId) {
        if let Some(Phase::Open(conn)) = get(&mut self.slots, id).map(|c| &mut c.phase) {
            if conn.close(GOING_AWAY, GOING_AWAY_REASON).is_ok() {
                self.enqueue(id.index);
            }
        }
    }

    /// Acts on the drain's phase: closes at the end of the drain period,
    /// cuts at the deadline (events go to `h`).
    pub(super) fn drain_tick(&mut self, h: &mut Handler<'_>) {
        self.drain_tick_closing();
        let expired = self.draining.as_ref().is_some_and(|d| {
            d.acted != DrainPhase::Expired && d.plan.phase(Instant::now()) == DrainPhase::Expired
        });
        if !expired {
            return;
        }
        let open = self.connection_ids();
        if let Some(d) = &mut self.draining {
            d.acted = DrainPhase::Expired;
            d.result.get_or_insert(Drained {
                closed: d.ended,
                cut: open.len(),
            });
        }
        for id in open {
            let e = io::Error::new(io::ErrorKind::TimedOut, "cut at the shutdown deadline");
            self.fail(id, e, h);
        }
    }

    /// At the end of the drain period, closes every open connection.
    fn drain_tick_closing(&mut self) {
        let Some(d) = &mut self.draining else {
            return;
        };
        if d.acted != DrainPhase::Draining || d.plan.phase(Instant::now()) == DrainPhase::Draining {
            return;
        }
        d.acted = DrainPhase::Closing;
        for id in self.connection_ids() {
            self.go_away(id);
        }
    }

    /// A connection ended (removed from the slab).
    pub(super) fn drain_count_end(&mut self) {
        if let Some(d) = &mut self.draining {
            if d.result.is_none() {
                d.ended += 1;
            }
        }
    }

    fn connection_ids(&self) -> Vec<ConnectionId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.entry, Entry::Conn(_)))
            .map(|(i, s)| ConnectionId {
                index: i as u32,
                generation: s.generation,
            })
            .collect()
    }
}
