//! HAProxy in front of the instances: its configuration (the comments in
//! it say why each timeout is what it is), the process, and its admin
//! socket for the servers' states.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::super::db::BoxError;

/// The keepalive ping interval of tether's default connection settings
/// (`tether::core::Config::ping_interval`), which both ends of the rows
/// transfer use; `timeout tunnel` must be longer.
pub const KEEPALIVE: Duration = Duration::from_secs(20);

/// HAProxy's configuration for `servers` (name, address) behind a
/// frontend on `port`, with its admin socket at `socket`.
pub fn config(port: u16, servers: &[(String, SocketAddr)], socket: &Path) -> String {
    let mut cfg = format!(
        "\
# Written by the scale-out run of tether's rows showcase.
global
    # One thread: the proxy only copies bytes here, and the two cores are
    # better spent on the instances, PostgreSQL and the client.
    nbthread 1
    maxconn 1000
    # The run reads the servers' states here (`show stat`).
    stats socket {socket} mode 600 level admin

defaults
    mode http
    # A connection attempt to an instance that was just killed is refused
    # at once; one that is hung waits this long. Either way it is retried,
    # on another server (redispatch), so the client rarely sees it.
    timeout connect 1s
    retries 3
    option redispatch 1
    # Until the 101 these bound the upgrade request and response.
    timeout client 10s
    timeout server 10s
    # After the 101 the connection is a tunnel, and only this applies: the
    # longest time without a byte in either direction. Both ends ping every
    # {keepalive}s and fail a ping unanswered for another {keepalive}s, so an
    # idle but healthy connection always carries a byte within {keepalive}s,
    # and a dead peer is found by the keepalive before this cuts it. The
    # tunnel timeout must stay above the ping interval (here 3 times it);
    # a shorter one would cut idle connections the keepalive exists to
    # keep. `option http-server-close` is not needed: an upgraded
    # connection is a tunnel whatever the keep-alive mode.
    timeout tunnel {tunnel}s
    # A side that half-closed gets this long to finish its close handshake.
    timeout client-fin 5s
    timeout server-fin 5s

frontend rows
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    # No stickiness (no cookie, no stick table): the client sends its
    # position on every connection, so any instance can resume it.
    balance roundrobin
    # The health check is a WebSocket upgrade to /healthz, so it passes the
    # same handshake code as a client; an instance answers 200 while it
    # serves and 503 once it drains.
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host rows hdr Connection Upgrade hdr Upgrade websocket hdr Sec-WebSocket-Version 13 hdr Sec-WebSocket-Key dGhlIHNhbXBsZSBub25jZQ==
    http-check expect status 200
    # Fast checks for a demo on loopback (production: seconds): a killed
    # or draining instance is out within 2 failed checks, a restarted one
    # back after 2 good ones. A refused or reset connection in live
    # traffic marks the server down at once, without waiting for checks.
    default-server inter 100ms fastinter 50ms downinter 100ms fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down
",
        socket = socket.display(),
        keepalive = KEEPALIVE.as_secs(),
        tunnel = KEEPALIVE.as_secs() * 3,
    );
    for (name, addr) in servers {
        cfg.push_str(&format!("    server {name} {addr} check\n"));
    }
    cfg
}

/// A running HAProxy.
pub struct Haproxy {
    child: Child,
    socket: PathBuf,
    addr: SocketAddr,
}

/// The binary: `$TETHER_HAPROXY`, else `haproxy` on the `PATH` or in
/// `/usr/sbin`.
fn binary() -> Result<PathBuf, BoxError> {
    if let Some(p) = std::env::var_os("TETHER_HAPROXY") {
        return Ok(p.into());
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|d| d.join("haproxy").exists()));
    match on_path {
        Some(dir) => Ok(dir.join("haproxy")),
        None if Path::new("/usr/sbin/haproxy").exists() => Ok("/usr/sbin/haproxy".into()),
        None => Err("no haproxy found: apt-get install haproxy, or set TETHER_HAPROXY".into()),
    }
}

impl Haproxy {
    /// Writes the configuration to `dir` and starts HAProxy in the
    /// foreground; returns once the frontend accepts connections.
    pub fn start(dir: &Path, servers: &[(String, SocketAddr)]) -> Result<Self, BoxError> {
        let bin = binary()?;
        let port = super::free_port()?;
        let socket = dir.join("haproxy.sock");
        let cfg_path = dir.join("haproxy.cfg");
        std::fs::write(&cfg_path, config(port, servers, &socket))?;
        let check = Command::new(&bin)
            .arg("-c")
            .arg("-f")
            .arg(&cfg_path)
            .output()
            .map_err(|e| {
                format!(
                    "cannot run {}: {e} (apt-get install haproxy)",
                    bin.display()
                )
            })?;
        if !check.status.success() {
            return Err(format!(
                "haproxy rejects {}: {}",
                cfg_path.display(),
                String::from_utf8_lossy(&check.stderr)
            )
            .into());
        }
        let log = std::fs::File::create(dir.join("haproxy.log"))?;
        let child = Command::new(&bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut proxy = Haproxy {
            child,
            socket,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(proxy.addr).is_err() || !proxy.socket.exists() {
            if let Some(status) = proxy.child.try_wait()? {
                return Err(format!(
                    "haproxy exited ({status}): {}",
                    std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default()
                )
                .into());
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err("haproxy did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(proxy)
    }

    /// The frontend's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Each server's state as its health checks see it (`UP`, `DOWN`,
    /// `UP 1/2`, `MAINT`...), from `show stat` on the admin socket.
    pub fn server_states(&self) -> Result<Vec<(String, String)>, BoxError> {
        let mut sock = UnixStream::connect(&self.socket)?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        sock.write_all(b"show stat\n")?;
        let mut out = String::new();
        sock.read_to_string(&mut out)?;
        let mut lines = out.lines();
        let header = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .ok_or_else(|| format!("unexpected `show stat` answer: {out:?}"))?;
        let col = |name: &str| header.split(',').position(|c| c == name);
        let (px, sv, st) = match (col("pxname"), col("svname"), col("status")) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => return Err(format!("`show stat` header lacks columns: {header}").into()),
        };
        Ok(lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > st && f[px] == "instances" && f[sv] != "BACKEND")
            .map(|f| (f[sv].to_owned(), f[st].to_owned()))
            .collect())
    }

    /// Waits until `server`'s state starts with `state` (`UP`, `DOWN`).
    pub fn wait_state(&self, server: &str, state: &str, limit: Duration) -> Result<(), BoxError> {
        let start = Instant::now();
        loop {
            let states = self.server_states()?;
            if states
                .iter()
                .any(|(s, st)| s == server && st.split(' ').next() == Some(state))
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!("{server} not {state} after {limit:?}: {states:?}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
