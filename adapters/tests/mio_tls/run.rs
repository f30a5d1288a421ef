//! Running the pieces: a mio loop holding TLS clients and servers (the
//! servers echo) with a log of every connection's events, a mio TLS server
//! and a smol one on threads of their own, and a TCP relay that can spoil
//! what the server sends. Every wait is bounded by [`DEADLINE`].

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::mio::{ConnectionId, ConnectionSet, Driver, Event};
use tether::tls::rustls::{Connection, ServerConfig};
use tether::{ClientOptions, CloseCode, Config, Error, Message, ServerOptions};

pub const DEADLINE: Duration = Duration::from_secs(60);

/// One event of a connection, as the tests look at it.
#[derive(Debug)]
pub enum Seen {
    /// The connection opened; what its TLS session said then.
    Open {
        alpn: Option<Vec<u8>>,
        /// The name a client asked for (on a server's side).
        sni: Option<String>,
        /// Certificates the peer presented.
        peer_certs: usize,
    },
    /// A message, by length (its content is checked where it arrives).
    Message(usize),
    Close(Option<CloseCode>),
    Error(Error),
    Closed,
    /// Pings, pongs, `Writable`: no test's business.
    Other,
}

/// Every connection's events, by id.
pub type Log = HashMap<ConnectionId, Vec<Seen>>;

