//! What each runtime provides to the shared scenarios, and how a scenario
//! is run: on its own thread, under a deadline, so that a hang fails the
//! test instead of stalling the suite.
//!
//! A runtime joins the suite by implementing [`Rt`] (a dozen lines of
//! delegation) and adding one `runtime_suite!` line in `main.rs`; one whose
//! connections are not tether's async `WebSocket` also implements
//! [`Socket`] for them (the mio event loop does, in `mio_rt.rs`).

use std::future::Future;
use std::net::SocketAddr;
use std::panic::{resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use futures_util::{FutureExt, Sink, Stream};
use tether::{
    http, ClientOptions, CloseCode, Decision, Error, Message, Runtime, ServerOptions, State,
    Transport,
};

/// How long any scenario may take, in debug builds too, before it is
/// declared hung. Generous: it bounds a hang, it is not a speed check.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection on runtime `R`.
pub type Ws<R> = <R as Rt>::Ws;

/// A spawned task; awaiting it gives its output or resumes its panic.
pub type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A WebSocket as the scenarios use it: the async adapters' `WebSocket`
/// (a `Stream` and `Sink` of messages, with a few methods of its own).
/// The async runtimes use tether's type as it is; the mio runtime gives
/// the same face to connections of its event loop (see `mio_rt.rs`).
pub trait Socket:
    Stream<Item = Result<Message, Error>>
    + Sink<Message, Error = Error>
    + Unpin
    + Send
    + Sized
    + 'static
{
    /// The receiving half of [`halves`](Self::halves).
    type Rx: Stream<Item = Result<Message, Error>> + Unpin + Send + 'static;
    /// The sending half of [`halves`](Self::halves).
    type Tx: TxHalf<Rx = Self::Rx, Whole = Self>;

    /// Open, closing or closed.
    fn state(&self) -> State;
    /// Bytes queued and not yet written.
    fn buffered_amount(&self) -> usize;
    /// Round trip of the last keepalive ping.
    fn latency(&self) -> Option<Duration>;
    /// The subprotocol agreed in the handshake.
    fn protocol(&self) -> Option<&str>;
    /// Starts the close handshake and waits for its end, dropping what
    /// still arrives (the adapters' `close(code, reason)`; named apart
    /// from `SinkExt::close`).
    fn close_handshake(
        &mut self,
        code: CloseCode,
        reason: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Halves for two tasks (the adapters' `split`).
    fn halves(self) -> (Self::Tx, Self::Rx);
}

/// The sending half of a split [`Socket`].
pub trait TxHalf: Sink<Message, Error = Error> + Unpin + Send + Sized + 'static {
    /// The other half.
    type Rx;
    /// What the halves make together.
    type Whole;
    /// Whether `rx` is the other half of this one.
    fn is_pair_of(&self, rx: &Self::Rx) -> bool;
    /// Puts the halves back together, or gives them back.
    fn reunite(self, rx: Self::Rx) -> Result<Self::Whole, (Self, Self::Rx)>;
    /// Starts the close handshake and waits for its end; the other half
    /// sees the peer's answer.
    fn close_handshake(
        &mut self,
        code: CloseCode,
        reason: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl<S: Transport + Send + 'static, R: Runtime> Socket for tether::WebSocket<S, R> {
    type Rx = tether::WsStream<S, R>;
    type Tx = tether::WsSink<S, R>;

    fn state(&self) -> State {
        self.connection().state()
    }
    fn buffered_amount(&self) -> usize {
        tether::WebSocket::buffered_amount(self)
    }
    fn latency(&self) -> Option<Duration> {
        tether::WebSocket::latency(self)
    }
    fn protocol(&self) -> Option<&str> {
        tether::WebSocket::protocol(self)
    }
    fn close_handshake(
        &mut self,
        code: CloseCode,
        reason: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        tether::WebSocket::close(self, code, reason)
    }
    fn halves(self) -> (Self::Tx, Self::Rx) {
        tether::WebSocket::split(self)
    }
}

impl<S: Transport + Send + 'static, R: Runtime> TxHalf for tether::WsSink<S, R> {
    type Rx = tether::WsStream<S, R>;
    type Whole = tether::WebSocket<S, R>;

    fn is_pair_of(&self, rx: &Self::Rx) -> bool {
        tether::WsSink::is_pair_of(self, rx)
    }
    fn reunite(self, rx: Self::Rx) -> Result<Self::Whole, (Self, Self::Rx)> {
        tether::WsSink::reunite(self, rx)
    }
    fn close_handshake(
        &mut self,
        code: CloseCode,
        reason: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        tether::WsSink::close(self, code, reason)
    }
}

/// One runtime, as the scenarios use it.
pub trait Rt: Sized + 'static {
    /// Its WebSocket connections.
    type Ws: Socket;
    /// A bound TCP listener.
    type Listener: Send + Sync + 'static;
    /// An accepted TCP stream, before the WebSocket handshake.
    type Tcp: Send + 'static;

    /// Runs `fut` to completion on a fresh runtime (or the runtime's
    /// global one), with [`spawn`](Self::spawn) available inside.
    fn block_on<T>(fut: impl Future<Output = T>) -> T;
    /// Runs `fut` as a separate task.
    fn spawn<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Task<T>;
    /// The runtime's sleep.
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send;

    /// Binds a listener on 127.0.0.1 with an ephemeral port.
    fn listen() -> impl Future<Output = (Self::Listener, SocketAddr)> + Send;
    /// Accepts one TCP connection.
    fn accept_tcp(listener: &Self::Listener) -> impl Future<Output = Self::Tcp> + Send;
    /// The adapter's `accept` (default options, accept everything).
    fn accept(tcp: Self::Tcp) -> impl Future<Output = Result<Ws<Self>, Error>> + Send;
    /// The adapter's `accept_with`.
    fn accept_with<F>(
        tcp: Self::Tcp,
        options: ServerOptions,
        decide: F,
    ) -> impl Future<Output = Result<Ws<Self>, Error>> + Send
    where
        F: FnOnce(&http::Request<()>) -> Decision + Send + 'static;
    /// The adapter's `connect` (default options).
    fn connect(url: &str) -> impl Future<Output = Result<Ws<Self>, Error>> + Send;
    /// The adapter's `connect_with`.
    fn connect_with(
        url: &str,
        options: ClientOptions,
    ) -> impl Future<Output = Result<Ws<Self>, Error>> + Send;

    /// Runs `fut`, which waits on real I/O. A runtime on a paused clock
    /// holds it still meanwhile, since it would otherwise jump to the next
    /// timer (a handshake or keepalive deadline) while bytes are on their
    /// way; on the wall clock this is `fut` itself.
    fn io<T>(fut: impl Future<Output = T> + Send) -> impl Future<Output = T> + Send {
        fut
    }
    /// Moves a held paused clock on by `d`, where a scenario waits for
    /// time to pass while it also waits on I/O. On the wall clock time
    /// passes by itself and this does nothing.
    fn advance(d: Duration) -> impl Future<Output = ()> + Send {
        let _ = d;
        async {}
    }
}

/// Runs one scenario on runtime `R`, on a thread of its own, failing the
/// test if it panics or does not finish within [`SCENARIO_TIMEOUT`].
pub fn run<R, F, Fut>(name: &str, scenario: F)
where
    R: Rt,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (done_tx, done_rx) = mpsc::channel();
    let worker = thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            R::block_on(scenario());
            // The receiver may have given up already.
            let _ = done_tx.send(());
        })
        .expect("spawn scenario thread");
    match done_rx.recv_timeout(SCENARIO_TIMEOUT) {
        Ok(()) => worker.join().expect("scenario thread"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            // The thread ended without reporting: it panicked.
            Err(panic) => resume_unwind(panic),
            Ok(()) => unreachable!("the scenario thread reports before it ends"),
        },
        // The hung thread is left behind; the test binary exits anyway.
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: no result after {SCENARIO_TIMEOUT:?}, the scenario hangs")
        }
    }
}

