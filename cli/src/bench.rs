//! `tether bench`: binary messages to an echo server over several
//! connections with a window of messages in flight on each, timing every
//! echo. Bounded in time (at most an hour) and count; loopback only unless
//! asked; latency kept in a fixed-size histogram, so memory stays flat
//! however long it runs.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tether::proxy::ProxyConfig;
use tether::{ClientOptions, CloseCode, Config, Message};
use tokio::sync::{Notify, Semaphore};

use crate::args::BenchArgs;
use crate::exit;
use crate::output::{Output, Status};

const MAX_DURATION: Duration = Duration::from_secs(3600);
/// How long echoes may still come after sending stopped.
const DRAIN: Duration = Duration::from_secs(10);

/// Runs `tether bench`; returns the exit status.
pub async fn run(args: BenchArgs) -> u8 {
    let out = Output::new(false, crate::output::Encoding::Raw);
    if !args.allow_remote {
        if let Err(e) = loopback_only(&args.url).await {
            out.note(Status::Bad, &format!("tether bench: {e}"));
            return exit::USAGE;
        }
    }
    let tls = match crate::tls::client_config(&crate::tls::TlsFlags {
        cacert: args.cacert.as_deref(),
        cert: None,
        key: None,
        insecure: args.insecure,
    }) {
        Ok(t) => t,
        Err(e) => {
            out.note(Status::Bad, &format!("tether bench: {e}"));
            return exit::FAILURE;
        }
    };
    let mut options = ClientOptions::default()
        .with_config(Config::without_keepalive())
        .with_proxy(ProxyConfig::Direct)
        .with_deflate(if args.compress {
            vec![tether::DeflateConfig::default()]
        } else {
            Vec::new()
        });
    if let Some(tls) = tls {
        options = options.with_tls(tls);
    }
    let duration = args
        .duration
        .unwrap_or(if args.count.is_some() {
            MAX_DURATION
        } else {
            Duration::from_secs(10)
        })
        .min(MAX_DURATION);

    let mut sockets = Vec::new();
    for _ in 0..args.connections {
        match tether::tokio::connect_with(&args.url, options.clone()).await {
            Ok(ws) => sockets.push(ws),
            Err(e) => {
                out.note(Status::Bad, &format!("tether bench: cannot connect: {e}"));
                return exit::CONNECT;
            }
        }
    }
    let shared = Arc::new(Shared {
        budget: AtomicU64::new(args.count.unwrap_or(u64::MAX)),
        received: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let start = Instant::now();
    let deadline = start + duration;
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(progress(shared.clone(), start, args.size)));
    let mut tasks = tokio::task::JoinSet::new();
    for ws in sockets {
        let job = Job {
            shared: shared.clone(),
            start,
            deadline,
            size: args.size as usize,
            in_flight: args.in_flight as usize,
        };
        tasks.spawn(job.run(ws));
    }
    let mut latency = Histogram::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(h) => latency.merge(&h),
            Err(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let elapsed = start.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let messages = latency.count();
    let seconds = elapsed.as_secs_f64();
    let rate = messages as f64 / seconds;
    let mb = messages as f64 * f64::from(args.size) / 1e6 / seconds;
    let errors = shared.errors.load(Ordering::Relaxed);
    let [p50, p99, p999] = [0.5, 0.99, 0.999].map(|q| latency.quantile(q));
    if args.json {
        println!(
            "{}",
            json!({
                "url": args.url, "connections": args.connections, "in_flight": args.in_flight,
                "size": args.size, "compress": args.compress,
                "messages": messages, "seconds": seconds,
                "messages_per_sec": rate, "mb_per_sec": mb,
                "latency_us": {"p50": p50, "p99": p99, "p999": p999, "max": latency.max},
                "errors": errors,
            })
        );
    } else {
        println!(
            "{messages} messages of {} bytes in {seconds:.2}s over {} connection(s), {} in flight each",
            args.size, args.connections, args.in_flight
        );
        println!("{rate:.0} messages/s, {mb:.2} MB/s each way");
        println!(
            "latency p50 {} p99 {} p99.9 {} max {}",
            micros(p50),
            micros(p99),
            micros(p999),
            micros(latency.max)
        );
        if errors > 0 {
            println!("{errors} connection(s) failed");
        }
    }
    if messages == 0 || errors > 0 {
        exit::FAILURE
    } else {
        exit::OK
    }
}

fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// Refuses a target that resolves to anything but loopback addresses.
async fn loopback_only(url: &str) -> Result<(), String> {
    let request = tether::ClientRequest::from_url(url).map_err(|e| format!("{url:?}: {e}"))?;
    let authority: tether::http::uri::Authority = request
        .host
        .parse()
        .map_err(|_| format!("{url:?}: bad host"))?;
    let port = authority
        .port_u16()
        .unwrap_or(if request.secure { 443 } else { 80 });
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host}: {e}"))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "{host} is not a loopback address; a load test of another machine needs --allow-remote"
        ));
    }
    Ok(())
}

