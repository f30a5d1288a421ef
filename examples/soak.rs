//! Soak: many connections, churned for a fixed time, and a check that the
//! server gives back what churn takes.
//!
//! The server runs in a child process (its descriptors and memory are its
//! own) with keepalive pings every `--ping-interval`. This process opens
//! `--connections` clients, then every `--cycle`: 10% close cleanly and
//! reconnect, 2% are killed with a TCP reset (SO_LINGER 0, then dropped),
//! 1% go half-open (stop reading and writing, keep the socket) until the
//! server's keepalive must have reaped them, then drop and reconnect, and
//! 10% exchange a few echoes. Once the churn settles (every client
//! connected again and the server counting exactly that many), it samples
//! the server's open descriptors (`/proc/PID/fd`), live connections (the
//! server's own count) and resident memory (`VmRSS`), and prints a row.
//!
//! The first settled sample after a churn cycle is the baseline. At the
//! end the last sample must show every connection back and no more (live
//! = `--connections`), exactly the baseline's descriptors and RSS within
//! 20% + 8 MiB of it; otherwise, or if an echo or a connection attempt
//! failed, or a half-open connection outlived its hold, the exit status
//! is 1. Rows also go to `target/soak/soak-RUNTIME-N.csv`.
//!
//! `cargo run --release --example soak -- [OPTIONS]`
//!
//! ```text
//! --connections N     clients held open                    (1000)
//! --duration D        how long to churn: 90s, 30m, 1h      (60s)
//! --runtime R         the server's: tokio, smol or mio     (tokio)
//! --cycle D           time between churn rounds            (10s)
//! --ping-interval D   the server's keepalive ping interval (1s)
//! ```
//!
//! Clients always run on tokio; `--runtime` picks the server's adapter.
//! Everything is on 127.0.0.1, and the run ends by itself.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tether::{ClientOptions, CloseCode, Config, Message, ServerOptions};
use tokio::sync::{mpsc, Semaphore};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Shares of the connections churned each cycle, in thousandths.
const CLOSE: usize = 100;
const KILL: usize = 20;
const HALF_OPEN: usize = 10;
const ECHO: usize = 100;
/// Echoes per chosen connection and cycle.
const ECHOES: usize = 3;
/// Connection attempts in flight at once, not to overflow the backlog.
const CONNECTING: usize = 256;
/// Bound on any single client step (connect, close, echo).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the last sample to settle before judging it.
const FINAL_SETTLE: Duration = Duration::from_secs(30);
/// Descriptors above the process's own needs (stdio, epoll, listener...).
const FD_HEADROOM: u64 = 256;

struct Args {
    connections: usize,
    duration: Duration,
    runtime: String,
    cycle: Duration,
    ping_interval: Duration,
    serve: bool,
}

fn parse_duration(s: &str) -> Result<Duration, BoxError> {
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)").into()),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 7.0 * 86400.0 {
        return Err(format!("duration out of range: {s:?}").into());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        connections: 1000,
        duration: Duration::from_secs(60),
        runtime: "tokio".into(),
        cycle: Duration::from_secs(10),
        ping_interval: Duration::from_secs(1),
        serve: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--connections" => args.connections = value()?.parse()?,
            "--duration" => args.duration = parse_duration(&value()?)?,
            "--runtime" => args.runtime = value()?,
            "--cycle" => args.cycle = parse_duration(&value()?)?,
            "--ping-interval" => args.ping_interval = parse_duration(&value()?)?,
            // Internal: run as the server child.
            "--serve" => args.serve = true,
            other => return Err(format!("unknown option {other}; --help lists the options").into()),
        }
    }
    if !matches!(args.runtime.as_str(), "tokio" | "smol" | "mio") {
        return Err(format!("--runtime {}: tokio, smol or mio", args.runtime).into());
    }
    if args.connections == 0 || args.connections > 1_000_000 {
        return Err("--connections must be between 1 and 1000000".into());
    }
    Ok(args)
}

