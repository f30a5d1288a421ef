//! What the interop tests share: child processes that die with the test,
//! bounded waits, the Python venv with `websockets`, finding Chromium, and
//! tether echo servers on smol and tokio that report what they negotiated.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::core::deflate::{parse_extensions, server_accept};
use tether::{http, DeflateConfig, Message, Runtime, ServerOptions, Transport, WebSocket};

/// The `websockets` release the Python peer runs (pinned so CI does not
/// change under us).
pub const WEBSOCKETS_VERSION: &str = "17.4";

/// Bound on any single wait for a peer.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Message sizes every peer exchanges, both kinds: the length forms' edges
/// and past them, up to 1 MiB.
pub const SIZES: &[usize] = &[0, 1, 125, 126, 127, 65_535, 65_536, 65_537, 1 << 20];

/// Awaits `fut` for at most [`TIMEOUT`] (on any runtime: async-io's timer
/// runs its own thread when not under smol), panicking after that.
pub async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    let fut = std::pin::pin!(fut);
    match futures_util::future::select(fut, smol::Timer::after(TIMEOUT)).await {
        futures_util::future::Either::Left((out, _)) => out,
        futures_util::future::Either::Right(_) => panic!("{what}: nothing within {TIMEOUT:?}"),
    }
}

/// The workspace's target directory (this binary is target/<profile>/deps/x).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("test binary inside target/<profile>/deps")
        .to_path_buf()
}

/// A fresh directory under the target directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = target_dir()
            .join("interop-tmp")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process that is killed (with its process group) when dropped,
/// with its stdout lines on a channel.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    group: bool,
}

impl Proc {
    /// Starts `cmd` with stdout piped (stderr inherited, so it shows in the
    /// test's output on failure). With `group`, the child leads a process
    /// group of its own, and the whole group is killed on drop (a browser's
    /// helper processes).
    pub fn spawn(name: &str, mut cmd: Command, group: bool) -> Self {
        if group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_owned(),
            child,
            lines,
            group,
        }
    }

    /// The next stdout line, within `timeout`; panics on timeout or when
    /// the process ends first.
    pub fn line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{}: no output within {timeout:?}", self.name)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.wait(Duration::from_secs(5));
                panic!("{}: exited ({status:?}) before printing a line", self.name)
            }
        }
    }

    /// The rest of the first line starting with `prefix` (other lines are
    /// echoed to stderr), within `timeout`.
    pub fn line_with(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.line(left);
            match line.strip_prefix(prefix) {
                Some(rest) => return rest.to_owned(),
                None => eprintln!("{}: {line}", self.name),
            }
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Remaining stdout lines of an exited process.
    pub fn rest(&mut self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.group {
            // The group id is the child's pid (process_group(0)); this is
            // the group this test started, nothing else.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status();
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion within `timeout`, its output in `log`;
/// panics with the log's tail on failure or timeout.
fn run_logged(what: &str, mut cmd: Command, log: &Path, timeout: Duration) {
    let file = std::fs::File::create(log).expect("log file");
    let err = file.try_clone().expect("log file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    if status.is_some_and(|s| s.success()) {
        return;
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    panic!(
        "{what} failed ({}): {cmd:?}\n{}",
        status.map_or("timed out".to_owned(), |s| s.to_string()),
        tail.join("\n")
    );
}

/// Whether `python` imports the pinned `websockets`.
fn has_websockets(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            &format!(
                "import websockets.version as v, sys; sys.exit(v.version != {WEBSOCKETS_VERSION:?})"
            ),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python interpreter with `websockets` installed.
///
/// `TETHER_INTEROP_PYTHON` names one to use as it is. Otherwise the venv
/// `TETHER_INTEROP_VENV` (default: `target/interop-venv`) is used, and
/// created from `TETHER_PYTHON` (default `python3`) with
/// `websockets==WEBSOCKETS_VERSION` from PyPI when it is missing or stale.
/// Any failure panics: these tests never skip.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    static BUSY: Mutex<()> = Mutex::new(());
    let _guard = BUSY.lock().unwrap_or_else(|e| e.into_inner());
    PYTHON
        .get_or_init(|| {
            std::panic::catch_unwind(make_python).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into())
            })
        })
        .clone()
        .unwrap_or_else(|e| panic!("no Python with websockets: {e}"))
}

fn make_python() -> PathBuf {
    if let Some(p) = std::env::var_os("TETHER_INTEROP_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            has_websockets(&p),
            "TETHER_INTEROP_PYTHON={p:?} cannot import websockets {WEBSOCKETS_VERSION}"
        );
        return p;
    }
    let venv = std::env::var_os("TETHER_INTEROP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("interop-venv"));
    let py = venv.join("bin/python");
    if has_websockets(&py) {
        return py;
    }
    // Build it next to its final place and rename, so that a half-made
    // venv is never taken for a good one.
    let base = std::env::var_os("TETHER_PYTHON").unwrap_or_else(|| "python3".into());
    let tmp = venv.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
    let log = venv.with_extension("log");
    let mut cmd = Command::new(&base);
    cmd.args(["-m", "venv"]).arg(&tmp);
    let with_pip = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let tmp_py = tmp.join("bin/python");
    let mut pip = if with_pip {
        let mut c = Command::new(&tmp_py);
        c.args(["-m", "pip"]);
        c
    } else {
        // Debian ships venv's ensurepip separately (python3-venv); without
        // it, make a bare venv and let the system pip install into it.
        let _ = std::fs::remove_dir_all(&tmp);
        let mut c = Command::new(&base);
        c.args(["-m", "venv", "--without-pip"]).arg(&tmp);
        run_logged("python -m venv", c, &log, TIMEOUT);
        let mut c = Command::new(&base);
        c.args(["-m", "pip", "--python"]).arg(&tmp_py);
        c
    };
    pip.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("websockets=={WEBSOCKETS_VERSION}"),
    ]);
    run_logged(
        "pip install websockets",
        pip,
        &log,
        Duration::from_secs(600),
    );
    assert!(
        has_websockets(&tmp_py),
        "websockets not importable after install"
    );
    let _ = std::fs::remove_dir_all(&venv);
    std::fs::rename(&tmp, &venv).unwrap_or_else(|e| panic!("renaming {tmp:?}: {e}"));
    // A venv's python is a symlink to the base interpreter, so the venv
    // works from its new place.
    assert!(has_websockets(&py), "venv broken after moving to {venv:?}");
    py
}

