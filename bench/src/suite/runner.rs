//! Starts a fresh server process for a run, pinned to core 0, runs the
//! load generator against it pinned to core 1, and always kills both.

use std::cell::OnceCell;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::record::Record;

use super::scenarios::{Kind, Scenario, Timing};

/// Core of the server; the load generator gets the next one.
const SERVER_CORE: &str = "0";
const LOAD_CORE: &str = "1";

/// Runs the benchmark binaries.
pub struct Runner {
    bin_dir: PathBuf,
    /// Whether `taskset` is there to pin processes.
    pin: bool,
    /// The certificate and key of the TLS scenarios (`--tls DIR` of
    /// server and load generator).
    tls_dir: Option<PathBuf>,
    /// The Python of `python-websockets`, made on first use.
    python: OnceCell<Result<PathBuf, String>>,
}

impl Runner {
    /// Binaries are looked up next to the running executable.
    pub fn new(bin_dir: &Path) -> Self {
        let pin = Command::new("taskset")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !pin {
            eprintln!("warning: taskset not found; server and load are not pinned");
        }
        Self {
            bin_dir: bin_dir.to_owned(),
            pin,
            tls_dir: None,
            python: OnceCell::new(),
        }
    }

    /// Runs the TLS scenarios with the certificate and key in `dir`
    /// ([`crate::tls::ensure_identity`]), the same for every server.
    pub fn with_tls(mut self, dir: &Path) -> Self {
        self.tls_dir = Some(dir.to_owned());
        self
    }

    /// Whether processes are pinned to cores.
    pub fn pinned(&self) -> bool {
        self.pin
    }

    /// A command for one of the bench binaries, pinned to `core`.
    fn command(&self, bin: &str, core: &str) -> Command {
        self.pinned_command(&self.bin_dir.join(bin), core)
    }

    /// A command for the program at `path`, pinned to `core`.
    fn pinned_command(&self, path: &Path, core: &str) -> Command {
        if self.pin {
            let mut c = Command::new("taskset");
            c.args(["-c", core]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// `bench-micro --records`, pinned to the server's core.
    pub fn micro(&self, quick: bool) -> Result<Vec<Record>, String> {
        let mut cmd = self.command("bench-micro", SERVER_CORE);
        cmd.arg("--records");
        if quick {
            cmd.arg("--quick");
        }
        let child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("bench-micro: {e}"))?;
        finish(child, Duration::from_secs(300), "bench-micro")
    }

    /// One run of `name` under `scenario`.
    pub fn run(&self, name: &str, scenario: &Scenario, timing: Timing) -> Result<Record, String> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let tls = match (&self.tls_dir, scenario.tls) {
            (Some(dir), true) => vec!["--tls".as_ref(), dir.as_os_str()],
            (None, true) => return Err("no certificate for the TLS scenarios".into()),
            (_, false) => vec![],
        };
        let mut cmd = if crate::servers::PYTHON_IMPLS.contains(&name) {
            let python = self.python.get_or_init(super::python::interpreter);
            let mut cmd = self.pinned_command(python.as_ref().map_err(String::clone)?, SERVER_CORE);
            cmd.arg("-u").arg(super::python::script());
            cmd
        } else {
            let mut cmd = self.command("bench-server", SERVER_CORE);
            cmd.args(["--impl", name])
                .args((scenario.kind == Kind::Broadcast).then_some("--broadcast"))
                .args(&tls);
            cmd
        };
        let mut server = cmd
            .args(["--addr", &addr])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{name} server: {e}"))?;
        let result = self.load_against(&mut server, name, scenario, timing, &addr, &tls);
        // Still running means it survived the run; either way it goes now.
        let crashed = server.try_wait().ok().flatten();
        let _ = server.kill();
        let _ = server.wait();
        match crashed {
            Some(status) => Err(format!("server exited during the run: {status}")),
            None => result,
        }
    }

    fn load_against(
        &self,
        server: &mut Child,
        name: &str,
        scenario: &Scenario,
        timing: Timing,
        addr: &str,
        tls: &[&std::ffi::OsStr],
    ) -> Result<Record, String> {
        let listening = wait_listening(server, Duration::from_secs(10))?;
        let mut cmd = self.command("bench-load", LOAD_CORE);
        cmd.args(["--addr", addr, "--server-pid", &server.id().to_string()])
            .args(["--connections", &scenario.connections.to_string()])
            .args(["--in-flight", &scenario.in_flight.to_string()])
            .args(["--size", &scenario.size.to_string()])
            .args(["--warmup", &timing.warmup.as_secs_f64().to_string()])
            .args(["--duration", &timing.duration.as_secs_f64().to_string()]);
        cmd.args(tls);
        if crate::servers::RAW_IMPLS.contains(&name) {
            cmd.arg("--raw");
        }
        if scenario.kind == Kind::Idle {
            // Long enough for every keepalive server to ping every
            // connection at least once after the last one opened.
            let hold = crate::servers::KEEPALIVE_PING_INTERVAL + Duration::from_secs(1);
            cmd.arg("--idle")
                .args(["--hold", &hold.as_secs_f64().to_string()]);
        }
        if scenario.deflate {
            cmd.arg("--deflate");
            if scenario.kind == Kind::Idle {
                let n = super::scenarios::DEFLATE_IDLE_MESSAGES;
                cmd.args(["--messages", &n.to_string()]);
            }
        }
        if scenario.kind == Kind::Broadcast {
            cmd.arg("--broadcast");
        }
        if scenario.kind == Kind::ConnectRate {
            cmd.arg("--connect-rate");
        }
        let load = cmd
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("bench-load: {e}"))?;
        // Connections open one after another in the idle scenarios: allow
        // 2 ms each on top (100,000: 200 s more).
        let opening = Duration::from_millis(2 * scenario.connections as u64);
        let limit = timing.warmup + timing.duration + opening + Duration::from_secs(120);
        let mut records = finish(load, limit, "bench-load")?;
        let r = records.pop().ok_or("bench-load reported nothing")?;
        match r.get_text("error") {
            Some(e) => Err(format!("a connection failed: {e}")),
            // What the server said it runs, after its address (the
            // Python server names its websockets and Python versions).
            None => match listening.split_once(" (") {
                Some((_, what)) => Ok(r.text("server", what.trim().trim_end_matches(')'))),
                None => Ok(r),
            },
        }
    }
}

/// Waits for the child to exit within `limit` (killing it otherwise) and
/// parses the records it printed.
fn finish(mut child: Child, limit: Duration, what: &str) -> Result<Vec<Record>, String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut out);
        let _ = tx.send(out);
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not finish within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| format!("{what}: no output"))?;
    if !status.success() {
        return Err(format!("{what} failed: {status}"));
    }
    Record::parse_all(&out).map_err(|e| format!("{what}: bad output ({e})"))
}

/// Waits for the server's "listening" line and returns it.
fn wait_listening(server: &mut Child, limit: Duration) -> Result<String, String> {
    let stdout = server.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(limit) {
        Ok(line) if line.starts_with("listening") => Ok(line),
        Ok(line) => Err(format!("server did not start: {line:?}")),
        Err(_) => Err(format!("server did not start within {limit:?}")),
    }
}

/// A port nothing listens on now (the OS picks it; the server binds it a
/// moment later).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}
