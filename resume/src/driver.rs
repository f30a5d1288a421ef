//! Resumable transfer on a connection, on any runtime: [`serve`] is the
//! sending side, [`receive`] the receiving side of the protocol described
//! in the crate docs (numbered batches, cumulative acks, a window of
//! unacknowledged batches, RESUME after a reconnect).
//!
//! Both run one connection and return when it ends; the receiver calls
//! [`receive`] again on a new connection (see `tether::reconnect`) with the
//! position it keeps, until the transfer is complete.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use futures_util::{SinkExt, StreamExt};
use tether::{CloseCode, CloseFrame, Message, Runtime, Transport, WebSocket};

use crate::error::Error;
use crate::protocol::{Batch, BatchWriter, Incoming, Position, Receiver, ResumeError, Sender};

/// How a served connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Served {
    /// Where the receiver resumed.
    pub from: Position,
    /// Batches sent on this connection.
    pub batches: u64,
    /// END went out and every batch was acknowledged.
    pub complete: bool,
    /// The receiver's close frame, if it sent one.
    pub close: Option<CloseFrame>,
}

/// How a received connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Received {
    /// Batches committed on this connection.
    pub batches: u64,
    /// END arrived and everything before it committed.
    pub complete: bool,
    /// The sender's close frame, if it sent one (say, 1012 when it
    /// restarts): tells a reconnecting client whether to come back.
    pub close: Option<CloseFrame>,
}

/// Serves one connection: reads the receiver's RESUME, opens the source
/// at its position with `open`, and sends the source's batches (a
/// [`BatchWriter`] holding the payload and the cursor after it), never
/// more than the window unacknowledged, then END. Returns once the
/// connection has ended; the receiver closes it when it has everything.
///
/// A receiver that breaks the protocol gets a 1008 close and
/// [`Error::Protocol`]; a failing source a 1011 close and [`Error::Local`].
pub async fn serve<S, R, Src>(
    ws: &mut WebSocket<S, R>,
    max_window: u32,
    open: impl FnOnce(&Position) -> Src,
) -> Result<Served, Error>
where
    S: Transport,
    R: Runtime,
    Src: Stream<Item = io::Result<(BatchWriter, Bytes)>>,
{
    let Some(hello) = next_binary(ws).await? else {
        return Err(Error::WebSocket(tether::Error::WebSocket(
            tether::core::Error::Closed,
        )));
    };
    let (mut sender, from) = match Sender::accept(&hello, max_window) {
        Ok(ok) => ok,
        Err(e) => return Err(violation(ws, e).await),
    };
    let mut source = std::pin::pin!(open(&from));
    let first = sender.next_seq();
    let mut source_done = false;
    let mut close = None;
    let mut unflushed = false;
    // Cleared when sending fails: the connection is closing (maybe the
    // peer's close frame was read while sending) or failed, and the
    // stream, read to its end, says which.
    let mut sending = true;
    let exit = poll_fn(|cx| loop {
        let mut progress = false;
        match Pin::new(&mut *ws).poll_next(cx) {
            Poll::Ready(Some(Ok(Message::Binary(b)))) => {
                if let Err(e) = sender.handle(&b) {
                    return Poll::Ready(Exit::Violation(e));
                }
                progress = true;
            }
            Poll::Ready(Some(Ok(Message::Text(_)))) => {
                return Poll::Ready(Exit::Violation(ResumeError::Malformed("text message")));
            }
            Poll::Ready(Some(Ok(Message::Close(frame)))) => {
                close = frame;
                progress = true;
            }
            Poll::Ready(Some(Ok(_))) => progress = true,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Exit::Failed(e)),
            Poll::Ready(None) => return Poll::Ready(Exit::Ended),
            Poll::Pending => {}
        }
        if sending && !source_done && close.is_none() && sender.can_send() {
            match Pin::new(&mut *ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => match source.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok((writer, cursor)))) => {
                        let msg = match sender.batch(writer, &cursor) {
                            Ok(msg) => msg,
                            Err(e) => return Poll::Ready(Exit::Violation(e)),
                        };
                        sending = Pin::new(&mut *ws).start_send(Message::Binary(msg)).is_ok();
                        unflushed = sending;
                        progress = true;
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Exit::Source(e)),
                    Poll::Ready(None) => {
                        source_done = true;
                        let end = Message::Binary(sender.end());
                        sending = Pin::new(&mut *ws).start_send(end).is_ok();
                        unflushed = sending;
                        progress = true;
                    }
                    Poll::Pending => {}
                },
                Poll::Ready(Err(_)) => {
                    sending = false;
                    progress = true;
                }
                Poll::Pending => {}
            }
        }
        if unflushed {
            match Pin::new(&mut *ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => unflushed = false,
                Poll::Ready(Err(_)) => {
                    (sending, unflushed) = (false, false);
                    progress = true;
                }
                Poll::Pending => {}
            }
        }
        if !progress {
            return Poll::Pending;
        }
    })
    .await;
    let served = Served {
        from,
        batches: sender.next_seq() - first,
        complete: sender.is_done(),
        close,
    };
    match exit {
        Exit::Ended => Ok(served),
        Exit::Failed(e) => Err(e.into()),
        Exit::Violation(e) => Err(violation(ws, e).await),
        Exit::Source(e) => {
            let _ = ws.close(CloseCode::INTERNAL_ERROR, "source failed").await;
            Err(Error::Local(e))
        }
    }
}

