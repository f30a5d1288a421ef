//! The driver on real sockets: its I/O economy (a read that returned
//! Pending is not retried until the socket wakes the connection), its
//! flushes, and how a failing transport ends a connection.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};

use crate::smol::{FuturesIo, Smol};
use crate::transport::{Runtime, Transport};
use crate::{Config, Message, ServerOptions};

/// Counts reads that returned Pending and the wakes of those reads.
#[derive(Default)]
struct Counts {
    pending_reads: AtomicUsize,
    read_wakes: AtomicUsize,
}

/// Forwards a read's wake to the real waker, counting it.
struct CountingWaker {
    counts: Arc<Counts>,
    inner: Waker,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.counts.read_wakes.fetch_add(1, Ordering::SeqCst);
        self.inner.wake_by_ref();
    }
}

struct Counting<T> {
    inner: T,
    counts: Arc<Counts>,
}

impl<T: Transport> Transport for Counting<T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let waker = Waker::from(Arc::new(CountingWaker {
            counts: self.counts.clone(),
            inner: cx.waker().clone(),
        }));
        let r = self.inner.poll_read(&mut Context::from_waker(&waker), buf);
        if r.is_pending() {
            self.counts.pending_reads.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write_vectored(cx, bufs)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_shutdown(cx)
    }
}

/// The server's handshake with default options over a wrapped socket.
async fn accept_over<T: Transport>(io: T) -> crate::WebSocket<T, Smol> {
    crate::handshake::server::<_, Smol>(
        io,
        &ServerOptions::default(),
        |_| Ok(Default::default()),
        Smol::now(),
    )
    .await
    .unwrap()
}

/// The batched echo loop (queue what is ready, flush when nothing is):
/// each round trip wakes the server's read once, and no read that would
/// only say Pending again is issued in between.
#[test]
fn no_read_is_retried_before_a_wake() {
    smol::block_on(async {
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let counts = Arc::new(Counts::default());
        let server_counts = counts.clone();
        let server = smol::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let io = Counting {
                inner: FuturesIo(stream),
                counts: server_counts,
            };
            let mut ws = accept_over(io).await;
            loop {
                let next = match ws.next().now_or_never() {
                    Some(next) => next,
                    None => {
                        ws.flush().await.unwrap();
                        ws.next().await
                    }
                };
                match next {
                    Some(Ok(m @ Message::Binary(_))) => ws.feed(m).await.unwrap(),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                }
            }
        });
        let mut client = crate::smol::connect(&url).await.unwrap();
        let rounds = 200;
        for i in 0..rounds {
            let m = Message::binary(vec![i as u8; 100]);
            client.send(m.clone()).await.unwrap();
            assert_eq!(client.next().await.unwrap().unwrap(), m);
        }
        client.close(crate::CloseCode::NORMAL, "").await.unwrap();
        server.await;

        let pending = counts.pending_reads.load(Ordering::SeqCst);
        let wakes = counts.read_wakes.load(Ordering::SeqCst);
        // Every Pending read registered a wake; a second Pending before
        // that wake would be a wasted poll (a failing recv with smol).
        assert!(
            pending > rounds / 4,
            "only {pending} reads waited: nothing tested"
        );
        assert!(
            pending <= wakes + 1,
            "{pending} reads returned Pending with only {wakes} wakes"
        );
    });
}

/// Futures often hold a `WebSocket` in more than one slot of their state
/// machine, and an idle server is mostly such futures: the connection's
/// state must stay behind one pointer.
#[test]
fn websocket_is_one_pointer() {
    assert_eq!(
        std::mem::size_of::<crate::smol::WebSocket>(),
        std::mem::size_of::<usize>()
    );
    #[cfg(feature = "tokio")]
    assert_eq!(
        std::mem::size_of::<crate::tokio::WebSocket>(),
        std::mem::size_of::<usize>()
    );
}

