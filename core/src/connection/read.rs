//! Choosing the buffer a socket read goes into, so adapters need not.

use std::io;
use std::task::Poll;

use super::*;

/// What a read returned, as [`Connection::read_with`] needs it.
pub trait ReadOutcome {
    /// `Some(n)`: `n` bytes were read, 0 meaning end of stream. `None`:
    /// nothing was read (would block, an error, `Pending`).
    fn bytes_read(&self) -> Option<usize>;
}

/// A blocking or non-blocking `std::io::Read::read`.
impl ReadOutcome for io::Result<usize> {
    fn bytes_read(&self) -> Option<usize> {
        self.as_ref().ok().copied()
    }
}

/// An async `poll_read`.
impl ReadOutcome for Poll<io::Result<usize>> {
    fn bytes_read(&self) -> Option<usize> {
        match self {
            Poll::Ready(r) => r.bytes_read(),
            Poll::Pending => None,
        }
    }
}

/// A non-blocking read that says `Ok(None)` when it would block.
impl ReadOutcome for io::Result<Option<usize>> {
    fn bytes_read(&self) -> Option<usize> {
        self.as_ref().ok().copied().flatten()
    }
}

impl Connection {
    /// One socket read, into the buffer the core picks, and its result
    /// fed in: the way for an adapter to read. `read` is called once, with
    /// the buffer to fill, and its result is returned as is.
    ///
    /// Occasional reads go to `scratch` and are copied in
    /// ([`handle_read`](Self::handle_read)), so a connection between
    /// messages holds no read buffer: many connections can share one
    /// scratch. Once a read fills its buffer (data is streaming), reads go
    /// to [`read_buf`](Self::read_buf) without a copy until one falls
    /// short. An empty `scratch` means none is at hand (a shared one is
    /// busy): the read goes to `read_buf`. A read of 0 bytes is
    /// [`handle_eof`](Self::handle_eof); when nothing is read, `read_buf`
    /// is handed back so an idle connection keeps none.
    ///
    /// `now` is called after the read, so a blocking read may pass
    /// `Instant::now`.
    pub fn read_with<T: ReadOutcome>(
        &mut self,
        scratch: &mut [u8],
        now: impl FnOnce() -> Instant,
        read: impl FnOnce(&mut [u8]) -> T,
    ) -> T {
        // Reading into a large frame's message whenever one is under way
        // (rather than only while streaming) was tried: such a read stops
        // at the frame's end, and the extra reads (a third more at 64 KiB
        // messages) cost more than the copy they save.
        if self.streaming || scratch.is_empty() {
            let buf = self.read_buf();
            let len = buf.len();
            let r = read(buf);
            let n = r.bytes_read();
            match n {
                Some(0) => self.handle_eof(now()),
                // `None`: hand the buffer back (it holds nothing).
                _ => self.commit_read(n.unwrap_or(0), now()),
            }
            self.streaming = n.is_some_and(|n| n > 0 && n == len);
            return r;
        }
        let r = read(scratch);
        let n = r.bytes_read();
        match n {
            Some(0) => self.handle_eof(now()),
            Some(n) => self.handle_read(&scratch[..n], now()),
            None => {}
        }
        self.streaming = n.is_some_and(|n| n > 0 && n == scratch.len());
        r
    }
}
