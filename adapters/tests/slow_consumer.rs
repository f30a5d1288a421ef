//! A producer far faster than its consumer: a server pushes 2 GiB to a
//! client that sleeps between reads. Backpressure must slow the producer
//! down instead of buffering: its sends wait, `buffered_amount` never
//! exceeds the high-water mark plus one message, its elapsed time follows
//! the reader's pace, and each side's peak resident memory stays under a
//! stated bound ([`WRITER_BOUND_KIB`], [`READER_BOUND_KIB`]). Nothing may be lost or reordered: every message
//! carries its sequence number, and both sides compute a CRC-32 of the
//! whole stream.
//!
//! The data goes as 2048 binary messages of 1 MiB rather than one streamed
//! message: a sequence number per message finds a drop or a reordering at
//! once, the `Sink`'s `poll_ready` is the backpressure point most
//! applications meet, and `tests/streaming.rs` already covers the streamed
//! path.
//!
//! Each side runs in a process of its own, so that its memory is measured
//! alone (`VmHWM` from `/proc/self/status`): the test re-executes its own
//! binary (`--exact NAME --nocapture`) with `TETHER_SLOW_ROLE` set, and the
//! children report on stdout.

#![cfg(any(feature = "smol", feature = "tokio"))]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::{Bytes, ClientOptions, CloseCode, Config, Message, ServerOptions};

mod runtimes;
use runtimes::Rt;

const MIB: usize = 1 << 20;
/// 2 GiB in 1 MiB messages.
const MESSAGES: u64 = 2048;
/// The reader sleeps this long after each message: at most 100 MiB/s,
/// well below what the writer can produce.
const READ_PAUSE: Duration = Duration::from_millis(10);
/// Messages the writer may be ahead of the reader when it finishes: its
/// own queue (high water + one message), the kernel's socket buffers on
/// both ends (a few MiB on loopback), the reader's inbound queue. Generous.
const SLACK: u64 = 64;
/// Peak resident memory allowed to the writer: its 16 MiB of source
/// blocks, a queue of about 2 MiB and the runtime (about 24 MiB measured).
/// A writer that buffered the stream would pass it within the first 3% of
/// the data.
const WRITER_BOUND_KIB: u64 = 64 << 10;
/// The same for the reader: its inbound queue of about 1 MiB, a message
/// being assembled and the runtime (about 6 MiB measured).
const READER_BOUND_KIB: u64 = 32 << 10;
/// Distinct 1 MiB blocks the messages are cut from.
const BLOCKS: usize = 16;

const ROLE: &str = "TETHER_SLOW_ROLE";
const ADDR: &str = "TETHER_SLOW_ADDR";
/// Prefix of the lines a child reports on.
const MARK: &str = "SLOW_CONSUMER";

/// Peak and current resident memory of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in /proc/self/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// 16 MiB of pseudo-random bytes (xorshift), the same in every process.
fn blocks() -> Vec<Bytes> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..BLOCKS)
        .map(|_| {
            let mut block = Vec::with_capacity(MIB);
            for _ in 0..MIB / 8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                block.extend_from_slice(&x.to_le_bytes());
            }
            Bytes::from(block)
        })
        .collect()
}

/// Message `seq`: its sequence number, then the rest of a block.
fn message(blocks: &[Bytes], seq: u64) -> Bytes {
    let block = &blocks[(seq as usize * 7) % BLOCKS];
    let mut m = Vec::with_capacity(MIB);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&block[8..]);
    Bytes::from(m)
}

/// The writer (a server): pushes every message as fast as the connection
/// lets it, recording the largest `buffered_amount` and the time spent
/// waiting for room.
async fn writer<T: Rt>() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("{MARK} addr={}", listener.local_addr().expect("addr"));
    let blocks = blocks();
    let (tcp, _) = listener.accept().expect("accept");
    // Default limits and keepalive; random bytes do not compress, so
    // deflate would only burn CPU.
    let options = ServerOptions::default().with_config(Config::default());
    #[cfg(feature = "deflate")]
    let options = options.with_deflate(None);
    let mut ws = T::accept(tcp, options).await;
    let start = Instant::now();
    let (mut crc, mut max_buffered, mut waited) = (0u32, 0usize, Duration::ZERO);
    for seq in 0..MESSAGES {
        let m = message(&blocks, seq);
        crc = zlib_rs::crc32::crc32(crc, &m);
        let before = Instant::now();
        // feed = wait in poll_ready for room, then queue (no flush).
        ws.feed(Message::Binary(m)).await.expect("writer: feed");
        waited += before.elapsed();
        max_buffered = max_buffered.max(ws.buffered_amount());
    }
    // Timed up to the last message accepted: a writer that queued
    // everything at once would get here long before the reader is done
    // (and wait only in the flush below).
    let elapsed = start.elapsed();
    ws.flush().await.expect("writer: flush");
    ws.close(CloseCode::NORMAL, "done")
        .await
        .expect("writer: close");
    let (hwm, rss) = memory_kib();
    println!(
        "{MARK} sent={MESSAGES} crc={crc:08x} max_buffered={max_buffered} waited_ms={} \
         elapsed_ms={} vmhwm_kib={hwm} vmrss_kib={rss}",
        waited.as_millis(),
        elapsed.as_millis()
    );
}

