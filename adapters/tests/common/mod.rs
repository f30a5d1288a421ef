//! Loopback servers built with tether on smol, each on its own thread, so
//! the client under test may run on any runtime; and a way to run a test
//! body on each client runtime: smol on the wall clock, tokio on its
//! paused clock (see `paused/mod.rs`), through [`TestRt`].

#![allow(dead_code)] // each test file uses a different subset

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tether::reconnect::Failure;
use tether::{Connector, Error, Message, Runtime};

/// A client runtime as the tests drive it. On the wall clock (smol) time
/// passes by itself and these do nothing. On tokio's paused clock the
/// runtime jumps to the next timer whenever it waits, so a test holds the
/// clock while it waits on real I/O (a server thread, the kernel) and
/// lets it jump only when a timer is what it waits for.
pub trait TestRt: Connector {
    /// Whether the clock is virtual: a timer then fires exactly at its
    /// deadline (to tokio's millisecond), not some scheduling delay late.
    const VIRTUAL: bool;
    /// Holds the clock still until the guard is dropped.
    fn hold() -> Hold;
    /// Moves a held clock on by `d`, firing the timers due by then.
    fn advance(d: Duration) -> impl Future<Output = ()>;
    /// Waits `d` of real time, leaving a paused clock where it is.
    fn wait_real(d: Duration) -> impl Future<Output = ()>;
    /// Runs `fut`, which waits on real I/O, with the clock held.
    fn io<F: Future>(fut: F) -> impl Future<Output = F::Output> {
        async move {
            let _hold = Self::hold();
            fut.await
        }
    }
}

/// Keeps a paused clock still while it lives (see [`TestRt::hold`]).
pub struct Hold(Option<mpsc::Sender<()>>);

impl TestRt for tether::smol::Smol {
    const VIRTUAL: bool = false;
    fn hold() -> Hold {
        Hold(None)
    }
    async fn advance(_: Duration) {}
    async fn wait_real(d: Duration) {
        smol::Timer::after(d).await;
    }
}

#[cfg(feature = "tokio")]
impl TestRt for tether::tokio::Tokio {
    const VIRTUAL: bool = true;
    fn hold() -> Hold {
        Hold(Some(crate::paused::hold()))
    }
    async fn advance(d: Duration) {
        tokio::time::advance(d).await;
    }
    async fn wait_real(d: Duration) {
        tokio::task::spawn_blocking(move || std::thread::sleep(d))
            .await
            .expect("real-time wait");
    }
}

/// Accepts TCP connections on `listener` and runs `handler(n, stream)` for
/// the n-th (from 0) on the server thread's executor.
pub fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(usize, smol::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    std::thread::spawn(move || {
        let ex = smol::LocalExecutor::new();
        smol::block_on(ex.run(async {
            let listener = smol::net::TcpListener::try_from(listener).expect("async listener");
            let mut n = 0;
            while let Ok((stream, _)) = listener.accept().await {
                ex.spawn(handler(n, stream)).detach();
                n += 1;
            }
        }))
    });
}

/// A listener on a free loopback port.
pub fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

/// A loopback address nothing listens on (bound, then released).
pub fn closed_port() -> SocketAddr {
    listener().1
}

pub fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/")
}

/// Reads a session to its end; how it ended, as the application would
/// report it to the reconnector.
pub async fn session_end<S>(ws: &mut S) -> Failure
where
    S: futures_core::Stream<Item = Result<Message, Error>> + Unpin,
{
    let mut end = None;
    while let Some(item) = ws.next().await {
        match item {
            Ok(Message::Close(frame)) => end = Some(Failure::from_close(frame.as_ref())),
            Ok(_) => {}
            Err(e) => end = Some(Failure::from(&e)),
        }
    }
    end.unwrap_or(Failure::Close(1006))
}

/// Sleeps on the client's runtime (and its clock).
pub async fn sleep<R: Runtime>(d: Duration) {
    R::sleep_until(R::now() + d).await;
}

/// Polls `cond` every 5 ms of real time until it holds; fails after 5 s.
/// What it waits for happens on another thread, in real time, so a
/// paused clock stays where it is.
pub async fn eventually<R: TestRt>(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        R::wait_real(Duration::from_millis(5)).await;
    }
}

/// Runs a test body on a current-thread tokio runtime.
#[cfg(feature = "tokio")]
pub fn on_tokio<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// `#[test]`s running each generic async body on smol and on tokio's
/// paused clock (the file declares `mod paused`).
#[macro_export]
macro_rules! on_each_runtime {
    ($($name:ident),* $(,)?) => {
        mod on_smol {
            $(#[test]
            fn $name() {
                smol::block_on(super::$name::<tether::smol::Smol>())
            })*
        }
        #[cfg(feature = "tokio")]
        mod on_tokio {
            $(#[test]
            fn $name() {
                super::paused::run(
                    stringify!($name),
                    std::time::Duration::from_secs(60),
                    super::$name::<tether::tokio::Tokio>,
                )
            })*
        }
    };
}

/// `fut`'s output; fails the test if it takes longer than 10 s, so a bug
/// shows as a failure rather than a hung test run. (While a paused clock
/// is held, the real-time limit of `paused::run` does that instead.)
pub async fn bounded<R: Runtime, T>(what: &str, fut: impl Future<Output = T>) -> T {
    let timer = R::sleep_until(R::now() + Duration::from_secs(10));
    match futures_util::future::select(std::pin::pin!(fut), timer).await {
        futures_util::future::Either::Left((v, _)) => v,
        futures_util::future::Either::Right(_) => panic!("timed out: {what}"),
    }
}
