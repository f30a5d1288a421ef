//! What the reconnecting client and the pool need from a runtime beyond
//! its clock and timer: opening a client connection to a URL. Implemented
//! here for smol and tokio, so those modules stay as they are.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::handshake::ClientOptions;
use crate::transport::{Runtime, Transport};
use crate::{Error, WebSocket};

/// A runtime that can open client WebSockets: [`smol::Smol`](crate::smol::Smol)
/// and [`tokio::Tokio`](crate::tokio::Tokio).
pub trait Connector: Runtime + Sized {
    /// The transport a connection runs over.
    type Transport: Transport + Send;

    /// Connects to a `ws://` or `wss://` URL and runs the handshake, like
    /// the runtime's `connect_with`.
    fn connect(
        url: &str,
        options: ClientOptions,
    ) -> impl Future<Output = Result<WebSocket<Self::Transport, Self>, Error>> + Send + '_;
}

#[cfg(feature = "smol")]
impl Connector for crate::smol::Smol {
    type Transport = crate::smol::FuturesIo<crate::smol::ClientStream>;

    fn connect(
        url: &str,
        options: ClientOptions,
    ) -> impl Future<Output = Result<WebSocket<Self::Transport, Self>, Error>> + Send + '_ {
        crate::smol::connect_with(url, options)
    }
}

#[cfg(feature = "tokio")]
impl Connector for crate::tokio::Tokio {
    type Transport = crate::tokio::TokioIo<crate::tokio::ClientStream>;

    fn connect(
        url: &str,
        options: ClientOptions,
    ) -> impl Future<Output = Result<WebSocket<Self::Transport, Self>, Error>> + Send + '_ {
        crate::tokio::connect_with(url, options)
    }
}

/// Runs `fut` until `deadline`; `None` if the deadline came first.
pub(crate) async fn within<R: Runtime, T>(
    deadline: Instant,
    fut: impl Future<Output = T>,
) -> Option<T> {
    let mut fut = pin!(fut);
    let mut sleep = R::sleep_until(deadline);
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if Pin::new(&mut sleep).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// Sleeps for `d` on the runtime's timer.
pub(crate) async fn sleep<R: Runtime>(d: Duration) {
    if !d.is_zero() {
        R::sleep_until(deadline_after::<R>(d)).await;
    }
}

/// `d` from now on `R`'s clock; a duration too large for the clock is a
/// year (an `Instant` cannot hold "never" on every platform).
pub(crate) fn deadline_after<R: Runtime>(d: Duration) -> Instant {
    let now = R::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}
