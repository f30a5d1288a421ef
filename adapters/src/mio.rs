//! tether on raw mio: one thread, many connections, no futures.
//!
//! A [`Driver`] owns a [`mio::Poll`] and every connection registered with
//! it: servers accepted by [`listen`](Connections::listen) (or handed over
//! with [`accept`](Connections::accept)), clients opened with
//! [`connect`](Connections::connect). Each call to [`Driver::poll_with`]
//! waits for readiness or the earliest deadline of all connections, moves
//! bytes between the sockets and the core, and hands each [`Event`] to a
//! callback that may answer at once through [`Connections`]. Like every
//! tether adapter it makes no protocol decision: the core frames, checks,
//! times out and closes; this module reads, writes, sleeps and keeps the
//! books.
//!
//! ```no_run
//! use tether::mio::{Driver, Event};
//!
//! let mut driver = Driver::new()?;
//! let addr = driver.listen("127.0.0.1:9002")?;
//! println!("echo server on ws://{addr}/");
//! loop {
//!     driver.poll_with(None, |conns, id, event| {
//!         if let Event::Message(m) = event {
//!             // Queued now, written in the same pass with the others.
//!             let _ = conns.send(id, m);
//!         }
//!     })?;
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Ordering: the callback sees a connection's events one by one, and what
//! it sends in answer is queued before the next event is taken from the
//! core, so the answers to every message before a protocol error leave
//! before the close frame the error queues. [`Driver::poll`], which
//! collects events in a `Vec`, takes them all first.
//!
//! Backpressure: [`pause`](Connections::pause) stops handing a
//! connection's events over; the core's inbound queue then fills,
//! `wants_read()` turns false and the socket is no longer read, so TCP
//! slows the peer down. On the way out, [`is_writable`](Connections::is_writable)
//! says whether to queue more, and [`Event::Writable`] says when to resume;
//! a write that would block leaves the bytes in the core.
//!
//! Name resolution in [`connect`](Connections::connect) uses the system
//! resolver, which blocks: pass an IP address to keep the loop responsive.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use tether_core::handshake::server::error_response;
use tether_core::handshake::{ClientHandshake, HandshakeError, ServerHandshake};
use tether_core::{
    Bytes, CloseCode, CloseFrame, Config, Connection, DataKind, Message, RandomSource, Role,
};

use crate::accept::{AcceptBackoff, Next, MAX_WAIT};
use crate::{os_rng, ClientOptions, Decision, Error, ServerOptions, SocketOptions};

/// Slices handed to one vectored write.
const MAX_IOV: usize = 64;
/// Reads per connection per pass, so one busy peer cannot starve the rest.
const READ_BUDGET: usize = 16;
/// Connections accepted per listener per pass.
const ACCEPT_BUDGET: usize = 256;
/// Buffer shared by all connections: handshakes and the first read of
/// each pass go there (see `Conn::read`).
const SCRATCH: usize = 16 << 10;
const WAKER: Token = Token(usize::MAX);

/// A read that fills less than the buffer shows the socket is drained on
/// edge-triggered epoll and kqueue, which saves the read that would block.
/// Not once the peer's FIN is pending: no new edge would announce it.
const SHORT_READ_DRAINS: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
));

/// Names one connection of a [`Driver`]; never reused for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    index: u32,
    generation: u32,
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// What happened on a connection. A connection's life is `Open`, its
/// events, then `Closed`; one whose opening handshake fails gets `Error`
/// and `Closed` without `Open`.
#[derive(Debug)]
pub enum Event {
    /// The opening handshake completed: messages may flow.
    Open,
    /// A whole text or binary message.
    Message(Message),
    /// Part of a message, when [`Config::deliver_chunks`] is set.
    Chunk {
        /// Text or binary.
        kind: DataKind,
        /// The bytes.
        data: Bytes,
        /// Last chunk of the message.
        fin: bool,
    },
    /// The peer pinged; the core has queued the pong.
    Ping(Bytes),
    /// A pong arrived; `latency` is set when it answers a keepalive ping.
    Pong {
        /// Its payload.
        payload: Bytes,
        /// Round trip of the keepalive ping it answers.
        latency: Option<Duration>,
    },
    /// The peer's close frame; the core has queued the answer.
    Close(Option<CloseFrame>),
    /// The transmit queue drained after [`Connections::is_writable`] said
    /// false: queue more.
    Writable,
    /// The handshake, the protocol or the socket failed.
    Error(Error),
    /// The socket is closed; the id is no longer valid.
    Closed,
}