/// What `--help` prints.
const USAGE: &str = "\
Soak: many connections churned for a fixed time against a server child;
fails unless its descriptors, connections and memory return to baseline.

usage: cargo run --release --example soak -- [OPTIONS]

  --connections N     clients held open                    (1000)
  --duration D        how long to churn: 90s, 30m, 1h      (60s)
  --runtime R         the server's: tokio, smol or mio     (tokio)
  --cycle D           time between churn rounds            (10s)
  --ping-interval D   the server's keepalive ping interval (1s)
  -h, --help          this help";

fn main() {
    tether_examples::help(USAGE);
    let result = parse_args().and_then(|args| if args.serve { serve(&args) } else { run(&args) });
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns it.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if lim.rlim_cur < lim.rlim_max && libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            lim = raised;
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    {
        lim.rlim_cur as u64
    }
}

// ---- the server child ----

/// Sockets the server holds, from accept to drop (async runtimes), or the
/// driver's connection count (mio).
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Accept errors the server skipped (EMFILE and the like).
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// Counts a held socket for as long as it lives.
struct Held;

impl Held {
    fn new() -> Self {
        LIVE.fetch_add(1, Relaxed);
        Held
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Relaxed);
    }
}

fn server_options(ping_interval: Duration) -> ServerOptions {
    ServerOptions::default().with_config(
        Config::default()
            .with_ping_interval(Some(ping_interval))
            .with_ping_timeout(Some(ping_interval * 2))
            // A half-open peer never answers the close either.
            .with_close_timeout(Duration::from_secs(2)),
    )
}

/// The child: serves until its stdin closes; answers `status` lines with
/// `live N skipped M`.
fn serve(args: &Args) -> Result<bool, BoxError> {
    let limit = raise_fd_limit();
    let options = server_options(args.ping_interval);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("listening {} fd_limit {limit}", listener.local_addr()?);
    std::io::stdout().flush()?;
    std::thread::spawn(|| {
        let mut line = String::new();
        let stdin = std::io::stdin();
        loop {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {
                    let mut out = std::io::stdout().lock();
                    let status = format!(
                        "live {} skipped {}\n",
                        LIVE.load(Relaxed),
                        SKIPPED.load(Relaxed)
                    );
                    if out.write_all(status.as_bytes()).and(out.flush()).is_err() {
                        std::process::exit(0);
                    }
                }
            }
        }
    });
    match args.runtime.as_str() {
        "tokio" => {
            listener.set_nonblocking(true)?;
            tokio::runtime::Runtime::new()?.block_on(async {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let mut listener = tether::tokio::Listener::new(listener).on_error(count_skip);
                let options = Arc::new(options);
                loop {
                    let (stream, _) = listener.accept().await?;
                    let held = Held::new();
                    let options = options.clone();
                    tokio::spawn(async move {
                        if let Ok(ws) =
                            tether::tokio::accept_with(stream, &options, |_| Ok(Default::default()))
                                .await
                        {
                            echo(ws).await;
                        }
                        drop(held);
                    });
                }
            })
        }
        "smol" => smol::block_on(async {
            let listener = smol::net::TcpListener::try_from(listener)?;
            let mut listener = tether::smol::Listener::new(listener).on_error(count_skip);
            let options = Arc::new(options);
            loop {
                let (stream, _) = listener.accept().await?;
                let held = Held::new();
                let options = options.clone();
                smol::spawn(async move {
                    if let Ok(ws) =
                        tether::smol::accept_with(stream, &options, |_| Ok(Default::default()))
                            .await
                    {
                        echo(ws).await;
                    }
                    drop(held);
                })
                .detach();
            }
        }),
        _ => serve_mio(listener, options),
    }
}

fn count_skip(_: &std::io::Error, _: Duration) {
    SKIPPED.fetch_add(1, Relaxed);
}

