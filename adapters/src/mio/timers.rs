//! Deadlines of every connection in one binary heap, with lazy deletion.

use super::*;

impl ConnectionSet {
    /// Puts the connection's next deadline in the heap if it changed.
    pub(super) fn arm(&mut self, id: ConnectionId) {
        let Some(c) = get(&mut self.slots, id) else {
            return;
        };
        let want = c.deadline();
        if want == c.armed {
            return;
        }
        c.armed = want;
        if let Some(at) = want {
            self.timers.push(Reverse((at, id.index, id.generation)));
        }
        if self.timers.len() > 64 + 2 * self.live {
            // Mostly superseded entries: rebuild from the live deadlines.
            let live = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match &s.entry {
                    Entry::Conn(c) => c.armed.map(|at| Reverse((at, i as u32, s.generation))),
                    _ => None,
                });
            self.timers = live.collect();
        }
    }

    pub(super) fn is_armed(&mut self, at: Instant, index: u32, generation: u32) -> bool {
        get(&mut self.slots, ConnectionId { index, generation })
            .is_some_and(|c| c.armed == Some(at))
    }

    /// The earliest live deadline (superseded heap entries are dropped),
    /// the accept retry's and the shutdown's included.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        let mut next = None;
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            if self.is_armed(at, index, generation) {
                next = Some(at);
                break;
            }
            self.timers.pop();
        }
        [next, self.accept_retry, self.drain_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    pub(super) fn fire_timers(&mut self, h: &mut Handler<'_>) {
        let now = Instant::now();
        if self.accept_retry.is_some_and(|at| at <= now) {
            self.accept_retry = None;
            for index in self.listeners.clone() {
                self.enqueue(index);
            }
        }
        let mut due = Vec::new();
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.is_armed(at, index, generation) {
                due.push((at, ConnectionId { index, generation }));
            }
        }
        for (at, id) in due {
            let Some(c) = get(&mut self.slots, id) else {
                continue;
            };
            c.armed = None;
            let failed = match &mut c.phase {
                Phase::Open(conn) => {
                    conn.handle_timeout(now.max(at));
                    if c.io.linger().is_some_and(|t| t <= now) {
                        // What was left (TLS's last records) found no
                        // room in time.
                        c.io.abandon();
                    }
                    None
                }
                Phase::Client(x) => match &x.tunnel {
                    Some(t) => t.hs.handle_timeout(now).err().map(Error::from),
                    None => x.hs.handle_timeout(now).err().map(Error::from),
                },
                Phase::Server(x) => x.hs.handle_timeout(now).err().map(Error::from),
                // The refusal could not be written in time: give up on it.
                Phase::Ending(_) => {
                    c.io.abandon();
                    None
                }
            };
            if let Some(e) = failed {
                c.phase = Phase::Ending(at);
                c.io.head.clear();
                h(self, id, Event::Error(e));
            }
            self.service(id, h);
        }
        self.drain_tick(h);
    }
}
