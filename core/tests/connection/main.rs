//! Unit behaviour of `Connection`, driven byte for byte and instant for
//! instant: framing, validation and the close code of every failure, the
//! close handshake, keepalive, outgoing fragmentation and flow control.

mod close;
#[path = "../common/mod.rs"]
mod common;
mod control;
mod flow;
mod prepared;
mod read_with;
mod reading;
mod sending;
mod validation;

pub use std::time::{Duration, Instant};

pub use common::*;
pub use tether_core::{
    Bytes, CloseCode, CloseFrame, ClosePayloadError, Config, Connection, DataKind, Error, Event,
    Message, ProtocolError, Role, State,
};

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

pub const ROLES: [Role; 2] = [Role::Server, Role::Client];

/// Feeds `bytes` to a fresh connection of `role` and checks that it fails
/// with exactly `error` and queues a close frame with `code`.
pub fn assert_fails(role: Role, config: Config, bytes: &[u8], error: ProtocolError, code: u16) {
    let now = Instant::now();
    let mut c = conn_at(role, config, now);
    c.handle_read(bytes, now);
    assert_eq!(
        events(&mut c),
        [Event::Error(Error::Protocol(error.clone()))],
        "{role:?}, {error:?}"
    );
    assert_eq!(error.close_code(), CloseCode(code), "{error:?}");
    assert_eq!(sent_close_code(&mut c), Some(code), "{role:?}, {error:?}");
    assert_ne!(c.state(), State::Open);
    // Input after the failure is ignored.
    c.handle_read(&Raw::to(role, TEXT, "late").encode(), now);
    assert_eq!(events(&mut c), []);
}

/// Feeds frames to a fresh connection of `role` and returns its events.
pub fn receive(role: Role, frames: &[Raw]) -> Vec<Event> {
    let now = Instant::now();
    let mut c = conn(role, now);
    c.handle_read(&wire(frames), now);
    events(&mut c)
}

pub fn binary(data: impl Into<Bytes>) -> Event {
    Event::Message(Message::binary(data))
}

pub fn text(s: &'static str) -> Event {
    Event::Message(Message::text(s))
}