/// Wraps a spawned future so that its panic reaches whoever awaits it,
/// whatever the executor does with panics.
pub fn catching<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> impl Future<Output = std::thread::Result<T>> + Send + 'static {
    AssertUnwindSafe(fut).catch_unwind()
}

#[cfg(feature = "smol")]
mod smol_rt {
    use super::*;
    use smol::net::{TcpListener, TcpStream};

    /// smol: `smol::block_on` with tasks on smol's global executor.
    pub struct SmolRt;

    impl Rt for SmolRt {
        // What `connect` returns; accepted sockets are wrapped in it too,
        // so both ends of a scenario have one type.
        type Ws = tether::smol::WebSocket;
        type Listener = TcpListener;
        type Tcp = TcpStream;

        fn block_on<T>(fut: impl Future<Output = T>) -> T {
            smol::block_on(fut)
        }
        fn spawn<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Task<T> {
            let task = smol::spawn(catching(fut));
            Box::pin(async move { task.await.unwrap_or_else(|panic| resume_unwind(panic)) })
        }
        async fn sleep(d: Duration) {
            smol::Timer::after(d).await;
        }
        async fn listen() -> (TcpListener, SocketAddr) {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let addr = listener.local_addr().expect("local_addr");
            (listener, addr)
        }
        async fn accept_tcp(listener: &TcpListener) -> TcpStream {
            listener.accept().await.expect("accept TCP").0
        }
        async fn accept(tcp: TcpStream) -> Result<Ws<Self>, Error> {
            tether::smol::accept(tether::smol::ClientStream::from(tcp)).await
        }
        async fn accept_with<F>(
            tcp: TcpStream,
            options: ServerOptions,
            decide: F,
        ) -> Result<Ws<Self>, Error>
        where
            F: FnOnce(&http::Request<()>) -> Decision + Send + 'static,
        {
            tether::smol::accept_with(tether::smol::ClientStream::from(tcp), &options, decide).await
        }
        async fn connect(url: &str) -> Result<Ws<Self>, Error> {
            tether::smol::connect(url).await
        }
        async fn connect_with(url: &str, options: ClientOptions) -> Result<Ws<Self>, Error> {
            tether::smol::connect_with(url, options).await
        }
    }
}
#[cfg(feature = "smol")]
pub use smol_rt::SmolRt;

