//! Loopback servers built with tether on smol, each on its own thread, so
//! the client under test may run on any runtime; and a way to run a test
//! body on each client runtime.

#![allow(dead_code)] // each test file uses a different subset

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tether::reconnect::Failure;
use tether::{Error, Message, Runtime};

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

/// Sleeps on the client's runtime.
pub async fn sleep<R: Runtime>(d: Duration) {
    R::sleep_until(Instant::now() + d).await;
}

/// Polls `cond` every 5 ms until it holds; fails after 5 s.
pub async fn eventually<R: Runtime>(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep::<R>(Duration::from_millis(5)).await;
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

/// `#[test]`s running each generic async body on smol and on tokio.
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
                super::common::on_tokio(super::$name::<tether::tokio::Tokio>())
            })*
        }
    };
}

/// `fut`'s output; fails the test if it takes longer than 10 s, so a bug
/// shows as a failure rather than a hung test run.
pub async fn bounded<R: Runtime, T>(what: &str, fut: impl Future<Output = T>) -> T {
    let timer = R::sleep_until(Instant::now() + Duration::from_secs(10));
    match futures_util::future::select(std::pin::pin!(fut), timer).await {
        futures_util::future::Either::Left((v, _)) => v,
        futures_util::future::Either::Right(_) => panic!("timed out: {what}"),
    }
}