/// The reader (a client): takes one message, checks it, sleeps.
async fn reader<T: Rt>() {
    let addr = std::env::var(ADDR).expect("reader: address");
    let options = ClientOptions::default().with_config(Config::default());
    #[cfg(feature = "deflate")]
    let options = options.with_deflate(Vec::new());
    let mut ws = T::connect(&format!("ws://{addr}/"), options).await;
    let start = Instant::now();
    let (mut crc, mut received) = (0u32, 0u64);
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(m))) => {
                assert_eq!(
                    m.len(),
                    MIB,
                    "reader: message {received} has the wrong size"
                );
                let seq = u64::from_le_bytes(m[..8].try_into().expect("8 bytes"));
                assert_eq!(seq, received, "reader: message lost or out of order");
                crc = zlib_rs::crc32::crc32(crc, &m);
                received += 1;
                T::sleep(READ_PAUSE).await;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_))) | None => break,
            other => panic!("reader: after {received} messages: {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let (hwm, rss) = memory_kib();
    println!(
        "{MARK} received={received} crc={crc:08x} elapsed_ms={} vmhwm_kib={hwm} vmrss_kib={rss}",
        elapsed.as_millis()
    );
}

/// Kills the child if the test fails before it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_role(test: &str, role: &str, addr: Option<&str>) -> (ChildGuard, BufReader<ChildStdout>) {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(a) = addr {
        cmd.env(ADDR, a);
    }
    let mut child = cmd.spawn().expect("re-run the test binary");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    (ChildGuard(child), out)
}

/// The next report line of a child, as `key=value` pairs.
fn report(out: &mut BufReader<ChildStdout>, who: &str) -> Vec<(String, String)> {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).expect("child stdout");
        assert!(n > 0, "{who}: the process ended without a report");
        // libtest may have written "test NAME ... " on the same line.
        if let Some(at) = line.find(MARK) {
            return line[at + MARK.len()..]
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        }
    }
}

fn get<'a>(r: &'a [(String, String)], key: &str) -> &'a str {
    r.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {r:?}"))
}

fn num(r: &[(String, String)], key: &str) -> u64 {
    get(r, key).parse().expect("a number")
}

/// Runs the role this process was started for, or, in the test process
/// itself, both roles as children and checks what they report.
fn slow_consumer<T: Rt>(test: &str) {
    match std::env::var(ROLE).as_deref() {
        Ok("writer") => return T::block_on(writer::<T>()),
        Ok("reader") => return T::block_on(reader::<T>()),
        _ => {}
    }
    let (mut w, mut w_out) = spawn_role(test, "writer", None);
    let addr = get(&report(&mut w_out, "writer"), "addr").to_owned();
    let (mut r, mut r_out) = spawn_role(test, "reader", Some(&addr));
    let read = report(&mut r_out, "reader");
    let wrote = report(&mut w_out, "writer");
    for (child, who) in [(&mut w.0, "writer"), (&mut r.0, "reader")] {
        let status = child.wait().expect("wait");
        assert!(status.success(), "{test} {who}: {status}");
    }

    let high_water = Config::default().write_high_water as u64;
    let (max_buffered, waited, w_elapsed) = (
        num(&wrote, "max_buffered"),
        num(&wrote, "waited_ms"),
        num(&wrote, "elapsed_ms"),
    );
    eprintln!(
        "{test}: writer queued {} x 1 MiB in {w_elapsed} ms, {waited} ms of it waiting for room; \
         max buffered {max_buffered} B; VmHWM {} KiB, VmRSS {} KiB at the end",
        num(&wrote, "sent"),
        num(&wrote, "vmhwm_kib"),
        num(&wrote, "vmrss_kib"),
    );
    eprintln!(
        "{test}: reader took {} messages in {} ms; VmHWM {} KiB, VmRSS {} KiB at the end",
        num(&read, "received"),
        num(&read, "elapsed_ms"),
        num(&read, "vmhwm_kib"),
        num(&read, "vmrss_kib"),
    );

    assert_eq!(num(&read, "received"), MESSAGES, "{test}: messages lost");
    assert_eq!(
        get(&read, "crc"),
        get(&wrote, "crc"),
        "{test}: the content differs"
    );
    // poll_ready lets a message in while at most high water is queued.
    let bound = high_water + MIB as u64 + 4096;
    assert!(
        max_buffered <= bound,
        "{test}: {max_buffered} bytes queued (bound {bound}): the writer did not wait"
    );
    // The writer cannot queue its last message more than SLACK messages
    // ahead of a reader that sleeps READ_PAUSE after each one.
    let paced = (MESSAGES - SLACK) * READ_PAUSE.as_millis() as u64;
    assert!(
        w_elapsed >= paced,
        "{test}: the writer queued everything in {w_elapsed} ms, before the reader could have \
         taken its data ({paced} ms): it was not held back"
    );
    // Per message the writer only copies and checksums 1 MiB, a small
    // fraction of the reader's 10 ms pause: most of its time is waiting.
    assert!(
        waited * 2 >= w_elapsed,
        "{test}: the writer waited {waited} of {w_elapsed} ms: the reader did not set the pace"
    );
    for (who, r, bound) in [
        ("writer", &wrote, WRITER_BOUND_KIB),
        ("reader", &read, READER_BOUND_KIB),
    ] {
        let hwm = num(r, "vmhwm_kib");
        assert!(
            hwm <= bound,
            "{test} {who}: peak resident {hwm} KiB, bound {bound} KiB"
        );
    }
}

#[cfg(feature = "smol")]
#[test]
fn slow_consumer_on_smol() {
    slow_consumer::<runtimes::SmolRt>("slow_consumer_on_smol");
}

#[cfg(feature = "tokio")]
#[test]
fn slow_consumer_on_tokio() {
    slow_consumer::<runtimes::TokioRt>("slow_consumer_on_tokio");
}