/// The Chromium binary: `TETHER_CHROMIUM`, or the first of `chromium`,
/// `chromium-browser`, `google-chrome` on PATH. Panics when there is none.
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("TETHER_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "Chromium not found: install it (Debian: apt-get install chromium) or set TETHER_CHROMIUM"
    );
}

/// Headless Chromium with this machine's closed network in mind (no
/// background networking, updates or sync, which it would retry against
/// refused connections), a fresh profile in `profile`; the caller adds
/// its own flags and the page.
pub fn headless_chromium(profile: &TempDir) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-quic",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.0.display()));
    cmd
}

// ---- tether echo servers ----

/// The runtimes the tether side runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    Smol,
    #[cfg(feature = "tokio")]
    Tokio,
}

/// What one server-side connection saw.
#[derive(Debug, Clone)]
pub struct ConnReport {
    /// The client's Sec-WebSocket-Extensions offer.
    pub offer: String,
    /// The permessage-deflate response the server gave (from the same
    /// negotiation function the handshake uses), if any.
    pub response: Option<String>,
    /// Whether the connection ran with permessage-deflate.
    pub compressed: bool,
    /// Data messages echoed.
    pub echoed: usize,
    /// How it ended.
    pub end: String,
}

/// The server side's TLS configuration, when it serves `wss://`.
#[cfg(feature = "rustls")]
type Tls = Option<std::sync::Arc<tether::tls::rustls::ServerConfig>>;
#[cfg(not(feature = "rustls"))]
type Tls = Option<std::convert::Infallible>;

/// A tether echo server on its own thread and runtime, for a fixed
/// number of connections.
pub struct EchoServer {
    pub addr: SocketAddr,
    reports: mpsc::Receiver<ConnReport>,
    secure: bool,
}

impl EchoServer {
    /// Serves `connections` connections with `options`, echoing every data
    /// message.
    pub fn start(rt: Rt, options: ServerOptions, connections: usize) -> Self {
        Self::start_with(rt, options, connections, None)
    }

    /// The same over TLS with `tls`.
    #[cfg(feature = "rustls")]
    pub fn start_tls(
        rt: Rt,
        options: ServerOptions,
        connections: usize,
        tls: std::sync::Arc<tether::tls::rustls::ServerConfig>,
    ) -> Self {
        Self::start_with(rt, options, connections, Some(tls))
    }

