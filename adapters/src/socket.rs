//! Socket options the adapters apply to TCP streams they open.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

#[cfg(any(feature = "smol", feature = "mio"))]
use std::net::SocketAddr;

use socket2::{SockRef, TcpKeepalive};

/// TCP-level settings. WebSocket keepalive (pings) lives in
/// [`Config`](tether_core::Config); TCP keepalive only probes the kernel's
/// view of the peer and does not keep proxies from timing out idle
/// connections, so it is off by default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SocketOptions {
    /// Disable Nagle's algorithm, so small messages leave at once.
    pub nodelay: bool,
    /// TCP keepalive probes: idle time, interval and count.
    pub tcp_keepalive: Option<TcpKeepaliveOptions>,
    /// SO_SNDBUF, if set.
    pub send_buffer_size: Option<usize>,
    /// SO_RCVBUF, if set.
    pub recv_buffer_size: Option<usize>,
}

tether_core::__with_setters!(SocketOptions {
    with_nodelay => nodelay: bool,
    with_tcp_keepalive => tcp_keepalive: Option<TcpKeepaliveOptions>,
    with_send_buffer_size => send_buffer_size: Option<usize>,
    with_recv_buffer_size => recv_buffer_size: Option<usize>,
});

/// TCP keepalive timing.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TcpKeepaliveOptions {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the kernel drops the connection.
    pub retries: u32,
}

impl TcpKeepaliveOptions {
    /// Probes after `idle` without traffic, every `interval`, giving up
    /// after `retries` unanswered ones.
    pub fn new(idle: Duration, interval: Duration, retries: u32) -> Self {
        Self {
            idle,
            interval,
            retries,
        }
    }
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            nodelay: true,
            tcp_keepalive: None,
            send_buffer_size: None,
            recv_buffer_size: None,
        }
    }
}

impl SocketOptions {
    /// Applies the options to a connected TCP socket.
    pub fn apply(&self, socket: &impl AsFd) -> io::Result<()> {
        let sock = SockRef::from(socket);
        sock.set_tcp_nodelay(self.nodelay)?;
        if let Some(k) = self.tcp_keepalive {
            let ka = TcpKeepalive::new()
                .with_time(k.idle)
                .with_interval(k.interval)
                .with_retries(k.retries);
            sock.set_tcp_keepalive(&ka)?;
        }
        if let Some(n) = self.send_buffer_size {
            sock.set_send_buffer_size(n)?;
        }
        if let Some(n) = self.recv_buffer_size {
            sock.set_recv_buffer_size(n)?;
        }
        Ok(())
    }
}

/// Connections a listener's kernel queue holds before the loop accepts
/// them: tokio's choice. std's, async-net's and mio's 128 overflowed when
/// 1,000 clients
/// connected at once, and each overflow costs a client a one-second SYN
/// retransmission.
#[cfg(any(feature = "smol", feature = "mio"))]
const BACKLOG: i32 = 1024;

/// A non-blocking listener on `addr` with [`BACKLOG`] and SO_REUSEADDR (so a
/// restarted server can bind while old connections linger in TIME_WAIT).
/// (tokio's listener binds with its own backlog of 1,024.)
#[cfg(any(feature = "smol", feature = "mio"))]
pub(crate) fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
