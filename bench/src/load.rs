//! The load generator: raw TCP (or rustls over it) plus the hand-written
//! client of [`wire`], on a current-thread tokio runtime. Each connection
//! keeps a fixed number of messages in flight; the server's CPU time is
//! read from /proc exactly at the edges of the measured window.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use crate::procfs;
use crate::record::Record;
use crate::wire::{self, FrameCounter};

/// What one run does.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    /// The server process, for its CPU time and memory.
    pub server_pid: u32,
    pub connections: usize,
    pub in_flight: usize,
    pub size: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// The raw TCP server echoes the upgrade request instead of answering
    /// 101.
    pub raw: bool,
    /// Offer permessage-deflate and send compressed JSON-like text.
    pub deflate: bool,
    /// Idle scenario: how long the connections stay open, pings answered,
    /// before the server's memory is read.
    pub hold: Duration,
    /// `deflate-idle`: the compressed JSON records each connection has
    /// echoed, one after another, before it idles.
    pub messages: usize,
    /// Connect with TLS, trusting what this configuration trusts (the
    /// test certificate): every message is encrypted by the load generator
    /// too, which bounds message rates at small sizes.
    pub tls: Option<Arc<ClientConfig>>,
}

/// One connection: plain TCP, or TLS over it (boxed: a rustls connection
/// is large, and plain runs should not carry its size).
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// What the TLS handshake negotiated, for the report.
    fn negotiated(&self) -> Option<String> {
        match self {
            Stream::Tcp(_) => None,
            Stream::Tls(s) => Some(crate::tls::negotiated(s.get_ref().1)),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The distinct TLS parameters connections negotiated, `; `-separated
/// (one entry when every connection agrees, as they should).
pub(crate) fn joined(seen: BTreeSet<String>) -> Option<String> {
    (!seen.is_empty()).then(|| seen.into_iter().collect::<Vec<_>>().join("; "))
}

/// Counters shared by every connection task.
#[derive(Default)]
struct Shared {
    received: Cell<u64>,
    /// Bytes the server sent, frame headers included.
    bytes_in: Cell<u64>,
    measuring: Cell<bool>,
    /// Round trips in nanoseconds, measured window only.
    latencies: RefCell<Vec<u32>>,
    error: RefCell<Option<String>>,
}

/// Runs the echo load and returns its measurements.
pub fn run_echo(cfg: &LoadConfig) -> io::Result<Record> {
    with_runtime(async {
        let shared = Rc::new(Shared::default());
        let frame = if cfg.deflate {
            wire::masked_deflate_text_frame(cfg.size)
        } else {
            wire::masked_binary_frame(cfg.size)
        };
        // In-flight copies back to back: a refill of n messages is one write.
        let batch: Rc<[u8]> = frame.repeat(cfg.in_flight).into();
        let mut streams = Vec::with_capacity(cfg.connections);
        let mut extensions = BTreeSet::new();
        for _ in 0..cfg.connections {
            let (stream, ext) = connect_negotiated(cfg, None).await?;
            extensions.extend(ext);
            streams.push(stream);
        }
        let tls = joined(streams.iter().filter_map(Stream::negotiated).collect());
        for stream in streams {
            let (shared, batch) = (shared.clone(), batch.clone());
            let (len, in_flight) = (frame.len(), cfg.in_flight);
            tokio::task::spawn_local(async move {
                let e = match stream {
                    Stream::Tcp(mut tcp) => {
                        let (rd, wr) = tcp.split();
                        drive(rd, wr, &batch, len, in_flight, &shared).await
                    }
                    // tokio's generic halves: rustls has one state for both.
                    Stream::Tls(tls) => {
                        let (rd, wr) = tokio::io::split(tls);
                        drive(rd, wr, &batch, len, in_flight, &shared).await
                    }
                };
                shared.error.borrow_mut().get_or_insert(e.to_string());
            });
        }

        tokio::time::sleep(cfg.warmup).await;
        let me = std::process::id();
        let (t0, n0, b0, cpu0, own0, all0) = (
            Instant::now(),
            shared.received.get(),
            shared.bytes_in.get(),
            procfs::cpu_ns(cfg.server_pid)?,
            procfs::cpu_ns(me)?,
            procfs::machine_task_ns()?,
        );
        shared.measuring.set(true);
        tokio::time::sleep(cfg.duration).await;
        shared.measuring.set(false);
        let (t1, n1, b1, cpu1, own1, all1) = (
            Instant::now(),
            shared.received.get(),
            shared.bytes_in.get(),
            procfs::cpu_ns(cfg.server_pid)?,
            procfs::cpu_ns(me)?,
            procfs::machine_task_ns()?,
        );

        let secs = (t1 - t0).as_secs_f64();
        let messages = n1 - n0;
        let cpu_ns = cpu1.saturating_sub(cpu0);
        let own_ns = own1.saturating_sub(own0);
        // What everything else on the machine ran meanwhile: a shared
        // machine makes every number noisier, and this says how much.
        let others_ns = all1.saturating_sub(all0).saturating_sub(cpu_ns + own_ns);
        let mut lat = shared.latencies.take();
        lat.sort_unstable();
        let error = shared.error.take();
        let mut rec = Record::new()
            .num("messages", messages as f64)
            .num("seconds", secs)
            .num("msgs_per_s", messages as f64 / secs)
            .num("mb_per_s", (messages * cfg.size as u64) as f64 / secs / 1e6)
            // With permessage-deflate, what the server's compression made of
            // each message (the client sends `frame.len()` bytes each).
            .num("wire_bytes_per_msg", (b1 - b0) as f64 / messages as f64)
            .num("server_cpu_ns", cpu_ns as f64)
            .num("server_cpu_util", cpu_ns as f64 / 1e9 / secs)
            .num("cpu_ns_per_msg", cpu_ns as f64 / messages as f64)
            // Near 1 means the load generator, not the server, set the pace.
            .num("load_cpu_util", own_ns as f64 / 1e9 / secs)
            .num("others_cpu_util", others_ns as f64 / 1e9 / secs)
            .opt("p50_us", percentile_us(&lat, 0.50))
            .opt("p99_us", percentile_us(&lat, 0.99));
        if let Some(t) = tls {
            rec = rec.text("tls", &t);
        }
        if let Some(x) = joined(extensions) {
            rec = rec.text("extensions", &x);
        }
        if let Some(e) = error {
            rec = rec.text("error", &e);
        }
        Ok(rec)
    })
}

/// Opens `connections` connections, each doing one small round trip so
/// that the server has touched its per-connection buffers, then reports
/// the server's resident memory per connection.
pub fn run_idle(cfg: &LoadConfig) -> io::Result<Record> {
    with_runtime(async {
        let frame = wire::masked_binary_frame(32);
        let rss0 = procfs::rss_bytes(cfg.server_pid)?;
        let pings = Rc::new(Cell::new(0u64));
        let lost = Rc::new(RefCell::new(None::<String>));
        let mut tls = BTreeSet::new();
        for k in 0..cfg.connections {
            // Spread over 127.0.0.1 ... 127.0.0.8: one address's ephemeral
            // ports (about 28,000) would not hold 100,000 connections.
            let source = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1 + (k % 8) as u8));
            let mut stream = connect_from(cfg, Some(source)).await?;
            tls.extend(stream.negotiated());
            stream.write_all(&frame).await?;
            stream.flush().await?;
            let mut counter = FrameCounter::default();
            let mut buf = [0u8; 256];
            while read_some(&mut stream, &mut buf, &mut counter).await?.0 == 0 {}
            let (pings, lost) = (pings.clone(), lost.clone());
            tokio::task::spawn_local(async move {
                let e = answer_pings(stream, &pings).await;
                lost.borrow_mut().get_or_insert(e.to_string());
            });
        }
        let mut rec = hold(cfg, rss0, &pings, &lost).await?;
        if let Some(t) = joined(tls) {
            rec = rec.text("tls", &t);
        }
        Ok(rec)
    })
}

