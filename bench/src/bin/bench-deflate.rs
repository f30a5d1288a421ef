//! `bench-deflate [--quick] [--connections N]`: permessage-deflate on a
//! corpus of realistic JSON records, through two tether-core
//! `Connection`s (client sends, server receives; no sockets), for several
//! compressor settings and with compression off:
//!
//! - ratio: JSON bytes / bytes on the wire (frame headers included);
//! - compress MB/s: JSON bytes per second through `send` + `poll_transmit`
//!   on the client (deflate, framing, masking);
//! - inflate MB/s: JSON bytes per second through `handle_read` (16 KiB
//!   reads, as from a socket) + `poll_event` on the server (level 1
//!   compresses with tether's own encoder, other levels with zlib-rs,
//!   which inflates in every row);
//! - memory per connection: N server connections that have each received
//!   one compressed record (so the decompressor exists) and then sent one
//!   back (the compressor too), counted two ways: heap bytes still allocated
//!   (a counting global allocator), after receiving and after sending, and
//!   resident memory (VmRSS) growth at the end, all divided by N. Each
//!   setting is measured in a fresh child process (this binary again), so
//!   memory freed by an earlier setting cannot hide the growth.
//!
//! Two workloads: one record (~200 bytes) per message, and batches of 100
//! records (~20 KiB) per message. The corpus is generated from a fixed seed,
//! so every run compresses the same bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::IoSlice;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use tether::core::deflate::{client_accept, client_offer, parse_extensions, server_accept};
use tether::core::{
    Bytes, Config, Connection, DeflateConfig, DeflateParams, Event, Message, Role, Xoshiro256,
};
use tether_bench::corpus::records;

const USAGE: &str = "usage: bench-deflate [--quick] [--connections N]";

/// Heap bytes currently allocated by the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One row of the table: compression off, or these settings on both ends.
struct Setting {
    name: String,
    deflate: Option<DeflateConfig>,
}

fn setting(window: u8, mem: u8, level: u8, no_context_takeover: bool) -> Setting {
    // Level 1 runs on tether's own encoder (which ignores the memory
    // level), other levels on zlib-rs.
    let mut name = if level == 1 {
        format!("w{window} l1 tether")
    } else {
        format!("w{window} m{mem} l{level} zlib-rs")
    };
    if no_context_takeover {
        name.push_str(" no-ctx");
    }
    Setting {
        name,
        deflate: Some(
            DeflateConfig::default()
                .with_level(level)
                .with_mem_level(mem)
                .with_max_window_bits(window)
                .with_no_context_takeover(no_context_takeover)
                .with_peer_no_context_takeover(no_context_takeover),
        ),
    }
}

fn settings() -> Vec<Setting> {
    let mut out = vec![Setting {
        name: "off".into(),
        deflate: None,
    }];
    out.extend([
        setting(15, 8, 6, false), // zlib's defaults
        setting(15, 8, 1, false),
        setting(15, 8, 2, false),
        setting(13, 7, 1, false),
        setting(12, 6, 1, false), // DeflateConfig::default()
        setting(12, 6, 2, false),
        setting(12, 6, 3, false),
        setting(12, 6, 6, false),
        setting(11, 5, 1, false),
        setting(10, 4, 1, false),
        setting(9, 1, 1, false),
        setting(12, 6, 1, true),
    ]);
    out
}

/// The messages of a workload: single records, or JSON arrays of `per`.
fn workload(records: &[String], per: usize) -> Vec<Bytes> {
    if per == 1 {
        return records.iter().map(|r| Bytes::from(r.clone())).collect();
    }
    records
        .chunks(per)
        .map(|c| Bytes::from(format!("[{}]", c.join(","))))
        .collect()
}

// ---- connections ----

fn negotiate(cfg: &DeflateConfig) -> (DeflateParams, DeflateParams) {
    let offer = client_offer(std::slice::from_ref(cfg));
    let (sp, response) =
        server_accept(cfg, &parse_extensions([offer.as_str()])).expect("server accepts");
    let item = &parse_extensions([response.as_str()])[0];
    let cp = client_accept(std::slice::from_ref(cfg), item).expect("client accepts");
    (cp, sp)
}

fn config() -> Config {
    Config::without_keepalive()
        .with_max_message_size(64 << 20)
        .with_max_inbound_bytes(64 << 20)
}

/// A client and a server connection with `setting`.
fn pair(setting: &Setting, now: Instant) -> (Connection, Connection) {
    let c = Connection::new(
        Role::Client,
        config(),
        Box::new(Xoshiro256::from_seed(1)),
        now,
    );
    let s = Connection::new(
        Role::Server,
        config(),
        Box::new(Xoshiro256::from_seed(2)),
        now,
    );
    match &setting.deflate {
        None => (c, s),
        Some(cfg) => {
            let (cp, sp) = negotiate(cfg);
            (c.with_deflate(Some(cp)), s.with_deflate(Some(sp)))
        }
    }
}

/// Moves everything queued on `conn` into `out`.
fn drain(conn: &mut Connection, out: &mut Vec<u8>) {
    loop {
        let mut iov = [IoSlice::new(&[]); 64];
        let n = conn.poll_transmit(&mut iov);
        if n == 0 {
            return;
        }
        let before = out.len();
        for s in &iov[..n] {
            out.extend_from_slice(s);
        }
        let written = out.len() - before;
        conn.advance_transmit(written);
    }
}

struct Throughput {
    ratio: f64,
    compress_mbs: f64,
    inflate_mbs: f64,
}

