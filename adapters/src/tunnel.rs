//! The way to the server for the async runtimes: a TCP connection to the
//! target, or to a proxy with a tunnel opened through it by the core's
//! sans-IO [`ProxyHandshake`]. Written once over [`Dial`], which smol and
//! tokio implement in a few lines; TLS and the WebSocket handshake then
//! run over the stream [`open`] returns.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;

use tether_core::handshake::{ClientRequest, HandshakeLimits};
use tether_core::proxy::{Host, Proxy, ProxyError, ProxyHandshake, Step};

use crate::connector::within;
use crate::handshake::{write_all, ClientOptions};
use crate::transport::{Runtime, Transport};
use crate::Error;

/// A runtime's TCP connect and name resolution.
pub(crate) trait Dial: Runtime {
    /// Its TCP stream.
    type Tcp: AsFd + Send;
    /// Connects to `host:port` (resolving a name, trying each address).
    fn tcp_connect(host: &Host, port: u16) -> impl Future<Output = io::Result<Self::Tcp>> + Send;
    /// The addresses of `name`.
    fn lookup(name: &str, port: u16) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send;
    /// The stream as a [`Transport`], borrowed for the proxy exchange.
    fn transport(tcp: &mut Self::Tcp) -> impl Transport + Send + '_;
}

/// A TCP stream to the request's server, or through the proxy
/// `options.proxy` chooses for it, with `options.socket` applied; ready
/// for TLS or the WebSocket handshake. `tls`: the caller will run TLS
/// over it (a `wss://` request is refused without).
pub(crate) async fn open<N: Dial>(
    request: &ClientRequest,
    options: &ClientOptions,
    tls: bool,
) -> Result<N::Tcp, Error> {
    let (host, port) = crate::target(request, tls)?;
    let proxy = options.proxy.choose(request.secure, &host, port)?;
    let Some(proxy) = proxy else {
        return connect::<N>(&host, port, options).await;
    };
    let target = if proxy.kind.resolves_locally() {
        resolve::<N>(host, port).await?
    } else {
        host
    };
    let mut tcp = connect::<N>(&proxy.host, proxy.port, options).await?;
    let mut io = N::transport(&mut tcp);
    tunnel::<_, N>(&mut io, &proxy, &target, port, options.limits.clone()).await?;
    drop(io);
    Ok(tcp)
}

async fn connect<N: Dial>(
    host: &Host,
    port: u16,
    options: &ClientOptions,
) -> Result<N::Tcp, Error> {
    let tcp = N::tcp_connect(host, port).await?;
    options.socket.apply(&tcp)?;
    Ok(tcp)
}

/// The address a `socks5://` proxy is given for `host`: the first the
/// runtime's resolver returns.
async fn resolve<N: Dial>(host: Host, port: u16) -> Result<Host, Error> {
    let Host::Domain(name) = &host else {
        return Ok(host);
    };
    let addrs = N::lookup(name, port).await?;
    match addrs.first() {
        Some(addr) => Ok(Host::Ip(addr.ip())),
        None => {
            Err(io::Error::new(io::ErrorKind::NotFound, format!("{name:?} has no address")).into())
        }
    }
}

/// Runs the exchange with `proxy` on `io` for a tunnel to `host:port`,
/// within `limits.timeout` on `R`'s clock. Once it returns `Ok`, `io` is
/// the tunnel, with nothing of the target's read yet.
pub(crate) async fn tunnel<S: Transport, R: Runtime>(
    io: &mut S,
    proxy: &Proxy,
    host: &Host,
    port: u16,
    limits: HandshakeLimits,
) -> Result<(), Error> {
    let (mut hs, first) = ProxyHandshake::new(proxy, host, port, limits, R::now())?;
    let deadline = hs.poll_timeout();
    let exchange = async {
        write_all(io, &first).await?;
        // A SOCKS5 reply is at most 262 bytes; an HTTP head longer than
        // this takes a few reads.
        let mut buf = vec![0u8; 1024];
        loop {
            let n = poll_fn(|cx| io.poll_read(cx, &mut buf)).await?;
            if n == 0 {
                return Err(ProxyError::Eof.into());
            }
            match hs.handle_read(&buf[..n])? {
                None => {}
                Some(Step::Write(bytes)) => write_all(io, &bytes).await?,
                Some(Step::Done(tunnel)) if tunnel.leftover.is_empty() => return Ok(()),
                Some(Step::Done(_)) => return Err(crate::proxy::early_data().into()),
            }
        }
    };
    within::<R, _>(deadline, exchange)
        .await
        .unwrap_or_else(|| Err(ProxyError::TimedOut.into()))
}

#[cfg(feature = "smol")]
impl Dial for crate::smol::Smol {
    type Tcp = async_net::TcpStream;

    async fn tcp_connect(host: &Host, port: u16) -> io::Result<Self::Tcp> {
        match host {
            Host::Ip(ip) => async_net::TcpStream::connect(SocketAddr::new(*ip, port)).await,
            Host::Domain(name) => async_net::TcpStream::connect((name.as_str(), port)).await,
        }
    }

    async fn lookup(name: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        async_net::resolve((name, port)).await
    }

    fn transport(tcp: &mut Self::Tcp) -> impl Transport + Send + '_ {
        crate::smol::FuturesIo(tcp)
    }
}

#[cfg(feature = "tokio")]
impl Dial for crate::tokio::Tokio {
    type Tcp = tokio::net::TcpStream;

    async fn tcp_connect(host: &Host, port: u16) -> io::Result<Self::Tcp> {
        match host {
            Host::Ip(ip) => tokio::net::TcpStream::connect(SocketAddr::new(*ip, port)).await,
            Host::Domain(name) => tokio::net::TcpStream::connect((name.as_str(), port)).await,
        }
    }

    async fn lookup(name: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((name, port)).await?.collect())
    }

    fn transport(tcp: &mut Self::Tcp) -> impl Transport + Send + '_ {
        crate::tokio::TokioIo(tcp)
    }
}