/// The errors in `events`.
pub fn errors(events: &[Seen]) -> Vec<&Error> {
    events
        .iter()
        .filter_map(|s| match s {
            Seen::Error(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// No keepalive: only what a test sends crosses the connection.
pub fn client_options(tls: Arc<tether::tls::rustls::ClientConfig>) -> ClientOptions {
    ClientOptions::default()
        .with_config(Config::without_keepalive())
        .with_proxy(tether::proxy::ProxyConfig::Direct)
        .with_tls(tls)
}

pub fn server_options() -> ServerOptions {
    ServerOptions::default().with_config(Config::without_keepalive())
}

fn opened(conns: &ConnectionSet, id: ConnectionId) -> Seen {
    let tls = conns.tls(id);
    Seen::Open {
        alpn: tls.and_then(|c| c.alpn_protocol()).map(<[u8]>::to_vec),
        sni: match tls {
            Some(Connection::Server(s)) => s.server_name().map(str::to_owned),
            _ => None,
        },
        peer_certs: tls
            .and_then(|c| c.peer_certificates())
            .map_or(0, |c| c.len()),
    }
}

/// A server side's event: messages are echoed.
fn serve(conns: &mut ConnectionSet, id: ConnectionId, event: Event) -> Seen {
    match event {
        Event::Open => opened(conns, id),
        Event::Message(m) => {
            let len = m.len();
            conns.send(id, m).expect("echo");
            Seen::Message(len)
        }
        other => seen(other),
    }
}

fn seen(event: Event) -> Seen {
    match event {
        Event::Message(m) => Seen::Message(m.len()),
        Event::Close(frame) => Seen::Close(frame.map(|f| f.code)),
        Event::Error(e) => Seen::Error(e),
        Event::Closed => Seen::Closed,
        _ => Seen::Other,
    }
}

/// Polls `driver` until `done(state)`, handing each event to `on_event`;
/// panics after [`DEADLINE`].
pub fn run_until<S>(
    driver: &mut Driver,
    state: &mut S,
    mut on_event: impl FnMut(&mut S, &mut ConnectionSet, ConnectionId, Event),
    done: impl Fn(&S) -> bool,
) {
    let give_up = Instant::now() + DEADLINE;
    while !done(state) {
        assert!(Instant::now() < give_up, "no result after {DEADLINE:?}");
        driver
            .poll_with(Some(Duration::from_millis(100)), |conns, id, event| {
                on_event(state, conns, id, event)
            })
            .expect("poll");
    }
}

/// Runs `driver` until `client` has closed and `servers` other
/// connections (server sides, which echo) have too. `client` sends
/// `messages` one at a time, each once the one before came back equal,
/// then closes with 1000.
pub fn echo_session(
    driver: &mut Driver,
    client: ConnectionId,
    messages: &[Message],
    servers: usize,
) -> Log {
    let mut log = Log::new();
    let mut sent = 0;
    let closed = |events: &Vec<Seen>| matches!(events.last(), Some(Seen::Closed));
    run_until(
        driver,
        &mut log,
        |log, conns, id, event| {
            let seen = if id != client {
                serve(conns, id, event)
            } else {
                let next = match &event {
                    Event::Open => true,
                    Event::Message(m) => {
                        assert!(
                            *m == messages[sent - 1],
                            "echo {} differs ({} bytes sent, {} back)",
                            sent - 1,
                            messages[sent - 1].len(),
                            m.len()
                        );
                        true
                    }
                    _ => false,
                };
                let seen = match event {
                    Event::Open => opened(conns, id),
                    other => seen(other),
                };
                if next {
                    if sent < messages.len() {
                        conns.send(id, messages[sent].clone()).expect("send");
                        sent += 1;
                    } else {
                        conns.close(id, CloseCode::NORMAL, "done").expect("close");
                    }
                }
                seen
            };
            log.entry(id).or_default().push(seen);
        },
        |log| {
            log.get(&client).is_some_and(closed)
                && log
                    .iter()
                    .filter(|(id, e)| **id != client && closed(e))
                    .count()
                    == servers
        },
    );
    log
}

/// The log of the one connection in `log` that is not `client`.
pub fn server_side(log: &mut Log, client: ConnectionId) -> Vec<Seen> {
    let id = *log.keys().find(|id| **id != client).expect("a server side");
    log.remove(&id).expect("its log")
}

/// Text and binary messages of the frame-length edges, up to 1 MiB.
pub fn messages() -> Vec<Message> {
    let mut out = Vec::new();
    for n in [0usize, 1, 125, 126, 127, 65_535, 65_536, 65_537, 1 << 20] {
        out.push(Message::text("ü".repeat(n / 2) + &"x".repeat(n % 2)));
        out.push(Message::binary(
            (0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>(),
        ));
    }
    out
}

/// A mio TLS echo server on a thread of its own; each connection's events
/// arrive once it has closed.
pub struct MioServer {
    pub addr: SocketAddr,
    ended: mpsc::Receiver<Vec<Seen>>,
}

impl MioServer {
    pub fn start(tls: Arc<ServerConfig>, options: ServerOptions) -> Self {
        let (ended_tx, ended) = mpsc::channel();
        let (addr_tx, addr) = mpsc::channel();
        thread::spawn(move || {
            let mut driver = Driver::new().expect("driver");
            let addr = driver
                .listen_tls_with("127.0.0.1:0", tls, options, |_| Ok(Default::default()))
                .expect("listen");
            addr_tx.send(addr).expect("address");
            let mut log = Log::new();
            loop {
                driver
                    .poll_with(None, |conns, id, event| {
                        let seen = serve(conns, id, event);
                        let closed = matches!(seen, Seen::Closed);
                        log.entry(id).or_default().push(seen);
                        if closed {
                            let _ = ended_tx.send(log.remove(&id).expect("log"));
                        }
                    })
                    .expect("poll");
            }
        });
        let addr = addr.recv_timeout(DEADLINE).expect("server address");
        Self { addr, ended }
    }

    /// The events of the next connection to close.
    pub fn next(&self) -> Vec<Seen> {
        self.ended
            .recv_timeout(DEADLINE)
            .expect("a server connection's end")
    }
}

/// A smol TLS echo server (`tether::smol::accept_tls_with`); each
/// connection's outcome (messages echoed, or the error) arrives once it
/// has ended.
pub struct SmolServer {
    pub addr: SocketAddr,
    ended: mpsc::Receiver<Result<usize, Error>>,
}

impl SmolServer {
    pub fn start(tls: Arc<ServerConfig>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let (tx, ended) = mpsc::channel();
        thread::spawn(move || {
            let ex = smol::LocalExecutor::new();
            smol::block_on(ex.run(async {
                let listener = smol::net::TcpListener::try_from(listener).expect("listener");
                while let Ok((tcp, _)) = listener.accept().await {
                    let (tls, tx) = (tls.clone(), tx.clone());
                    ex.spawn(async move {
                        let _ = tx.send(smol_echo(tcp, &tls).await);
                    })
                    .detach();
                }
            }))
        });
        Self { addr, ended }
    }

    /// The outcome of the next connection to end.
    pub fn next(&self) -> Result<usize, Error> {
        self.ended
            .recv_timeout(DEADLINE)
            .expect("a server connection's end")
    }
}

async fn smol_echo(tcp: smol::net::TcpStream, tls: &Arc<ServerConfig>) -> Result<usize, Error> {
    let mut ws =
        tether::smol::accept_tls_with(tcp, tls, &server_options(), |_| Ok(Default::default()))
            .await?;
    let mut echoed = 0;
    while let Some(m) = ws.next().await {
        if let m @ (Message::Text(_) | Message::Binary(_)) = m? {
            ws.send(m).await?;
            echoed += 1;
        }
    }
    Ok(echoed)
}

/// How the relay spoils the server's next bytes to the client.
#[derive(Debug, Clone, Copy)]
pub enum Spoil {
    /// Passes this many, then ends both connections (no close_notify).
    Cut(usize),
    /// Flips a bit in the last byte (a record's authentication tag).
    Corrupt,
}

/// A TCP relay from one client to `upstream`.
pub struct Relay {
    pub addr: SocketAddr,
    spoil: Arc<Mutex<Option<Spoil>>>,
}

impl Relay {
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let spoil = Arc::new(Mutex::new(None));
        let next = spoil.clone();
        thread::spawn(move || {
            let (client, _) = listener.accept().expect("accept");
            let server = TcpStream::connect(upstream).expect("upstream");
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(Shutdown::Write);
            });
            let (mut s_in, mut c_out) = (server, client);
            let mut buf = vec![0; 64 << 10];
            loop {
                let n = match s_in.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                match next.lock().unwrap().take() {
                    None => {}
                    Some(Spoil::Corrupt) => buf[n - 1] ^= 1,
                    Some(Spoil::Cut(k)) => {
                        let _ = c_out.write_all(&buf[..k.min(n)]);
                        let _ = c_out.shutdown(Shutdown::Both);
                        let _ = s_in.shutdown(Shutdown::Both);
                        return;
                    }
                }
                if c_out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = c_out.shutdown(Shutdown::Write);
        });
        Self { addr, spoil }
    }

    /// Spoils the next bytes the server sends.
    pub fn spoil(&self, how: Spoil) {
        *self.spoil.lock().unwrap() = Some(how);
    }
}

/// What a raw TCP client that sends `bytes` reads until the end; the
/// server's events meanwhile. Fails on a read that times out (a server
/// that holds the socket).
pub fn raw_client(driver: &mut Driver, addr: std::net::SocketAddr, bytes: Vec<u8>) -> Vec<Seen> {
    let peer = std::thread::spawn(move || {
        let mut tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(DEADLINE)).expect("timeout");
        tcp.write_all(&bytes).expect("write");
        let mut got = Vec::new();
        match tcp.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the server held the socket: {e}"),
        }
    });
    let mut events = Vec::new();
    run_until(
        driver,
        &mut events,
        |events, _, _, event| {
            events.push(match event {
                Event::Error(e) => Seen::Error(e),
                Event::Closed => Seen::Closed,
                Event::Open => Seen::Open {
                    alpn: None,
                    sni: None,
                    peer_certs: 0,
                },
                _ => Seen::Other,
            })
        },
        |events| matches!(events.last(), Some(Seen::Closed)),
    );
    peer.join().expect("raw client");
    events
}