/// Best of `rounds` runs of the whole workload, each on fresh connections.
fn throughput(setting: &Setting, messages: &[Bytes], rounds: usize) -> Throughput {
    let raw: usize = messages.iter().map(Bytes::len).sum();
    let mut best_send = Duration::MAX;
    let mut best_recv = Duration::MAX;
    let mut wire_len = 0;
    for _ in 0..rounds {
        let now = Instant::now();
        let (mut client, mut server) = pair(setting, now);
        let mut wire = Vec::with_capacity(raw + raw / 8);
        let t = Instant::now();
        for m in messages {
            client
                .send(Message::Text(
                    tether::core::Text::from_utf8(m.clone()).expect("utf-8"),
                ))
                .unwrap();
            drain(&mut client, &mut wire);
        }
        best_send = best_send.min(t.elapsed());
        wire_len = wire.len();

        let mut received = 0usize;
        let t = Instant::now();
        for piece in wire.chunks(16 << 10) {
            server.handle_read(piece, now);
            while let Some(ev) = server.poll_event() {
                match ev {
                    Event::Message(m) => received += black_box(m).len(),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        best_recv = best_recv.min(t.elapsed());
        assert_eq!(
            received, raw,
            "{}: not everything came through",
            setting.name
        );
    }
    let mbs = |d: Duration| raw as f64 / d.as_secs_f64() / 1e6;
    Throughput {
        ratio: raw as f64 / wire_len as f64,
        compress_mbs: mbs(best_send),
        inflate_mbs: mbs(best_recv),
    }
}

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kib| kib * 1024)
}

struct PerConnection {
    /// Heap per connection once it has received one message.
    heap_recv: f64,
    /// Heap per connection once it has also sent one.
    heap: f64,
    /// Resident memory growth per connection at the end.
    rss: f64,
}

/// Memory of `n` server connections that each received one record and
/// sent one back (so both the decompressor and the compressor exist, if
/// they are kept between messages).
fn per_connection(setting: &Setting, record: &Bytes, n: usize) -> PerConnection {
    let now = Instant::now();
    // The client's first message is the same bytes for every connection.
    let (mut client, _) = pair(setting, now);
    client
        .send(Message::Text(
            tether::core::Text::from_utf8(record.clone()).unwrap(),
        ))
        .unwrap();
    let mut first = Vec::new();
    drain(&mut client, &mut first);

    let mut sink = Vec::with_capacity(64 << 10);
    let heap_before = LIVE.load(Ordering::Relaxed);
    let rss_before = rss_bytes();
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        let (_, mut s) = pair(setting, now);
        s.handle_read(&first, now);
        while let Some(ev) = s.poll_event() {
            assert!(matches!(ev, Event::Message(_)), "{ev:?}");
        }
        servers.push(s);
    }
    let heap_recv = (LIVE.load(Ordering::Relaxed) - heap_before) as f64 / n as f64;
    for (i, s) in servers.iter_mut().enumerate() {
        s.send(Message::Text(
            tether::core::Text::from_utf8(record.clone()).unwrap(),
        ))
        .unwrap();
        sink.clear();
        drain(s, &mut sink);
        black_box(i);
    }
    let heap = (LIVE.load(Ordering::Relaxed) - heap_before) as f64 / n as f64;
    let rss = rss_bytes().saturating_sub(rss_before) as f64 / n as f64;
    drop(servers);
    PerConnection {
        heap_recv,
        heap,
        rss,
    }
}

/// Runs `per_connection` for setting `index` in a child process.
fn per_connection_in_child(index: usize, n: usize) -> PerConnection {
    let out = std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--memory-child", &index.to_string(), &n.to_string()])
        .output()
        .expect("run the memory child");
    assert!(out.status.success(), "memory child failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|x| x.parse().expect("number"))
        .collect();
    PerConnection {
        heap_recv: v[0],
        heap: v[1],
        rss: v[2],
    }
}

fn main() {
    let mut quick = false;
    let mut connections = 1000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--connections" => {
                connections = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| die("--connections needs a positive number"))
            }
            "--memory-child" => {
                let mut num = || args.next().and_then(|v| v.parse().ok()).expect("number");
                let (index, n): (usize, usize) = (num(), num());
                let corpus = records(1);
                let m = per_connection(&settings()[index], &workload(&corpus, 1)[0], n);
                println!("{} {} {}", m.heap_recv, m.heap, m.rss);
                return;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => die(&format!("unknown argument {other}")),
        }
    }
    let (count, rounds) = if quick { (2_000, 1) } else { (20_000, 5) };
    if quick {
        connections = connections.min(200);
    }
    let corpus = records(count);
    let single = workload(&corpus, 1);
    let batches = workload(&corpus, 100);
    let raw: usize = single.iter().map(Bytes::len).sum();
    println!(
        "corpus: {count} JSON records, {raw} bytes ({:.0} bytes per record); \
         {} batch messages of 100 records; {connections} connections for memory; \
         best of {rounds} round(s)\n",
        raw as f64 / count as f64,
        batches.len(),
    );
    println!(
        "| setting | records: ratio | compress MB/s | inflate MB/s | batches: ratio | compress MB/s | inflate MB/s | heap/conn KiB after recv | after recv+send | RSS/conn KiB |"
    );
    println!("|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, s) in settings().iter().enumerate() {
        let r = throughput(s, &single, rounds);
        let b = throughput(s, &batches, rounds);
        let m = per_connection_in_child(i, connections);
        println!(
            "| {} | {:.2} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} |",
            s.name,
            r.ratio,
            r.compress_mbs,
            r.inflate_mbs,
            b.ratio,
            b.compress_mbs,
            b.inflate_mbs,
            m.heap_recv / 1024.0,
            m.heap / 1024.0,
            m.rss / 1024.0,
        );
    }
}

fn die(msg: &str) -> ! {
    eprintln!("error: {msg}\n{USAGE}");
    std::process::exit(2);
}
