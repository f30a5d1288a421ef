//! tokio's paused clock for tests with real sockets.
//!
//! On a paused clock the runtime jumps to the next timer whenever it has
//! nothing to run, and it has nothing to run while a task waits for bytes
//! from the kernel or from another thread: a keepalive ping's timeout
//! would then fire before its pong is read. So a test holds the clock
//! still ([`held`]) while real I/O has to happen, moves it on explicitly
//! (`tokio::time::advance`) between those phases, and lets it jump by
//! itself only when no I/O is expected (a dead peer, an idle pool).

#![cfg(feature = "tokio")]
#![allow(dead_code)] // each test file uses a different subset

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

/// Runs `body` on a current-thread tokio runtime whose clock starts
/// paused, on a thread of its own, and fails the test when it has not
/// finished after `give_up` of real time: a held clock never fires the
/// timeout that would otherwise end a hang.
pub fn run<F, Fut>(what: &str, give_up: Duration, body: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: Send + 'static,
{
    let (done_tx, done) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let out = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("tokio runtime")
            .block_on(body());
        let _ = done_tx.send(out);
    });
    match done.recv_timeout(give_up) {
        Ok(out) => {
            worker.join().expect("test thread");
            out
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread reports before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: hung for {give_up:?}"),
    }
}

/// Holds the paused clock still (it moves only by `tokio::time::advance`)
/// until the returned sender is dropped, and a little after: tokio does
/// not auto-advance while a blocking task runs, and one waits for that
/// drop.
pub fn hold() -> mpsc::Sender<()> {
    hold_task().0
}

fn hold_task() -> (mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, wait) = mpsc::channel::<()>();
    let task = tokio::task::spawn_blocking(move || {
        let _ = wait.recv();
    });
    (release, task)
}

/// Runs `fut` with the paused clock held still, so real I/O inside takes
/// no virtual time; the clock may jump again once this returns.
pub async fn held<F: Future>(fut: F) -> F::Output {
    let (release, task) = hold_task();
    let out = fut.await;
    drop(release);
    task.await.expect("the clock's hold");
    out
}

/// The paused clock's current instant.
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