    fn start_with(rt: Rt, options: ServerOptions, connections: usize, tls: Tls) -> Self {
        let secure = tls.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, reports) = mpsc::channel();
        thread::Builder::new()
            .name(format!("echo-{rt:?}"))
            .spawn(move || match rt {
                Rt::Smol => smol::block_on(async move {
                    let listener = smol::net::TcpListener::try_from(listener).unwrap();
                    let mut tasks = Vec::new();
                    for _ in 0..connections {
                        let (stream, _) = listener.accept().await.unwrap();
                        let (options, tx, tls) = (options.clone(), tx.clone(), tls.clone());
                        tasks.push(smol::spawn(async move {
                            let (offer_tx, offer) = offer_slot();
                            let report = match tls {
                                None => {
                                    let ws =
                                        tether::smol::accept_with(stream, &options, offer_tx).await;
                                    serve(ws, &options, offer).await
                                }
                                #[cfg(feature = "rustls")]
                                Some(tls) => {
                                    let ws = tether::smol::accept_tls_with(
                                        stream, &tls, &options, offer_tx,
                                    )
                                    .await;
                                    serve(ws, &options, offer).await
                                }
                                #[cfg(not(feature = "rustls"))]
                                Some(never) => match never {},
                            };
                            let _ = tx.send(report);
                        }));
                    }
                    for t in tasks {
                        t.await;
                    }
                }),
                #[cfg(feature = "tokio")]
                Rt::Tokio => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        listener.set_nonblocking(true).unwrap();
                        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                        let mut tasks = Vec::new();
                        for _ in 0..connections {
                            let (stream, _) = listener.accept().await.unwrap();
                            let (options, tx, tls) = (options.clone(), tx.clone(), tls.clone());
                            tasks.push(tokio::spawn(async move {
                                let (offer_tx, offer) = offer_slot();
                                let report = match tls {
                                    None => {
                                        let ws =
                                            tether::tokio::accept_with(stream, &options, offer_tx)
                                                .await;
                                        serve(ws, &options, offer).await
                                    }
                                    #[cfg(feature = "rustls")]
                                    Some(tls) => {
                                        let ws = tether::tokio::accept_tls_with(
                                            stream, &tls, &options, offer_tx,
                                        )
                                        .await;
                                        serve(ws, &options, offer).await
                                    }
                                    #[cfg(not(feature = "rustls"))]
                                    Some(never) => match never {},
                                };
                                let _ = tx.send(report);
                            }));
                        }
                        for t in tasks {
                            let _ = t.await;
                        }
                    }),
            })
            .unwrap();
        EchoServer {
            addr,
            reports,
            secure,
        }
    }

    /// `ws://127.0.0.1:PORT/`, or `wss://` over TLS.
    pub fn url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}/", self.addr)
    }

    /// The report of the next connection to end, within `timeout`.
    pub fn report(&self, timeout: Duration) -> ConnReport {
        self.reports
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("echo server: no connection report: {e:?}"))
    }
}

type OfferHook = Box<dyn FnOnce(&http::Request<()>) -> tether::Decision + Send>;

/// A decision hook that accepts and records the extension offer.
fn offer_slot() -> (OfferHook, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let hook = Box::new(move |req: &http::Request<()>| {
        let offer: Vec<&str> = req
            .headers()
            .get_all("sec-websocket-extensions")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let _ = tx.send(offer.join(", "));
        Ok(Default::default())
    });
    (hook, rx)
}

/// The permessage-deflate response `config` gives to `offer`.
pub fn expected_response(config: &DeflateConfig, offer: &str) -> Option<String> {
    server_accept(config, &parse_extensions([offer])).map(|(_, response)| response)
}

async fn serve<S: Transport, R: Runtime>(
    ws: Result<WebSocket<S, R>, tether::Error>,
    options: &ServerOptions,
    offer: mpsc::Receiver<String>,
) -> ConnReport {
    let offer = offer.try_recv().unwrap_or_default();
    let response = options
        .deflate
        .as_ref()
        .and_then(|cfg| expected_response(cfg, &offer));
    let mut report = ConnReport {
        offer,
        response,
        compressed: false,
        echoed: 0,
        end: String::new(),
    };
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            report.end = format!("handshake failed: {e}");
            return report;
        }
    };
    report.compressed = ws.connection().deflate_negotiated();
    report.end = loop {
        match ws.next().await {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                if let Err(e) = ws.send(m).await {
                    break format!("send failed: {e}");
                }
                report.echoed += 1;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break format!("error: {e}"),
            None => break "closed".into(),
        }
    };
    report
}