/// The README's echo stops at the sink's first error and drops the
/// connection. When the peer's close arrives with messages still queued to
/// echo, that error comes first: the reply to the close must have been
/// written by then, so the peer's close handshake ends cleanly.
#[test]
fn send_all_stopped_by_a_close_has_answered_it() {
    smol::block_on(async {
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server = smol::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let ws = crate::smol::accept(stream).await.unwrap();
            let (mut tx, rx) = ws.split();
            let mut data = rx.filter(|m| {
                std::future::ready(matches!(m, Ok(Message::Text(_) | Message::Binary(_))))
            });
            // Dropped at once, whatever send_all returns.
            tx.send_all(&mut data).await
        });
        let mut client = crate::smol::connect(&url).await.unwrap();
        // Many messages and the close in one write, so the server reads the
        // close while it still has messages to echo.
        for i in 0..200u32 {
            client
                .feed(Message::binary(i.to_be_bytes().to_vec()))
                .await
                .unwrap();
        }
        let close = crate::CloseFrame {
            code: crate::CloseCode::NORMAL,
            reason: "bye".into(),
        };
        client.send(Message::Close(Some(close))).await.unwrap();
        // Echoes of the messages read before the close, then its reply;
        // without the reply the stream ends with AbnormalClosure.
        let mut reply = None;
        while let Some(item) = client.next().await {
            match item {
                Ok(Message::Binary(_)) => {}
                Ok(Message::Close(frame)) => reply = frame,
                other => panic!("the server did not answer the close: {other:?}"),
            }
        }
        let reply = reply.expect("a close frame from the server");
        assert_eq!(reply.code, crate::CloseCode::NORMAL);
        assert!(server.await.is_err(), "send_all ended by the close");
    });
}

/// Keeps written bytes until flushed, as a TLS stream keeps its records;
/// the first flush of each batch says Pending and wakes the task at once,
/// as a socket that was full a moment ago would.
struct Holding<T> {
    inner: T,
    held: Vec<u8>,
    stalled: bool,
}

impl<T: Transport> Transport for Holding<T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.inner.poll_read(cx, buf)
    }
    fn poll_write_vectored(
        &mut self,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let before = self.held.len();
        for b in bufs {
            self.held.extend_from_slice(b);
        }
        Poll::Ready(Ok(self.held.len() - before))
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.held.is_empty() && !self.stalled {
            self.stalled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        while !self.held.is_empty() {
            let n = std::task::ready!(self
                .inner
                .poll_write_vectored(cx, &[IoSlice::new(&self.held)]))?;
            self.held.drain(..n);
        }
        self.stalled = false;
        self.inner.poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_flush(cx))?;
        self.inner.poll_shutdown(cx)
    }
}

/// A flush that said Pending is tried again at the next wake even with
/// nothing new to write, and `flush` (so `send`) waits for it: over TLS
/// the bytes would otherwise wait in the stream until the next message.
#[test]
fn a_pending_flush_is_retried_and_awaited() {
    smol::block_on(async {
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server = smol::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = crate::smol::accept(stream).await.unwrap();
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(_) = m {
                    ws.send(m).await.unwrap();
                }
            }
        });
        let request = tether_core::handshake::ClientRequest::from_url(&url).unwrap();
        let tcp = async_net::TcpStream::connect(request.host.as_str())
            .await
            .unwrap();
        let io = Holding {
            inner: FuturesIo(tcp),
            held: Vec::new(),
            stalled: false,
        };
        let options = crate::ClientOptions::default();
        let mut ws = crate::handshake::client::<_, Smol>(io, &request, &options, Smol::now())
            .await
            .unwrap();
        for i in 0..20 {
            let m = Message::text(format!("held {i}"));
            ws.send(m.clone()).await.unwrap();
            assert!(
                ws.get_ref().held.is_empty(),
                "send returned with bytes held"
            );
            let echo = futures_util::future::select(
                ws.next(),
                Box::pin(async_io::Timer::after(std::time::Duration::from_secs(30))),
            )
            .await;
            match echo {
                futures_util::future::Either::Left((Some(Ok(got)), _)) => assert_eq!(got, m),
                futures_util::future::Either::Left((other, _)) => panic!("{other:?}"),
                futures_util::future::Either::Right(_) => panic!("message {i} never left"),
            }
        }
        ws.close(crate::CloseCode::NORMAL, "").await.unwrap();
        server.await;
    });
}

/// Takes every write, then fails every write, flush and shutdown (and,
/// with `reads_fail`, every read) once a frame with the first byte
/// `fail_after` has been written: an HTTP/2 stream the peer reset after
/// its writes were accepted into hyper's buffer.
struct ResetAfter<T> {
    inner: T,
    fail_after: u8,
    reset: bool,
    /// Reads fail too once reset; else what the peer sent before the
    /// reset is still read (an HTTP/2 stream's receive buffer).
    reads_fail: bool,
}

impl<T> ResetAfter<T> {
    fn new(inner: T, fail_after: u8, reads_fail: bool) -> Self {
        Self {
            inner,
            fail_after,
            reset: false,
            reads_fail,
        }
    }