/// Receives on one connection: sends RESUME from `position`, hands each
/// batch in order to `commits` (a sink to whatever stores them, which
/// must store each batch's data and [`Batch::position_after`] in one
/// transaction) and acknowledges what `committed` reports (the sequence
/// number of the last batch stored; one report may cover several). Closes
/// with 1000 once the transfer is complete.
///
/// Before returning, on every path, it waits until `committed` has
/// reported every batch handed over, and leaves `position` at the last one
/// committed: the position to resume from on the next connection.
pub async fn receive<S, R, C, K>(
    ws: &mut WebSocket<S, R>,
    position: &mut Position,
    window: u32,
    commits: &mut C,
    committed: &mut K,
) -> Result<Received, Error>
where
    S: Transport,
    R: Runtime,
    C: Sink<Batch, Error = io::Error> + Unpin,
    K: Stream<Item = io::Result<u64>> + Unpin,
{
    let (mut receiver, hello) = Receiver::new(position, window.max(1));
    let mut state = Receiving {
        submitted: VecDeque::new(),
        batches: 0,
        close: None,
    };
    let exit = match ws.send(Message::Binary(hello)).await {
        Ok(()) => {
            state
                .run(ws, &mut receiver, position, commits, committed)
                .await
        }
        Err(e) => Exit::Failed(e),
    };
    // Whatever ended the connection, the batches handed over are being
    // stored: wait for them, so `position` is where the store is.
    let drained = state.drain(position, committed).await;
    let received = Received {
        batches: state.batches,
        complete: receiver.is_complete(),
        close: state.close.take(),
    };
    match exit {
        Exit::Ended if received.complete => {
            drained.map_err(Error::Local)?;
            let _ = ws.close(CloseCode::NORMAL, "complete").await;
            Ok(received)
        }
        Exit::Ended => {
            drained.map_err(Error::Local)?;
            Ok(received)
        }
        Exit::Failed(e) => Err(e.into()),
        Exit::Violation(e) => Err(violation(ws, e).await),
        Exit::Source(e) => {
            let _ = ws.close(CloseCode::INTERNAL_ERROR, "store failed").await;
            Err(Error::Local(e))
        }
    }
}

/// The receiving loop's bookkeeping.
struct Receiving {
    /// Positions of the batches handed to the store, not yet confirmed.
    submitted: VecDeque<(u64, Position)>,
    batches: u64,
    close: Option<CloseFrame>,
}

