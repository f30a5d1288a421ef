//! An echo server on one thread: one mio event loop serving every
//! connection (tens of thousands if the file descriptor limit allows; the
//! limit is raised to its maximum at start). It echoes every text and
//! binary message and prints how many connections it holds.
//!
//! `cargo run --release --example mio-echo-server [-- ADDR]` (default
//! `127.0.0.1:9002`; `127.0.0.1:0` picks a free port).

use std::time::{Duration, Instant};

use tether::mio::{Driver, Event};

/// What `--help` prints.
const USAGE: &str = "\
An echo server on one thread: one mio event loop for every connection.

usage: cargo run --release --example mio-echo-server [-- ADDR]

  ADDR        where to listen (default 127.0.0.1:9002; port 0 picks one)
  -h, --help  this help";

fn main() -> std::io::Result<()> {
    tether_examples::help(USAGE);
    let fd_limit = raise_fd_limit();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let mut driver = Driver::new()?;
    let local = driver.listen(addr.as_str())?;
    println!("mio-echo-server listening on ws://{local}/ (file descriptor limit {fd_limit})");

    let (mut echoed, mut reported) = (0u64, (0, 0));
    let mut last_report = Instant::now();
    loop {
        driver.poll_with(Some(Duration::from_secs(1)), |conns, id, event| {
            if let Event::Message(m) = event {
                echoed += 1;
                // Queued now; everything queued in one pass is written
                // with one vectored write per connection. It fails only
                // while the connection is closing.
                let _ = conns.send(id, m);
            }
        })?;
        if let Some(e) = driver.take_accept_error() {
            eprintln!("accept: {e} (retrying)");
        }
        if last_report.elapsed() >= Duration::from_secs(2) && reported != (driver.len(), echoed) {
            reported = (driver.len(), echoed);
            println!("{} connections, {echoed} messages echoed", driver.len());
            last_report = Instant::now();
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns it.
fn raise_fd_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}
