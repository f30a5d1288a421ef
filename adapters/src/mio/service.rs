//! One pass of the loop over a connection: readiness, accepting, the
//! handshake, reading, handing events over, writing, ending.

use super::*;

pub(super) fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl ConnectionSet {
    pub(super) fn enqueue(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        if !slot.queued {
            slot.queued = true;
            self.queue.push(index);
        }
    }

    pub(super) fn run_queue(&mut self, h: &mut Handler<'_>) {
        for index in std::mem::take(&mut self.queue) {
            self.slots[index as usize].queued = false;
            self.ready(index, Ready::default(), h);
        }
    }

    /// Readiness (or queued work) for a slot.
    pub(super) fn ready(&mut self, index: u32, ready: Ready, h: &mut Handler<'_>) {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        match &mut slot.entry {
            Entry::Free => {}
            Entry::Listener(..) => self.accept_ready(index),
            Entry::Conn(c) => {
                c.io.readable |= ready.read;
                c.io.hup |= ready.hup;
                c.io.writable |= ready.write;
                let id = self.id_at(index);
                self.service(id, h);
            }
        }
    }

    pub(super) fn accept_ready(&mut self, index: u32) {
        for _ in 0..ACCEPT_BUDGET {
            let Entry::Listener(listener, acceptor) = &self.slots[index as usize].entry else {
                return;
            };
            let acceptor = *acceptor;
            match listener.accept() {
                Ok((stream, _)) => {
                    self.accept_backoff.accepted();
                    // A socket the peer already reset may refuse options;
                    // its handshake then fails on its own.
                    let _ = self.socket.apply(&stream);
                    let options = self.acceptors[acceptor].options.clone();
                    let tls = self.acceptors[acceptor].tls.clone();
                    let decide = Decide::Listener(acceptor);
                    if let Err(e) = self.add_server(stream, &options, decide, tls.as_ref()) {
                        self.accept_error = Some(e);
                    }
                }
                Err(e) if would_block(&e) => return,
                Err(e) => {
                    // Out of descriptors, say: try again later. An error
                    // the async listeners would return (a broken listener)
                    // has nobody to go to here but `take_accept_error`; it
                    // is retried at the longest wait.
                    let wait = match self.accept_backoff.failed(&e) {
                        Next::Retry(wait) => wait,
                        Next::Fail => MAX_WAIT,
                    };
                    self.accept_error = Some(e);
                    if !wait.is_zero() {
                        self.accept_retry = Some(Instant::now() + wait);
                        return;
                    }
                }
            }
        }
        self.enqueue(index);
    }

    /// Moves a connection as far as it can go now: handshake, read, hand
    /// events over, write, close when the core is done with the socket.
    pub(super) fn service(&mut self, id: ConnectionId, h: &mut Handler<'_>) {
        let now = Instant::now();
        let step = {
            let Self {
                slots,
                scratch,
                acceptors,
                ..
            } = self;
            match get(slots, id) {
                Some(c) => c.handshake(now, scratch, acceptors),
                None => return,
            }
        };
        match step {
            Ok(true) => {
                h(self, id, Event::Open);
                if self.drain_closing() {
                    // Opened after the drain period: told at once.
                    self.go_away(id);
                }
            }
            Ok(false) => {}
            Err(e) => h(self, id, Event::Error(e)),
        }

        let Some(c) = get(&mut self.slots, id) else {
            return;
        };
        if let Err(e) = c.read(now, &mut self.scratch) {
            return self.fail(id, e, h);
        }
        self.deliver(id, false, h);

        let Some(c) = get(&mut self.slots, id) else {
            return;
        };
        if let Err(e) = c.write(now) {
            return self.fail(id, e, h);
        }
        if c.want_writable {
            if let Phase::Open(conn) = &mut c.phase {
                if conn.is_writable() {
                    c.want_writable = false;
                    h(self, id, Event::Writable);
                }
            }
        }

        let Some(c) = get(&mut self.slots, id) else {
            return;
        };
        if c.is_done() {
            return self.finish(id, h);
        }
        if c.io.readable && c.wants_read() {
            // Read budget used up: more next pass.
            self.enqueue(id.index);
        }
        self.arm(id);
    }

    /// Hands the core's events to `h`, one at a time, unless paused.
    pub(super) fn deliver(&mut self, id: ConnectionId, force: bool, h: &mut Handler<'_>) {
        loop {
            let Some(c) = get(&mut self.slots, id) else {
                return;
            };
            if c.paused && !force {
                return;
            }
            let Phase::Open(conn) = &mut c.phase else {
                return;
            };
            let Some(ev) = conn.poll_event() else {
                return;
            };
            let ev = match ev {
                tether_core::Event::Message(m) => Event::Message(m),
                tether_core::Event::Chunk { kind, data, fin } => Event::Chunk { kind, data, fin },
                tether_core::Event::Ping(p) => Event::Ping(p),
                tether_core::Event::Pong { payload, latency } => Event::Pong { payload, latency },
                tether_core::Event::Close(frame) => Event::Close(frame),
                tether_core::Event::Error(e) => Event::Error(Error::WebSocket(e)),
                // An event a newer core adds that this loop does not carry.
                _ => continue,
            };
            h(self, id, ev);
        }
    }

    /// The socket failed: what the core still holds, the error, the end.
    /// After the close handshake the error is not reported: the
    /// connection had ended (`Connection::close_handshake_done`).
    pub(super) fn fail(&mut self, id: ConnectionId, e: io::Error, h: &mut Handler<'_>) {
        self.deliver(id, true, h);
        if let Some(c) = get(&mut self.slots, id) {
            let ended = matches!(&c.phase, Phase::Open(conn) if conn.close_handshake_done());
            self.remove_slot(id.index);
            if !ended {
                // A TLS failure comes wrapped: `from` finds it (`Error::Tls`).
                h(self, id, Event::Error(Error::from(e)));
            }
            h(self, id, Event::Closed);
        }
    }

    /// The core is done with the socket: end it (FIN) and close it.
    pub(super) fn finish(&mut self, id: ConnectionId, h: &mut Handler<'_>) {
        self.deliver(id, true, h);
        if get(&mut self.slots, id).is_some() {
            if let Some(c) = self.remove_slot(id.index) {
                // Nothing more to say either way.
                let _ = c.io.stream.shutdown(Shutdown::Write);
            }
            h(self, id, Event::Closed);
        }
    }
}
