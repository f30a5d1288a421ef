//! Opens many WebSocket connections from one thread and holds them, to
//! see what idle connections cost a server (`mio-echo-server`, say): each
//! connection exchanges one message, then all stay open (keepalive pings
//! answered by the core) until the time is up, then they close.
//!
//! `cargo run --release --example mio-hold -- ws://127.0.0.1:9002/ [CONNECTIONS [SECONDS]]`
//! (defaults: 10000 connections, 30 seconds). The client offers no
//! compression unless `TETHER_DEFLATE` is set.

use std::time::{Duration, Instant};

use tether::mio::{Driver, Event};
use tether::{ClientOptions, CloseCode, Message};

/// What `--help` prints.
const USAGE: &str = "\
Opens many connections from one thread and holds them, to see what idle
connections cost a server.

usage: cargo run --release --example mio-hold -- URL [CONNECTIONS [SECONDS]]

  URL           a ws:// echo server (mio-echo-server, say)
  CONNECTIONS   how many to open    (10000)
  SECONDS       how long to hold    (30)
  -h, --help    this help
Set TETHER_DEFLATE to offer compression.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tether_examples::help(USAGE);
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: mio-hold URL [CONNECTIONS [SECONDS]]")?;
    let count: usize = args.next().map_or(Ok(10_000), |n| n.parse())?;
    let hold = Duration::from_secs(args.next().map_or(Ok(30), |s| s.parse())?);

    let mut options = ClientOptions::default();
    if std::env::var_os("TETHER_DEFLATE").is_none() {
        options.deflate.clear();
    }
    let mut driver = Driver::new()?;
    let start = Instant::now();
    let (mut ids, mut echoed, mut failed, mut started) = (Vec::new(), 0, 0, 0);
    while echoed + failed < count {
        // At most 500 handshakes in flight, not to flood the accept backlog.
        while started < count && started < echoed + failed + 500 {
            driver.connect_with(&url, options.clone())?;
            started += 1;
        }
        driver.poll_with(
            Some(Duration::from_secs(1)),
            |conns, id, event| match event {
                Event::Open => {
                    ids.push(id);
                    let _ = conns.send(id, Message::text("hello"));
                }
                Event::Message(_) => echoed += 1,
                Event::Error(e) => {
                    failed += 1;
                    if failed <= 5 {
                        eprintln!("{id}: {e}");
                    }
                }
                _ => {}
            },
        )?;
    }
    println!(
        "{} connections open ({echoed} echoed, {failed} failed) after {:.1?}; holding them for {hold:?}",
        driver.len(),
        start.elapsed()
    );
    let until = Instant::now() + hold;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        driver.poll_with(Some(left), |_, _, _| {})?;
    }
    for id in ids {
        let _ = driver.close(id, CloseCode::NORMAL, "done");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !driver.is_empty() && Instant::now() < deadline {
        driver.poll_with(Some(Duration::from_secs(1)), |_, _, _| {})?;
    }
    println!("closed; {} left", driver.len());
    Ok(())
}
