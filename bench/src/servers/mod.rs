//! One echo server per implementation. Each runs on a single-threaded
//! runtime, so pinning the process to one core pins the server, and echoes
//! every binary or text message through its library's fastest idiomatic
//! public API.

mod axum;
pub mod broadcast;
mod fastws;
mod raw_tcp;
mod raw_tls;
mod soketto;
mod tether;
mod tether_mio;
mod tokio_websockets;
mod tungstenite;
mod write_buffer;

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;

use ::tokio::net::TcpStream;

/// Every implementation `bench-server --impl` knows, in report order.
pub const IMPLS: &[&str] = &[
    "tether-smol",
    "tether-tokio",
    "tether-mio",
    "tether-mio-chunks",
    "tether-smol-split",
    "tether-smol-naive",
    "tether-smol-keepalive",
    "tether-tokio-keepalive",
    "tether-mio-keepalive",
    "tokio-tungstenite",
    "fastwebsockets",
    "fastwebsockets-unbuffered",
    "tokio-websockets",
    "soketto",
    "python-websockets",
    "raw-tcp",
    "tether-smol-tls",
    "tether-tokio-tls",
    "tether-mio-tls",
    "tungstenite-tls",
    "raw-tls",
    "tether-axum",
    "axum-ws",
];

/// The echo behind an axum route: tether's extractor, and axum's own
/// `extract::ws`. Only the `axum-` scenarios run them (with
/// `tether-tokio`, the same echo without axum and hyper, as the
/// reference for what the hyper path costs).
pub const AXUM_IMPLS: &[&str] = &["tether-axum", "axum-ws"];

/// The implementations that serve over TLS; only the TLS scenarios run
/// them, and only them.
pub const TLS_IMPLS: &[&str] = &[
    "tether-smol-tls",
    "tether-tokio-tls",
    "tether-mio-tls",
    "tungstenite-tls",
    "raw-tls",
];

/// The servers that echo bytes with no WebSocket (the load generator
/// skips the upgrade for them).
pub const RAW_IMPLS: &[&str] = &["raw-tcp", "raw-tls"];

/// The implementations that speak permessage-deflate (raw TCP echoes the
/// compressed frames: the floor for the same bytes on the wire).
pub const DEFLATE_IMPLS: &[&str] = &[
    "tether-smol",
    "tether-tokio",
    "tether-mio",
    "tether-smol-split",
    "tether-smol-naive",
    "soketto",
    "python-websockets",
    "raw-tcp",
];

/// Python `websockets` (`bench/servers/python_echo.py`, its asyncio
/// server with its default settings), run by the suite from a venv of its
/// own ([`crate::suite::python`]), not by `bench-server`; only the
/// permessage-deflate scenarios run it.
pub const PYTHON_IMPLS: &[&str] = &["python-websockets"];

/// How often the keepalive servers ping.
pub const KEEPALIVE_PING_INTERVAL: std::time::Duration = tether::KEEPALIVE_INTERVAL;

/// Servers that send keepalive pings; only the idle scenario runs them
/// (the load generator answers pings only there).
pub const KEEPALIVE_IMPLS: &[&str] = &[
    "tether-smol-keepalive",
    "tether-tokio-keepalive",
    "tether-mio-keepalive",
];

pub use broadcast::BROADCAST_IMPLS;

/// Servers that echo chunk by chunk; only the 16 MiB scenario runs them.
pub const CHUNK_IMPLS: &[&str] = &["tether-mio-chunks"];

/// The largest message any scenario sends, with room to spare; every
/// server is configured to accept it (libraries' defaults differ).
pub const MAX_MESSAGE: usize = 64 << 20;

/// The batched echo of a library whose WebSocket is a `Sink` and a
/// `Stream` of its `Message`: `feed` every data message already received,
/// `flush` once when the stream has nothing more ready (what `send_all`
/// does), so no library writes once per message.
async fn feed_flush_echo<M, E, F>(
    mut ws: impl futures_util::Sink<M, Error = E> + futures_util::Stream<Item = Result<M, F>> + Unpin,
    is_data: impl Fn(&M) -> bool,
) {
    use futures_util::{FutureExt, SinkExt, StreamExt};
    loop {
        let next = match ws.next().now_or_never() {
            Some(next) => next,
            None => {
                if ws.flush().await.is_err() {
                    return;
                }
                ws.next().await
            }
        };
        match next {
            Some(Ok(m)) if is_data(&m) => {
                if ws.feed(m).await.is_err() {
                    return;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}

/// Runs the server `name` on `addr` until the process is killed. The TLS
/// servers present the certificate and key in `tls_dir`
/// ([`crate::tls::ensure_identity`]).
pub fn run(name: &str, addr: SocketAddr, tls_dir: Option<&Path>) -> io::Result<()> {
    if TLS_IMPLS.contains(&name) {
        let dir = tls_dir.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} needs --tls DIR"),
            )
        })?;
        return run_tls(name, addr, dir);
    }
    match name {
        "tether-smol" => serve_tether_smol(addr, tether::echo_smol),
        "tether-smol-split" => serve_tether_smol(addr, tether::echo_smol_split),
        "tether-smol-naive" => serve_tether_smol(addr, tether::echo_smol_naive),
        "tether-tokio" => serve_tokio(addr, tether::echo_tokio),
        "tether-smol-keepalive" => serve_tether_smol(addr, tether::echo_smol_keepalive),
        "tether-tokio-keepalive" => serve_tokio(addr, tether::echo_tokio_keepalive),
        "tether-mio" => tether_mio::serve(addr, tether_mio::Mode::Echo, None),
        "tether-mio-chunks" => tether_mio::serve(addr, tether_mio::Mode::Chunks, None),
        "tether-mio-keepalive" => tether_mio::serve(addr, tether_mio::Mode::Keepalive, None),
        "soketto" => serve_smol(addr, soketto::echo),
        "tokio-tungstenite" => serve_tokio(addr, tungstenite::echo),
        "fastwebsockets" => serve_tokio(addr, fastws::serve),
        "fastwebsockets-unbuffered" => serve_tokio(addr, fastws::serve_unbuffered),
        "tokio-websockets" => serve_tokio(addr, tokio_websockets::echo),
        "raw-tcp" => serve_tokio(addr, raw_tcp::echo),
        "tether-axum" => serve_tokio(addr, axum::serve_tether),
        "axum-ws" => serve_tokio(addr, axum::serve_axum),
        "python-websockets" => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "python-websockets is bench/servers/python_echo.py: bench-suite runs it with \
             the Python of target/bench-venv",
        )),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "unknown implementation {other}; known: {}",
                IMPLS.join(", ")
            ),
        )),
    }
}