/// The application's decision on one upgrade request.
type Hook = Box<dyn FnMut(&http::Request<()>) -> Decision + Send>;
type OnceHook = Box<dyn FnOnce(&http::Request<()>) -> Decision + Send>;
/// Where events go.
type Handler<'a> = dyn FnMut(&mut Connections, ConnectionId, Event) + 'a;

/// Settings and hook of one listener.
struct Acceptor {
    options: ServerOptions,
    hook: Hook,
}

enum Decide {
    Listener(usize),
    Once(Option<OnceHook>),
}

struct ClientHs {
    hs: ClientHandshake,
    config: Config,
    rng: Box<dyn RandomSource>,
    socket: SocketOptions,
    connected: bool,
}

struct ServerHs {
    hs: ServerHandshake,
    config: Config,
    decide: Decide,
}

// `Open` is by far the largest and the most common; the whole `Conn` is
// boxed in the slab already.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Connecting, writing the request, reading the response.
    Client(Box<ClientHs>),
    /// Reading the request.
    Server(Box<ServerHs>),
    Open(Connection),
    /// Writing what is left in `head` (a refusal), then closing; the
    /// instant bounds that.
    Ending(Instant),
}

/// The socket, with what is known of its readiness.
struct Io {
    stream: TcpStream,
    /// Handshake bytes to write before anything from the core.
    head: Vec<u8>,
    head_pos: usize,
    readable: bool,
    /// The peer's FIN (or an error) is pending: read until it shows, even
    /// after a short read.
    hup: bool,
    writable: bool,
}

/// What a readiness event says.
#[derive(Default)]
struct Ready {
    read: bool,
    hup: bool,
    write: bool,
}

struct Conn {
    io: Io,
    phase: Phase,
    protocol: Option<String>,
    paused: bool,
    want_writable: bool,
    /// The deadline this connection has in the timer heap.
    armed: Option<Instant>,
}

enum Entry {
    Free,
    Listener(TcpListener, usize),
    Conn(Box<Conn>),
}

struct Slot {
    generation: u32,
    queued: bool,
    entry: Entry,
}

/// A mio event loop driving WebSocket connections. It dereferences to
/// [`Connections`], whose methods open, feed and close connections.
pub struct Driver {
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    conns: Connections,
}

/// The connections of a [`Driver`], as its callback sees them.
pub struct Connections {
    registry: Registry,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    listeners: Vec<u32>,
    acceptors: Vec<Acceptor>,
    socket: SocketOptions,
    /// (deadline, index, generation); an entry whose connection has since
    /// armed another deadline is skipped when it surfaces.
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    /// Slots to service on the next pass without waiting for readiness.
    queue: Vec<u32>,
    /// When listeners try again after an accept error (EMFILE, say); the
    /// schedule is the one every adapter shares (`crate::accept`).
    accept_retry: Option<Instant>,
    accept_backoff: AcceptBackoff,
    accept_error: Option<io::Error>,
    scratch: Vec<u8>,
}

impl Driver {
    /// A driver with no connections.
    pub fn new() -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let registry = poll.registry().try_clone()?;
        Ok(Self {
            poll,
            events: Events::with_capacity(1024),
            waker,
            conns: Connections {
                registry,
                slots: Vec::new(),
                free: Vec::new(),
                live: 0,
                listeners: Vec::new(),
                acceptors: Vec::new(),
                socket: SocketOptions::default(),
                timers: BinaryHeap::new(),
                queue: Vec::new(),
                accept_retry: None,
                accept_backoff: AcceptBackoff::default(),
                accept_error: None,
                scratch: vec![0; SCRATCH],
            },
        })
    }

    /// Wakes a [`poll`](Self::poll) in progress from another thread (it
    /// then returns, maybe with no event), so that thread can hand the
    /// loop work through a channel of its own.
    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// Waits up to `timeout` (`None`: until something happens) for
    /// readiness or a deadline, does all the I/O that can proceed, and calls
    /// `handler` with each event. `handler` may send, close, connect and
    /// so on through the [`Connections`] it is given; what it sends in
    /// answer to an event is queued before the connection's next event is
    /// taken. May return without an event.
    pub fn poll_with<F>(&mut self, timeout: Option<Duration>, mut handler: F) -> io::Result<()>
    where
        F: FnMut(&mut Connections, ConnectionId, Event),
    {
        let delivered = std::cell::Cell::new(false);
        let mut counting = |conns: &mut Connections, id, event| {
            delivered.set(true);
            handler(conns, id, event)
        };
        let h: &mut Handler<'_> = &mut counting;
        // Work queued since the last pass: sends, closes, resumed or
        // unfinished reads.
        self.conns.run_queue(h);

        let mut wait = timeout;
        if let Some(at) = self.conns.next_deadline() {
            let d = at.saturating_duration_since(Instant::now());
            wait = Some(wait.map_or(d, |w| w.min(d)));
        }
        if !self.conns.queue.is_empty() || delivered.get() {
            // More to do, or events to return: do not sleep.
            wait = Some(Duration::ZERO);
        }
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for event in self.events.iter() {
            if event.token() == WAKER {
                continue;
            }
            let failed = event.is_error();
            let hup = event.is_read_closed() || failed;
            self.conns.ready(
                event.token().0 as u32,
                Ready {
                    read: event.is_readable() || hup,
                    hup,
                    write: event.is_writable() || event.is_write_closed() || failed,
                },
                h,
            );
        }
        self.conns.fire_timers(h);
        Ok(())
    }

    /// Like [`poll_with`](Self::poll_with), collecting the events in
    /// `events` (cleared first). Simpler to use, with one difference: every
    /// event already received on a connection is taken before the
    /// application sees any, so if a protocol error follows some messages,
    /// the close frame it causes is queued before answers to those messages
    /// (which then fail with `Closed`). Use `poll_with` to answer first.
    pub fn poll(
        &mut self,
        events: &mut Vec<(ConnectionId, Event)>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        events.clear();
        self.poll_with(timeout, |_, id, ev| events.push((id, ev)))
    }
}

