//! Runs the built `tether` as a person would: with arguments and stdin,
//! reading its stdout, stderr and exit status; and a small tether server
//! in the test, for the behaviours `tether serve` does not have (closing
//! with a chosen code, recording the request).

#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::{http, CloseFrame, Message};

/// Bound on any run or wait: a hang fails the test instead of stalling it.
pub const LIMIT: Duration = Duration::from_secs(60);

pub fn tether() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tether"));
    // No proxy from the test machine's environment unless a test sets one.
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// What a finished run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `tether args…` with `stdin` written then closed.
pub fn run(args: &[&str], stdin: &[u8]) -> Run {
    run_cmd(tether().args(args), stdin, None)
}

/// Like [`run`], holding stdin open for `hold` after writing it.
pub fn run_holding(args: &[&str], stdin: &[u8], hold: Duration) -> Run {
    run_cmd(tether().args(args), stdin, Some(hold))
}

pub fn run_cmd(cmd: &mut Command, stdin: &[u8], hold: Option<Duration>) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tether");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
        if let Some(hold) = hold {
            thread::sleep(hold);
        }
        drop(input);
    });
    let stdout = reader(child.stdout.take().expect("stdout"));
    let stderr = reader(child.stderr.take().expect("stderr"));
    let Some(status) = wait(&mut child, LIMIT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "tether {cmd:?} did not exit in {LIMIT:?}; stderr: {}",
            stderr.join().unwrap_or_default()
        )
    };
    // The writer may still hold stdin open (`hold`); it ends by itself.
    drop(writer);
    Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn reader(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

pub fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() >= until {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A `tether serve` child, its stderr lines forwarded to the test.
pub struct Serve {
    pub child: Child,
    pub addr: String,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    /// Its stdout, line by line.
    pub stdout: mpsc::Receiver<String>,
}

impl Serve {
    /// `tether serve 127.0.0.1:0 extra…`.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", extra, Stdio::null())
    }

    /// `tether serve ADDR extra…` with this stdin.
    pub fn start_on(addr: &str, extra: &[&str], stdin: impl Into<Stdio>) -> Self {
        let mut child = tether()
            .arg("serve")
            .arg(addr)
            .args(extra)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tether serve");
        let lines = line_channel(child.stderr.take().expect("stderr"));
        let stdout = line_channel(child.stdout.take().expect("stdout"));
        let mut serve = Self {
            child,
            addr: String::new(),
            lines,
            seen: Vec::new(),
            stdout,
        };
        let first = serve.line_with("listening on ");
        serve.addr = first
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("listening line has an address")
            .to_owned();
        serve
    }

    pub fn url(&self) -> String {
        let scheme = if self.seen.iter().any(|l| l.contains("wss://")) {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}/", self.addr)
    }

    /// The next stderr line containing `what` (lines before it are kept
    /// in `seen`).
    pub fn line_with(&mut self, what: &str) -> String {
        let until = Instant::now() + LIMIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "tether serve printed no line with {what:?}; it printed: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for `n` connections opened, in any order.
    pub fn opened(&mut self, n: usize) {
        let already = self.seen.iter().filter(|l| l.contains(" open ")).count();
        for _ in already..n {
            self.line_with(" open ");
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> i32 {
        signal(&self.child, "TERM");
        let status = wait(&mut self.child, LIMIT).expect("tether serve exits on SIGTERM");
        // Everything it printed to the end, into `seen`.
        while let Ok(line) = self.lines.recv_timeout(LIMIT) {
            self.seen.push(line);
        }
        status.code().unwrap_or(-1)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines `r` gives, as they come.
pub fn line_channel(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Sends a signal to a child this test started.
pub fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{name} failed");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// What a test server saw of each connection: its request headers and
/// the data messages it received.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub headers: Vec<http::HeaderMap>,
    pub messages: Vec<Message>,
}

/// How a [`TestServer`] answers each connection.
#[derive(Debug, Clone)]
pub enum Script {
    /// Echo every data message; close when the client does.
    Echo,
    /// At the first data message, close with this code ("bye" reason).
    CloseWith(u16),
    /// At the first data message, drop TCP without a close frame.
    Drop,
    /// Refuse the upgrade with HTTP 403.
    Refuse,
    /// Choose this subprotocol, then echo.
    Protocol(String),
}

/// A tether server in the test, on its own thread and tokio runtime.
pub struct TestServer {
    pub url: String,
    pub seen: Arc<Mutex<Seen>>,
}

impl TestServer {
    pub fn start(script: Script) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("ws://{}/chat", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let record = seen.clone();
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (script, record) = (script.clone(), record.clone());
                    tokio::spawn(connection(stream, script, record));
                }
            });
        });
        Self { url, seen }
    }
}

async fn connection(stream: tokio::net::TcpStream, script: Script, record: Arc<Mutex<Seen>>) {
    let decide = |req: &http::Request<()>| {
        record.lock().unwrap().headers.push(req.headers().clone());
        match &script {
            Script::Refuse => Err(Box::new(
                http::Response::builder()
                    .status(403)
                    .body(Default::default())
                    .unwrap(),
            )),
            Script::Protocol(p) => Ok(tether::Accept::default().with_protocol(Some(p.clone()))),
            _ => Ok(Default::default()),
        }
    };
    let Ok(mut ws) =
        tether::tokio::accept_with(stream, &tether::ServerOptions::default(), decide).await
    else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if !matches!(msg, Message::Text(_) | Message::Binary(_)) {
            continue;
        }
        record.lock().unwrap().messages.push(msg.clone());
        match &script {
            Script::Echo | Script::Protocol(_) | Script::Refuse => {
                let _ = ws.send(msg).await;
            }
            Script::CloseWith(code) => {
                let frame = CloseFrame {
                    code: (*code).into(),
                    reason: "bye".into(),
                };
                let _ = ws.send(Message::Close(Some(frame))).await;
            }
            Script::Drop => return,
        }
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

/// A fresh directory under target/cli-tmp, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = target_dir()
            .join("cli-tmp")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    pub fn file(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write file");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
