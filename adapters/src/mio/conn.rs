//! One connection's socket and phase (handshake, open, ending), and the
//! I/O that moves its bytes.

use super::*;

/// Settings and hook of one listener.
pub(super) struct Acceptor {
    pub(super) options: ServerOptions,
    pub(super) hook: Hook,
    /// TLS for every connection it accepts.
    pub(super) tls: Option<ServerTls>,
}

pub(super) enum Decide {
    Listener(usize),
    Once(Option<OnceHook>),
}

pub(super) struct ClientHs {
    pub(super) hs: ClientHandshake,
    pub(super) config: Config,
    pub(super) rng: Box<dyn RandomSource>,
    pub(super) socket: SocketOptions,
    pub(super) connected: bool,
    /// The proxy exchange, until the tunnel is open.
    pub(super) tunnel: Option<super::proxy::Tunnel>,
    /// TLS for a `wss://` URL, moved onto the socket once the tunnel (if
    /// any) is open.
    pub(super) tls: Option<Box<TlsSession>>,
}

pub(super) struct ServerHs {
    pub(super) hs: ServerHandshake,
    pub(super) config: Config,
    pub(super) decide: Decide,
}

// `Open` is by far the largest and the most common; the whole `Conn` is
// boxed in the slab already.
#[allow(clippy::large_enum_variant)]
pub(super) enum Phase {
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
pub(super) struct Socket {
    pub(super) stream: TcpStream,
    /// TLS over the stream, once it runs: what is read and written below
    /// is then plaintext.
    pub(super) tls: Option<Box<TlsSession>>,
    /// Handshake bytes to write before anything from the core.
    pub(super) head: Vec<u8>,
    pub(super) head_pos: usize,
    pub(super) readable: bool,
    /// The peer's FIN (or an error) is pending: read until it shows, even
    /// after a short read.
    pub(super) hup: bool,
    pub(super) writable: bool,
    /// Set once the connection is over: what is left to write goes out by
    /// then or is given up.
    pub(super) linger: Option<Instant>,
}

/// What a readiness event says.
#[derive(Default)]
pub(super) struct Ready {
    pub(super) read: bool,
    pub(super) hup: bool,
    pub(super) write: bool,
}

pub(super) struct Conn {
    pub(super) io: Socket,
    pub(super) phase: Phase,
    pub(super) protocol: Option<String>,
    pub(super) paused: bool,
    pub(super) want_writable: bool,
    /// The deadline this connection has in the timer heap.
    pub(super) armed: Option<Instant>,
}

impl Conn {
    pub(super) fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Client(c) => Some(match &c.tunnel {
                Some(t) => t.hs.poll_timeout(),
                None => c.hs.poll_timeout(),
            }),
            Phase::Server(s) => Some(s.hs.poll_timeout()),
            Phase::Open(conn) => match (conn.poll_timeout(), self.io.linger()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            Phase::Ending(at) => Some(*at),
        }
    }

    pub(super) fn wants_read(&self) -> bool {
        matches!(&self.phase, Phase::Open(conn) if conn.wants_read())
    }

    /// Whether the socket can be closed.
    pub(super) fn is_done(&self) -> bool {
        match &self.phase {
            Phase::Open(conn) => conn.can_close_transport() && self.io.is_drained(),
            Phase::Ending(_) => self.io.is_drained(),
            _ => false,
        }
    }

    /// Advances the opening handshake: `Ok(true)` when it just completed.
    /// On failure the phase is `Ending`, with any response to send in
    /// `head`.
    pub(super) fn handshake(
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
        let (conn, protocol) = match (std::mem::replace(&mut self.phase, Phase::Ending(now)), done)
        {
            (Phase::Client(c), Done::Client(response)) => {
                let c = *c;
                (
                    c.hs.into_connection(c.config, c.rng, now),
                    response.protocol,
                )
            }
            (Phase::Server(s), Done::Server(protocol)) => {
                let s = *s;
                (s.hs.into_connection(s.config, os_rng(), now), protocol)
            }
            _ => unreachable!("handshake outcome of the other role"),
        };
        self.phase = Phase::Open(conn);
        self.protocol = protocol;
        Ok(true)
    }

    /// Reads while the core wants input and the socket has some, at most
    /// `READ_BUDGET` times. The core picks each read's buffer
    /// (`Connection::read_with`): the driver's shared `scratch`, copied
    /// in, so a connection that gets a message now and then holds no read
    /// buffer between messages; or, once a read filled its buffer (data is
    /// streaming), the core's own, without a copy.
    pub(super) fn read(&mut self, now: Instant, scratch: &mut [u8]) -> io::Result<()> {
        let Phase::Open(conn) = &mut self.phase else {
            return Ok(());
        };
        for _ in 0..READ_BUDGET {
            if !(self.io.readable && conn.wants_read()) {
                break;
            }
            conn.read_with(scratch, || now, |buf| self.io.read(buf))?;
        }
        Ok(())
    }