/// Holds the open connections for `cfg.hold` and reports the server's
/// resident memory growth since `rss0` per connection. The hold lets the
/// server finish whatever it does after the last echo, and ping every
/// connection at least once if it keeps them alive; its CPU meanwhile is
/// what holding them costs (keepalive, timers).
pub(crate) async fn hold(
    cfg: &LoadConfig,
    rss0: u64,
    pings: &Cell<u64>,
    lost: &RefCell<Option<String>>,
) -> io::Result<Record> {
    let (t0, cpu0) = (Instant::now(), procfs::cpu_ns(cfg.server_pid)?);
    let pings0 = pings.get();
    tokio::time::sleep(cfg.hold).await;
    let rss1 = procfs::rss_bytes(cfg.server_pid)?;
    let (held, cpu1) = (t0.elapsed().as_secs_f64(), procfs::cpu_ns(cfg.server_pid)?);
    let held_pings = pings.get() - pings0;
    let per_conn = rss1.saturating_sub(rss0) as f64 / cfg.connections as f64;
    let mut rec = Record::new()
        .num("connections", cfg.connections as f64)
        .num("rss_before", rss0 as f64)
        .num("rss_after", rss1 as f64)
        .num("bytes_per_conn", per_conn)
        .num(
            "pings_per_conn",
            pings.get() as f64 / cfg.connections as f64,
        )
        .num("held_s", held)
        // Server CPU per second while the connections sat idle.
        .num(
            "held_cpu_util",
            cpu1.saturating_sub(cpu0) as f64 / 1e9 / held,
        )
        .num("held_pings_per_s", held_pings as f64 / held);
    // A connection that ended while idle makes the number meaningless.
    if let Some(e) = lost.take() {
        rec = rec.text("error", &format!("an idle connection ended: {e}"));
    }
    Ok(rec)
}

