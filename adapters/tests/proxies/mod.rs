//! Real proxies for the tests, each started in a directory of its own
//! with its config and log there, on a free loopback port: tinyproxy
//! (HTTP CONNECT, Debian package `tinyproxy`) and microsocks (SOCKS5,
//! Debian package `microsocks`); killed and cleaned up on drop. Each
//! makes its outgoing connections from an address of its own (127.0.0.2,
//! 127.0.0.3), so the echo server, which records where each connection
//! came from, tells which way a client came: directly (127.0.0.1) or
//! through which proxy.
//!
//! And a client that echoes one message on smol, tokio or the mio loop.

#![allow(dead_code)] // each test file uses a different subset

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::{ClientOptions, CloseCode, Config, Error, Message};

/// Where a connection straight from the client comes from.
pub const DIRECT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// Where tinyproxy's connections come from (its `Bind`).
pub const VIA_TINYPROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Where microsocks's connections come from (its `-b`).
pub const VIA_MICROSOCKS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// The binary `name`: `$var`, else on `PATH` or in the usual places; a
/// clear failure without it.
fn binary(name: &str, var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found: install it (Debian: apt-get install {name}) or set {var} \
                 to its binary; this test needs a real {name}"
            )
        })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A proxy process in its own directory.
pub struct Proxy {
    child: Child,
    dir: PathBuf,
    log: PathBuf,
    pub port: u16,
}

impl Proxy {
    fn spawn(name: &str, mut command: Command, dir: PathBuf, log: PathBuf, port: u16) -> Self {
        let out = std::fs::File::create(dir.join("stdout")).expect("stdout file");
        let err = std::fs::File::create(dir.join("stderr")).expect("stderr file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        let mut proxy = Self {
            child,
            dir,
            log,
            port,
        };
        let give_up = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!(
                    "{name} exited with {status}: {}{}",
                    proxy.read("stdout"),
                    proxy.read("stderr")
                );
            }
            assert!(Instant::now() < give_up, "{name} did not listen in 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy
    }