#[cfg(feature = "tokio")]
mod tokio_rt {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// tokio: a multi-threaded runtime per scenario, so the halves of a
    /// split connection really run on different threads; or, `PAUSED`, a
    /// current-thread runtime on tokio's paused clock, for the timer
    /// scenarios: their timers then fire at their deadline in virtual
    /// time, with no wall-clock wait.
    pub struct TokioRt<const PAUSED: bool = false>;

    /// tokio on its paused clock.
    pub type TokioPausedRt = TokioRt<true>;

    impl<const PAUSED: bool> Rt for TokioRt<PAUSED> {
        // What `connect` returns; accepted sockets are wrapped in it too,
        // so both ends of a scenario have one type.
        type Ws = tether::tokio::WebSocket;
        type Listener = TcpListener;
        type Tcp = TcpStream;

        fn block_on<T>(fut: impl Future<Output = T>) -> T {
            let mut builder = if PAUSED {
                let mut b = tokio::runtime::Builder::new_current_thread();
                b.start_paused(true);
                b
            } else {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            };
            builder
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(fut)
        }
        async fn io<T>(fut: impl Future<Output = T> + Send) -> T {
            let _hold = PAUSED.then(crate::paused::hold);
            fut.await
        }
        async fn advance(d: Duration) {
            if PAUSED {
                tokio::time::advance(d).await;
            }
        }
        fn spawn<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Task<T> {
            let task = tokio::spawn(catching(fut));
            Box::pin(async move {
                match task.await {
                    Ok(out) => out.unwrap_or_else(|panic| resume_unwind(panic)),
                    Err(e) => panic!("task did not finish: {e}"),
                }
            })
        }
        async fn sleep(d: Duration) {
            tokio::time::sleep(d).await;
        }
        async fn listen() -> (TcpListener, SocketAddr) {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let addr = listener.local_addr().expect("local_addr");
            (listener, addr)
        }
        async fn accept_tcp(listener: &TcpListener) -> TcpStream {
            listener.accept().await.expect("accept TCP").0
        }
        async fn accept(tcp: TcpStream) -> Result<Ws<Self>, Error> {
            tether::tokio::accept(tether::tokio::ClientStream::from(tcp)).await
        }
        async fn accept_with<F>(
            tcp: TcpStream,
            options: ServerOptions,
            decide: F,
        ) -> Result<Ws<Self>, Error>
        where
            F: FnOnce(&http::Request<()>) -> Decision + Send + 'static,
        {
            tether::tokio::accept_with(tether::tokio::ClientStream::from(tcp), &options, decide)
                .await
        }
        async fn connect(url: &str) -> Result<Ws<Self>, Error> {
            tether::tokio::connect(url).await
        }
        async fn connect_with(url: &str, options: ClientOptions) -> Result<Ws<Self>, Error> {
            tether::tokio::connect_with(url, options).await
        }
    }
}
#[cfg(feature = "tokio")]
pub use tokio_rt::{TokioPausedRt, TokioRt};