/// Reads an idle connection until it ends, answering each ping with a
/// pong, as any client of a keepalive server must. Returns why it ended.
pub(crate) async fn answer_pings(mut stream: Stream, pings: &Cell<u64>) -> io::Error {
    let mut answerer = wire::PingAnswerer::default();
    let mut buf = [0u8; 512];
    let mut pongs = Vec::new();
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => return io::ErrorKind::UnexpectedEof.into(),
            Ok(n) => n,
            Err(e) => return e,
        };
        let answered = answerer.feed(&buf[..n], &mut pongs);
        if !pongs.is_empty() {
            if let Err(e) = async {
                stream.write_all(&pongs).await?;
                stream.flush().await
            }
            .await
            {
                return e;
            }
            pongs.clear();
        }
        pings.set(pings.get() + answered);
    }
}

pub(crate) fn with_runtime<F: std::future::Future<Output = io::Result<Record>>>(
    f: F,
) -> io::Result<Record> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio::task::LocalSet::new().block_on(&rt, f)
}

/// Connects, runs the TLS handshake if `cfg.tls` says so, and upgrades.
pub(crate) async fn connect(cfg: &LoadConfig) -> io::Result<Stream> {
    connect_from(cfg, None).await
}

/// [`connect`] from a source address of the caller's choice (bound before
/// connecting, any port): spreading connections over 127.0.0.0/8 gives
/// each address its own ephemeral ports.
pub(crate) async fn connect_from(cfg: &LoadConfig, source: Option<IpAddr>) -> io::Result<Stream> {
    Ok(connect_negotiated(cfg, source).await?.0)
}

/// [`connect_from`], also returning the server's Sec-WebSocket-Extensions
/// answer, if it gave one.
pub(crate) async fn connect_negotiated(
    cfg: &LoadConfig,
    source: Option<IpAddr>,
) -> io::Result<(Stream, Option<String>)> {
    let tcp = match source {
        None => TcpStream::connect(cfg.addr).await?,
        Some(ip) => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            bind_address_no_port(&socket)?;
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(cfg.addr).await?
        }
    };
    tcp.set_nodelay(true)?;
    let mut stream = match &cfg.tls {
        None => Stream::Tcp(tcp),
        Some(config) => {
            let name = ServerName::IpAddress(cfg.addr.ip().into());
            let tls = TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await?;
            Stream::Tls(Box::new(tls))
        }
    };
    let extensions = upgrade(&mut stream, cfg).await?;
    Ok((stream, extensions))
}

