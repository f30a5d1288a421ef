//! Where a connection is in its life, as one value.
//!
//! Each reachable combination of "our close frame is queued", "the peer's
//! close frame came", "the connection failed", "a violation waits behind
//! events", "the peer ended its stream" and "the close timed out" is a
//! variant, so no code can read a combination that cannot happen, and
//! [`State`] is read from it rather than computed from flags.

use super::{Role, State};

/// The connection's phase; the only lifecycle state it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Messages flow both ways.
    Open,
    /// A violation was found behind events the application has yet to
    /// take: nothing more is read, and the connection fails when the
    /// application reaches it. `close_sent`: our close frame was queued
    /// before the violation.
    ViolationQueued { close_sent: bool },
    /// Our close frame is queued; the peer's has not come.
    CloseSent,
    /// Both close frames are exchanged. The server is done; the client
    /// waits for the server to close TCP (RFC 6455 section 7.1.1).
    CloseExchanged,
    /// The connection failed: a close frame with the error's code is
    /// queued and all input is ignored.
    Failed,
    /// The peer ended its byte stream: nothing more is read or queued.
    PeerEnded,
    /// The close timeout passed: queued output was dropped.
    TimedOut,
}

impl Phase {
    /// Frames are still parsed: before the peer's close, a violation or the
    /// end of the stream.
    pub(super) fn reads_frames(self) -> bool {
        matches!(self, Phase::Open | Phase::CloseSent)
    }

    /// The application may still queue messages and a close frame.
    pub(super) fn may_send(self) -> bool {
        matches!(
            self,
            Phase::Open | Phase::ViolationQueued { close_sent: false }
        )
    }

    /// The transport should be closed once the transmit queue is empty.
    /// The server closes TCP first (RFC 6455 section 7.1.1); the client
    /// waits for that, bounded by the close timeout.
    pub(super) fn is_finished(self, role: Role) -> bool {
        match self {
            Phase::PeerEnded | Phase::TimedOut => true,
            Phase::CloseExchanged | Phase::Failed => role == Role::Server,
            _ => false,
        }
    }

    pub(super) fn state(self, role: Role) -> State {
        if self.is_finished(role) {
            State::Closed
        } else if self.may_send() {
            State::Open
        } else {
            State::Closing
        }
    }
}
