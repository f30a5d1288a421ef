//! The mio event loop under the shared scenarios.
//!
//! One [`Driver`] runs on a thread of its own for the whole test binary,
//! so every mio scenario's connections, server and client side, live in
//! one event loop, as in a real mio program. The scenarios are async; a
//! small proxy ([`MioWs`]) gives them the `Stream` + `Sink` face they use
//! on smol and tokio, and only forwards: messages go to the loop through a
//! channel and are queued there with `ConnectionSet::send`, events come back
//! from `Driver::poll_with`. Framing, masking, pings, timeouts, close codes
//! and flow control all happen in the driver and the core, over real
//! sockets. The proxy's own bookkeeping mirrors the async adapters':
//!
//! - receiving: it queues at most about `max_inbound_bytes` of events and
//!   then `pause`s the connection, so the driver stops taking its events,
//!   the core's queue fills and the socket is not read (TCP backpressure,
//!   as when an async reader stops polling);
//! - sending: `feed` keeps messages in the proxy, `flush` hands them to the
//!   loop and waits until the driver has written them; `poll_ready` waits
//!   while the driver says the connection is not writable (the core's
//!   high/low water marks, `Event::Writable`). An error `send` gives in the
//!   loop (a ping over 125 bytes, a bad close code) comes back from the
//!   flush.

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use futures_util::{Sink, Stream};
use smol::Async;
use tether::mio::{ConnectionId, ConnectionSet, Driver, Event};
use tether::{
    http, ClientOptions, CloseCode, Config, Decision, Error, Message, ServerOptions, State,
};

use crate::harness::{catching, Rt, Socket, Task, TxHalf};

type Decide = Box<dyn FnOnce(&http::Request<()>) -> Decision + Send>;

enum Command {
    Accept(TcpStream, ServerOptions, Decide, Arc<Link>),
    Connect(String, Box<ClientOptions>, Arc<Link>),
    Send(ConnectionId, Vec<Message>, u64),
    Close(
        ConnectionId,
        CloseCode,
        String,
        Option<smol::channel::Sender<Result<(), Error>>>,
    ),
    Resume(ConnectionId),
    Abort(ConnectionId),
}

/// The loop thread, started by the first mio scenario.
struct Loop {
    commands: mpsc::Sender<Command>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl Loop {
    fn get() -> &'static Loop {
        static LOOP: OnceLock<Loop> = OnceLock::new();
        LOOP.get_or_init(|| {
            let (commands, inbox) = mpsc::channel();
            let (waker_tx, waker_rx) = mpsc::channel();
            thread::Builder::new()
                .name("mio event loop".into())
                .spawn(move || {
                    let driver = Driver::new().expect("mio driver");
                    waker_tx.send(driver.waker()).expect("send waker");
                    run(driver, inbox);
                })
                .expect("spawn the mio loop");
            let waker = waker_rx.recv().expect("the mio loop started");
            Loop {
                commands,
                wake: Box::new(move || {
                    let _ = waker.wake();
                }),
            }
        })
    }

    fn send(command: Command) {
        let l = Loop::get();
        l.commands.send(command).expect("the mio loop is gone");
        (l.wake)();
    }
}

/// What the loop and the proxies share about one connection.
#[derive(Default)]
struct Link(Mutex<LinkState>);

