//! What the shared driver needs from a runtime: a byte stream, a clock
//! and a timer.
//!
//! Each runtime module implements these two traits in a few lines; the
//! driver and the handshake are written once against them.

use std::future::Future;
use std::io::{self, IoSlice};
use std::task::{Context, Poll};
use std::time::Instant;

/// A bidirectional byte stream (a TCP socket, a TLS stream, a pipe).
pub trait Transport: Unpin {
    /// Reads into `buf`; `Ok(0)` is end of stream (tether's adapters also
    /// read `UnexpectedEof`, a TLS peer without close_notify, as the end).
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    /// Writes from `bufs` in order, as much as the stream takes.
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;
    /// Flushes buffered writes. A transport that keeps written bytes of
    /// its own (a TLS stream's records) sends them here; the driver
    /// calls it after every write, and again at the next wake while it
    /// said Pending, until it is done.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ends the write side (TCP FIN).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A runtime's clock and timer.
///
/// They come as a pair because the driver compares the clock's `now` with
/// the deadlines it arms the timer for: a runtime whose timers follow a
/// clock of their own (tokio's paused test clock) must read that clock
/// here, or keepalive, timeouts and backoff would mix two notions of time.
pub trait Runtime: 'static {
    /// A future that completes at a deadline.
    type Sleep: Future + Unpin + Send;
    /// The current instant on the clock [`sleep_until`](Self::sleep_until)
    /// follows. Every instant tether hands the core, and every deadline
    /// it arms, is measured from here. Required rather than defaulted to
    /// `Instant::now()`, so a runtime cannot pair a virtual timer with
    /// the wall clock by omission.
    fn now() -> Instant;
    /// A timer that fires at `at`.
    fn sleep_until(at: Instant) -> Self::Sleep;
    /// Moves a timer to `at`.
    fn reset(sleep: &mut Self::Sleep, at: Instant);
}