/// Echoes data messages until the connection ends (keepalive failures
/// included).
async fn echo<S: tether::Transport, R: tether::Runtime>(mut ws: tether::WebSocket<S, R>) {
    while let Some(Ok(m)) = ws.next().await {
        if matches!(m, Message::Text(_) | Message::Binary(_)) && ws.send(m).await.is_err() {
            break;
        }
    }
}

fn serve_mio(listener: std::net::TcpListener, options: ServerOptions) -> Result<bool, BoxError> {
    use tether::mio::{Driver, Event};
    // The driver binds its own listener; hand it the address we printed.
    let addr = listener.local_addr()?;
    drop(listener);
    let mut driver = Driver::new()?;
    driver.listen_with(addr, options, |_| Ok(Default::default()))?;
    loop {
        driver.poll_with(Some(Duration::from_millis(100)), |conns, id, event| {
            if let Event::Message(m) = event {
                let _ = conns.send(id, m);
            }
        })?;
        if driver.take_accept_error().is_some() {
            SKIPPED.fetch_add(1, Relaxed);
        }
        LIVE.store(driver.len(), Relaxed);
    }
}

// ---- the clients ----

#[derive(Debug, Clone, Copy)]
enum Cmd {
    /// Close cleanly and reconnect.
    Close,
    /// Reset the TCP connection and reconnect.
    Kill,
    /// Stop reading and writing for this long, then drop and reconnect.
    HalfOpen(Duration),
    /// Send a few messages and check their echoes.
    Echo,
    /// Close cleanly and end.
    Stop,
}

#[derive(Default)]
struct Stats {
    connected: AtomicUsize,
    /// Churn commands sent and not yet done (reconnected, echoed).
    pending: AtomicUsize,
    connects: AtomicUsize,
    connect_failures: AtomicUsize,
    echo_ok: AtomicUsize,
    echo_failures: AtomicUsize,
    /// Connections that ended without being asked to.
    lost: AtomicUsize,
    /// Half-open connections the server had closed by the end of the
    /// hold, and those it had not.
    reaped: AtomicUsize,
    not_reaped: AtomicUsize,
}

/// Whether the peer has ended the connection: what it sent before
/// (pings, a close frame) is read and dropped, then end of stream or a
/// reset says it is gone; nothing more to read says it is not.
fn server_closed(tcp: &tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tcp.try_read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

fn client_options() -> ClientOptions {
    // The server pings; clients only answer. No compression: its state
    // would make the memory curve depend on which connections happened to
    // echo.
    ClientOptions::default()
        .with_config(Config::without_keepalive())
        .with_deflate(Vec::new())
}

/// One client connection, reconnected after each churn command.
async fn client(
    url: Arc<str>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    stats: Arc<Stats>,
    gate: Arc<Semaphore>,
) {
    let options = client_options();
    let mut attempt = 0u32;
    // Reconnecting after a churn command (it is done once connected).
    let mut churned = false;
    loop {
        let connected = {
            let Ok(_permit) = gate.acquire().await else {
                return;
            };
            tokio::time::timeout(
                STEP_TIMEOUT,
                tether::tokio::connect_with(&url, options.clone()),
            )
            .await
        };
        let mut ws = match connected {
            Ok(Ok(ws)) => ws,
            _ => {
                stats.connect_failures.fetch_add(1, Relaxed);
                attempt = attempt.saturating_add(1);
                let wait = Duration::from_millis(50 << attempt.min(5));
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        attempt = 0;
        stats.connects.fetch_add(1, Relaxed);
        stats.connected.fetch_add(1, Relaxed);
        if std::mem::take(&mut churned) {
            stats.pending.fetch_sub(1, Relaxed);
        }
        let cmd = loop {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break None,
                },
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Echo) => {
                        if echo_round(&mut ws).await {
                            stats.echo_ok.fetch_add(1, Relaxed);
                        } else {
                            stats.echo_failures.fetch_add(1, Relaxed);
                        }
                        stats.pending.fetch_sub(1, Relaxed);
                    }
                    other => break Some(other.unwrap_or(Cmd::Stop)),
                },
            }
        };
        stats.connected.fetch_sub(1, Relaxed);
        churned = matches!(cmd, Some(Cmd::Close | Cmd::Kill | Cmd::HalfOpen(_)));
        match cmd {
            None => {
                stats.lost.fetch_add(1, Relaxed);
            }
            Some(Cmd::Close) => {
                let _ =
                    tokio::time::timeout(STEP_TIMEOUT, ws.close(CloseCode::NORMAL, "churn")).await;
            }
            Some(Cmd::Kill) => {
                // Linger 0: close sends RST instead of FIN.
                let _ =
                    socket2::SockRef::from(ws.get_ref().0.tcp()).set_linger(Some(Duration::ZERO));
                drop(ws);
            }
            Some(Cmd::HalfOpen(hold)) => {
                // The socket stays open, but nobody reads or writes it.
                tokio::time::sleep(hold).await;
                if server_closed(ws.get_ref().0.tcp()) {
                    stats.reaped.fetch_add(1, Relaxed);
                } else {
                    stats.not_reaped.fetch_add(1, Relaxed);
                }
                drop(ws);
            }
            Some(Cmd::Stop) | Some(Cmd::Echo) => {
                let _ = tokio::time::timeout(STEP_TIMEOUT, ws.close(CloseCode::GOING_AWAY, "done"))
                    .await;
                return;
            }
        }
    }
}