struct Shared {
    /// Messages left to send (the --count budget).
    budget: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

struct Job {
    shared: Arc<Shared>,
    start: Instant,
    deadline: Instant,
    size: usize,
    in_flight: usize,
}

impl Job {
    /// One connection: a writer keeping `in_flight` messages out and a
    /// reader timing their echoes, until the time or the budget is spent.
    async fn run(self, ws: tether::tokio::WebSocket) -> Histogram {
        let (mut tx, mut rx) = ws.split();
        let window = Semaphore::new(self.in_flight);
        let sent = AtomicU64::new(0);
        let writer_done = AtomicBool::new(false);
        let finished = Notify::new();
        let mut failed = false;
        let writer = async {
            let mut payload = vec![0x5a; self.size];
            while Instant::now() < self.deadline {
                let Ok(permit) = window.acquire().await else {
                    break;
                };
                permit.forget();
                let take =
                    self.shared
                        .budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                if take.is_err() || Instant::now() >= self.deadline {
                    break;
                }
                let at = self.start.elapsed().as_nanos() as u64;
                payload[..8].copy_from_slice(&at.to_le_bytes());
                if tx.send(Message::binary(payload.clone())).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            writer_done.store(true, Ordering::Release);
            finished.notify_one();
        };
        let reader = async {
            let mut latency = Histogram::new();
            let mut received = 0u64;
            let give_up = tokio::time::Instant::from_std(self.deadline + DRAIN);
            loop {
                if writer_done.load(Ordering::Acquire) && received >= sent.load(Ordering::Relaxed) {
                    break;
                }
                tokio::select! {
                    item = rx.next() => match item {
                        Some(Ok(Message::Binary(b))) if b.len() >= 8 => {
                            let at = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
                            let now = self.start.elapsed().as_nanos() as u64;
                            latency.record(now.saturating_sub(at) / 1000);
                            received += 1;
                            self.shared.received.fetch_add(1, Ordering::Relaxed);
                            window.add_permits(1);
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        // Not an echo of ours, a close, an error, the end.
                        _ => { failed = true; break; }
                    },
                    _ = finished.notified() => {}
                    _ = tokio::time::sleep_until(give_up) => { failed = true; break; }
                }
            }
            // Unblock a writer waiting for the window.
            window.close();
            latency
        };
        let ((), latency) = tokio::join!(writer, reader);
        if failed {
            self.shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), tx.close(CloseCode::NORMAL, "")).await;
        latency
    }
}

/// The live line on a terminal's stderr.
async fn progress(shared: Arc<Shared>, start: Instant, size: u32) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let n = shared.received.load(Ordering::Relaxed);
        let s = start.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r\x1b[K{s:6.1}s  {n} messages  {:.0} msg/s  {:.2} MB/s",
            n as f64 / s,
            n as f64 * f64::from(size) / 1e6 / s
        );
    }
}

/// Log-linear buckets: exact below 64 µs, then 32 per power of two
/// (about 3% resolution), 1,920 counters whatever the run's length.
struct Histogram {
    counts: Vec<u64>,
    max: u64,
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

impl Histogram {
    fn new() -> Self {
        Self {
            counts: vec![0; (2 * SUB + (64 - SUB_BITS as u64 - 1) * SUB) as usize],
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 2 * SUB {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - SUB_BITS;
        (2 * SUB + u64::from(shift - 1) * SUB + ((v >> shift) - SUB)) as usize
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < 2 * SUB {
            return i;
        }
        let shift = (i - 2 * SUB) / SUB + 1;
        let m = (i - 2 * SUB) % SUB + SUB;
        (m << shift) + (1 << (shift - 1))
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max = self.max.max(other.max);
    }

    fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn histogram_buckets_are_close() {
        for v in [0, 1, 63, 64, 65, 100, 1000, 12_345, 1 << 40, u64::MAX >> 1] {
            let i = Histogram::index(v);
            let mid = Histogram::value(i);
            let err = (mid as f64 - v as f64).abs() / (v.max(1) as f64);
            assert!(err <= 0.04, "{v} -> bucket {i} value {mid}");
        }
        let mut h = Histogram::new();
        for v in 1..=1000 {
            h.record(v);
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile(0.5);
        assert!((485..=515).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 1000);
    }
}
