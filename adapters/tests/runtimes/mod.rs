//! What differs between smol and tokio for tests that run one side of a
//! connection per thread or per process: running a future, a timer, and
//! the adapter's accept (of a std socket) and connect.

#![allow(dead_code)] // each test file uses a different subset

use std::future::Future;
use std::net::TcpStream;
use std::time::Duration;

use tether::{ClientOptions, Runtime, ServerOptions, Transport};

/// One async runtime and tether's adapter for it.
pub trait Rt {
    /// The adapter's transport over a TCP stream.
    type S: Transport + Send + 'static;
    /// The adapter's timer.
    type R: Runtime;
    /// Runs `fut` to its end on this thread.
    fn block_on<T>(fut: impl Future<Output = T>) -> T;
    /// The runtime's sleep.
    fn sleep(d: Duration) -> impl Future<Output = ()>;
    /// The server handshake on an accepted std stream, accepting anything.
    fn accept(tcp: TcpStream, options: ServerOptions) -> impl Future<Output = Ws<Self>>;
    /// The adapter's `connect_with`.
    fn connect(url: &str, options: ClientOptions) -> impl Future<Output = Ws<Self>>;
}

/// A connection on runtime `T`.
pub type Ws<T> = tether::WebSocket<<T as Rt>::S, <T as Rt>::R>;

/// smol: `smol::block_on` on the calling thread.
#[cfg(feature = "smol")]
pub struct SmolRt;

#[cfg(feature = "smol")]
impl Rt for SmolRt {
    /// What `connect` returns; accepted sockets are wrapped in it too, so
    /// both ends of a scenario have one type.
    type S = tether::smol::FuturesIo<tether::smol::ClientStream>;
    type R = tether::smol::Smol;
    fn block_on<T>(fut: impl Future<Output = T>) -> T {
        smol::block_on(fut)
    }
    async fn sleep(d: Duration) {
        smol::Timer::after(d).await;
    }
    async fn accept(tcp: TcpStream, options: ServerOptions) -> Ws<Self> {
        let tcp = smol::net::TcpStream::try_from(tcp).expect("async socket");
        let tcp = tether::smol::ClientStream::from(tcp);
        tether::smol::accept_with(tcp, &options, |_| Ok(Default::default()))
            .await
            .expect("server handshake")
    }
    async fn connect(url: &str, options: ClientOptions) -> Ws<Self> {
        tether::smol::connect_with(url, options)
            .await
            .expect("client handshake")
    }
}

/// tokio: a current-thread runtime on the calling thread.
#[cfg(feature = "tokio")]
pub struct TokioRt;

#[cfg(feature = "tokio")]
impl Rt for TokioRt {
    type S = tether::tokio::TokioIo<tether::tokio::ClientStream>;
    type R = tether::tokio::Tokio;
    fn block_on<T>(fut: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(fut)
    }
    async fn sleep(d: Duration) {
        tokio::time::sleep(d).await;
    }
    async fn accept(tcp: TcpStream, options: ServerOptions) -> Ws<Self> {
        tcp.set_nonblocking(true).expect("nonblocking");
        let tcp = tokio::net::TcpStream::from_std(tcp).expect("async socket");
        let tcp = tether::tokio::ClientStream::from(tcp);
        tether::tokio::accept_with(tcp, &options, |_| Ok(Default::default()))
            .await
            .expect("server handshake")
    }
    async fn connect(url: &str, options: ClientOptions) -> Ws<Self> {
        tether::tokio::connect_with(url, options)
            .await
            .expect("client handshake")
    }
}