    fn error() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionReset, "stream reset by the peer")
    }
}

impl<T: Transport> Transport for ResetAfter<T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.reset && self.reads_fail {
            return Poll::Ready(Err(Self::error()));
        }
        self.inner.poll_read(cx, buf)
    }
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.reset {
            return Poll::Ready(Err(Self::error()));
        }
        let first = bufs.iter().find(|b| !b.is_empty()).map(|b| b[0]);
        let n = std::task::ready!(self.inner.poll_write_vectored(cx, bufs))?;
        self.reset = first == Some(self.fail_after);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.reset {
            return Poll::Ready(Err(Self::error()));
        }
        self.inner.poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.reset {
            return Poll::Ready(Err(Self::error()));
        }
        self.inner.poll_shutdown(cx)
    }
}

/// What the server's reader sees when its transport fails right after it
/// wrote a frame starting with `fail_after`, the client having sent one
/// binary message, read its echo and then sent its close.
fn server_sees_after_reset(fail_after: u8) -> Vec<Result<Message, String>> {
    smol::block_on(async {
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server = smol::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = accept_over(ResetAfter::new(FuturesIo(stream), fail_after, true)).await;
            let mut seen = Vec::new();
            while let Some(next) = ws.next().await {
                let next = next.map_err(|e| e.to_string());
                if let Ok(m @ Message::Binary(_)) = &next {
                    let _ = ws.send(m.clone()).await;
                }
                seen.push(next);
            }
            seen
        });
        let mut client = crate::smol::connect(&url).await.unwrap();
        let m = Message::binary(vec![7; 10]);
        client.send(m.clone()).await.unwrap();
        // The close after the echo, so that the server is open when it
        // writes the echo.
        assert_eq!(client.next().await.unwrap().unwrap(), m);
        let _ = client.close(crate::CloseCode::NORMAL, "done").await;
        server.await
    })
}

/// A transport error after the close handshake (the server's reply to the
/// client's close written, then the stream reset) ends the connection
/// without an error: the close is the reader's last item. The same reset
/// one frame earlier, while the connection is open, is an error.
#[test]
fn a_transport_error_after_the_close_handshake_is_the_end() {
    // 0x88: a final close frame, unmasked (the server's reply).
    let seen = server_sees_after_reset(0x88);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(matches!(seen[0], Ok(Message::Binary(_))), "{seen:?}");
    assert!(
        matches!(&seen[1], Ok(Message::Close(Some(f))) if f.code == crate::CloseCode::NORMAL),
        "{seen:?}"
    );

    // 0x82: a final binary frame (the echo), before any close.
    let seen = server_sees_after_reset(0x82);
    assert!(matches!(seen[0], Ok(Message::Binary(_))), "{seen:?}");
    assert!(
        matches!(seen.last(), Some(Err(e)) if e.contains("stream reset by the peer")),
        "{seen:?}"
    );
}

/// The server's `close()` over a transport that refuses every write and
/// flush once the close frame is written, while what the peer sent can
/// still be read (an HTTP/2 stream the peer resets as it answers the
/// close). `reply`: whether the client answers.
fn server_close_after_write_reset(reply: bool) -> Result<(), String> {
    smol::block_on(async {
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server = smol::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let io = ResetAfter::new(FuturesIo(stream), 0x88, false);
            let options = ServerOptions::default()
                .with_config(Config::default().with_close_timeout(Duration::from_millis(300)));
            let mut ws = crate::handshake::server::<_, Smol>(
                io,
                &options,
                |_| Ok(Default::default()),
                Smol::now(),
            )
            .await
            .unwrap();
            ws.close(crate::CloseCode::NORMAL, "done")
                .await
                .map_err(|e| e.to_string())
        });
        let mut client = crate::smol::connect(&url).await.unwrap();
        if reply {
            // Reads the close and answers it; the server then ends TCP.
            while client.next().await.is_some() {}
        }
        let closed = server.await;
        drop(client);
        closed
    })
}

/// A refused write once our close is written loses nothing: the close
/// goes on to the peer's answer and ends clean. With no answer before
/// the close timeout, the refused write is the error.
#[test]
fn a_write_refused_after_our_close_waits_for_the_answer() {
    assert_eq!(server_close_after_write_reset(true), Ok(()));
    let unanswered = server_close_after_write_reset(false);
    assert!(
        matches!(&unanswered, Err(e) if e.contains("stream reset by the peer")),
        "{unanswered:?}"
    );
}