impl Receiving {
    async fn run<S, R, C, K>(
        &mut self,
        ws: &mut WebSocket<S, R>,
        receiver: &mut Receiver,
        position: &mut Position,
        commits: &mut C,
        committed: &mut K,
    ) -> Exit
    where
        S: Transport,
        R: Runtime,
        C: Sink<Batch, Error = io::Error> + Unpin,
        K: Stream<Item = io::Result<u64>> + Unpin,
    {
        let mut handing: Option<Batch> = None;
        let mut ack: Option<u64> = None;
        let (mut commits_unflushed, mut ws_unflushed) = (false, false);
        let mut closing = false;
        poll_fn(|cx| loop {
            let mut progress = false;
            // Hand the batch at hand to the store first: until it takes
            // it, nothing more is read (the window keeps that short).
            if let Some(batch) = handing.take() {
                match Pin::new(&mut *commits).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        self.submitted
                            .push_back((batch.seq, batch.position_after()));
                        if let Err(e) = Pin::new(&mut *commits).start_send(batch) {
                            return Poll::Ready(Exit::Source(e));
                        }
                        commits_unflushed = true;
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Exit::Source(e)),
                    Poll::Pending => handing = Some(batch),
                }
            }
            if commits_unflushed {
                match Pin::new(&mut *commits).poll_flush(cx) {
                    Poll::Ready(Ok(())) => commits_unflushed = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Exit::Source(e)),
                    Poll::Pending => {}
                }
            }
            match Pin::new(&mut *committed).poll_next(cx) {
                Poll::Ready(Some(Ok(seq))) => {
                    if let Err(e) = self.confirm(seq, position) {
                        return Poll::Ready(Exit::Source(e));
                    }
                    self.batches += 1;
                    ack = Some(seq);
                    progress = true;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Exit::Source(e)),
                Poll::Ready(None) => {
                    return Poll::Ready(Exit::Source(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the store stopped reporting commits",
                    )))
                }
                Poll::Pending => {}
            }
            // Acks coalesce: only the latest matters.
            if let Some(seq) = ack {
                match Pin::new(&mut *ws).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        let msg = receiver.committed(seq);
                        ws_unflushed = Pin::new(&mut *ws).start_send(Message::Binary(msg)).is_ok();
                        ack = None;
                        progress = true;
                    }
                    // The connection is closing or failed, which the
                    // stream will say; the store keeps what it got and
                    // the position says so.
                    Poll::Ready(Err(_)) => ack = None,
                    Poll::Pending => {}
                }
            }
            if receiver.is_complete() && !closing {
                closing = true;
                // Sent with the Sink's close below; the peer ends it.
                let _ = Pin::new(&mut *ws).start_send(Message::Close(Some(CloseFrame {
                    code: CloseCode::NORMAL,
                    reason: "complete".into(),
                })));
                ws_unflushed = true;
                progress = true;
            }
            if ws_unflushed {
                match Pin::new(&mut *ws).poll_flush(cx) {
                    // An error here shows on the stream too.
                    Poll::Ready(Ok(())) | Poll::Ready(Err(_)) => ws_unflushed = false,
                    Poll::Pending => {}
                }
            }
            if handing.is_none() {
                match Pin::new(&mut *ws).poll_next(cx) {
                    Poll::Ready(Some(Ok(Message::Binary(b)))) => {
                        match receiver.handle(&b) {
                            Ok(Incoming::Batch(batch)) => handing = Some(batch),
                            Ok(Incoming::End) => {}
                            Err(e) => return Poll::Ready(Exit::Violation(e)),
                        }
                        progress = true;
                    }
                    Poll::Ready(Some(Ok(Message::Text(_)))) => {
                        return Poll::Ready(Exit::Violation(ResumeError::Malformed(
                            "text message",
                        )));
                    }
                    Poll::Ready(Some(Ok(Message::Close(frame)))) => {
                        self.close = frame;
                        progress = true;
                    }
                    Poll::Ready(Some(Ok(_))) => progress = true,
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Exit::Failed(e)),
                    Poll::Ready(None) => return Poll::Ready(Exit::Ended),
                    Poll::Pending => {}
                }
            }
            if !progress {
                return Poll::Pending;
            }
        })
        .await
    }

    /// Moves `position` to batch `seq`, which the store reports committed.
    fn confirm(&mut self, seq: u64, position: &mut Position) -> io::Result<()> {
        let mut found = None;
        while self.submitted.front().is_some_and(|(s, _)| *s <= seq) {
            found = self.submitted.pop_front();
        }
        match found {
            Some((s, after)) if s == seq => {
                *position = after;
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the store reports batch {seq} committed, which was not handed to it"),
            )),
        }
    }

    /// Waits until the store has reported every batch handed to it.
    async fn drain<K>(&mut self, position: &mut Position, committed: &mut K) -> io::Result<()>
    where
        K: Stream<Item = io::Result<u64>> + Unpin,
    {
        while !self.submitted.is_empty() {
            match committed.next().await {
                Some(Ok(seq)) => {
                    self.confirm(seq, position)?;
                    self.batches += 1;
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the store stopped reporting commits",
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Why a protocol loop stopped.
enum Exit {
    /// The connection ended (closed, or the peer went away cleanly).
    Ended,
    /// The connection failed.
    Failed(tether::Error),
    /// The peer broke the resume protocol.
    Violation(ResumeError),
    /// The local source or store failed.
    Source(io::Error),
}

/// The next binary message, skipping control messages; `None` at the end.
async fn next_binary<S: Transport, R: Runtime>(
    ws: &mut WebSocket<S, R>,
) -> Result<Option<Bytes>, Error> {
    while let Some(msg) = ws.next().await {
        match msg? {
            Message::Binary(b) => return Ok(Some(b)),
            Message::Text(_) => {
                return Err(violation(ws, ResumeError::Malformed("text message")).await)
            }
            _ => {}
        }
    }
    Ok(None)
}

/// Closes with the violation's code and reason; the error to return.
async fn violation<S: Transport, R: Runtime>(ws: &mut WebSocket<S, R>, e: ResumeError) -> Error {
    let mut reason = e.to_string();
    let mut cut = reason.len().min(tether::core::MAX_REASON_LEN);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    reason.truncate(cut);
    let _ = ws.close(e.close_code(), &reason).await;
    Error::Protocol(e)
}
