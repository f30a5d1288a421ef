//! The driver shared by every async runtime: moves bytes between a
//! [`Transport`] and the core's [`Connection`], sleeps until the core's
//! next deadline, and presents the result as a `Stream` and a `Sink` of
//! [`Message`]s. It makes no protocol decision of its own.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use futures_util::task::AtomicWaker;
use futures_util::StreamExt;
use tether_core::{CloseCode, Connection, DataKind, Event, Message, PreparedMessage};

use crate::error::Error;
use crate::shutdown::{Shutdown, Step, Watch, GOING_AWAY, GOING_AWAY_REASON};
use crate::transport::{Runtime, Transport};

/// Slices handed to one vectored write.
const MAX_IOV: usize = 64;

/// Size of the per-thread buffer reads go to first.
const SCRATCH_LEN: usize = 64 << 10;

thread_local! {
    /// The scratch buffer of `Connection::read_with`: occasional reads land
    /// here and are copied into the core, so a connection between messages
    /// holds no read buffer of its own (one per thread instead of one per
    /// connection). While data streams, reads go to the core's buffer.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_LEN].into_boxed_slice());
}

/// Which half of the connection is driving it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Read,
    Write,
}

/// Wakes whichever tasks wait on the connection (the reader, the writer,
/// or one task doing both), because any socket event may concern either:
/// a read can queue a pong the writer must flush, a write can free room a
/// reader waits for.
#[derive(Default)]
struct Wakers {
    read: AtomicWaker,
    write: AtomicWaker,
    /// Set by every wake: a source that said Pending (the socket, the
    /// timer) may be ready now. While clear, polling them again is wasted
    /// (with smol, a read syscall that fails with EAGAIN).
    woken: AtomicBool,
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.read.wake();
        self.write.wake();
    }
}

/// A WebSocket connection on an async runtime.
///
/// Read it as a `Stream<Item = Result<Message, Error>>`; it ends after the
/// close handshake. Write it as a `Sink<Message>`: `feed` queues without
/// writing and `flush` writes everything queued in as few syscalls as
/// possible, so forwarding a stream of messages (`send_all`, `forward`) is
/// the fast path. [`split`](Self::split) gives halves for two tasks.
///
/// One pointer: the connection's state lives in one allocation, so the
/// futures that hold a `WebSocket` (often in more than one slot of their
/// state machine) stay small, which is most of an idle connection's memory.
pub struct WebSocket<S, R: Runtime> {
    inner: Box<Inner<S, R>>,
}

/// Everything a connection holds, behind the `WebSocket`'s one pointer.
struct Inner<S, R: Runtime> {
    io: S,
    conn: Connection,
    protocol: Option<String>,
    /// The timer and the deadline it is set to.
    sleep: Option<(R::Sleep, Instant)>,
    wakers: Arc<Wakers>,
    /// Wakes `wakers`; what every source is polled with. Taken out while
    /// a drive uses it (moved, not cloned).
    proxy: Option<Waker>,
    /// The transport's failure (the core reports its own as events).
    error: Option<io::Error>,
    transport_done: bool,
    /// The last read returned Pending and no wake came since.
    read_blocked: bool,
    /// The last flush returned Pending: the transport holds written bytes
    /// of its own (a TLS stream's records) that only a flush moves on.
    flush_pending: bool,
    /// A write the transport refused while only the peer's answer to our
    /// close was left to read (`Connection::awaits_close_reply`): nothing
    /// more is written, reading goes on, and the error is reported only if
    /// the answer never comes.
    write_error: Option<io::Error>,
    /// The timer was polled at its deadline and no wake came since.
    timer_armed: bool,
    /// A chunk the message Stream met and left for `next_chunk`.
    stashed: Option<Box<Event>>,
    /// The graceful shutdown this connection takes part in, until its
    /// transport is done.
    shutdown: Option<Watch>,
    /// The round trip the last pong returned by the Stream measured.
    pong_latency: Option<Duration>,
    _runtime: PhantomData<fn() -> R>,
}

impl<S: Transport, R: Runtime> WebSocket<S, R> {
    /// Wraps a transport whose opening handshake `conn` completed.
    pub fn from_parts(io: S, conn: Connection, protocol: Option<String>) -> Self {
        let wakers = Arc::new(Wakers::default());
        let proxy = Waker::from(wakers.clone());
        Self {
            inner: Box::new(Inner {
                io,
                conn,
                protocol,
                sleep: None,
                wakers,
                proxy: Some(proxy),
                error: None,
                transport_done: false,
                read_blocked: false,
                flush_pending: false,
                write_error: None,
                timer_armed: false,
                stashed: None,
                shutdown: None,
                pong_latency: None,
                _runtime: PhantomData,
            }),
        }
    }