/// Sends [`ECHOES`] messages and checks each comes back.
async fn echo_round(ws: &mut tether::tokio::WebSocket) -> bool {
    let round = async {
        for i in 0..ECHOES {
            let m = Message::text(format!("soak echo {i}"));
            if ws.send(m.clone()).await.is_err() {
                return false;
            }
            // The server's pings show up too (the core has answered them).
            loop {
                match ws.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(got)) if got == m => break,
                    _ => return false,
                }
            }
        }
        true
    };
    tokio::time::timeout(STEP_TIMEOUT, round)
        .await
        .unwrap_or(false)
}

// ---- sampling the server ----

struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pid: u32,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    live: u64,
    fds: u64,
    rss_kib: u64,
    skipped: u64,
}

impl Server {
    fn spawn(args: &Args) -> Result<(Self, String), BoxError> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--serve", "--runtime", &args.runtime])
            .args([
                "--ping-interval",
                &format!("{}ms", args.ping_interval.as_millis()),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let (Some("listening"), Some(addr), Some("fd_limit"), Some(limit)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            let _ = child.kill();
            return Err(format!("server said {line:?}").into());
        };
        let limit: u64 = limit.parse()?;
        if limit < args.connections as u64 * 11 / 10 + FD_HEADROOM {
            eprintln!(
                "warning: the server's descriptor limit {limit} is tight for {} connections \
                 (half-open ones and reconnects overlap); raise the hard limit (ulimit -Hn)",
                args.connections
            );
        }
        let addr = addr.to_owned();
        Ok((
            Self {
                child,
                stdin,
                stdout,
                pid,
            },
            addr,
        ))
    }

    fn sample(&mut self) -> Result<Sample, BoxError> {
        let stdin = self.stdin.as_mut().ok_or("server stdin closed")?;
        stdin.write_all(b"status\n")?;
        stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("the server exited".into());
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let [_, live, _, skipped] = w[..] else {
            return Err(format!("server said {line:?}").into());
        };
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.pid))?.count() as u64;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or("no VmRSS")?;
        Ok(Sample {
            live: live.parse()?,
            fds,
            rss_kib,
            skipped: skipped.parse()?,
        })
    }

    /// Closes its stdin (it exits) and waits for it, killing it after 5 s.
    fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// xorshift64*: picks which connections churn; the seed is printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
    }
}

struct Row {
    t: f64,
    cycle: usize,
    clients: usize,
    sample: Sample,
    settle_ms: Option<u128>,
    /// The clients' counters then: connects, connect failures, lost,
    /// echo rounds ok, echo rounds failed, half-open reaped, not reaped.
    counters: [usize; 7],
}

