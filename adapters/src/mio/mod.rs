//! tether on raw mio: one thread, many connections, no futures.
//!
//! A [`Driver`] owns a [`mio::Poll`] and every connection registered with
//! it: servers accepted by [`listen`](ConnectionSet::listen) (or handed over
//! with [`accept`](ConnectionSet::accept)), clients opened with
//! [`connect`](ConnectionSet::connect). Each call to [`Driver::poll_with`]
//! waits for readiness or the earliest deadline of all connections, moves
//! bytes between the sockets and the core, and hands each [`Event`] to a
//! callback that may answer at once through [`ConnectionSet`]. Like every
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
//! Backpressure: [`pause`](ConnectionSet::pause) stops handing a
//! connection's events over; the core's inbound queue then fills,
//! `wants_read()` turns false and the socket is no longer read, so TCP
//! slows the peer down. On the way out, [`is_writable`](ConnectionSet::is_writable)
//! says whether to queue more, and [`Event::Writable`] says when to resume;
//! a write that would block leaves the bytes in the core.
//!
//! Graceful shutdown: [`drain`](ConnectionSet::drain) closes the listeners,
//! closes every connection with 1001 "going away" after a drain period,
//! cuts what is left at a deadline, and [`drained`](ConnectionSet::drained)
//! reports when it is over (see [`crate::shutdown`] for the schedule).
//!
//! Name resolution in [`connect`](ConnectionSet::connect) uses the system
//! resolver, which blocks: pass an IP address to keep the loop responsive
//! (a proxy's name, and a target's behind a `socks5://` proxy, resolve
//! the same way).
//!
//! Clients go through the proxy [`ClientOptions::proxy`] chooses (by
//! default the environment's: see [`crate::proxy`]): the loop runs the
//! core's sans-IO proxy exchange on the socket, then the WebSocket
//! handshake through the tunnel, all within the one handshake deadline.
//!
//! TLS (feature `rustls`): [`connect`](ConnectionSet::connect) takes
//! `wss://` URLs, with the options smol and tokio take
//! (`ClientOptions::tls`, or `tls::default_client_config()`), the URL's
//! host as the server name, ALPN `http/1.1` and port 443 by default;
//! `listen_tls` and `accept_tls` serve it with a `rustls::ServerConfig`
//! (which asks for client certificates if built to), and `tls(id)` shows
//! a connection's session (peer certificates, ALPN, SNI). The loop drives rustls's own sans-IO connection: it feeds it the
//! socket's bytes when readable, takes plaintext for the core, and writes
//! its records while the socket takes them. The layers run in order (TCP,
//! proxy tunnel, TLS, WebSocket handshake) within the one handshake
//! deadline, so a peer stalled in any of them is dropped then; a failed
//! TLS handshake is an [`Error::Tls`] event.
//!
//! ```no_run
//! # #[cfg(feature = "rustls")]
//! # fn main() -> Result<(), tether::Error> {
//! use tether::mio::{Driver, Event};
//! use tether::{ClientOptions, CloseCode, Message};
//!
//! let read = |path| std::fs::read(path);
//! let server_tls = tether::tls::server_config(&read("cert.pem")?, &read("key.pem")?)?;
//! let client_tls = tether::tls::client_config(&read("ca.pem")?)?;
//!
//! let mut driver = Driver::new()?;
//! let addr = driver.listen_tls("127.0.0.1:0", server_tls)?;
//! let url = format!("wss://localhost:{}/", addr.port());
//! let client = driver.connect_with(&url, ClientOptions::default().with_tls(client_tls))?;
//! loop {
//!     driver.poll_with(None, |conns, id, event| match event {
//!         Event::Open if id == client => {
//!             let _ = conns.send(id, Message::text("hi"));
//!         }
//!         Event::Message(m) if id == client => {
//!             println!("{m:?}");
//!             let _ = conns.close(id, CloseCode::NORMAL, "done");
//!         }
//!         Event::Message(m) => {
//!             let _ = conns.send(id, m); // the server side echoes
//!         }
//!         _ => {}
//!     })?;
//! }
//! # }
//! # #[cfg(not(feature = "rustls"))] fn main() {}
//! ```

mod conn;
mod drain;
mod proxy;
mod service;
mod set;
mod slab;
mod timers;
mod tls;

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
use tether_core::handshake::{
    Answer, ClientHandshake, ClientResponse, HandshakeError, ServerHandshake,
};
use tether_core::{
    Bytes, CloseCode, CloseFrame, Config, Connection, DataKind, Message, RandomSource,
};

use crate::accept::{AcceptBackoff, Next, MAX_WAIT};
use crate::{os_rng, ClientOptions, Decision, Error, ServerOptions, SocketOptions};

use crate::socket::bind_listener;
use conn::*;
use service::would_block;
use slab::*;
use tls::{ServerTls, TlsSession};

/// Slices handed to one vectored write.
const MAX_IOV: usize = 64;

/// Reads per connection per pass, so one busy peer cannot starve the rest.
const READ_BUDGET: usize = 16;

/// Connections accepted per listener per pass.
const ACCEPT_BUDGET: usize = 256;

/// Buffer shared by all connections: handshakes and reads while data is
/// not streaming go there (see `Conn::read`).
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
#[non_exhaustive]
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
    /// The transmit queue drained after [`ConnectionSet::is_writable`] said
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
type Handler<'a> = dyn FnMut(&mut ConnectionSet, ConnectionId, Event) + 'a;

/// A mio event loop driving WebSocket connections. It dereferences to
/// [`ConnectionSet`], whose methods open, feed and close connections.
pub struct Driver {
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    conns: ConnectionSet,
}

/// The connections of a [`Driver`], as its callback sees them.
pub struct ConnectionSet {
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
    /// A graceful shutdown under way (`drain`).
    draining: Option<drain::Draining>,
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
            conns: ConnectionSet {
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
                draining: None,
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
    /// so on through the [`ConnectionSet`] it is given; what it sends in
    /// answer to an event is queued before the connection's next event is
    /// taken. May return without an event.
    pub fn poll_with<F>(&mut self, timeout: Option<Duration>, mut handler: F) -> io::Result<()>
    where
        F: FnMut(&mut ConnectionSet, ConnectionId, Event),
    {
        let delivered = std::cell::Cell::new(false);
        let mut counting = |conns: &mut ConnectionSet, id, event| {
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
    type Target = ConnectionSet;
    fn deref(&self) -> &ConnectionSet {
        &self.conns
    }
}

impl DerefMut for Driver {
    fn deref_mut(&mut self) -> &mut ConnectionSet {
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

impl fmt::Debug for ConnectionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSet")
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}
