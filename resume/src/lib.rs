//! # tether-resume
//!
//! Resumable transfer: a small application protocol on top of WebSocket
//! binary messages (not part of RFC 6455, so not part of `tether-core`) for moving a large, ordered data set in batches across
//! disconnects, with nothing lost and nothing duplicated.
//!
//! # The protocol (version 1)
//!
//! A *sender* (usually the server) owns an ordered source it can read from
//! a *cursor*: an opaque position such as "after primary key 41 999" or a
//! byte offset. A *receiver* (usually the client) stores what arrives.
//!
//! 1. On every connection the receiver speaks first with **RESUME**: the
//!    sequence number of the next batch it wants, the cursor after the last
//!    batch it committed (empty: from the beginning), and its window, the
//!    most batches it lets the sender have unacknowledged.
//! 2. The sender reads its source from that cursor and sends **BATCH**
//!    messages numbered from that sequence number, each carrying its
//!    payload and the cursor just after it. It never has more than the
//!    window unacknowledged; that window is the transfer's backpressure.
//! 3. The receiver commits a batch, then sends **ACK** with its sequence
//!    number. Acks are cumulative: one ack covers every batch up to it.
//! 4. After the last batch the sender sends **END** with the next sequence
//!    number; the receiver, once it has committed everything up to it,
//!    closes the connection with 1000.
//!
//! Batches arrive strictly in order on one connection; any other number is
//! a protocol violation ([`ResumeError`], closed with 1008). After a cut the
//! receiver reconnects and says RESUME again from what it committed, so the
//! batches that were in flight are sent again.
//!
//! # Delivery guarantee
//!
//! If the receiver commits each batch's data *and* its [`Position`] in one
//! transaction, every batch lands in its store exactly once: a batch whose
//! transaction committed is never asked for again (the resume position is
//! past it), and one whose transaction did not commit is asked for again.
//! Acks only release the sender's window; losing one loses nothing. The
//! sender keeps no state between connections: everything it needs is in
//! RESUME, so a receiver may resume against any instance serving the same
//! source.
//!
//! # Wire format
//!
//! Every message is binary; integers are big-endian.
//!
//! | message | bytes |
//! |---|---|
//! | RESUME | `0x01`, version `1`, next seq `u64`, window `u32`, cursor |
//! | BATCH  | `0x02`, seq `u64`, payload, cursor, cursor length `u16` |
//! | ACK    | `0x03`, seq `u64` |
//! | END    | `0x04`, next seq `u64` |
//!
//! A batch's cursor comes after its payload so a sender can encode rows
//! straight into the message and append the cursor once it knows the last
//! row ([`BatchWriter`]); the receiver finds it from the trailing length.

//!
//! # This crate
//!
//! [`protocol`] is the protocol, sans-IO like `tether-core`; [`serve`] and
//! [`receive`] drive it on a [`tether::WebSocket`] of any runtime; a
//! violation closes the connection with 1008 and returns
//! [`Error::Protocol`].

#![warn(missing_docs)]

mod driver;
mod error;
pub mod protocol;

pub use driver::{receive, serve, Received, Served};
pub use error::Error;
pub use protocol::{
    Batch, BatchWriter, Frame, Incoming, Position, Receiver, ResumeError, Sender, MAX_CURSOR_LEN,
    MAX_SEQ, SUBPROTOCOL, VERSION,
};
