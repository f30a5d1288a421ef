//! The connection-rate load: `connections` clients, each repeating one
//! whole connection life as fast as the server lets it: TCP connect, the
//! opening handshake, one message echoed, the close handshake (a close
//! frame, then reading until the server ends TCP, as RFC 6455 has a
//! client do; against raw TCP the client ends first). Clients connect
//! from 127.0.0.1 to 127.0.0.8 in turn so that eight addresses'
//! ephemeral ports share the churn.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::load::{connect_from, read_some, with_runtime, LoadConfig, Stream};
use crate::procfs;
use crate::record::Record;
use crate::wire::{self, FrameCounter};

/// Loopback source addresses the clients use in turn.
const SOURCES: u8 = 8;

#[derive(Default)]
struct Counts {
    done: Cell<u64>,
    measuring: Cell<bool>,
    /// Whole connection lives in nanoseconds, measured window only.
    latencies: RefCell<Vec<u32>>,
    error: RefCell<Option<String>>,
}

pub fn run_connect_rate(cfg: &LoadConfig) -> io::Result<Record> {
    with_runtime(async {
        let counts = Rc::new(Counts::default());
        for k in 0..cfg.connections {
            let (counts, cfg) = (counts.clone(), cfg.clone());
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (k % SOURCES as usize) as u8));
            tokio::task::spawn_local(async move {
                loop {
                    let start = Instant::now();
                    if let Err(e) = one_life(&cfg, source).await {
                        counts.error.borrow_mut().get_or_insert(e.to_string());
                        return;
                    }
                    counts.done.set(counts.done.get() + 1);
                    if counts.measuring.get() {
                        let ns = start.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                        counts.latencies.borrow_mut().push(ns);
                    }
                }
            });
        }
        tokio::time::sleep(cfg.warmup).await;
        let me = std::process::id();
        let (t0, n0, cpu0, own0, all0) = (
            Instant::now(),
            counts.done.get(),
            procfs::cpu_ns(cfg.server_pid)?,
            procfs::cpu_ns(me)?,
            procfs::machine_task_ns()?,
        );
        counts.measuring.set(true);
        tokio::time::sleep(cfg.duration).await;
        counts.measuring.set(false);
        let (t1, n1, cpu1, own1, all1) = (
            Instant::now(),
            counts.done.get(),
            procfs::cpu_ns(cfg.server_pid)?,
            procfs::cpu_ns(me)?,
            procfs::machine_task_ns()?,
        );
        let secs = (t1 - t0).as_secs_f64();
        let lives = n1 - n0;
        let cpu_ns = cpu1.saturating_sub(cpu0);
        let own_ns = own1.saturating_sub(own0);
        let others_ns = all1.saturating_sub(all0).saturating_sub(cpu_ns + own_ns);
        let mut lat = counts.latencies.take();
        lat.sort_unstable();
        let pct = |q: f64| {
            let last = lat.len().checked_sub(1)?;
            Some(f64::from(lat[((last as f64) * q).round() as usize]) / 1e3)
        };
        let mut rec = Record::new()
            .num("messages", lives as f64)
            .num("seconds", secs)
            // Opening handshakes (whole connection lives) per second.
            .num("msgs_per_s", lives as f64 / secs)
            .num("server_cpu_ns", cpu_ns as f64)
            .num("server_cpu_util", cpu_ns as f64 / 1e9 / secs)
            .num("cpu_ns_per_msg", cpu_ns as f64 / lives as f64)
            .num("load_cpu_util", own_ns as f64 / 1e9 / secs)
            .num("others_cpu_util", others_ns as f64 / 1e9 / secs)
            .opt("p50_us", pct(0.50))
            .opt("p99_us", pct(0.99));
        if lives == 0 {
            rec = rec.text("error", "no connection completed in the measured window");
        }
        if let Some(e) = counts.error.take() {
            rec = rec.text("error", &e);
        }
        Ok(rec)
    })
}

/// One connection's life; an error means the server misbehaved (or the
/// machine ran out of ports or descriptors), and is reported.
async fn one_life(cfg: &LoadConfig, source: IpAddr) -> io::Result<()> {
    let Stream::Tcp(mut tcp) = connect_from(cfg, Some(source)).await? else {
        unreachable!("connect-rate runs over plain TCP")
    };
    tcp.write_all(&wire::masked_binary_frame(cfg.size)).await?;
    let mut counter = FrameCounter::default();
    let mut buf = [0u8; 512];
    while read_some(&mut tcp, &mut buf, &mut counter).await?.0 == 0 {}
    tcp.write_all(&wire::masked_close_frame()).await?;
    if cfg.raw {
        // Raw TCP echoes until the client ends: end first.
        tcp.shutdown().await?;
    }
    // The server's close frame (from raw TCP, ours echoed), then its FIN:
    // a WebSocket server ends TCP first (RFC 6455 section 7.1.1), so the
    // TIME_WAIT is its, and the client's ports are free again at once.
    while tcp.read(&mut buf).await? > 0 {}
    Ok(())
}
