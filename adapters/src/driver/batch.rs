//! Messages handed over in batches: every message the connection has
//! already read in one call, and a batch sent and flushed in another.
//!
//! A forwarding loop (an echo, a relay) pays per message for each trip
//! through `Stream::poll_next` and `Sink::poll_ready`/`start_send`, and
//! after [`split`](super::WebSocket::split) for a lock on each. Here that
//! cost is paid once per batch.

use std::future::poll_fn;
use std::task::{Context, Poll};

use tether_core::{Event, Message};

use super::WebSocket;
use crate::error::Error;
use crate::transport::{Runtime, Transport};

impl<S: Transport, R: Runtime> WebSocket<S, R> {
    /// Waits for the next message, then appends it and every other message
    /// already read (no more I/O) to `batch`. Returns how many were
    /// appended, an error as [`next`](futures_util::StreamExt::next) would
    /// (after the messages before it, which a call before returns), or
    /// `None` once the connection has ended. Pings, pongs and the close
    /// come in the batch as the Stream gives them. The batch is bounded by
    /// the connection's inbound limits (`Config::max_inbound_events`,
    /// `max_inbound_bytes`), which also bound what the core reads ahead.
    pub async fn next_batch(&mut self, batch: &mut Vec<Message>) -> Option<Result<usize, Error>> {
        poll_fn(|cx| self.poll_next_batch(cx, batch)).await
    }

    pub(super) fn poll_next_batch(
        &mut self,
        cx: &mut Context<'_>,
        batch: &mut Vec<Message>,
    ) -> Poll<Option<Result<usize, Error>>> {
        let first = match self.poll_next_message(cx) {
            Poll::Ready(Some(Ok(m))) => m,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        batch.push(first);
        let mut n = 1;
        while let Some(ev) = self.inner.conn.poll_event() {
            match ev {
                // What ends a batch waits for the next call, in order.
                Event::Error(_) | Event::Chunk { .. } => {
                    self.inner.stashed = Some(Box::new(ev));
                    break;
                }
                ev => match self.message_of(ev) {
                    Ok(m) => {
                        batch.push(m);
                        n += 1;
                    }
                    Err(Some(e)) => unreachable!("only errors and chunks fail: {e}"),
                    Err(None) => {}
                },
            }
        }
        Poll::Ready(Some(Ok(n)))
    }

    /// Queues every message of `batch` (leaving it empty, to be reused) and
    /// flushes them in as few writes as the transport allows. Waits first
    /// while the transmit queue is above its high-water mark, as
    /// `SinkExt::send` does; a batch then goes past the mark by its own
    /// size at most.
    pub async fn send_batch(&mut self, batch: &mut Vec<Message>) -> Result<(), Error> {
        poll_fn(|cx| self.poll_ready_send(cx)).await?;
        self.queue_batch(batch)?;
        poll_fn(|cx| self.poll_flush_send(cx)).await
    }

    pub(super) fn queue_batch(&mut self, batch: &mut Vec<Message>) -> Result<(), Error> {
        for m in batch.drain(..) {
            self.inner.conn.send(m)?;
        }
        Ok(())
    }
}
