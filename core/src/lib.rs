//! # tether-core
//!
//! A sans-IO WebSocket (RFC 6455) protocol core: the opening handshake,
//! framing, masking, UTF-8 validation, keepalive timers, the close handshake
//! and flow-control decisions, as a pure state machine. It never touches a
//! socket, a clock or a global random source: bytes, instants and randomness
//! are passed in, so every behaviour can be tested byte for byte and instant
//! for instant. The `tether` crate drives it on async runtimes.
//!
//! ## Driving a connection
//!
//! An adapter (or any program that owns a socket) repeats:
//!
//! 1. read from the socket while [`Connection::wants_read`], through
//!    [`Connection::read_with`], which picks the buffer and feeds the
//!    result in (end of stream included); [`Connection::read_buf`] with
//!    [`Connection::commit_read`], [`Connection::handle_read`] and
//!    [`Connection::handle_eof`] are the steps it takes, for callers
//!    that read otherwise;
//! 2. take [`Connection::poll_event`]s and hand them to the application;
//! 3. queue the application's messages with [`Connection::send`] and
//!    friends; they never block and never do I/O;
//! 4. write what [`Connection::poll_transmit`] gives (vectored), then
//!    [`Connection::advance_transmit`] by the bytes written;
//! 5. sleep until [`Connection::poll_timeout`] and call
//!    [`Connection::handle_timeout`];
//! 6. once [`Connection::can_close_transport`] (finished, nothing left to
//!    transmit), close the socket.
//!
//! The opening handshake comes first, through [`handshake::ClientHandshake`]
//! or [`handshake::ServerHandshake`], in the same bytes-in, bytes-out style;
//! each hands over its `Connection` (`into_connection`) when it is done.
//! Before it, a client behind a proxy opens a tunnel with
//! [`proxy::ProxyHandshake`] (HTTP `CONNECT` or SOCKS5), in the same style.

#![warn(missing_docs)]

/// A `tracing` event (target `tether`) when the `tracing` feature is on;
/// nothing at all, arguments included, when it is off.
macro_rules! trace {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "tracing")]
        tracing::$level!(target: "tether", $($arg)+);
    }};
}

pub mod backoff;
mod close;
mod config;
mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
mod error;
pub mod frame;
pub mod handshake;
mod keepalive;
pub mod mask;
mod message;
mod outbox;
mod prepared;
pub mod proxy;
mod rng;
pub mod shutdown;
pub mod time;
pub mod utf8;

/// The close payload codec, for the fuzz targets; the connection applies it.
#[doc(hidden)]
pub use close::{encode_close_payload, parse_close_payload};
pub use close::{CloseCode, CloseFrame, ClosePayloadError, MAX_REASON_LEN};
pub use config::Config;
pub use connection::{Connection, Event, ReadOutcome, Role, State};
#[cfg(feature = "deflate")]
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{Error, ProtocolError};
pub use message::{DataKind, Message, Text};
pub use prepared::PreparedMessage;
pub use rng::{RandomSource, Xoshiro256};

pub use bytes::Bytes;
pub use http;

/// `with_*` setters for the configuration structs, which are
/// `#[non_exhaustive]` so that adding a setting is not a breaking change:
/// outside this crate they are built from `default()` and these setters
/// (or by assigning to their public fields).
#[doc(hidden)]
#[macro_export]
macro_rules! __with_setters {
    ($ty:ty { $($with:ident => $field:ident: $t:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
                #[must_use]
                pub fn $with(mut self, value: $t) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}