impl Row {
    fn new(
        start: Instant,
        cycle: usize,
        stats: &Stats,
        sample: Sample,
        settle_ms: Option<u128>,
    ) -> Self {
        Self {
            t: start.elapsed().as_secs_f64(),
            cycle,
            clients: stats.connected.load(Relaxed),
            sample,
            settle_ms,
            counters: [
                stats.connects.load(Relaxed),
                stats.connect_failures.load(Relaxed),
                stats.lost.load(Relaxed),
                stats.echo_ok.load(Relaxed),
                stats.echo_failures.load(Relaxed),
                stats.reaped.load(Relaxed),
                stats.not_reaped.load(Relaxed),
            ],
        }
    }
}

fn header() -> &'static str {
    "    t_s  cycle  clients  srv_live  srv_fds  rss_mib  settle_ms  connects  conn_fail  lost  echo_ok  echo_fail  reaped  missed  acc_skip"
}

fn print_row(row: &Row) {
    let settle = row
        .settle_ms
        .map_or_else(|| "unsettled".to_owned(), |ms| ms.to_string());
    println!(
        "{:7.1}  {:5}  {:7}  {:8}  {:7}  {:7.1}  {:>9}  {:8}  {:9}  {:4}  {:7}  {:9}  {:6}  {:6}  {:8}",
        row.t,
        row.cycle,
        row.clients,
        row.sample.live,
        row.sample.fds,
        row.sample.rss_kib as f64 / 1024.0,
        settle,
        row.counters[0],
        row.counters[1],
        row.counters[2],
        row.counters[3],
        row.counters[4],
        row.counters[5],
        row.counters[6],
        row.sample.skipped,
    );
}

