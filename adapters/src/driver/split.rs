//! The two halves of a split [`WebSocket`], for a reading task and a
//! writing task: each locks the connection for one poll.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tether_core::{CloseCode, Message, PreparedMessage};

use super::{Chunk, WebSocket};
use crate::error::Error;
use crate::transport::{Runtime, Transport};

/// The receiving half of a split [`WebSocket`].
pub struct WsStream<S, R: Runtime> {
    pub(super) shared: Arc<Mutex<WebSocket<S, R>>>,
}

/// The sending half of a split [`WebSocket`].
pub struct WsSink<S, R: Runtime> {
    pub(super) shared: Arc<Mutex<WebSocket<S, R>>>,
    /// The last `start_send` left the connection open and writable, so the
    /// next `poll_ready` may say so without taking the lock: one lock per
    /// message instead of two on a `send_all`/`feed` path.
    pub(super) ready: bool,
}

fn lock<S, R: Runtime>(shared: &Mutex<WebSocket<S, R>>) -> MutexGuard<'_, WebSocket<S, R>> {
    // A panic in another half cannot leave the connection half-updated in
    // a way that matters more than losing it; keep going.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: Transport, R: Runtime> WsSink<S, R> {
    /// Whether `stream` is the other half of this sink.
    pub fn is_pair_of(&self, stream: &WsStream<S, R>) -> bool {
        Arc::ptr_eq(&self.shared, &stream.shared)
    }

    /// Puts the halves back together.
    pub fn reunite(
        self,
        stream: WsStream<S, R>,
    ) -> Result<WebSocket<S, R>, (Self, WsStream<S, R>)> {
        if !self.is_pair_of(&stream) {
            return Err((self, stream));
        }
        drop(stream);
        match Arc::try_unwrap(self.shared) {
            Ok(m) => Ok(m.into_inner().unwrap_or_else(|p| p.into_inner())),
            Err(_) => unreachable!("both halves were given back"),
        }
    }

    /// Starts the close handshake and drives it to its end (see
    /// [`WebSocket::close`]); the stream half sees the peer's close.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.ready = false;
        lock(&self.shared).inner.conn.close(code, reason)?;
        poll_fn(|cx| lock(&self.shared).poll_close_send(cx)).await
    }
}

impl<S: Transport, R: Runtime> WsSink<S, R> {
    /// [`WebSocket::send_prepared`] on the sending half: queue a shared
    /// frame and flush.
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(message).await?;
        poll_fn(|cx| lock(&self.shared).poll_flush_send(cx)).await
    }

    /// [`WebSocket::send_batch`] on the sending half: one lock to queue
    /// the whole batch.
    pub async fn send_batch(&mut self, batch: &mut Vec<Message>) -> Result<(), Error> {
        self.ready = false;
        poll_fn(|cx| lock(&self.shared).poll_ready_send(cx)).await?;
        lock(&self.shared).queue_batch(batch)?;
        poll_fn(|cx| lock(&self.shared).poll_flush_send(cx)).await
    }

    /// [`WebSocket::feed_prepared`] on the sending half: queue without
    /// flushing.
    pub async fn feed_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        poll_fn(|cx| lock(&self.shared).poll_ready_send(cx)).await?;
        Ok(lock(&self.shared).inner.conn.send_prepared(message)?)
    }
}

impl<S: Transport, R: Runtime> WsStream<S, R> {
    /// [`WebSocket::pong_latency`] on the receiving half.
    pub fn pong_latency(&self) -> Option<std::time::Duration> {
        lock(&self.shared).pong_latency()
    }

    /// [`WebSocket::next_batch`] on the receiving half: one lock for the
    /// whole batch.
    pub async fn next_batch(&mut self, batch: &mut Vec<Message>) -> Option<Result<usize, Error>> {
        poll_fn(|cx| lock(&self.shared).poll_next_batch(cx, batch)).await
    }

    /// [`WebSocket::next_chunk`] on the receiving half.
    pub async fn next_chunk(&mut self) -> Option<Result<Chunk, Error>> {
        lock(&self.shared).inner.conn.set_deliver_chunks(true);
        poll_fn(|cx| lock(&self.shared).poll_next_chunk(cx)).await
    }
}

impl<S: Transport, R: Runtime> Stream for WsStream<S, R> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        lock(&self.shared).poll_next_message(cx)
    }
}

impl<S: Transport, R: Runtime> Sink<Message> for WsSink<S, R> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if std::mem::take(&mut this.ready) {
            return Poll::Ready(Ok(()));
        }
        lock(&this.shared).poll_ready_send(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        let this = self.get_mut();
        let mut ws = lock(&this.shared);
        ws.inner.conn.send(item).map_err(Error::WebSocket)?;
        this.ready = ws.ready_without_io();
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.shared).poll_flush_send(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.shared).poll_close_send(cx)
    }
}
