//! What a server does when `accept` fails, decided once for every adapter.
//!
//! An accept loop that ends at the first error (`accept().await?`) takes
//! the whole server down when the process runs out of file descriptors
//! (EMFILE), and one that simply tries again spins at full CPU, because
//! the connection that could not be accepted is still waiting in the
//! backlog. Errors fall in three classes:
//!
//! - **one connection failed** (ECONNABORTED, ECONNRESET, EPROTO, EPERM
//!   from a firewall rule, EINTR, and the network errors Linux's
//!   `accept(2)` says to treat like EAGAIN): that connection is gone from
//!   the backlog, so accepting again at once is right. A long run of them
//!   with no success in between is not what they look like, and waits
//!   like the next class;
//! - **out of resources** (EMFILE, ENFILE, ENOBUFS, ENOMEM): nothing
//!   changes until something is freed, so wait, 10 ms at first, doubling
//!   up to 1 s, and start over after the next accepted connection. 10 ms
//!   is short next to any handshake, so a server that was briefly full
//!   resumes at once; 1 s bounds the cost of a long shortage to one
//!   system call a second;
//! - **the listener is unusable** (EBADF, EINVAL, ENOTSOCK, EOPNOTSUPP,
//!   EFAULT) or the error is one `accept` is not documented to return:
//!   no retry can succeed, or nothing says one would, so the error goes
//!   to the caller.

// The listeners' loop serves smol and tokio; the mio loop uses only the
// classification and schedule.
#![cfg_attr(
    not(any(feature = "smol", feature = "tokio")),
    allow(dead_code, unused_imports)
)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use tether_core::backoff::{Backoff, BackoffConfig};

use crate::transport::Runtime;
use crate::SocketOptions;

/// First wait after running out of resources.
const FIRST_WAIT: Duration = Duration::from_millis(10);
/// Longest wait between attempts.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(1);
/// Connection errors in a row, with no connection accepted, after which
/// the next one waits too. A backlog of reset connections yields one
/// error each; a run this long is more likely a broken condition that
/// does not consume the backlog, and must not spin.
const CONNECTION_ERRORS_IN_A_ROW: u32 = 64;

/// What to do after a failed `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Accept again after this long (zero: at once).
    Retry(Duration),
    /// Give the error to the caller: retrying will not help.
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Connection,
    Resources,
    Listener,
}

fn classify(e: &io::Error) -> Class {
    match e.raw_os_error() {
        Some(
            libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::EPROTO
            | libc::EPERM
            | libc::EINTR
            | libc::EAGAIN
            | libc::ENETDOWN
            | libc::ENETUNREACH
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::ETIMEDOUT,
        ) => Class::Connection,
        #[cfg(target_os = "linux")]
        Some(libc::ENONET) => Class::Connection,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Class::Resources,
        // EBADF, EINVAL, ENOTSOCK, EOPNOTSUPP, EFAULT, anything else, and
        // errors that carry no errno (a runtime shutting down).
        _ => match e.kind() {
            io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset => Class::Connection,
            io::ErrorKind::OutOfMemory => Class::Resources,
            _ => Class::Listener,
        },
    }
}

/// The retry schedule of one accept loop: how long to wait after each
/// failure, from the error's class and the failures since the last
/// accepted connection.
#[derive(Debug, Clone)]
pub(crate) struct AcceptBackoff {
    schedule: Backoff,
    /// Waits handed out since the last accepted connection.
    waits: u32,
    /// Connection errors since the last accepted connection or wait.
    connection_errors: u32,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            schedule: Backoff::new(
                BackoffConfig::default()
                    .with_initial(FIRST_WAIT)
                    .with_factor(2.0)
                    .with_max(MAX_WAIT)
                    // One process retrying its own accept: nothing to spread.
                    .with_jitter(0.0),
            ),
            waits: 0,
            connection_errors: 0,
        }
    }
}

impl AcceptBackoff {
    /// A connection was accepted: the next failure starts over.
    pub(crate) fn accepted(&mut self) {
        self.waits = 0;
        self.connection_errors = 0;
    }

    /// `accept` failed with `e`.
    pub(crate) fn failed(&mut self, e: &io::Error) -> Next {
        match classify(e) {
            Class::Listener => Next::Fail,
            Class::Connection if self.connection_errors < CONNECTION_ERRORS_IN_A_ROW => {
                self.connection_errors += 1;
                Next::Retry(Duration::ZERO)
            }
            Class::Connection | Class::Resources => {
                self.connection_errors = 0;
                let wait = self.schedule.base_delay(self.waits);
                self.waits = self.waits.saturating_add(1);
                Next::Retry(wait)
            }
        }
    }
}