/// IP_BIND_ADDRESS_NO_PORT: `bind` takes the address only and `connect`
/// picks the port for the whole 4-tuple, as an unbound connect does, so
/// ports whose earlier connections wait in TIME_WAIT can be reused
/// (`bind` alone would have to find a port free for every destination).
fn bind_address_no_port(socket: &tokio::net::TcpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends the upgrade request and reads the response head up to its blank
/// line; nothing follows it, since the server has nothing to echo yet.
/// Returns the extensions the server agreed to.
async fn upgrade(stream: &mut Stream, cfg: &LoadConfig) -> io::Result<Option<String>> {
    let request = wire::upgrade_request(&cfg.addr.to_string(), cfg.deflate);
    stream.write_all(&request).await?;
    stream.flush().await?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    let end = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = wire::head_end(&head) {
            break end;
        }
    };
    let accepted = cfg.raw
        || (wire::is_switching_protocols(&head) && (!cfg.deflate || wire::accepts_deflate(&head)));
    if end != head.len() || !accepted {
        let text = String::from_utf8_lossy(&head);
        return Err(io::Error::other(format!("bad upgrade response: {text}")));
    }
    // The raw echo's "answer" is the request itself.
    let extensions = wire::extensions(&head).filter(|_| !cfg.raw);
    // The frames are compressed for a 32 KiB window; a smaller one the
    // server asked for must still hold each message.
    let largest = cfg.size.max(crate::load_deflate_idle::LARGEST_RECORD);
    if let Some(e) = extensions.as_deref().filter(|_| cfg.deflate) {
        if !wire::client_window_fits(e, largest) {
            return Err(io::Error::other(format!(
                "the server limits the client's window below the {largest} B messages \
                 the load generator compresses on their own: {e}"
            )));
        }
    }
    Ok(extensions)
}

pub(crate) async fn read_some(
    stream: &mut (impl AsyncReadExt + Unpin),
    buf: &mut [u8],
    counter: &mut FrameCounter,
) -> io::Result<(u64, usize)> {
    let n = stream.read(buf).await?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let done = counter
        .feed(&buf[..n])
        .map_err(|e| io::Error::other(format!("server sent opcode {}", e.0)))?;
    Ok((done, n))
}

/// Keeps `in_flight` messages outstanding on one connection until the
/// runtime is dropped or the connection fails (the only way it returns). Reader and writer run concurrently in one task: the
/// raw TCP server echoes while a large frame is still being written.
async fn drive(
    mut rd: impl AsyncRead + Unpin,
    mut wr: impl AsyncWrite + Unpin,
    batch: &[u8],
    frame_len: usize,
    in_flight: usize,
    shared: &Shared,
) -> io::Error {
    let credits = Cell::new(in_flight);
    let refill = Notify::new();
    let sent_at = RefCell::new(VecDeque::with_capacity(in_flight));

    let writer = async {
        loop {
            while credits.get() == 0 {
                refill.notified().await;
            }
            let n = credits.replace(0);
            let now = Instant::now();
            sent_at.borrow_mut().extend(std::iter::repeat_n(now, n));
            // The flush sends records rustls kept when the socket was full
            // (a no-op on TCP).
            let sent = async {
                wr.write_all(&batch[..n * frame_len]).await?;
                wr.flush().await
            };
            if let Err(e) = sent.await {
                return e;
            }
        }
    };
    let reader = async {
        let mut buf = vec![0u8; 256 << 10];
        let mut counter = FrameCounter::default();
        loop {
            let done = match read_some(&mut rd, &mut buf, &mut counter).await {
                Ok((done, n)) => {
                    shared.bytes_in.set(shared.bytes_in.get() + n as u64);
                    done
                }
                Err(e) => return e,
            };
            if done == 0 {
                continue;
            }
            let now = Instant::now();
            let mut sent = sent_at.borrow_mut();
            let answered = (done as usize).min(sent.len());
            let answered = sent.drain(..answered);
            if shared.measuring.get() {
                let mut lat = shared.latencies.borrow_mut();
                lat.extend(answered.map(|t| (now - t).as_nanos().min(u32::MAX as u128) as u32));
            }
            shared.received.set(shared.received.get() + done);
            credits.set(credits.get() + done as usize);
            refill.notify_one();
        }
    };
    tokio::select! {
        e = writer => e,
        e = reader => e,
    }
}

fn percentile_us(sorted: &[u32], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let i = ((last as f64) * q).round() as usize;
    Some(f64::from(sorted[i]) / 1e3)
}