    /// Writes the handshake bytes, then what the core has queued, until
    /// done or the socket would block; once the core is done with the
    /// socket, ends TLS on it.
    pub(super) fn write(&mut self, now: Instant) -> io::Result<()> {
        let conn = match &mut self.phase {
            Phase::Open(conn) => conn,
            Phase::Ending(at) => {
                if self.io.write_head()? {
                    self.io.end(*at);
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        let mut more = self.io.write_head()?;
        while more {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = conn.poll_transmit(&mut iov);
            if n == 0 {
                break;
            }
            match self.io.write(&iov[..n])? {
                Some(k) => conn.advance_transmit(k),
                None => more = false,
            }
            more &= self.io.writable;
        }
        if conn.can_close_transport() {
            // What is left below the core (rustls's records) is bounded
            // like the core's queue was: by the close timeout.
            let close_timeout = conn.config().close_timeout;
            self.io
                .end(tether_core::time::deadline_after(now, close_timeout));
        }
        Ok(())
    }
}

/// A completed handshake, before its connection is made.
pub(super) enum Done {
    Client(ClientResponse),
    /// The subprotocol chosen.
    Server(Option<String>),
}

/// Connects, opens the tunnel through a proxy if there is one, writes
/// the request, reads the response.
pub(super) fn client_step(
    io: &mut Socket,
    c: &mut ClientHs,
    scratch: &mut [u8],
) -> Result<Option<ClientResponse>, Error> {
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
    if let Some(tunnel) = &mut c.tunnel {
        if !tunnel.step(io, scratch)? {
            return Ok(None);
        }
        c.tunnel = None;
    }
    if let Some(tls) = c.tls.take() {
        io.tls = Some(tls);
    }
    if !io.tls_handshake()? {
        return Ok(None);
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

/// Runs TLS's handshake if the listener has TLS, reads the request, asks
/// the application, queues the response in `head`: `Some(subprotocol)`
/// once accepted.
pub(super) fn server_step(
    io: &mut Socket,
    s: &mut ServerHs,
    scratch: &mut [u8],
    acceptors: &mut [Acceptor],
) -> Result<Option<Option<String>>, Error> {
    if !io.tls_handshake()? {
        return Ok(None);
    }
    let answer = loop {
        let Some(n) = io.read(scratch)? else {
            return Ok(None);
        };
        if n == 0 {
            return Err(HandshakeError::Eof.into());
        }
        match s.hs.handle_read(&scratch[..n]) {
            Ok(None) => {}
            Ok(Some(request)) => {
                let decision = match &mut s.decide {
                    Decide::Listener(i) => (acceptors[*i].hook)(&request),
                    Decide::Once(hook) => {
                        (hook.take().expect("one request per connection"))(&request)
                    }
                };
                break s.hs.answer(decision);
            }
            Err(e) => break Answer::failed(e),
        }
    };
    io.head = answer.bytes;
    Ok(Some(answer.result?))
}

/// Each operation in one `match`: plain TCP here, or TLS (`tls.rs`).
impl Socket {
    /// One read: `None` when it would block (or readiness is not known).
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.tls {
            None => self.read_tcp(buf),
            Some(ref mut tls) => tls.read(
                &mut self.stream,
                &mut self.readable,
                &mut self.writable,
                buf,
            ),
        }
    }

    /// One write of `bufs`: how much was taken, `None` when the socket
    /// takes nothing now.
    pub(super) fn write(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<Option<usize>> {
        match self.tls {
            None => self.write_tcp(bufs),
            Some(ref mut tls) => tls.write(&mut self.stream, &mut self.writable, bufs),
        }
    }

    /// Writes what TLS holds: true once nothing is left.
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        match self.tls {
            None => Ok(true),
            Some(ref mut tls) => tls.flush(&mut self.stream, &mut self.writable),
        }
    }

    /// Advances TLS's handshake: true once it is over, or with no TLS.
    pub(super) fn tls_handshake(&mut self) -> io::Result<bool> {
        match self.tls {
            None => Ok(true),
            Some(ref mut tls) => {
                tls.handshake(&mut self.stream, &mut self.readable, &mut self.writable)
            }
        }
    }

    /// Nothing is left to write: `head` is out, and TLS, if any, is ended
    /// and flushed.
    pub(super) fn is_drained(&self) -> bool {
        self.head_pos >= self.head.len() && self.tls.as_ref().map_or(true, |t| t.is_drained())
    }

    /// The connection is over: what is left goes out by `linger` or is
    /// given up, TLS's close_notify last (once `head` is handed over). A
    /// write error now has nobody to go to: everything is given up.
    pub(super) fn end(&mut self, linger: Instant) {
        self.linger.get_or_insert(linger);
        if self.head_pos < self.head.len() {
            return;
        }
        if let Some(tls) = &mut self.tls {
            tls.end();
            if tls.flush(&mut self.stream, &mut self.writable).is_err() {
                self.abandon();
            }
        }
    }

    /// When to give up on what is left to write once the connection is
    /// over.
    pub(super) fn linger(&self) -> Option<Instant> {
        self.linger.filter(|_| !self.is_drained())
    }

    /// Gives up on everything not written yet (a peer that does not read).
    pub(super) fn abandon(&mut self) {
        self.head.clear();
        self.head_pos = 0;
        self.tls = None;
    }

    fn read_tcp(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
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

    fn write_tcp(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<Option<usize>> {
        while self.writable {
            match self.stream.write_vectored(bufs) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => return Ok(Some(n)),
                Err(e) if would_block(&e) => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Writes `head`, and what TLS holds; true once all of it is out.
    pub(super) fn write_head(&mut self) -> io::Result<bool> {
        while self.head_pos < self.head.len() {
            let head = std::mem::take(&mut self.head);
            let written = self.write(&[IoSlice::new(&head[self.head_pos..])]);
            self.head = head;
            match written? {
                Some(n) => self.head_pos += n,
                None => return Ok(false),
            }
        }
        if !self.head.is_empty() {
            self.head = Vec::new();
            self.head_pos = 0;
        }
        self.flush()
    }
}
