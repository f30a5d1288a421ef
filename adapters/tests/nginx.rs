//! Through a real nginx reverse proxy with `proxy_read_timeout 3s`: the
//! WebSocket keepalive keeps an idle connection up, and without it nginx
//! cuts the connection after about 3 s, TCP keepalive or not (the kernel
//! answers TCP probes; nginx never sees them, so they do not count as
//! traffic).
//!
//! Needs nginx (Debian package `nginx`): `$TETHER_NGINX`, else
//! `/usr/sbin/nginx`, else `nginx` on `PATH`. A system package, so the
//! test is `#[ignore]`d and runs with `--include-ignored` (`.ci/run` does);
//! then it fails, not skips, without nginx. The three cases run
//! concurrently through one nginx.

#![cfg(feature = "smol")]

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::{join3, select, Either};
use futures_util::{SinkExt, StreamExt};
use smol::net::TcpListener;
use tether::{
    ClientOptions, CloseCode, Config, Error, Message, ServerOptions, SocketOptions,
    TcpKeepaliveOptions,
};

/// nginx's `proxy_read_timeout` and `proxy_send_timeout`.
const PROXY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the kept-alive client stays idle: five proxy timeouts.
const IDLE: Duration = Duration::from_secs(15);
/// When a connection without pings must be cut: around the proxy timeout,
/// with room for nginx's timer granularity and a loaded machine.
const CUT_EARLIEST: Duration = Duration::from_millis(2500);
const CUT_LATEST: Duration = Duration::from_secs(8);

/// The nginx binary, or a clear failure.
fn nginx_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TETHER_NGINX") {
        return PathBuf::from(p);
    }
    let sbin = Path::new("/usr/sbin/nginx");
    if sbin.exists() {
        return sbin.to_owned();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nginx"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "nginx not found: install it (Debian: apt-get install nginx) or set \
                 TETHER_NGINX to its binary; this test needs a real nginx"
            )
        })
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running nginx in a directory of its own; killed and cleaned up on
/// drop, so a failing test leaves no process behind.
struct Nginx {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx proxying `/NAME` to each backend, and waits until it
    /// accepts connections.
    fn start(backends: &[(&str, SocketAddr)]) -> Self {
        let binary = nginx_binary();
        let dir = std::env::temp_dir().join(format!(
            "tether-nginx-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let port = free_port();
        let d = dir.display();
        let t = PROXY_TIMEOUT.as_secs();
        let locations: String = backends
            .iter()
            .map(|(name, addr)| {
                format!(
                    "        location /{name} {{
            proxy_pass http://{addr};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection \"upgrade\";
            proxy_set_header Host $host;
            proxy_read_timeout {t}s;
            proxy_send_timeout {t}s;
        }}
"
                )
            })
            .collect();
        // `user` only matters when nginx starts as root (it then wants to
        // drop to `nobody`, who cannot read this directory).
        let conf = format!(
            "daemon off;
master_process off;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
{locations}    }}
}}
"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(&binary)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut nginx = Self {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let give_up = Instant::now() + Duration::from_secs(10);
        while StdStream::connect(nginx.addr).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}) at start:\n{}", nginx.log());
            }
            assert!(
                Instant::now() < give_up,
                "nginx does not listen:\n{}",
                nginx.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An echo server behind nginx; `socket` applies to accepted streams.
async fn backend(socket: SocketOptions) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    smol::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            socket.apply(&tcp).expect("backend socket options");
            smol::spawn(async move {
                let options = ServerOptions::default().with_config(Config::without_keepalive());
                let Ok(mut ws) =
                    tether::smol::accept_with(tcp, &options, |_| Ok(Default::default())).await
                else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if matches!(m, Message::Text(_) | Message::Binary(_))
                        && ws.send(m).await.is_err()
                    {
                        return;
                    }
                }
            })
            .detach();
        }
    })
    .detach();
    addr
}

fn tcp_keepalive_1s() -> SocketOptions {
    SocketOptions::default().with_tcp_keepalive(Some(TcpKeepaliveOptions::new(
        Duration::from_secs(1),
        Duration::from_secs(1),
        5,
    )))
}