struct LinkState {
    id: Option<ConnectionId>,
    opened: bool,
    /// The handshake failed (or the connection could not be made).
    failure: Option<Error>,
    protocol: Option<String>,
    events: VecDeque<Result<Message, Error>>,
    /// Payload bytes in `events`.
    inbound: usize,
    paused: bool,
    closed: bool,
    /// The socket's failure, for the sending side too.
    io_error: Option<(io::ErrorKind, String)>,
    // What the driver last said about the connection.
    state: State,
    buffered: usize,
    writable: bool,
    latency: Option<Duration>,
    config: Config,
    /// The last `Command::Send` the loop has carried out.
    acked: u64,
    send_error: Option<Error>,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

impl Default for LinkState {
    fn default() -> Self {
        Self {
            id: None,
            opened: false,
            failure: None,
            protocol: None,
            events: VecDeque::new(),
            inbound: 0,
            paused: false,
            closed: false,
            io_error: None,
            state: State::Open,
            buffered: 0,
            writable: true,
            latency: None,
            config: Config::default(),
            acked: 0,
            send_error: None,
            read_waker: None,
            write_waker: None,
        }
    }
}

impl Link {
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LinkState {
    fn wake(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }

    /// Copies the driver's view of the connection.
    fn refresh(&mut self, conns: &mut ConnectionSet, id: ConnectionId) {
        if let Some(conn) = conns.connection(id) {
            self.state = conn.state();
            self.buffered = conn.buffered_amount();
            self.latency = conn.latency().or(self.latency);
            self.config = conn.config().clone();
        }
        self.writable = conns.is_writable(id);
    }

    fn full(&self) -> bool {
        self.inbound >= self.config.max_inbound_bytes
            || self.events.len() >= self.config.max_inbound_events
    }

    fn closed_error(&self) -> Error {
        match &self.io_error {
            Some((kind, msg)) => Error::Io(io::Error::new(*kind, msg.clone())),
            None => Error::WebSocket(tether::core::Error::Closed),
        }
    }

    fn end_result(&self) -> Result<(), Error> {
        match self.io_error {
            Some(_) => Err(self.closed_error()),
            None => Ok(()),
        }
    }

    fn take(&mut self) -> Option<Result<Message, Error>> {
        let item = self.events.pop_front()?;
        if let Ok(m) = &item {
            self.inbound -= m.len();
        }
        if self.paused && self.inbound <= self.config.max_inbound_bytes / 2 {
            self.paused = false;
            if let Some(id) = self.id {
                Loop::send(Command::Resume(id));
            }
        }
        Some(item)
    }
}

/// The loop thread: commands in, driver events out.
fn run(mut driver: Driver, inbox: mpsc::Receiver<Command>) {
    let mut links: HashMap<ConnectionId, Arc<Link>> = HashMap::new();
    loop {
        let mut applied = false;
        while let Ok(command) = inbox.try_recv() {
            applied = true;
            apply(&mut driver, &mut links, command);
        }
        // Right after commands, a pass that does not wait: it writes what
        // they queued, so the proxies see the result before the loop
        // sleeps.
        let timeout = applied.then_some(Duration::ZERO);
        driver
            .poll_with(timeout, |conns, id, event| {
                let Some(link) = links.get(&id) else {
                    return;
                };
                let closed = matches!(event, Event::Closed);
                on_event(conns, id, &mut link.lock(), event);
                if closed {
                    links.remove(&id);
                }
            })
            .expect("mio poll");
        for (id, link) in &links {
            let mut st = link.lock();
            st.refresh(&mut driver, *id);
            st.wake();
        }
    }
}

fn on_event(conns: &mut ConnectionSet, id: ConnectionId, st: &mut LinkState, event: Event) {
    let item = match event {
        Event::Open => {
            st.opened = true;
            st.protocol = conns.protocol(id).map(str::to_owned);
            None
        }
        Event::Message(m) => Some(Ok(m)),
        Event::Ping(p) => Some(Ok(Message::Ping(p))),
        Event::Pong { payload, latency } => {
            st.latency = latency.or(st.latency);
            Some(Ok(Message::Pong(payload)))
        }
        Event::Close(frame) => Some(Ok(Message::Close(frame))),
        Event::Error(e) if !st.opened => {
            st.failure = Some(e);
            None
        }
        Event::Error(e) => {
            if let Error::Io(io) = &e {
                st.io_error = Some((io.kind(), io.to_string()));
            }
            Some(Err(e))
        }
        Event::Closed => {
            st.closed = true;
            st.state = State::Closed;
            if st.io_error.is_none() {
                // The driver closes a socket once nothing is left to write.
                st.buffered = 0;
            }
            None
        }
        // The scenarios receive whole messages; `Writable` shows in the
        // refresh below.
        Event::Chunk { .. } | Event::Writable => None,
        other => panic!("an event the scenarios do not know: {other:?}"),
    };
    if let Some(item) = item {
        if let Ok(m) = &item {
            st.inbound += m.len();
        }
        st.events.push_back(item);
        if st.full() && !st.paused {
            st.paused = true;
            conns.pause(id);
        }
    }
    st.refresh(conns, id);
    st.wake();
}

fn apply(driver: &mut Driver, links: &mut HashMap<ConnectionId, Arc<Link>>, command: Command) {
    let (opened, link) = match command {
        Command::Accept(tcp, options, decide, link) => (
            driver.accept_with(tcp, &options, decide).map_err(Error::Io),
            link,
        ),
        Command::Connect(url, options, link) => (driver.connect_with(&url, *options), link),
        Command::Send(id, messages, seq) => {
            let Some(link) = links.get(&id) else { return };
            let mut st = link.lock();
            for m in messages {
                if let Err(e) = driver.send(id, m) {
                    st.send_error.get_or_insert(e);
                }
            }
            st.acked = seq;
            st.refresh(driver, id);
            st.wake();
            return;
        }
        Command::Close(id, code, reason, reply) => {
            let result = driver.close(id, code, &reason);
            if let Some(reply) = reply {
                let _ = reply.try_send(result);
            }
            return;
        }
        Command::Resume(id) => return driver.resume(id),
        Command::Abort(id) => {
            driver.abort(id);
            links.remove(&id);
            return;
        }
    };
    let mut st = link.lock();
    match opened {
        Ok(id) => {
            st.id = Some(id);
            drop(st);
            links.insert(id, link);
        }
        Err(e) => {
            st.failure = Some(e);
            st.closed = true;
            st.wake();
        }
    }
}

/// Aborts the connection when the last proxy half is dropped before its
/// end, as dropping an async `WebSocket` closes its socket.
struct Owner(Arc<Link>);

impl Drop for Owner {
    fn drop(&mut self) {
        let st = self.0.lock();
        if let (false, Some(id)) = (st.closed, st.id) {
            Loop::send(Command::Abort(id));
        }
    }
}

/// Messages fed and not yet handed to the loop.
#[derive(Default)]
struct Outgoing {
    pending: Vec<Message>,
    pending_bytes: usize,
    /// Bytes of the last batch handed over, until the loop acks it.
    inflight: usize,
    sent: u64,
    /// `poll_close` has asked the loop to close.
    closing: bool,
}

impl Outgoing {
    fn hand_over(&mut self, st: &LinkState) {
        if self.pending.is_empty() {
            return;
        }
        let Some(id) = st.id else { return };
        self.sent += 1;
        self.inflight = std::mem::take(&mut self.pending_bytes);
        Loop::send(Command::Send(
            id,
            std::mem::take(&mut self.pending),
            self.sent,
        ));
    }

