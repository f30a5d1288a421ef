//! Opening connections, the application's commands on them, and getters.

use tether_core::proxy::{Host, ProxyHandshake};
use tether_core::PreparedMessage;

use super::*;
use crate::tls::ClientTls;

/// The first address of `host` (the system resolver, which blocks).
fn resolve(host: &Host, port: u16) -> io::Result<SocketAddr> {
    match host {
        Host::Ip(ip) => Ok(SocketAddr::new(*ip, port)),
        Host::Domain(name) => (name.as_str(), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host has no address")),
    }
}

impl ConnectionSet {
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
        let acceptor = Acceptor {
            options,
            hook: Box::new(hook),
            tls: None,
        };
        self.bind(addr, acceptor)
    }

    /// Binds a listener whose connections `acceptor` sets up.
    pub(super) fn bind(
        &mut self,
        addr: impl ToSocketAddrs,
        acceptor: Acceptor,
    ) -> io::Result<SocketAddr> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))?;
        let listener = TcpListener::from_std(bind_listener(addr)?);
        let local = listener.local_addr()?;
        self.acceptors.push(acceptor);
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
        self.add_server(TcpStream::from_std(stream), options, decide, None)
    }

    /// Opens a client connection to a `ws://` URL (or `wss://`, with
    /// feature `rustls`) with default options. The id is valid at once;
    /// [`Event::Open`] or an [`Event::Error`] follows.
    pub fn connect(&mut self, url: &str) -> Result<ConnectionId, Error> {
        self.connect_with(url, ClientOptions::default())
    }

    /// Opens a client connection, through the proxy `options.proxy`
    /// chooses, over TLS for `wss://` (with `options.tls`, or the default
    /// configuration; port 443 unless the URL says). The handshake
    /// deadline (`options.limits.timeout`) covers the TCP connect, the
    /// proxy exchange and the TLS handshake too. A TLS failure is an
    /// [`Error::Tls`] event; without feature `rustls` a `wss://` URL is
    /// refused here with [`Error::TlsUnavailable`].
    pub fn connect_with(
        &mut self,
        url: &str,
        options: ClientOptions,
    ) -> Result<ConnectionId, Error> {
        let request = crate::client_request(url, &options)?;
        let tls = ClientTls::prepare(&request, &options)?;
        let (host, port) = crate::target(&request, tls.is_some())?;
        let tls = tls.map(TlsSession::client).transpose()?;
        let proxy = options.proxy.choose(request.secure, &host, port)?;
        let mut rng = os_rng();
        let now = Instant::now();
        let (hs, request) = ClientHandshake::new(&request, options.limits.clone(), &mut *rng, now)?;
        // What to connect to, and what to write first.
        let (addr, tunnel, head) = match proxy {
            None => (resolve(&host, port)?, None, request),
            Some(proxy) => {
                let target = if proxy.kind.resolves_locally() {
                    Host::Ip(resolve(&host, port)?.ip())
                } else {
                    host
                };
                let limits = options.limits.clone();
                let (hs, first) = ProxyHandshake::new(&proxy, &target, port, limits, now)?;
                let addr = resolve(&proxy.host, proxy.port)?;
                (addr, Some(super::proxy::Tunnel { hs, request }), first)
            }
        };
        let stream = TcpStream::connect(addr)?;
        let phase = Phase::Client(Box::new(ClientHs {
            hs,
            config: options.config,
            rng,
            socket: options.socket,
            connected: false,
            tunnel,
            tls,
        }));
        Ok(self.add_conn(stream, phase, head, false, None)?)
    }

    pub(super) fn add_server(
        &mut self,
        stream: TcpStream,
        options: &ServerOptions,
        decide: Decide,
        tls: Option<&ServerTls>,
    ) -> io::Result<ConnectionId> {
        let tls = tls.map(TlsSession::server).transpose()?;
        let hs = ServerHandshake::new(options.limits.clone(), Instant::now());
        #[cfg(feature = "deflate")]
        let hs = hs.with_deflate(options.deflate.clone());
        let phase = Phase::Server(Box::new(ServerHs {
            hs,
            config: options.config.clone(),
            decide,
        }));
        // The request has probably arrived already: read it on the next pass.
        self.add_conn(stream, phase, Vec::new(), true, tls)
    }

    pub(super) fn add_conn(
        &mut self,
        stream: TcpStream,
        phase: Phase,
        head: Vec<u8>,
        ready: bool,
        tls: Option<Box<TlsSession>>,
    ) -> io::Result<ConnectionId> {
        let conn = Conn {
            io: Socket {
                stream,
                tls,
                head,
                head_pos: 0,
                readable: ready,
                hup: false,
                writable: ready,
                linger: None,
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

    /// Queues a message (a ping, a pong or a close too); it is written on
    /// the next pass, with everything else queued by then. Fails if the
    /// connection is not open (`Io(NotConnected)` during the handshake).
    pub fn send(&mut self, id: ConnectionId, message: Message) -> Result<(), Error> {
        self.open(id)?.send(message)?;
        self.enqueue(id.index);
        Ok(())
    }

    /// Queues a message framed once for many connections (see
    /// [`PreparedMessage`]): a reference to
    /// the shared frame, no copy, written on the next pass. The way to
    /// broadcast: prepare once, call this for every connection (checking
    /// [`is_writable`](Self::is_writable) for slow ones).
    pub fn send_prepared(
        &mut self,
        id: ConnectionId,
        message: &PreparedMessage,
    ) -> Result<(), Error> {
        self.open(id)?.send_prepared(message)?;
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
}