/// Waits up to `limit` until every client is connected and the server
/// counts exactly as many; returns how long that took, if it happened,
/// and the last sample.
fn settle(
    server: &mut Server,
    stats: &Stats,
    n: usize,
    limit: Duration,
) -> Result<(Option<u128>, Sample), BoxError> {
    let start = Instant::now();
    loop {
        let s = server.sample()?;
        let done = stats.pending.load(Relaxed) == 0 && stats.connected.load(Relaxed) == n;
        if done && s.live == n as u64 {
            // Let the last handshakes' allocations land before measuring.
            std::thread::sleep(Duration::from_millis(200));
            let s = server.sample()?;
            if s.live == n as u64 {
                return Ok((Some(start.elapsed().as_millis()), s));
            }
        }
        if start.elapsed() >= limit {
            return Ok((None, s));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(args: &Args) -> Result<bool, BoxError> {
    let n = args.connections;
    let limit = raise_fd_limit();
    if limit < n as u64 + FD_HEADROOM {
        return Err(format!(
            "the descriptor limit here is {limit}, too low for {n} connections (need about {}); \
             raise the hard limit (ulimit -Hn) or use fewer --connections",
            n as u64 + FD_HEADROOM
        )
        .into());
    }
    let (mut server, addr) = Server::spawn(args)?;
    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64 | 1;
    println!(
        "soak: {n} connections, {:?}, server on {} ({addr}, pid {}), cycle {:?}, ping every {:?}, \
         seed {seed}, descriptor limit {limit}",
        args.duration, args.runtime, server.pid, args.cycle, args.ping_interval
    );
    let result = drive(args, &mut server, &addr, seed);
    server.stop();
    result
}

fn drive(args: &Args, server: &mut Server, addr: &str, seed: u64) -> Result<bool, BoxError> {
    let n = args.connections;
    let rt = tokio::runtime::Runtime::new()?;
    let stats = Arc::new(Stats::default());
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let url: Arc<str> = format!("ws://{addr}/soak").into();
    let mut cmds = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::unbounded_channel();
        cmds.push(tx);
        tasks.push(rt.spawn(client(url.clone(), rx, stats.clone(), gate.clone())));
    }
    let start = Instant::now();
    let hard_stop = start + args.duration + Duration::from_secs(120);
    let half_open_hold = args.ping_interval * 3 + Duration::from_secs(2);

    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join("target/soak");
    std::fs::create_dir_all(&dir)?;
    let csv_path = dir.join(format!("soak-{}-{n}.csv", args.runtime));
    let mut csv = String::from(
        "t_s,cycle,clients,server_live,server_fds,rss_kib,settle_ms,connects,connect_failures,lost,echo_ok,echo_failures,half_open_reaped,half_open_missed,accept_skipped\n",
    );

    // Cycle 0: everyone connects.
    let (settled, first) = settle(server, &stats, n, Duration::from_secs(60).max(args.cycle))?;
    println!("{}", header());
    let mut rows = vec![Row::new(start, 0, &stats, first, settled)];
    print_row(&rows[0]);
    if settled.is_none() {
        eprintln!("soak: the first {n} connections did not all come up");
    }

    let mut rng = Rng(seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut cycle = 0;
    while start.elapsed() + args.cycle <= args.duration && Instant::now() < hard_stop {
        cycle += 1;
        let cycle_start = Instant::now();
        rng.shuffle(&mut order);
        let mut picks = order.iter().copied();
        let share = |per_mille: usize| (n * per_mille).div_ceil(1000);
        for (cmd, count) in [
            (Cmd::Close, share(CLOSE)),
            (Cmd::Kill, share(KILL)),
            (Cmd::HalfOpen(half_open_hold), share(HALF_OPEN)),
            (Cmd::Echo, share(ECHO)),
        ] {
            for i in picks.by_ref().take(count) {
                stats.pending.fetch_add(1, Relaxed);
                if cmds[i].send(cmd).is_err() {
                    stats.pending.fetch_sub(1, Relaxed);
                }
            }
        }
        let budget = args.cycle.saturating_sub(Duration::from_millis(300));
        let (settled, sample) = settle(server, &stats, n, budget)?;
        let row = Row::new(start, cycle, &stats, sample, settled);
        print_row(&row);
        rows.push(row);
        if let Some(rest) = args.cycle.checked_sub(cycle_start.elapsed()) {
            std::thread::sleep(rest);
        }
    }

    // The final sample, given time to settle.
    let (settled, last) = settle(server, &stats, n, FINAL_SETTLE)?;
    let final_row = Row::new(start, cycle + 1, &stats, last, settled);
    println!("final:");
    print_row(&final_row);
    rows.push(final_row);
    for tx in &cmds {
        let _ = tx.send(Cmd::Stop);
    }
    rt.block_on(async {
        let all = futures_util::future::join_all(tasks);
        let _ = tokio::time::timeout(Duration::from_secs(15), all).await;
    });
    rt.shutdown_timeout(Duration::from_secs(1));

    for r in &rows {
        let _ = writeln!(
            csv,
            "{:.1},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.t,
            r.cycle,
            r.clients,
            r.sample.live,
            r.sample.fds,
            r.sample.rss_kib,
            r.settle_ms.map_or(String::new(), |v| v.to_string()),
            r.counters[0],
            r.counters[1],
            r.counters[2],
            r.counters[3],
            r.counters[4],
            r.counters[5],
            r.counters[6],
            r.sample.skipped
        );
    }
    std::fs::write(&csv_path, csv)?;
    println!("rows written to {}", csv_path.display());
    plot(&rows);
    Ok(judge(args, &rows, &stats))
}

/// Compares the last sample with the baseline; prints the verdict.
fn judge(args: &Args, rows: &[Row], stats: &Stats) -> bool {
    let n = args.connections as u64;
    // The first settled sample after a churn cycle, or the initial one if
    // the run was too short to churn.
    let Some(base) = rows[1..rows.len() - 1]
        .iter()
        .find(|r| r.settle_ms.is_some())
        .or(rows.first())
    else {
        println!("FAIL: no samples");
        return false;
    };
    let last = &rows[rows.len() - 1];
    // Exact: with every connection back and counted (a socket is counted
    // from accept until after it is closed), the server holds its sockets
    // plus a constant few (stdio, epoll, listener), all opened before the
    // baseline. Any slack hides a slow leak in a short run: 2 let a leak
    // of one descriptor in 50 accepts pass a 40 s run at 500 connections.
    let fd_tolerance = 0;
    let rss_limit = base.sample.rss_kib + base.sample.rss_kib / 5 + 8 * 1024;
    let mut ok = true;
    let mut check = |pass: bool, what: String| {
        println!("{} {what}", if pass { "ok  " } else { "FAIL" });
        ok &= pass;
    };
    check(
        last.sample.live == n && last.settle_ms.is_some(),
        format!(
            "live connections at the end: {} (want {n}; baseline cycle {} had {})",
            last.sample.live, base.cycle, base.sample.live
        ),
    );
    check(
        last.sample.fds.abs_diff(base.sample.fds) <= fd_tolerance,
        format!(
            "server descriptors: {} at the end, {} at baseline (tolerance {fd_tolerance})",
            last.sample.fds, base.sample.fds
        ),
    );
    check(
        last.sample.rss_kib <= rss_limit,
        format!(
            "server RSS: {:.1} MiB at the end, {:.1} MiB at baseline (limit baseline + 20% + 8 MiB = {:.1} MiB)",
            last.sample.rss_kib as f64 / 1024.0,
            base.sample.rss_kib as f64 / 1024.0,
            rss_limit as f64 / 1024.0
        ),
    );
    // Not a timing: 10 s for a handshake on 127.0.0.1 is only missed by a
    // server that holds a socket without serving it.
    check(
        stats.connect_failures.load(Relaxed) == 0,
        format!(
            "connection attempts that failed or took over {STEP_TIMEOUT:?}: {}",
            stats.connect_failures.load(Relaxed)
        ),
    );
    check(
        stats.echo_failures.load(Relaxed) == 0,
        format!(
            "echo rounds: {} ok, {} failed",
            stats.echo_ok.load(Relaxed),
            stats.echo_failures.load(Relaxed)
        ),
    );
    // Not judged: with pings every second and a 2 s timeout, a client
    // starved of CPU (a loaded machine) can miss its pong and be closed
    // as dead, which is the keepalive working, not a leak.
    println!(
        "info connections the server ended unasked (all reconnected): {}",
        stats.lost.load(Relaxed)
    );
    let unsettled = rows.iter().filter(|r| r.settle_ms.is_none()).count();
    println!("info cycles that did not settle within the cycle: {unsettled}");
    check(
        stats.not_reaped.load(Relaxed) == 0,
        format!(
            "half-open connections closed by the server's keepalive: {}, still open after the hold: {}",
            stats.reaped.load(Relaxed),
            stats.not_reaped.load(Relaxed)
        ),
    );
    ok
}

/// Server RSS and descriptors over the run, as text.
fn plot(rows: &[Row]) {
    const WIDTH: usize = 60;
    let bars = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let step = rows.len().div_ceil(WIDTH).max(1);
    for (name, get) in [
        ("rss", (|r: &Row| r.sample.rss_kib) as fn(&Row) -> u64),
        ("fds", |r: &Row| r.sample.fds),
        ("live", |r: &Row| r.sample.live),
    ] {
        let values: Vec<u64> = rows
            .chunks(step)
            .map(|c| c.iter().map(get).max().unwrap_or(0))
            .collect();
        let (lo, hi) = (
            values.iter().copied().min().unwrap_or(0),
            values.iter().copied().max().unwrap_or(0),
        );
        let line: String = values
            .iter()
            .map(|&v| {
                let span = (hi - lo).max(1);
                bars[((v - lo) * 8 / span) as usize]
            })
            .collect();
        println!("{name:>5} {lo:>9}..{hi:<9} {line}");
    }
}