    /// The protocol state machine, for its getters.
    pub fn connection(&self) -> &Connection {
        &self.inner.conn
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.inner.protocol.as_deref()
    }

    /// Round trip of the last keepalive ping.
    pub fn latency(&self) -> Option<Duration> {
        self.inner.conn.latency()
    }

    /// Round trip of the keepalive ping that the last [`Message::Pong`]
    /// returned by the Stream answered; `None` when that pong answered
    /// none (unsolicited, or the pong of an application's ping). Read
    /// right after the pong, it tells a keepalive sample from any pong.
    pub fn pong_latency(&self) -> Option<Duration> {
        self.inner.pong_latency
    }

    /// Bytes queued and not yet written to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.inner.conn.buffered_amount()
    }

    /// The underlying transport.
    pub fn get_ref(&self) -> &S {
        &self.inner.io
    }

    /// Takes part in `shutdown` (see [`crate::shutdown`]): when its drain
    /// period ends, the connection is closed with 1001 "going away" (the
    /// next time it is polled; read on to see the peer's answer and the
    /// end), and at its deadline a connection still open is cut (the
    /// stream's last item is a `TimedOut` error). The shutdown counts it
    /// open until the transport is closed or the `WebSocket` dropped.
    pub fn watch(&mut self, shutdown: &Shutdown<R>) {
        if self.inner.transport_done {
            return;
        }
        let waker = self.inner.proxy.clone().expect("not driving");
        self.inner.shutdown = Some(shutdown.watch(waker));
    }

    /// Starts the close handshake and drives it to its end: the peer's
    /// answer, or the close timeout. Messages still arriving are dropped.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.inner.conn.close(code, reason)?;
        poll_fn(|cx| loop {
            while self.inner.conn.poll_event().is_some() {}
            if self.inner.transport_done {
                return Poll::Ready(self.transport_error().map_or(Ok(()), Err));
            }
            if !self.drive(Side::Read) {
                return self.park(Side::Read, cx);
            }
        })
        .await
    }

    /// Receives the next message piece by piece, never holding it whole
    /// (a message larger than memory, say): returns its chunks in order,
    /// the last with `fin`. Control messages are answered by the core and
    /// not returned; `None` once the connection has ended. Chunk delivery
    /// is switched on for the next message that starts, and stays on until
    /// [`Connection::set_deliver_chunks`] or [`set_deliver_chunks`](Self::set_deliver_chunks)
    /// switches it off.
    pub async fn next_chunk(&mut self) -> Option<Result<Chunk, Error>> {
        self.inner.conn.set_deliver_chunks(true);
        poll_fn(|cx| self.poll_next_chunk(cx)).await
    }

    /// Chooses whole messages (the default) or chunks for the messages that
    /// start from now on.
    pub fn set_deliver_chunks(&mut self, on: bool) {
        self.inner.conn.set_deliver_chunks(on);
    }

    fn poll_next_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk, Error>>> {
        loop {
            if let Some(ev) = self
                .inner
                .stashed
                .take()
                .map(|e| *e)
                .or_else(|| self.inner.conn.poll_event())
            {
                let chunk = match ev {
                    Event::Chunk { kind, data, fin } => Chunk { kind, data, fin },
                    // A message that began before chunk delivery was on.
                    Event::Message(Message::Text(t)) => Chunk {
                        kind: DataKind::Text,
                        data: t.into_bytes(),
                        fin: true,
                    },
                    Event::Message(Message::Binary(b)) => Chunk {
                        kind: DataKind::Binary,
                        data: b,
                        fin: true,
                    },
                    Event::Error(e) => return Poll::Ready(Some(Err(Error::WebSocket(e)))),
                    // Control events are answered by the core; an event a
                    // newer core adds means nothing to a chunk reader.
                    _ => continue,
                };
                return Poll::Ready(Some(Ok(chunk)));
            }
            if let Some(e) = self.inner.error.take() {
                return Poll::Ready(Some(Err(Error::Io(e))));
            }
            if self.inner.transport_done {
                return Poll::Ready(None);
            }
            if !self.drive(Side::Read) {
                return self.park(Side::Read, cx);
            }
        }
    }

    /// Sends one message whose bytes come from `source`, piece by piece:
    /// each item becomes one or more frames as it arrives (compressed one
    /// by one when deflate is on), sending waits while the transmit queue is
    /// above its high-water mark, and the message is never held whole.
    /// If `source` fails midway the message cannot be finished: the
    /// connection is closed with 1011 and the error returned.
    pub async fn send_stream<St>(&mut self, kind: DataKind, source: St) -> Result<(), Error>
    where
        St: Stream<Item = io::Result<Bytes>>,
    {
        let mut source = std::pin::pin!(source);
        loop {
            poll_fn(|cx| self.poll_ready_send(cx)).await?;
            match source.next().await {
                Some(Ok(piece)) if piece.is_empty() => {}
                Some(Ok(piece)) => self.inner.conn.send_chunk(kind, piece, false)?,
                Some(Err(e)) => {
                    let _ = self
                        .close(CloseCode::INTERNAL_ERROR, "message source failed")
                        .await;
                    return Err(Error::Io(e));
                }
                None => break,
            }
        }
        self.inner.conn.send_chunk(kind, Bytes::new(), true)?;
        poll_fn(|cx| self.poll_flush_send(cx)).await
    }

    /// Sends a message framed once for many connections (see
    /// [`PreparedMessage`]): waits while the transmit queue is above its
    /// high-water mark, queues a reference to the shared frame, and
    /// flushes. The way to broadcast: prepare once, then call this on every
    /// connection (or [`feed_prepared`](Self::feed_prepared) several and
    /// flush once).
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(message).await?;
        poll_fn(|cx| self.poll_flush_send(cx)).await
    }

    /// Queues a prepared message without flushing, after waiting while
    /// the transmit queue is above its high-water mark (as `SinkExt::feed`
    /// does for a [`Message`]); flush with `SinkExt::flush`.
    pub async fn feed_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        poll_fn(|cx| self.poll_ready_send(cx)).await?;
        Ok(self.inner.conn.send_prepared(message)?)
    }

    /// Splits into a sending and a receiving half, usable from two tasks.
    pub fn split(self) -> (WsSink<S, R>, WsStream<S, R>) {
        let shared = Arc::new(Mutex::new(self));
        (
            WsSink {
                shared: shared.clone(),
                ready: false,
            },
            WsStream { shared },
        )
    }

    /// Does every piece of I/O that can proceed now (see `drive_io`). When
    /// something changed, the other half is woken too: the reader may have
    /// read what the writer waits on (or the writer freed room the reader's
    /// task waits for), and the socket will not signal that readiness again.
    fn drive(&mut self, side: Side) -> bool {
        let progress = self.drive_io();
        if progress {
            match side {
                Side::Read => self.inner.wakers.write.wake(),
                Side::Write => self.inner.wakers.read.wake(),
            }
        }
        progress
    }

    /// Registers the task to be woken for `side`, for a poll that found
    /// nothing to do. Registering only then keeps two atomic operations
    /// per call off the path of every poll that returns Ready. A wake that
    /// came after the drive looked and before the registration found no
    /// waker to wake, so the task wakes itself to look again.
    fn park<T>(&self, side: Side, cx: &mut Context<'_>) -> Poll<T> {
        let waker = match side {
            Side::Read => &self.inner.wakers.read,
            Side::Write => &self.inner.wakers.write,
        };
        waker.register(cx.waker());
        if self.inner.wakers.woken.load(Ordering::Acquire) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Writes, closes the transport when the core says so, fires due
    /// timers and reads. Returns whether anything changed; when not, every
    /// source has registered the proxy waker.
    fn drive_io(&mut self) -> bool {
        if self.inner.transport_done {
            return false;
        }
        let proxy = self.inner.proxy.take().expect("drives do not nest");
        let progress = self.drive_io_with(&mut Context::from_waker(&proxy));
        self.inner.proxy = Some(proxy);
        if self.inner.transport_done {
            // Counted closed by the shutdown it took part in.
            self.inner.shutdown = None;
        }
        progress
    }

    fn drive_io_with(&mut self, cx: &mut Context<'_>) -> bool {
        // Taken before any source is polled, so a wake that comes while
        // they are is seen by the next drive.
        if self.inner.wakers.woken.swap(false, Ordering::Acquire) {
            self.inner.read_blocked = false;
            self.inner.timer_armed = false;
        }
        let mut progress = false;

        // A graceful shutdown moved on: the core sends the close (and its
        // close timeout applies), or the deadline has cut us off.
        if let Some(watch) = &mut self.inner.shutdown {
            match watch.step() {
                Step::None => {}
                Step::Close => {
                    progress |= self.inner.conn.close(GOING_AWAY, GOING_AWAY_REASON).is_ok();
                }
                Step::Cut => {
                    self.fail(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "cut at the shutdown deadline",
                    ));
                    self.inner.shutdown = None;
                    return true;
                }
            }
        }

        // Write, unless the transport refused a write after our close.
        if self.inner.write_error.is_none() {
            match self.write(cx) {
                Ok(wrote) => progress |= wrote,
                Err(e) => {
                    if !self.inner.conn.awaits_close_reply() {
                        self.fail(e);
                        return true;
                    }
                    self.inner.write_error = Some(e);
                    self.inner.flush_pending = false;
                    progress = true;
                }
            }
        }

        // Close the transport once the core is done with it.
        // A failed shutdown changes nothing: the connection is over.
        if self.inner.conn.can_close_transport() {
            if let Some(e) = self.inner.write_error.take() {
                self.fail(e);
                return true;
            }
            if self.inner.io.poll_shutdown(cx).is_ready() {
                self.inner.transport_done = true;
                return true;
            }
        }

        progress |= self.drive_timer(cx);

        // Read, unless the socket said Pending and has not woken us since.
        if self.inner.conn.wants_read() && !self.inner.read_blocked {
            match self.read(cx) {
                Poll::Ready(Ok(())) => progress = true,
                Poll::Ready(Err(e)) => {
                    self.fail(e);
                    return true;
                }
                Poll::Pending => self.inner.read_blocked = true,
            }
        }
        progress
    }

    /// Writes what the core queued and flushes: whether it wrote or a
    /// pending flush completed.
    fn write(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let mut wrote = false;
        loop {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = self.inner.conn.poll_transmit(&mut iov);
            if n == 0 {
                break;
            }
            match self.inner.io.poll_write_vectored(cx, &iov[..n]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(k)) => {
                    self.inner.conn.advance_transmit(k);
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        let mut progress = wrote;
        // After a write, and again after a flush that was Pending: a TLS
        // stream takes the bytes into its own buffer, and with nothing new
        // to write only a flush would ever send them.
        if wrote || self.inner.flush_pending {
            match self.inner.io.poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    progress |= self.inner.flush_pending;
                    self.inner.flush_pending = false;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => self.inner.flush_pending = true,
            }
        }
        Ok(progress)
    }

    /// Fires the core's timers when due, else makes sure the timer will
    /// wake us at the deadline. The timer is polled only when the deadline
    /// moved earlier or after a wake (which may be the timer's); a deadline
    /// that moved later is left for the armed timer to find early.
    fn drive_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.inner.conn.poll_timeout() else {
            return false;
        };
        if self.inner.timer_armed
            && self
                .inner
                .sleep
                .as_ref()
                .is_some_and(|(_, armed)| *armed <= at)
        {
            return false;
        }
        let now = R::now();
        let due = now >= at || {
            let (sleep, armed) = self
                .inner
                .sleep
                .get_or_insert_with(|| (R::sleep_until(at), at));
            if *armed != at {
                R::reset(sleep, at);
                *armed = at;
            }
            Pin::new(sleep).poll(cx).is_ready()
        };
        if due {
            self.inner.conn.handle_timeout(now.max(at));
            self.inner.timer_armed = false;
            return true;
        }
        self.inner.timer_armed = true;
        false
    }

    /// One read, into the thread's scratch buffer or the core's (the core
    /// picks: `Connection::read_with`).
    fn read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (io, conn) = (&mut self.inner.io, &mut self.inner.conn);
        SCRATCH.with(|scratch| {
            // Busy only if a transport's read drives another connection on
            // this thread; that read then uses the core's buffer.
            let mut scratch = scratch.try_borrow_mut();
            let scratch: &mut [u8] = match &mut scratch {
                Ok(scratch) => scratch,
                Err(_) => &mut [],
            };
            conn.read_with(scratch, R::now, |buf| io.poll_read(cx, buf))
                .map_ok(drop)
        })
    }

    /// The transport failed: nothing more can be read or written. After
    /// the close handshake that is the end, not an error (the core says
    /// why: `Connection::close_handshake_done`).
    fn fail(&mut self, e: io::Error) {
        // A refused write that came first is the cause.
        let e = self.inner.write_error.take().unwrap_or(e);
        if self.inner.error.is_none() && !self.inner.conn.close_handshake_done() {
            self.inner.error = Some(e);
        }
        self.inner.transport_done = true;
    }

    fn poll_next_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            if let Some(ev) = self
                .inner
                .stashed
                .take()
                .map(|e| *e)
                .or_else(|| self.inner.conn.poll_event())
            {
                match self.message_of(ev) {
                    Ok(msg) => return Poll::Ready(Some(Ok(msg))),
                    Err(Some(e)) => return Poll::Ready(Some(Err(e))),
                    Err(None) => continue,
                }
            }
            // Only I/O errors are recorded here; the core reports its own
            // as events, in order.
            if let Some(e) = self.inner.error.take() {
                return Poll::Ready(Some(Err(Error::Io(e))));
            }
            if self.inner.transport_done {
                return Poll::Ready(None);
            }
            if !self.drive(Side::Read) {
                return self.park(Side::Read, cx);
            }
        }
    }

    /// The message an event is to a message reader: an error to return
    /// (`Err(Some)`), or nothing (`Err(None)`: an event no Message carries).
    fn message_of(&mut self, ev: Event) -> Result<Message, Option<Error>> {
        Ok(match ev {
            Event::Message(m) => m,
            Event::Ping(p) => Message::Ping(p),
            Event::Pong { payload, latency } => {
                self.inner.pong_latency = latency;
                Message::Pong(payload)
            }
            Event::Close(frame) => Message::Close(frame),
            Event::Error(e) => return Err(Some(Error::WebSocket(e))),
            // Chunk delivery is on: say so rather than drop data, and keep
            // the chunk for `next_chunk`.
            chunk @ Event::Chunk { .. } => {
                self.inner.stashed = Some(Box::new(chunk));
                return Err(Some(Error::Chunked));
            }
            // An event a newer core adds and no Message carries.
            _ => return Err(None),
        })
    }

    /// A copy of the transport's failure, for a sender or closer: the
    /// original stays for the stream, so that a reader (maybe another task,
    /// after `split`) never mistakes a failed connection for a clean end.
    fn transport_error(&self) -> Option<Error> {
        let e = self.inner.error.as_ref()?;
        Some(Error::Io(io::Error::new(e.kind(), e.to_string())))
    }

    fn closed_error(&self) -> Error {
        self.transport_error()
            .unwrap_or(Error::WebSocket(tether_core::Error::Closed))
    }

    fn poll_ready_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            if self.inner.transport_done || self.inner.conn.state() != tether_core::State::Open {
                // Write what the core queued (the reply to the peer's
                // close, say) before saying no: a sender that stops at this
                // error (`send_all`) may drop the connection next.
                self.drive(Side::Write);
                return Poll::Ready(Err(self.closed_error()));
            }
            if self.inner.conn.is_writable() {
                return Poll::Ready(Ok(()));
            }
            if !self.drive(Side::Write) {
                return self.park(Side::Write, cx);
            }
        }
    }

    /// Whether `poll_ready_send` would say Ready at once, with no I/O.
    fn ready_without_io(&mut self) -> bool {
        !self.inner.transport_done
            && self.inner.conn.state() == tether_core::State::Open
            && self.inner.conn.is_writable()
    }

    /// Ready once the core has nothing left to write and the transport
    /// has flushed what it buffered (a TLS stream's records).
    fn poll_flush_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            if !self.inner.conn.has_transmit() && !self.inner.flush_pending {
                return Poll::Ready(Ok(()));
            }
            if self.inner.transport_done {
                return Poll::Ready(Err(self.closed_error()));
            }
            if !self.drive(Side::Write) {
                return self.park(Side::Write, cx);
            }
        }
    }

    fn poll_close_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Closing twice, or after the peer closed, is fine.
        let _ = self.inner.conn.close(CloseCode::NORMAL, "");
        loop {
            if self.inner.transport_done {
                return Poll::Ready(self.transport_error().map_or(Ok(()), Err));
            }
            if !self.drive(Side::Write) {
                return self.park(Side::Write, cx);
            }
        }
    }
}

impl<S: Transport, R: Runtime> Stream for WebSocket<S, R> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_message(cx)
    }
}

impl<S: Transport, R: Runtime> Sink<Message> for WebSocket<S, R> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_ready_send(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut()
            .inner
            .conn
            .send(item)
            .map_err(Error::WebSocket)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_send(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_close_send(cx)
    }
}

/// A piece of a message received with [`WebSocket::next_chunk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Text or binary, the same for every chunk of a message. Text is
    /// validated as it arrives, but a chunk may end inside a character.
    pub kind: DataKind,
    /// The bytes.
    pub data: Bytes,
    /// Last chunk of its message.
    pub fin: bool,
}

mod batch;
mod split;

pub use split::{WsSink, WsStream};

#[cfg(all(test, feature = "smol"))]
mod tests;
