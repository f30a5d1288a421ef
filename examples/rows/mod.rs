//! The million-rows showcase, as a library so its test drives the same
//! code: a table of sensor readings in SQLite streamed over one
//! WebSocket connection in batches with `tether_resume`, through a relay
//! that cuts the connection, and stored exactly once on the other side.

pub mod client;
pub mod cluster;
pub mod codec;
pub mod db;
pub mod pg;
pub mod relay;
pub mod server;
pub mod tls;

use std::io;
use std::net::SocketAddr;

/// Peak resident memory of this process, in KiB (`VmHWM`).
pub fn peak_rss_kib() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmHWM in /proc/self/status"))
}

/// Runs a server on its own thread (tests; the example runs it in a child
/// process so each side's memory is its own).
pub fn spawn_server(config: server::ServeConfig) -> io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let listener = smol::net::TcpListener::try_from(listener)?;
    std::thread::Builder::new()
        .name("rows-server".into())
        .spawn(move || smol::block_on(server::run(listener, config)))?;
    Ok(addr)
}