/// Case a: pings every second keep the idle connection through nginx;
/// after five proxy timeouts a message still makes the round trip.
async fn pings_keep_it_alive(nginx: SocketAddr) -> usize {
    let options = ClientOptions::default().with_config(
        Config::default()
            .with_ping_interval(Some(Duration::from_secs(1)))
            .with_ping_timeout(Some(Duration::from_secs(2))),
    );
    let mut ws = tether::smol::connect_with(&format!("ws://{nginx}/a"), options)
        .await
        .expect("a: connect through nginx");
    // Idle, but reading: the pongs are the only traffic.
    let mut pongs = 0;
    let mut idle = pin!(smol::Timer::after(IDLE));
    loop {
        match select(ws.next(), idle.as_mut()).await {
            Either::Left((Some(Ok(Message::Pong(_))), _)) => pongs += 1,
            Either::Left((other, _)) => panic!("a: the idle connection got {other:?}"),
            Either::Right(_) => break,
        }
    }
    let m = Message::text("still here after 15 s");
    ws.send(m.clone()).await.expect("a: send after idling");
    loop {
        match ws.next().await {
            Some(Ok(Message::Pong(_))) => pongs += 1,
            Some(Ok(echo)) => {
                assert_eq!(echo, m, "a: echo");
                break;
            }
            other => panic!("a: no echo after idling: {other:?}"),
        }
    }
    assert!(ws.latency().is_some(), "a: pings were answered");
    ws.close(CloseCode::NORMAL, "done").await.expect("a: close");
    pongs
}

/// Cases b and c: no pings; returns how long nginx let the connection
/// live and what the client saw.
async fn cut_without_pings(
    nginx: SocketAddr,
    path: &str,
    socket: SocketOptions,
) -> (Duration, Option<Result<Message, Error>>) {
    let options = ClientOptions::default()
        .with_config(Config::without_keepalive())
        .with_socket(socket.clone());
    let mut ws = tether::smol::connect_with(&format!("ws://{nginx}/{path}"), options)
        .await
        .unwrap_or_else(|e| panic!("{path}: connect through nginx: {e}"));
    let open = Instant::now();
    // The options really are on the socket (case c would prove nothing
    // otherwise).
    let sock = socket2::SockRef::from(&ws.get_ref().0);
    let keepalive = sock.keepalive().expect("SO_KEEPALIVE");
    assert_eq!(
        keepalive,
        socket.tcp_keepalive.is_some(),
        "{path}: TCP keepalive"
    );
    if let Some(k) = socket.tcp_keepalive {
        assert_eq!(sock.tcp_keepalive_time().expect("TCP_KEEPIDLE"), k.idle);
    }
    // An echo first, so the connection is known to work through nginx.
    let m = Message::text("hello");
    ws.send(m.clone()).await.expect("send");
    assert_eq!(
        ws.next().await.and_then(Result::ok),
        Some(m),
        "{path}: echo"
    );
    let mut limit = pin!(smol::Timer::after(Duration::from_secs(30)));
    match select(ws.next(), limit.as_mut()).await {
        Either::Left((end, _)) => (open.elapsed(), end),
        Either::Right(_) => panic!("{path}: nginx did not cut the idle connection in 30 s"),
    }
}

#[test]
#[ignore = "needs nginx (apt-get install nginx, or set TETHER_NGINX); run with --include-ignored"]
fn websocket_keepalive_through_nginx() {
    smol::block_on(async {
        let plain = backend(SocketOptions::default()).await;
        let probing = backend(tcp_keepalive_1s()).await;
        let nginx = Nginx::start(&[("a", plain), ("b", plain), ("c", probing)]);
        let started = Instant::now();
        let (pongs, (b_after, b_end), (c_after, c_end)) = join3(
            pings_keep_it_alive(nginx.addr),
            cut_without_pings(nginx.addr, "b", SocketOptions::default()),
            cut_without_pings(nginx.addr, "c", tcp_keepalive_1s()),
        )
        .await;
        eprintln!(
            "nginx a: pings every 1 s, idle {IDLE:?}: alive, {pongs} pongs, echo after idling"
        );
        eprintln!("nginx b: no pings: cut after {b_after:.2?}; the client saw {b_end:?}");
        eprintln!(
            "nginx c: no pings, TCP keepalive 1 s: cut after {c_after:.2?}; the client saw {c_end:?}"
        );
        eprintln!("nginx: all three cases in {:.1?}", started.elapsed());
        assert!(
            pongs >= 5,
            "a: only {pongs} pongs in {IDLE:?}: pings did not go through"
        );
        for (case, after, end) in [("b", b_after, b_end), ("c", c_after, c_end)] {
            assert!(
                (CUT_EARLIEST..=CUT_LATEST).contains(&after),
                "{case}: cut after {after:?}, expected about {PROXY_TIMEOUT:?}\n{}",
                nginx.log()
            );
            // nginx drops both TCP connections without a close frame.
            assert!(
                matches!(
                    end,
                    Some(Err(Error::WebSocket(tether::core::Error::AbnormalClosure)))
                ),
                "{case}: expected an abnormal closure, got {end:?}"
            );
        }
    });
}