/// The TLS servers. Each configuration is built once and lives as long as
/// the process, as a server's would; tether's comes from its own
/// `tls::server_config`, the others' from rustls's builder, both with
/// rustls's ring provider and defaults.
fn run_tls(name: &str, addr: SocketAddr, dir: &Path) -> io::Result<()> {
    let (cert, key) = crate::tls::read_identity(dir)?;
    let tether_config = || -> io::Result<&'static _> {
        let config = ::tether::tls::server_config(&cert, &key).map_err(io::Error::other)?;
        Ok(&*Box::leak(Box::new(config)))
    };
    let acceptor = || -> io::Result<&'static _> {
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::tls::server_config(&cert, &key)?);
        Ok(&*Box::leak(Box::new(acceptor)))
    };
    match name {
        "tether-smol-tls" => {
            let tls = tether_config()?;
            serve_tether_smol(addr, move |s| tether::echo_smol_tls(s, tls))
        }
        "tether-tokio-tls" => {
            let tls = tether_config()?;
            serve_tokio(addr, move |s| tether::echo_tokio_tls(s, tls))
        }
        "tether-mio-tls" => {
            let tls = ::tether::tls::server_config(&cert, &key).map_err(io::Error::other)?;
            tether_mio::serve(addr, tether_mio::Mode::Echo, Some(tls))
        }
        "tungstenite-tls" => {
            let tls = acceptor()?;
            serve_tokio(addr, move |s| tungstenite::echo_tls(s, tls))
        }
        "raw-tls" => {
            let tls = acceptor()?;
            serve_tokio(addr, move |s| raw_tls::echo(s, tls))
        }
        other => unreachable!("{other} is in TLS_IMPLS"),
    }
}

/// Tells the suite the server accepts connections: it waits for this line.
pub(super) fn announce(addr: SocketAddr) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// Accepts connections with async-net's listener (the other smol library's
/// rows) on smol's local executor: see [`on_smol`].
pub(super) fn serve_smol<F, Fut>(addr: SocketAddr, handler: F) -> io::Result<()>
where
    F: Fn(smol::net::TcpStream) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    on_smol(move |spawner| async move {
        let listener = smol::net::TcpListener::bind(addr).await?;
        announce(addr);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            spawner.spawn(handler(stream)).detach();
        }
    })
}

/// tether's smol rows accept with tether's own `Listener`, as its README
/// does (TCP_NODELAY is its default): its streams are async-io's `Async`
/// without async-net's shared wrapper.
pub(super) fn serve_tether_smol<F, Fut>(addr: SocketAddr, handler: F) -> io::Result<()>
where
    F: Fn(::tether::smol::TcpStream) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    on_smol(move |spawner| async move {
        let mut listener = ::tether::smol::Listener::bind(addr).await?;
        announce(addr);
        loop {
            let (stream, _) = listener.accept().await?;
            spawner.spawn(handler(stream)).detach();
        }
    })
}

/// Runs an accept loop on smol's local executor, run by `block_on` on
/// this thread (which also drives the async-io reactor). The accept loop
/// is a task of its own: the future given to `run` is polled again on
/// every wake of any task, and each poll of `accept` is an `accept4`
/// syscall (which allocates a socket even when it fails with EAGAIN).
fn on_smol<L, Fut>(accept_loop: L) -> io::Result<()>
where
    L: FnOnce(std::rc::Rc<smol::LocalExecutor<'static>>) -> Fut,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    let ex = std::rc::Rc::new(smol::LocalExecutor::new());
    let acceptor = ex.spawn(accept_loop(ex.clone()));
    smol::block_on(ex.run(acceptor))
}

/// Accepts connections on a current-thread tokio runtime and runs
/// `handler` on each as a local task. Every tokio server runs its
/// connections `unconstrained`, as fastwebsockets' and tokio-websockets'
/// own echo examples do, so tokio's cooperative budget never forces a
/// yield in one server and not in another.
pub(super) fn serve_tokio<F, Fut>(addr: SocketAddr, handler: F) -> io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let rt = ::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = ::tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let listener = ::tokio::net::TcpListener::bind(addr).await?;
        announce(addr);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            ::tokio::task::spawn_local(::tokio::task::unconstrained(handler(stream)));
        }
    })
}
