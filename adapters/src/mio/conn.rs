//! One connection's socket and phase (handshake, open, ending), and the
//! I/O that moves its bytes.

use super::*;

/// Settings and hook of one listener.
pub(super) struct Acceptor {
    pub(super) options: ServerOptions,
    pub(super) hook: Hook,
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
    /// Handshake bytes to write before anything from the core.
    pub(super) head: Vec<u8>,
    pub(super) head_pos: usize,
    pub(super) readable: bool,
    /// The peer's FIN (or an error) is pending: read until it shows, even
    /// after a short read.
    pub(super) hup: bool,
    pub(super) writable: bool,
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
            Phase::Open(conn) => conn.poll_timeout(),
            Phase::Ending(at) => Some(*at),
        }
    }

    pub(super) fn wants_read(&self) -> bool {
        matches!(&self.phase, Phase::Open(conn) if conn.wants_read())
    }

    /// Whether the socket can be closed.
    pub(super) fn is_done(&self) -> bool {
        let head_done = self.io.head_pos >= self.io.head.len();
        match &self.phase {
            Phase::Open(conn) => head_done && conn.can_close_transport(),
            Phase::Ending(_) => head_done,
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
    /// done or the socket would block.
    pub(super) fn write(&mut self) -> io::Result<()> {
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
pub(super) fn server_step(
    io: &mut Socket,
    s: &mut ServerHs,
    scratch: &mut [u8],
    acceptors: &mut [Acceptor],
) -> Result<Option<Option<String>>, Error> {
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

impl Socket {
    /// One read: `None` when it would block (or readiness is not known).
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
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
    pub(super) fn write_head(&mut self) -> io::Result<bool> {
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