impl Deref for Driver {
    type Target = Connections;
    fn deref(&self) -> &Connections {
        &self.conns
    }
}

impl DerefMut for Driver {
    fn deref_mut(&mut self) -> &mut Connections {
        &mut self.conns
    }
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("connections", &self.conns.live)
            .finish_non_exhaustive()
    }
}

fn get(slots: &mut [Slot], id: ConnectionId) -> Option<&mut Conn> {
    match slots.get_mut(id.index as usize) {
        Some(Slot {
            generation,
            entry: Entry::Conn(c),
            ..
        }) if *generation == id.generation => Some(c),
        _ => None,
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Connections {
    // ---- opening connections ----

    /// Listens on `addr` and accepts WebSocket connections with the
    /// default options; returns the bound address (useful with port 0).
    pub fn listen(&mut self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        self.listen_with(addr, ServerOptions::default(), |_| Ok(Default::default()))
    }

    /// Listens on `addr`; `hook` sees every upgrade request and accepts it
    /// (choosing a subprotocol, adding headers) or rejects it with any
    /// response. Accepted sockets get the [`set_socket_options`](Self::set_socket_options).
    pub fn listen_with(
        &mut self,
        addr: impl ToSocketAddrs,
        options: ServerOptions,
        hook: impl FnMut(&http::Request<()>) -> Decision + Send + 'static,
    ) -> io::Result<SocketAddr> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))?;
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        self.acceptors.push(Acceptor {
            options,
            hook: Box::new(hook),
        });
        let index = self.insert(Entry::Listener(listener, self.acceptors.len() - 1));
        if let Entry::Listener(l, _) = &mut self.slots[index as usize].entry {
            if let Err(e) = self
                .registry
                .register(l, Token(index as usize), Interest::READABLE)
            {
                self.remove_slot(index);
                return Err(e);
            }
        }
        self.listeners.push(index);
        Ok(local)
    }

    /// Socket options for the connections listeners accept (default:
    /// TCP_NODELAY on).
    pub fn set_socket_options(&mut self, options: SocketOptions) {
        self.socket = options;
    }

    /// The last error accepting a connection (EMFILE, say), if any since
    /// the last call. Listeners retry by themselves: at once after an
    /// error of one connection, after 10 ms doubling to 1 s while out of
    /// descriptors or memory, the schedule the smol and tokio `Listener`s
    /// follow.
    pub fn take_accept_error(&mut self) -> Option<io::Error> {
        self.accept_error.take()
    }

    /// Runs the server handshake on a TCP stream accepted elsewhere,
    /// accepting every request with the default options.
    pub fn accept(&mut self, stream: std::net::TcpStream) -> io::Result<ConnectionId> {
        self.accept_with(
            stream,
            &ServerOptions::default(),
            |_| Ok(Default::default()),
        )
    }

    /// Runs the server handshake on a TCP stream accepted elsewhere;
    /// `decide` sees the request. The socket is used as it is configured.
    pub fn accept_with(
        &mut self,
        stream: std::net::TcpStream,
        options: &ServerOptions,
        decide: impl FnOnce(&http::Request<()>) -> Decision + Send + 'static,
    ) -> io::Result<ConnectionId> {
        stream.set_nonblocking(true)?;
        let decide = Decide::Once(Some(Box::new(decide)));
        self.add_server(TcpStream::from_std(stream), options, decide)
    }

    /// Opens a client connection to a `ws://` URL with default options.
    /// The id is valid at once; [`Event::Open`] or an [`Event::Error`]
    /// follows.
    pub fn connect(&mut self, url: &str) -> Result<ConnectionId, Error> {
        self.connect_with(url, ClientOptions::default())
    }

    /// Opens a client connection. The handshake deadline
    /// (`options.limits.timeout`) covers the TCP connect too.
    pub fn connect_with(
        &mut self,
        url: &str,
        options: ClientOptions,
    ) -> Result<ConnectionId, Error> {
        let request = crate::client_request(url, &options)?;
        let addr = crate::host_port(&request)?
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host has no address"))?;
        let mut rng = os_rng();
        let (hs, request) =
            ClientHandshake::new(&request, options.limits.clone(), &mut *rng, Instant::now())?;
        let stream = TcpStream::connect(addr)?;
        let phase = Phase::Client(Box::new(ClientHs {
            hs,
            config: options.config,
            rng,
            socket: options.socket,
            connected: false,
        }));
        Ok(self.add_conn(stream, phase, request, false)?)
    }

    fn add_server(
        &mut self,
        stream: TcpStream,
        options: &ServerOptions,
        decide: Decide,
    ) -> io::Result<ConnectionId> {
        let hs = ServerHandshake::new(options.limits.clone(), Instant::now());
        #[cfg(feature = "deflate")]
        let hs = hs.with_deflate(options.deflate.clone());
        let phase = Phase::Server(Box::new(ServerHs {
            hs,
            config: options.config.clone(),
            decide,
        }));
        // The request has probably arrived already: read it on the next pass.
        self.add_conn(stream, phase, Vec::new(), true)
    }

    fn add_conn(
        &mut self,
        stream: TcpStream,
        phase: Phase,
        head: Vec<u8>,
        ready: bool,
    ) -> io::Result<ConnectionId> {
        let conn = Conn {
            io: Io {
                stream,
                head,
                head_pos: 0,
                readable: ready,
                hup: false,
                writable: ready,
            },
            phase,
            protocol: None,
            paused: false,
            want_writable: false,
            armed: None,
        };
        let index = self.insert(Entry::Conn(Box::new(conn)));
        self.live += 1;
        let id = self.id_at(index);
        let c = get(&mut self.slots, id).expect("just inserted");
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .registry
            .register(&mut c.io.stream, Token(index as usize), interest)
        {
            self.remove_slot(index);
            return Err(e);
        }
        if ready {
            self.enqueue(index);
        }
        self.arm(id);
        Ok(id)
    }

    // ---- commands ----

    /// Queues a message (a ping, a pong or a close too); it is written on
    /// the next pass, with everything else queued by then. Fails if the
    /// connection is not open (`Io(NotConnected)` during the handshake).
    pub fn send(&mut self, id: ConnectionId, message: Message) -> Result<(), Error> {
        self.open(id)?.send(message)?;
        self.enqueue(id.index);
        Ok(())
    }

    /// Queues one chunk of a message sent piece by piece (see
    /// [`Connection::send_chunk`]).
    pub fn send_chunk(
        &mut self,
        id: ConnectionId,
        kind: DataKind,
        data: Bytes,
        fin: bool,
    ) -> Result<(), Error> {
        self.open(id)?.send_chunk(kind, data, fin)?;
        self.enqueue(id.index);
        Ok(())
    }

    /// Starts the close handshake; [`Event::Closed`] follows once it is
    /// over (or has timed out).
    pub fn close(&mut self, id: ConnectionId, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.open(id)?.close(code, reason)?;
        self.enqueue(id.index);
        Ok(())
    }

    /// Closes the socket now, without a close handshake, and forgets the
    /// connection (no further event). Returns whether it existed.
    pub fn abort(&mut self, id: ConnectionId) -> bool {
        get(&mut self.slots, id).is_some() && self.remove_slot(id.index).is_some()
    }

    /// Stops handing this connection's events over. Received messages then
    /// wait in the core up to its inbound limits, after which the socket is
    /// not read and TCP pushes back on the peer.
    pub fn pause(&mut self, id: ConnectionId) {
        if let Some(c) = get(&mut self.slots, id) {
            c.paused = true;
        }
    }

    /// Hands events over again after [`pause`](Self::pause).
    pub fn resume(&mut self, id: ConnectionId) {
        if let Some(c) = get(&mut self.slots, id) {
            if c.paused {
                c.paused = false;
                self.enqueue(id.index);
            }
        }
    }

    /// Whether the application should queue more on this connection (see
    /// [`Connection::is_writable`]). When not, [`Event::Writable`] follows
    /// once the queue has drained.
    pub fn is_writable(&mut self, id: ConnectionId) -> bool {
        let Some(c) = get(&mut self.slots, id) else {
            return false;
        };
        let writable = match &mut c.phase {
            Phase::Open(conn) => conn.is_writable(),
            Phase::Ending(_) => return false,
            _ => false,
        };
        c.want_writable |= !writable;
        writable
    }

    // ---- getters ----

    /// The protocol state machine of an open connection, for its getters
    /// (`state`, `buffered_amount`, `latency`, ...).
    pub fn connection(&self, id: ConnectionId) -> Option<&Connection> {
        match &self.get_ref(id)?.phase {
            Phase::Open(conn) => Some(conn),
            _ => None,
        }
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self, id: ConnectionId) -> Option<&str> {
        self.get_ref(id)?.protocol.as_deref()
    }

    /// Connections registered (in handshake, open or closing).
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there is no connection.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    // ---- bookkeeping ----

    fn open(&mut self, id: ConnectionId) -> Result<&mut Connection, Error> {
        match get(&mut self.slots, id).map(|c| &mut c.phase) {
            Some(Phase::Open(conn)) => Ok(conn),
            Some(Phase::Client(_) | Phase::Server(_)) => Err(Error::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "the opening handshake is not over",
            ))),
            _ => Err(Error::Ws(tether_core::Error::Closed)),
        }
    }

    fn get_ref(&self, id: ConnectionId) -> Option<&Conn> {
        match self.slots.get(id.index as usize)? {
            Slot {
                generation,
                entry: Entry::Conn(c),
                ..
            } if *generation == id.generation => Some(c),
            _ => None,
        }
    }

    fn id_at(&self, index: u32) -> ConnectionId {
        ConnectionId {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    fn insert(&mut self, entry: Entry) -> u32 {
        match self.free.pop() {
            Some(index) => {
                self.slots[index as usize].entry = entry;
                index
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    queued: false,
                    entry,
                });
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Deregisters and frees a slot; dropping the socket closes it.
    fn remove_slot(&mut self, index: u32) -> Option<Box<Conn>> {
        let slot = &mut self.slots[index as usize];
        let entry = std::mem::replace(&mut slot.entry, Entry::Free);
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        match entry {
            Entry::Conn(mut c) => {
                let _ = self.registry.deregister(&mut c.io.stream);
                self.live -= 1;
                Some(c)
            }
            Entry::Listener(mut l, _) => {
                let _ = self.registry.deregister(&mut l);
                None
            }
            Entry::Free => None,
        }
    }

    fn enqueue(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        if !slot.queued {
            slot.queued = true;
            self.queue.push(index);
        }
    }

    fn run_queue(&mut self, h: &mut Handler<'_>) {
        for index in std::mem::take(&mut self.queue) {
            self.slots[index as usize].queued = false;
            self.ready(index, Ready::default(), h);
        }
    }

    /// Readiness (or queued work) for a slot.
    fn ready(&mut self, index: u32, ready: Ready, h: &mut Handler<'_>) {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        match &mut slot.entry {
            Entry::Free => {}
            Entry::Listener(..) => self.accept_ready(index),
            Entry::Conn(c) => {
                c.io.readable |= ready.read;
                c.io.hup |= ready.hup;
                c.io.writable |= ready.write;
                let id = self.id_at(index);
                self.service(id, h);
            }
        }
    }

    fn accept_ready(&mut self, index: u32) {
        for _ in 0..ACCEPT_BUDGET {
            let Entry::Listener(listener, acceptor) = &self.slots[index as usize].entry else {
                return;
            };
            let acceptor = *acceptor;
            match listener.accept() {
                Ok((stream, _)) => {
                    self.accept_backoff.accepted();
                    // A socket the peer already reset may refuse options;
                    // its handshake then fails on its own.
                    let _ = self.socket.apply(&stream);
                    let options = self.acceptors[acceptor].options.clone();
                    if let Err(e) = self.add_server(stream, &options, Decide::Listener(acceptor)) {
                        self.accept_error = Some(e);
                    }
                }
                Err(e) if would_block(&e) => return,
                Err(e) => {
                    // Out of descriptors, say: try again later. An error
                    // the async listeners would return (a broken listener)
                    // has nobody to go to here but `take_accept_error`; it
                    // is retried at the longest wait.
                    let wait = match self.accept_backoff.failed(&e) {
                        Next::Retry(wait) => wait,
                        Next::Fail => MAX_WAIT,
                    };
                    self.accept_error = Some(e);
                    if !wait.is_zero() {
                        self.accept_retry = Some(Instant::now() + wait);
                        return;
                    }
                }
            }
        }
        self.enqueue(index);
    }

    /// Moves a connection as far as it can go now: handshake, read, hand
    /// events over, write, close when the core is done with the socket.
    fn service(&mut self, id: ConnectionId, h: &mut Handler<'_>) {
        let now = Instant::now();
        let step = {
            let Self {
                slots,
                scratch,
                acceptors,
                ..
            } = self;
            match get(slots, id) {
                Some(c) => c.handshake(now, scratch, acceptors),
                None => return,
            }
        };
        match step {
            Ok(true) => h(self, id, Event::Open),
            Ok(false) => {}
            Err(e) => h(self, id, Event::Error(e)),
        }

        let Some(c) = get(&mut self.slots, id) else {
            return;
        };
        if let Err(e) = c.read(now, &mut self.scratch) {
            return self.fail(id, e, h);
        }
        self.deliver(id, false, h);

        let Some(c) = get(&mut self.slots, id) else {
            return;
        };
        if let Err(e) = c.write() {
            return self.fail(id, e, h);
        }
        if c.want_writable {
            if let Phase::Open(conn) = &mut c.phase {
                if conn.is_writable() {
                    c.want_writable = false;
                    h(self, id, Event::Writable);
                }
            }
        }

        let Some(c) = get(&mut self.slots, id) else {
            return;
        };
        if c.is_done() {
            return self.finish(id, h);
        }
        if c.io.readable && c.wants_read() {
            // Read budget used up: more next pass.
            self.enqueue(id.index);
        }
        self.arm(id);
    }

    /// Hands the core's events to `h`, one at a time, unless paused.
    fn deliver(&mut self, id: ConnectionId, force: bool, h: &mut Handler<'_>) {
        loop {
            let Some(c) = get(&mut self.slots, id) else {
                return;
            };
            if c.paused && !force {
                return;
            }
            let Phase::Open(conn) = &mut c.phase else {
                return;
            };
            let Some(ev) = conn.poll_event() else {
                return;
            };
            let ev = match ev {
                tether_core::Event::Message(m) => Event::Message(m),
                tether_core::Event::Chunk { kind, data, fin } => Event::Chunk { kind, data, fin },
                tether_core::Event::Ping(p) => Event::Ping(p),
                tether_core::Event::Pong { payload, latency } => Event::Pong { payload, latency },
                tether_core::Event::Close(frame) => Event::Close(frame),
                tether_core::Event::Error(e) => Event::Error(Error::Ws(e)),
            };
            h(self, id, ev);
        }
    }

    /// The socket failed: what the core still holds, the error, the end.
    fn fail(&mut self, id: ConnectionId, e: io::Error, h: &mut Handler<'_>) {
        self.deliver(id, true, h);
        if get(&mut self.slots, id).is_some() {
            self.remove_slot(id.index);
            h(self, id, Event::Error(Error::Io(e)));
            h(self, id, Event::Closed);
        }
    }

    /// The core is done with the socket: end it (FIN) and close it.
    fn finish(&mut self, id: ConnectionId, h: &mut Handler<'_>) {
        self.deliver(id, true, h);
        if get(&mut self.slots, id).is_some() {
            if let Some(c) = self.remove_slot(id.index) {
                // Nothing more to say either way.
                let _ = c.io.stream.shutdown(Shutdown::Write);
            }
            h(self, id, Event::Closed);
        }
    }

    // ---- timers ----

    /// Puts the connection's next deadline in the heap if it changed.
    fn arm(&mut self, id: ConnectionId) {
        let Some(c) = get(&mut self.slots, id) else {
            return;
        };
        let want = c.deadline();
        if want == c.armed {
            return;
        }
        c.armed = want;
        if let Some(at) = want {
            self.timers.push(Reverse((at, id.index, id.generation)));
        }
        if self.timers.len() > 64 + 2 * self.live {
            // Mostly superseded entries: rebuild from the live deadlines.
            let live = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match &s.entry {
                    Entry::Conn(c) => c.armed.map(|at| Reverse((at, i as u32, s.generation))),
                    _ => None,
                });
            self.timers = live.collect();
        }
    }

    fn is_armed(&mut self, at: Instant, index: u32, generation: u32) -> bool {
        get(&mut self.slots, ConnectionId { index, generation })
            .is_some_and(|c| c.armed == Some(at))
    }

    /// The earliest live deadline (superseded heap entries are dropped).
    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            if self.is_armed(at, index, generation) {
                return Some(self.accept_retry.map_or(at, |r| r.min(at)));
            }
            self.timers.pop();
        }
        self.accept_retry
    }

    fn fire_timers(&mut self, h: &mut Handler<'_>) {
        let now = Instant::now();
        if self.accept_retry.is_some_and(|at| at <= now) {
            self.accept_retry = None;
            for index in self.listeners.clone() {
                self.enqueue(index);
            }
        }
        let mut due = Vec::new();
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.is_armed(at, index, generation) {
                due.push((at, ConnectionId { index, generation }));
            }
        }
        for (at, id) in due {
            let Some(c) = get(&mut self.slots, id) else {
                continue;
            };
            c.armed = None;
            let failed = match &mut c.phase {
                Phase::Open(conn) => {
                    conn.handle_timeout(now.max(at));
                    None
                }
                Phase::Client(x) => x.hs.handle_timeout(now).err(),
                Phase::Server(x) => x.hs.handle_timeout(now).err(),
                // The refusal could not be written in time: give up on it.
                Phase::Ending(_) => {
                    c.io.head.clear();
                    None
                }
            };
            if let Some(e) = failed {
                c.phase = Phase::Ending(at);
                c.io.head.clear();
                h(self, id, Event::Error(e.into()));
            }
            self.service(id, h);
        }
    }
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl Conn {
    fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Client(c) => Some(c.hs.poll_timeout()),
            Phase::Server(s) => Some(s.hs.poll_timeout()),
            Phase::Open(conn) => conn.poll_timeout(),
            Phase::Ending(at) => Some(*at),
        }
    }

    fn wants_read(&self) -> bool {
        matches!(&self.phase, Phase::Open(conn) if conn.wants_read())
    }

    /// Whether the socket can be closed.
    fn is_done(&self) -> bool {
        let head_done = self.io.head_pos >= self.io.head.len();
        match &self.phase {
            Phase::Open(conn) => head_done && conn.is_finished() && !conn.has_transmit(),
            Phase::Ending(_) => head_done,
            _ => false,
        }
    }

    /// Advances the opening handshake: `Ok(true)` when it just completed.
    /// On failure the phase is `Ending`, with any response to send in
    /// `head`.
    fn handshake(
        &mut self,
        now: Instant,
        scratch: &mut [u8],
        acceptors: &mut [Acceptor],
    ) -> Result<bool, Error> {
        let result = match &mut self.phase {
            Phase::Open(_) | Phase::Ending(_) => return Ok(false),
            Phase::Client(c) => client_step(&mut self.io, c, scratch).map(|r| r.map(Done::Client)),
            Phase::Server(s) => {
                server_step(&mut self.io, s, scratch, acceptors).map(|r| r.map(Done::Server))
            }
        };
        let done = match result {
            Ok(None) => return Ok(false),
            Ok(Some(done)) => done,
            Err(e) => {
                if matches!(self.phase, Phase::Client(_)) {
                    // The request, if unsent, no longer matters.
                    self.io.head.clear();
                }
                let deadline = self.deadline().unwrap_or(now);
                self.phase = Phase::Ending(deadline);
                return Err(e);
            }
        };
        let (mut conn, rest, protocol) =
            match (std::mem::replace(&mut self.phase, Phase::Ending(now)), done) {
                (Phase::Client(c), Done::Client((response, rest))) => {
                    let conn = Connection::new(Role::Client, c.config, c.rng, now);
                    #[cfg(feature = "deflate")]
                    let conn = conn.with_deflate(response.deflate);
                    (conn, rest, response.protocol)
                }
                (Phase::Server(s), Done::Server(protocol)) => {
                    let mut s = *s;
                    let conn = Connection::new(Role::Server, s.config, os_rng(), now);
                    #[cfg(feature = "deflate")]
                    let conn = conn.with_deflate(s.hs.deflate_params());
                    (conn, s.hs.take_leftover(), protocol)
                }
                _ => unreachable!("handshake outcome of the other role"),
            };
        // Frames that came with the handshake.
        if !rest.is_empty() {
            conn.handle_read(&rest, now);
        }
        self.phase = Phase::Open(conn);
        self.protocol = protocol;
        Ok(true)
    }

    /// Reads while the core wants input and the socket has some. The first
    /// read of a pass goes to the driver's shared buffer and is copied in
    /// (`handle_read`), so a connection that gets a message now and then
    /// holds no read buffer between messages; once a read fills it, data
    /// is streaming and the rest of the pass reads straight into the
    /// core's buffer (`read_buf`, `commit_read`), without a copy.
    fn read(&mut self, now: Instant, scratch: &mut [u8]) -> io::Result<()> {
        let Phase::Open(conn) = &mut self.phase else {
            return Ok(());
        };
        for pass in 0..READ_BUDGET {
            if !(self.io.readable && conn.wants_read()) {
                break;
            }
            if pass == 0 {
                match self.io.read(scratch)? {
                    Some(0) => conn.handle_eof(now),
                    Some(n) => conn.handle_read(&scratch[..n], now),
                    None => {}
                }
                continue;
            }
            let buf = conn.read_buf();
            match self.io.read(buf)? {
                Some(0) => conn.handle_eof(now),
                Some(n) => conn.commit_read(n, now),
                None => {}
            }
        }
        Ok(())
    }

    /// Writes the handshake bytes, then what the core has queued, until
    /// done or the socket would block.
    fn write(&mut self) -> io::Result<()> {
        let conn = match &mut self.phase {
            Phase::Open(conn) => conn,
            Phase::Ending(_) => return self.io.write_head().map(drop),
            _ => return Ok(()),
        };
        if !self.io.write_head()? {
            return Ok(());
        }
        while self.io.writable {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = conn.poll_transmit(&mut iov);
            if n == 0 {
                break;
            }
            match self.io.stream.write_vectored(&iov[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => conn.advance_transmit(k),
                Err(e) if would_block(&e) => self.io.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A completed handshake, before its connection is made.
enum Done {
    Client(ClientDone),
    /// The subprotocol chosen.
    Server(Option<String>),
}

type ClientDone = (tether_core::handshake::ClientResponse, Bytes);

/// Connects, writes the request, reads the response.
fn client_step(
    io: &mut Io,
    c: &mut ClientHs,
    scratch: &mut [u8],
) -> Result<Option<ClientDone>, Error> {
    if !c.connected {
        if let Some(e) = io.stream.take_error()? {
            return Err(e.into());
        }
        match io.stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        c.connected = true;
        c.socket.apply(&io.stream)?;
        io.writable = true;
        io.readable = true;
    }
    if !io.write_head()? {
        return Ok(None);
    }
    while let Some(n) = io.read(scratch)? {
        if n == 0 {
            return Err(HandshakeError::Eof.into());
        }
        if let Some(done) = c.hs.handle_read(&scratch[..n])? {
            return Ok(Some(done));
        }
    }
    Ok(None)
}

/// Reads the request, asks the application, queues the response in
/// `head`: `Some(subprotocol)` once accepted.
fn server_step(
    io: &mut Io,
    s: &mut ServerHs,
    scratch: &mut [u8],
    acceptors: &mut [Acceptor],
) -> Result<Option<Option<String>>, Error> {
    let request = loop {
        let Some(n) = io.read(scratch)? else {
            return Ok(None);
        };
        if n == 0 {
            return Err(HandshakeError::Eof.into());
        }
        match s.hs.handle_read(&scratch[..n]) {
            Ok(None) => {}
            Ok(Some(request)) => break request,
            Err(e) => {
                io.head = error_response(&e);
                return Err(e.into());
            }
        }
    };
    let decision = match &mut s.decide {
        Decide::Listener(i) => (acceptors[*i].hook)(&request),
        Decide::Once(hook) => (hook.take().expect("one request per connection"))(&request),
    };
    let accept = match decision {
        Ok(accept) => accept,
        Err(response) => {
            io.head = s.hs.reject(&response);
            let status = response.status().as_u16();
            return Err(HandshakeError::RejectedByApplication(status).into());
        }
    };
    match s.hs.accept(&accept) {
        Ok(bytes) => {
            io.head = bytes;
            Ok(Some(accept.protocol))
        }
        Err(e) => {
            io.head = error_response(&e);
            Err(e.into())
        }
    }
}

impl Io {
    /// One read: `None` when it would block (or readiness is not known).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        while self.readable {
            match self.stream.read(buf) {
                Ok(n) => {
                    if n == 0 || (SHORT_READ_DRAINS && n < buf.len() && !self.hup) {
                        self.readable = false;
                    }
                    return Ok(Some(n));
                }
                Err(e) if would_block(&e) => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Writes `head`; true once all of it is out.
    fn write_head(&mut self) -> io::Result<bool> {
        while self.head_pos < self.head.len() {
            if !self.writable {
                return Ok(false);
            }
            match self.stream.write(&self.head[self.head_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.head_pos += n,
                Err(e) if would_block(&e) => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !self.head.is_empty() {
            self.head = Vec::new();
            self.head_pos = 0;
        }
        Ok(true)
    }
}
