//! The close handshake, failing the connection, and the timers that
//! bound both (keepalive, idle and close timeouts).

use super::*;

impl Connection {
    /// Runs the timers due at `now`: keepalive pings, the ping timeout
    /// (fails the connection with 1011) and the close timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if let Some(deadline) = self.close_deadline {
            if now >= deadline && self.phase != Phase::TimedOut {
                // Give up on the peer: what it has not read by now it never
                // will, and waiting for it would keep the socket open.
                self.phase = Phase::TimedOut;
                trace!(warn, role = ?self.role, "close timeout: giving up on the peer");
                self.out = Outbox::new(self.role == Role::Client);
                self.owed_pongs.clear();
            }
        }
        // Once closing, after the peer's EOF, or with a violation the
        // application has yet to reach, the connection's end is decided: a
        // keepalive failure or an idle close would be a second end, with
        // another close code.
        if self.phase != Phase::Open {
            return;
        }
        if let Some(idle) = self.config.idle_timeout {
            if now >= deadline_after(self.last_input, idle) {
                // Nothing arrived for too long (pongs count): close politely.
                trace!(info, role = ?self.role, "idle timeout");
                let _ = self.close(CloseCode::GOING_AWAY, "idle timeout");
                return;
            }
        }
        match self.keepalive.poll(&self.config, now, self.inbound_full()) {
            Due::Nothing => {}
            Due::Ping => {
                let payload = Keepalive::payload(&mut *self.rng);
                self.keepalive.ping_sent(&self.config, payload, now);
                let payload = Bytes::copy_from_slice(&payload);
                self.out
                    .push_frame(true, 0, OpCode::Ping, &payload, &mut *self.rng);
            }
            Due::TimedOut => {
                trace!(warn, role = ?self.role, "keepalive ping unanswered: failing with 1011");
                self.fail_with(CloseCode::INTERNAL_ERROR, "keepalive ping timed out");
                self.push_event(Event::Error(Error::KeepaliveTimeout));
            }
        }
    }

    /// Starts the close handshake with `code` and `reason` (cut to 123
    /// bytes). Data queued before still goes out first. Closing twice is a
    /// no-op.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !code.is_sendable() {
            return Err(Error::InvalidCloseCode(code.0));
        }
        let mut payload = Vec::with_capacity(2 + reason.len().min(123));
        encode_close_payload(
            Some(&CloseFrame {
                code,
                reason: reason.to_owned(),
            }),
            &mut payload,
        );
        if self.phase.may_send() {
            trace!(debug, role = ?self.role, code = code.0, reason, "closing");
        }
        self.queue_close(Bytes::from(payload));
        Ok(())
    }

    pub(super) fn close_without_code(&mut self) -> Result<(), Error> {
        self.queue_close(Bytes::new());
        Ok(())
    }

    pub(super) fn queue_close(&mut self, payload: Bytes) {
        self.phase = match self.phase {
            Phase::Open => Phase::CloseSent,
            Phase::ViolationQueued { close_sent: false } => {
                Phase::ViolationQueued { close_sent: true }
            }
            _ => return,
        };
        self.close_deadline = Some(deadline_after(self.now, self.config.close_timeout));
        self.frame_owed_pongs(true);
        self.out.push_close_after_data(payload, &mut *self.rng);
    }

    /// Fails the connection: drops unsent data, sends a close frame with
    /// `code` and ignores all further input.
    pub(super) fn fail_with(&mut self, code: CloseCode, reason: &str) {
        let close_sent = match self.phase {
            Phase::Open | Phase::ViolationQueued { close_sent: false } => false,
            Phase::CloseSent | Phase::ViolationQueued { close_sent: true } => true,
            // Failed already, or the transport's end is decided.
            Phase::CloseExchanged | Phase::Failed | Phase::PeerEnded | Phase::TimedOut => return,
        };
        self.phase = Phase::Failed;
        self.frame = None;
        self.message = None;
        self.rbuf = BytesMut::new();
        self.read_base = None;
        trace!(warn, role = ?self.role, code = code.0, reason, "connection failed");
        if !close_sent {
            // Data queued before the failure (answers to messages the
            // application already had) still goes out, then the close.
            let mut payload = Vec::new();
            encode_close_payload(
                Some(&CloseFrame {
                    code,
                    reason: reason.to_owned(),
                }),
                &mut payload,
            );
            self.frame_owed_pongs(true);
            self.out
                .push_close_after_data(Bytes::from(payload), &mut *self.rng);
        }
        self.close_deadline = Some(deadline_after(self.now, self.config.close_timeout));
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) should be
    /// called, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            // A failed server is finished at once, yet its close frame may
            // sit behind data a dead peer never reads: the close timeout
            // still bounds that wait.
            return self
                .close_deadline
                .filter(|_| self.has_transmit() && self.phase != Phase::TimedOut);
        }
        if self.phase != Phase::Open {
            // Closing, or a violation waits for the application: only the
            // close timeout (if a close frame is queued) runs.
            return self.close_deadline;
        }
        let idle = self
            .config
            .idle_timeout
            .map(|t| deadline_after(self.last_input, t));
        match (self.keepalive.deadline(&self.config), idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