    /// Starts tinyproxy with these config lines added (`BasicAuth u p`,
    /// `ConnectPort 1`).
    pub fn tinyproxy(extra: &[&str]) -> Self {
        let dir = temp_dir("tinyproxy");
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "Port {port}\nListen 127.0.0.1\nBind {VIA_TINYPROXY}\nTimeout 30\nMaxClients 64\n\
             LogLevel Connect\nLogFile \"{d}/proxy.log\"\nPidFile \"{d}/tinyproxy.pid\"\n{}\n",
            extra.join("\n")
        );
        let conf_path = dir.join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).expect("write tinyproxy.conf");
        let mut command = Command::new(binary("tinyproxy", "TETHER_TINYPROXY"));
        command.arg("-d").arg("-c").arg(&conf_path);
        let log = dir.join("proxy.log");
        Self::spawn("tinyproxy", command, dir, log, port)
    }

    /// Starts microsocks, asking for this user name and password if
    /// given.
    pub fn microsocks(auth: Option<(&str, &str)>) -> Self {
        let dir = temp_dir("microsocks");
        let port = free_port();
        let mut command = Command::new(binary("microsocks", "TETHER_MICROSOCKS"));
        command.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        command.args(["-b", &VIA_MICROSOCKS.to_string()]);
        if let Some((user, pass)) = auth {
            command.args(["-u", user, "-P", pass]);
        }
        // It logs each connection on stderr, unbuffered.
        let log = dir.join("stderr");
        Self::spawn("microsocks", command, dir, log, port)
    }

    /// `scheme://[userinfo@]127.0.0.1:port`.
    pub fn url(&self, scheme: &str, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("{scheme}://{u}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    /// Stops it; connections to its port are refused from then on.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tether-{what}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("proxy dir");
    dir
}

/// A tether echo server (smol, on a thread of its own) on 127.0.0.1 that
/// records where each connection came from.
pub struct Echo {
    pub addr: SocketAddr,
    peers: Arc<Mutex<Vec<IpAddr>>>,
    /// Serving `wss://`: the certificate (PEM) a client must trust.
    pub cert_pem: Option<String>,
}

impl Echo {
    pub fn start() -> Self {
        Self::serve(None)
    }

    /// Serves `wss://` with a certificate for 127.0.0.1 made now.
    #[cfg(feature = "rustls")]
    pub fn start_tls() -> Self {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
        let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        let config = tether::tls::server_config(cert.as_bytes(), key.as_bytes()).expect("config");
        let mut echo = Self::serve(Some(config));
        echo.cert_pem = Some(cert);
        echo
    }

    /// Serves `wss://` with `tls`.
    #[cfg(feature = "rustls")]
    pub fn start_with_tls(tls: Arc<tether::tls::rustls::ServerConfig>) -> Self {
        Self::serve(Some(tls))
    }

    #[cfg(feature = "rustls")]
    fn serve(tls: Option<Arc<tether::tls::rustls::ServerConfig>>) -> Self {
        Self::serve_with(move |stream| {
            let tls = tls.clone();
            Box::pin(async move {
                match tls {
                    None => echo_on(tether::smol::accept(stream).await).await,
                    Some(tls) => echo_on(tether::smol::accept_tls(stream, &tls).await).await,
                }
            })
        })
    }

    #[cfg(not(feature = "rustls"))]
    fn serve(_: Option<()>) -> Self {
        Self::serve_with(|stream| {
            Box::pin(async move { echo_on(tether::smol::accept(stream).await).await })
        })
    }

    fn serve_with(
        serve: impl Fn(smol::net::TcpStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
            + Send
            + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let peers = Arc::new(Mutex::new(Vec::new()));
        let seen = peers.clone();
        std::thread::spawn(move || {
            let ex = smol::LocalExecutor::new();
            smol::block_on(ex.run(async {
                let listener = smol::net::TcpListener::try_from(listener).expect("listener");
                while let Ok((stream, peer)) = listener.accept().await {
                    seen.lock().unwrap().push(peer.ip());
                    ex.spawn(serve(stream)).detach();
                }
            }))
        });
        Self {
            addr,
            peers,
            cert_pem: None,
        }
    }

    /// `ws://127.0.0.1:port/`, or `wss://` when it serves TLS.
    pub fn url(&self) -> String {
        let scheme = if self.cert_pem.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}/", self.addr)
    }

    /// Where the connections so far came from, in order; forgets them.
    pub fn take_peers(&self) -> Vec<IpAddr> {
        std::mem::take(&mut *self.peers.lock().unwrap())
    }
}

/// Echoes data messages on an accepted connection until it ends.
async fn echo_on<S: tether::Transport, R: tether::Runtime>(
    ws: Result<tether::WebSocket<S, R>, Error>,
) {
    let Ok(mut ws) = ws else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

/// The runtime a client runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    Smol,
    #[cfg(feature = "tokio")]
    Tokio,
    #[cfg(feature = "mio")]
    Mio,
}

/// Every client runtime this build has.
pub const RUNTIMES: &[Rt] = &[
    Rt::Smol,
    #[cfg(feature = "tokio")]
    Rt::Tokio,
    #[cfg(feature = "mio")]
    Rt::Mio,
];

/// No keepalive, so nothing but the echo crosses the connection.
pub fn options() -> ClientOptions {
    ClientOptions::default().with_config(Config::without_keepalive())
}

const LIMIT: Duration = Duration::from_secs(20);

impl Rt {
    /// Connects to `url` on this runtime, has one message echoed, closes:
    /// the first error.
    pub fn echo(self, url: &str, options: ClientOptions) -> Result<(), Error> {
        match self {
            Rt::Smol => smol::block_on(async {
                let ws = tether::smol::connect_with(url, options).await?;
                echo_async(ws).await
            }),
            #[cfg(feature = "tokio")]
            Rt::Tokio => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(async {
                    let ws = tether::tokio::connect_with(url, options).await?;
                    echo_async(ws).await
                }),
            #[cfg(feature = "mio")]
            Rt::Mio => echo_mio(url, options),
        }
    }
}

async fn echo_async<S: tether::Transport, R: tether::Runtime>(
    mut ws: tether::WebSocket<S, R>,
) -> Result<(), Error> {
    ws.send(Message::text("through")).await?;
    match ws.next().await {
        Some(Ok(m)) => assert_eq!(m, Message::text("through")),
        Some(Err(e)) => return Err(e),
        None => panic!("closed before the echo"),
    }
    ws.close(CloseCode::NORMAL, "").await
}

#[cfg(feature = "mio")]
fn echo_mio(url: &str, options: ClientOptions) -> Result<(), Error> {
    use tether::mio::{Driver, Event};
    let mut driver = Driver::new()?;
    let id = driver.connect_with(url, options)?;
    let mut result = None;
    let mut echoed = false;
    let give_up = Instant::now() + LIMIT;
    while result.is_none() {
        assert!(
            Instant::now() < give_up,
            "mio client: no result in {LIMIT:?}"
        );
        driver.poll_with(Some(Duration::from_millis(100)), |conns, ev_id, event| {
            assert_eq!(ev_id, id);
            match event {
                Event::Open => conns.send(id, Message::text("through")).expect("send"),
                Event::Message(m) => {
                    assert_eq!(m, Message::text("through"));
                    echoed = true;
                    conns.close(id, CloseCode::NORMAL, "").expect("close");
                }
                Event::Error(e) => result = Some(Err(e)),
                Event::Closed => {
                    result.get_or_insert(Ok(()));
                }
                _ => {}
            }
        })?;
    }
    let result = result.unwrap();
    if result.is_ok() {
        assert!(echoed, "mio client closed without the echo");
    }
    result
}