/// Sees each `accept` error an accept loop skipped, and how long it waits
/// before the next attempt (zero: at once).
pub(crate) type Observer = Box<dyn FnMut(&io::Error, Duration) + Send>;

/// The state of an accept loop shared by the smol and tokio listeners:
/// the backoff, the socket options for accepted sockets, the observer.
#[derive(Default)]
pub(crate) struct AcceptLoop {
    backoff: AcceptBackoff,
    /// When the current wait ends. Kept here rather than in the future so
    /// an `accept` cancelled while waiting still waits when called again.
    resume_at: Option<Instant>,
    pub(crate) socket: SocketOptions,
    pub(crate) observer: Option<Observer>,
}

impl std::fmt::Debug for AcceptLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptLoop")
            .field("backoff", &self.backoff)
            .field("resume_at", &self.resume_at)
            .field("socket", &self.socket)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl AcceptLoop {
    /// Calls `accept` until it yields a socket the options apply to,
    /// waiting on runtime `R`'s timer as the backoff says; returns only
    /// errors no retry can fix.
    pub(crate) async fn accept<R, S, F>(
        &mut self,
        mut accept: impl FnMut() -> F,
    ) -> io::Result<(S, SocketAddr)>
    where
        R: Runtime,
        S: AsFd,
        F: Future<Output = io::Result<(S, SocketAddr)>>,
    {
        loop {
            if let Some(at) = self.resume_at {
                if at > R::now() {
                    R::sleep_until(at).await;
                }
                self.resume_at = None;
            }
            let e = match accept().await {
                Ok((stream, addr)) => {
                    self.backoff.accepted();
                    match self.socket.apply(&stream) {
                        Ok(()) => return Ok((stream, addr)),
                        // Reset before we got to it, most likely: skip it
                        // like any other failed connection.
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            match self.backoff.failed(&e) {
                Next::Fail => return Err(e),
                Next::Retry(wait) => {
                    if let Some(observe) = &mut self.observer {
                        observe(&e, wait);
                    }
                    if !wait.is_zero() {
                        self.resume_at = Some(R::now() + wait);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(errno: i32) -> io::Error {
        io::Error::from_raw_os_error(errno)
    }

    #[test]
    fn resources_wait_doubling_to_the_cap_and_start_over_after_a_success() {
        let mut b = AcceptBackoff::default();
        let waits: Vec<_> = (0..10)
            .map(|_| match b.failed(&os(libc::EMFILE)) {
                Next::Retry(d) => d.as_millis(),
                Next::Fail => panic!("EMFILE is not fatal"),
            })
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        b.accepted();
        assert_eq!(
            b.failed(&os(libc::ENFILE)),
            Next::Retry(Duration::from_millis(10))
        );
    }

    #[test]
    fn connection_errors_retry_at_once_until_a_long_run() {
        let mut b = AcceptBackoff::default();
        for errno in [
            libc::ECONNABORTED,
            libc::ECONNRESET,
            libc::EPROTO,
            libc::EINTR,
        ] {
            assert_eq!(b.failed(&os(errno)), Next::Retry(Duration::ZERO));
        }
        for _ in 4..CONNECTION_ERRORS_IN_A_ROW {
            assert_eq!(
                b.failed(&os(libc::ECONNABORTED)),
                Next::Retry(Duration::ZERO)
            );
        }
        // The run is too long: wait, then allow another run.
        assert_eq!(
            b.failed(&os(libc::ECONNABORTED)),
            Next::Retry(Duration::from_millis(10))
        );
        assert_eq!(
            b.failed(&os(libc::ECONNABORTED)),
            Next::Retry(Duration::ZERO)
        );
    }

    #[test]
    fn a_broken_listener_or_an_unknown_error_goes_to_the_caller() {
        let mut b = AcceptBackoff::default();
        for errno in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK, libc::EOPNOTSUPP] {
            assert_eq!(b.failed(&os(errno)), Next::Fail, "errno {errno}");
        }
        assert_eq!(b.failed(&io::Error::other("runtime gone")), Next::Fail);
        assert_eq!(
            b.failed(&io::ErrorKind::ConnectionAborted.into()),
            Next::Retry(Duration::ZERO)
        );
    }
}