    fn buffered(&self, st: &LinkState) -> usize {
        let inflight = if self.sent > st.acked {
            self.inflight
        } else {
            0
        };
        self.pending_bytes + inflight + st.buffered
    }

    fn poll_ready(&mut self, link: &Link, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut st = link.lock();
        loop {
            if let Some(e) = st.send_error.take() {
                return Poll::Ready(Err(e));
            }
            if st.closed || st.state != State::Open {
                return Poll::Ready(Err(st.closed_error()));
            }
            if self.sent > st.acked {
                break;
            }
            if !self.pending.is_empty()
                && self.pending_bytes + st.buffered > st.config.write_high_water
            {
                self.hand_over(&st);
                continue;
            }
            if st.writable {
                return Poll::Ready(Ok(()));
            }
            break;
        }
        st.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn start_send(&mut self, m: Message) {
        // A frame header at least: an empty message still grows the queue.
        self.pending_bytes += m.len() + 2;
        self.pending.push(m);
    }

    fn poll_flush(&mut self, link: &Link, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut st = link.lock();
        self.hand_over(&st);
        if let Some(e) = st.send_error.take() {
            return Poll::Ready(Err(e));
        }
        if self.sent <= st.acked && st.buffered == 0 {
            return Poll::Ready(Ok(()));
        }
        if st.closed {
            // Nothing more will be written (nor a batch in flight acked).
            return Poll::Ready(Err(st.closed_error()));
        }
        st.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Sends what is pending and a close frame, then waits for the end;
    /// `drop_events`: messages still arriving are dropped (the whole
    /// socket's `close`), else they wait for the stream half.
    async fn close(
        &mut self,
        link: &Link,
        code: CloseCode,
        reason: &str,
        drop_events: bool,
    ) -> Result<(), Error> {
        let id = {
            let st = link.lock();
            if st.closed {
                return st.end_result();
            }
            self.hand_over(&st);
            st.id.expect("an open connection has an id")
        };
        let (reply, answer) = smol::channel::bounded(1);
        Loop::send(Command::Close(id, code, reason.to_owned(), Some(reply)));
        answer.recv().await.expect("the loop answers")?;
        poll_fn(|cx| {
            let mut st = link.lock();
            if drop_events {
                while st.take().is_some() {}
            }
            if st.closed {
                return Poll::Ready(st.end_result());
            }
            if drop_events {
                st.read_waker = Some(cx.waker().clone());
            } else {
                st.write_waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    fn poll_close(&mut self, link: &Link, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut st = link.lock();
        if st.closed {
            return Poll::Ready(st.end_result());
        }
        if let (false, Some(id)) = (self.closing, st.id) {
            // What is pending goes first; closing twice is fine.
            self.closing = true;
            self.hand_over(&st);
            Loop::send(Command::Close(id, CloseCode::NORMAL, String::new(), None));
        }
        st.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn poll_next(link: &Link, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
    let mut st = link.lock();
    if let Some(item) = st.take() {
        return Poll::Ready(Some(item));
    }
    if st.closed {
        return Poll::Ready(None);
    }
    st.read_waker = Some(cx.waker().clone());
    Poll::Pending
}

/// A connection of the mio loop, as the scenarios see it.
pub struct MioWs {
    link: Arc<Owner>,
    out: Outgoing,
    protocol: Option<String>,
}

/// The sending half of a split [`MioWs`].
pub struct MioTx {
    link: Arc<Owner>,
    out: Outgoing,
    protocol: Option<String>,
}

/// The receiving half of a split [`MioWs`].
pub struct MioRx {
    link: Arc<Owner>,
}

impl MioWs {
    /// Hands `command` to the loop and waits for the handshake's outcome.
    async fn open(command: impl FnOnce(Arc<Link>) -> Command) -> Result<Self, Error> {
        let link = Arc::new(Link::default());
        Loop::send(command(link.clone()));
        let link = Owner(link);
        let protocol = poll_fn(|cx| {
            let mut st = link.0.lock();
            if let Some(e) = st.failure.take() {
                return Poll::Ready(Err(e));
            }
            if st.opened {
                return Poll::Ready(Ok(st.protocol.clone()));
            }
            st.read_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await?;
        Ok(Self {
            link: Arc::new(link),
            out: Outgoing::default(),
            protocol,
        })
    }
}

impl Stream for MioWs {
    type Item = Result<Message, Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        poll_next(&self.link.0, cx)
    }
}

impl Stream for MioRx {
    type Item = Result<Message, Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        poll_next(&self.link.0, cx)
    }
}

/// `Sink` for a type with `link` and `out` fields.
macro_rules! proxy_sink {
    ($t:ty) => {
        impl Sink<Message> for $t {
            type Error = Error;
            fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
                let this = self.get_mut();
                this.out.poll_ready(&this.link.0, cx)
            }
            fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
                self.get_mut().out.start_send(item);
                Ok(())
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
                let this = self.get_mut();
                this.out.poll_flush(&this.link.0, cx)
            }
            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
                let this = self.get_mut();
                this.out.poll_close(&this.link.0, cx)
            }
        }
    };
}
proxy_sink!(MioWs);
proxy_sink!(MioTx);

impl Socket for MioWs {
    type Rx = MioRx;
    type Tx = MioTx;

    fn state(&self) -> State {
        self.link.0.lock().state
    }
    fn buffered_amount(&self) -> usize {
        self.out.buffered(&self.link.0.lock())
    }
    fn latency(&self) -> Option<Duration> {
        self.link.0.lock().latency
    }
    fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
    fn close_handshake(
        &mut self,
        code: CloseCode,
        reason: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.out.close(&self.link.0, code, reason, true)
    }
    fn halves(self) -> (MioTx, MioRx) {
        let rx = MioRx {
            link: self.link.clone(),
        };
        let tx = MioTx {
            link: self.link,
            out: self.out,
            protocol: self.protocol,
        };
        (tx, rx)
    }
}

impl TxHalf for MioTx {
    type Rx = MioRx;
    type Whole = MioWs;

    fn is_pair_of(&self, rx: &MioRx) -> bool {
        Arc::ptr_eq(&self.link, &rx.link)
    }
    fn reunite(self, rx: MioRx) -> Result<MioWs, (Self, MioRx)> {
        if !self.is_pair_of(&rx) {
            return Err((self, rx));
        }
        Ok(MioWs {
            link: self.link,
            out: self.out,
            protocol: self.protocol,
        })
    }
    fn close_handshake(
        &mut self,
        code: CloseCode,
        reason: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.out.close(&self.link.0, code, reason, false)
    }
}

/// The mio event loop, with smol running the scenarios' own async code
/// (timers, tasks, the raw listener) around it.
pub struct MioRt;

impl Rt for MioRt {
    type Ws = MioWs;
    type Listener = Async<TcpListener>;
    type Tcp = TcpStream;

    fn block_on<T>(fut: impl Future<Output = T>) -> T {
        smol::block_on(fut)
    }
    fn spawn<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Task<T> {
        let task = smol::spawn(catching(fut));
        Box::pin(async move { task.await.unwrap_or_else(|panic| resume_unwind(panic)) })
    }
    async fn sleep(d: Duration) {
        smol::Timer::after(d).await;
    }
    async fn listen() -> (Async<TcpListener>, SocketAddr) {
        let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind 127.0.0.1:0");
        let addr = listener.get_ref().local_addr().expect("local_addr");
        (listener, addr)
    }
    async fn accept_tcp(listener: &Async<TcpListener>) -> TcpStream {
        let (tcp, _) = listener.accept().await.expect("accept TCP");
        tcp.into_inner().expect("a plain std socket")
    }
    async fn accept(tcp: TcpStream) -> Result<MioWs, Error> {
        Self::accept_with(tcp, ServerOptions::default(), |_| Ok(Default::default())).await
    }
    async fn accept_with<F>(
        tcp: TcpStream,
        options: ServerOptions,
        decide: F,
    ) -> Result<MioWs, Error>
    where
        F: FnOnce(&http::Request<()>) -> Decision + Send + 'static,
    {
        MioWs::open(move |link| Command::Accept(tcp, options, Box::new(decide), link)).await
    }
    async fn connect(url: &str) -> Result<MioWs, Error> {
        Self::connect_with(url, ClientOptions::default()).await
    }
    async fn connect_with(url: &str, options: ClientOptions) -> Result<MioWs, Error> {
        let url = url.to_owned();
        MioWs::open(move |link| Command::Connect(url, Box::new(options), link)).await
    }
}
