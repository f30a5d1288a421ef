//! The Markdown report.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::record::Record;

use super::scenarios::{human_size, Kind, Scenario};
use super::stats::{self, Summary, OTHER_LIBS, OTHER_TLS_LIBS, RAW_TLS};

type Summaries = BTreeMap<(String, String), Summary>;

/// How each server echoes: the API and settings that the numbers are for.
const SETUP: &str = "\
- **tether-smol**, **tether-tokio**: `tether::{smol,tokio}::Listener` (the smol one \
hands out `tether::smol::TcpStream`, async-io's `Async` without async-net's shared \
wrapper), `tether::{smol,tokio}::accept_with`, `Config::without_keepalive()` (64 MiB limits), one `ServerOptions` shared by all \
connections; the README's echo: `ws.next_batch(&mut batch)` (every message already \
read, one pass through the driver), then `ws.send_batch(&mut batch)` (queued at once, \
one flush). permessage-deflate with tether's defaults.
- **tether-smol-split**: the Stream/Sink way: `split()`, then \
`tx.send_all(&mut rx.filter(data))`, which queues every message already received and \
flushes once when none is ready (a lock per `poll_next` and per `start_send`).
- **tether-mio**: `tether::mio::Driver::listen_with` with the same options, one thread, \
no futures: `conns.send(id, m)` for each `Event::Message` in `poll_with`'s callback; \
everything queued in a pass leaves in one vectored write per connection. \
**tether-mio-chunks** (16 MiB only): `deliver_chunks` on, each `Event::Chunk` echoed \
with `send_chunk` as it arrives. **tether-mio-keepalive** (idle only): keepalive on, as below.
- **tether-smol-naive**: `while let Some(m) = ws.next().await { ws.send(m).await }`.
- **tether-smol-keepalive**, **tether-tokio-keepalive** (idle scenario only): as \
tether-smol and tether-tokio with keepalive on, a ping every 2 s (the load generator \
answers with pongs). The other libraries have no built-in keepalive.
- **tokio-tungstenite** 0.30: `accept_async_with_config` (64 MiB limits), `feed` every \
message already received (`now_or_never`), `flush` once when none is ready: the \
batching `send_all` does, on the unsplit stream.
- **fastwebsockets** 0.10: hyper 1 upgrade, then the stream behind a 64 KiB write buffer \
written out when a read would block (the library has none of its own), \
`FragmentCollector`, `write_frame` per message into the buffer. \
**fastwebsockets-unbuffered**: its echo example as written, one write per message.
- **tokio-websockets** 0.13: `ServerBuilder::accept`, the same `feed`/`flush` loop; its \
stream flushes queued frames whenever it is polled (and a write buffer under it would \
be flushed with them), so it writes once per message anyway.
- **soketto** 0.8 on smol: buffered reader and writer, `receive_data`, send and `flush` \
per message, as its example does (its receive is not cancel-safe, so no `now_or_never`); \
permessage-deflate with its defaults.
- **python-websockets** (the permessage-deflate scenarios only): Python `websockets` \
(PyPI, pinned) from a venv in `target/bench-venv`, `bench/servers/python_echo.py`: \
`websockets.asyncio.server.serve` with its default settings (permessage-deflate with \
its own parameters, keepalive pings every 20 s), `async for message in ws: await \
ws.send(message)`; one process, one asyncio event loop.
- **raw-tcp**: tokio, one 64 KiB buffer shared by all connections, read and write back.
- Behind an axum route (the `axum-` scenarios, and only they): **tether-axum**: axum 0.8 \
router, `tether::axum::WebSocketUpgrade` with the options above, the README's echo; \
**axum-ws**: the same router shape with axum's own `extract::ws` (tokio-tungstenite \
underneath, 64 MiB limits) and the tokio-tungstenite `feed`/`flush` loop. Both served by \
hyper 1's HTTP/1.1 connection with upgrades; each `on_upgrade` spawns the WebSocket \
with `tokio::spawn`. *best lib* there is axum-ws, and the second reference is \
**tether-tokio** (the same echo with no axum or hyper): in the idle table, \
the difference to it is the memory the hyper path adds per connection.
- Over TLS (the `tls-` scenarios, and only they): **tether-smol-tls**, **tether-tokio-tls**, **tether-mio-tls**: `tether::{smol,tokio}::accept_tls_with` and the mio `listen_tls_with`, with a `tether::tls::server_config`, the options and echo above. **tungstenite-tls**: tokio-rustls 0.26 `TlsAcceptor`, then the tokio-tungstenite server above on the TLS stream. **raw-tls**: tokio-rustls, the raw-tcp echo through the TLS stream (flushed after each write). All use rustls 0.23 with its ring provider and its defaults, one self-signed ECDSA P-256 certificate made at start-up; the load generator's client is rustls too, so its own encryption bounds message rates at small sizes (read the server CPU per message).

- **broadcast** (the `broadcast` scenario): every message any connection sends goes to \
every connection. tether-smol/-tokio: a task per connection subscribed to one \
`tokio::sync::broadcast` channel of `PreparedMessage`s (framed once), `feed_prepared` \
every message in the channel, `flush` once; tether-mio: `send_prepared` to every open \
connection from the callback. tokio-tungstenite, tokio-websockets: the same channel of \
their `Message` (shared `Bytes` payload, framed per connection), split stream, \
`feed`/`flush`. fastwebsockets: split (`unstable-split`) into a reading and a writing \
task, the writer behind a 64 KiB `BufWriter` flushed when the channel is empty.

- **connect-rate**: the echo servers above, unchanged; each client connects, upgrades, \
has one 32 B message echoed, sends a close frame and reads until the server ends TCP \
(the server closes first, as RFC 6455 has it), then starts over. connections/s counts those lives; raw-tcp \
echoes the upgrade request and the close frame instead of answering them.

Every server runs on one thread (tokio current-thread runtime with its tasks \
`unconstrained`, or smol's `LocalExecutor` under `block_on`) with TCP_NODELAY. Messages \
are binary except in the permessage-deflate scenarios (compressed JSON text).
";

/// The whole report: the echo scenarios, round trips, idle memory and the
/// microbenchmarks.
pub fn markdown(
    header: &str,
    scenarios: &[Scenario],
    impls: &[&str],
    summaries: &Summaries,
    micro: Option<&[Record]>,
) -> String {
    let mut md = String::new();
    md.push_str("# tether benchmarks\n\n");
    md.push_str(header);
    md.push_str(
        "\n\nEvery server echoes binary messages on one thread; the load generator \
         (one thread, a hand-written client that costs the same for every server) keeps \
         a fixed number of messages in flight per connection. Values are medians over \
         the rounds. **Ratios above 1 mean better than the reference**: msgs/s is this ÷ \
         reference, CPU per message and memory are reference ÷ this. *best lib* is the \
         best of ",
    );
    md.push_str(&OTHER_LIBS.join(", "));
    let _ = write!(
        md,
        " in that column (over TLS: {}, and the raw reference is {RAW_TLS})",
        OTHER_TLS_LIBS.join(", ")
    );
    md.push_str(
        "; server CPU is user + system time of the server process over \
         the measured window (the kernel's loopback receive work done in softirq context \
         is not part of it).\n\n",
    );
    md.push_str(SETUP);
    for s in scenarios {
        match s.kind {
            Kind::Echo | Kind::Broadcast | Kind::ConnectRate => {
                echo_table(&mut md, s, impls, summaries)
            }
            Kind::Idle if s.deflate => deflate_idle_table(&mut md, s, impls, summaries),
            Kind::Idle => idle_table(&mut md, s, impls, summaries),
        }
    }
    if let Some(rows) = micro {
        md.push_str("\n## tether-core microbenchmarks\n\n");
        md.push_str(
            "Throughput of one call on a buffer of the given size (in cache; the fastest \
             of five samples), with the \
             ratio to a plain `copy_from_slice` of the same bytes; header decoding is \
             per header of a masked frame carrying that size. Text is JSON-like ASCII.\n\n",
        );
        md.push_str(&micro_table(rows));
    }
    md
}

fn echo_table(md: &mut String, s: &Scenario, impls: &[&str], summaries: &Summaries) {
    let rt = s.is_round_trip();
    let _ = writeln!(md, "\n## {}\n", s.title);
    let unit = match (rt, s.kind) {
        (true, _) => "round trips/s",
        (_, Kind::Broadcast) => "deliveries/s",
        (_, Kind::ConnectRate) => "connections/s",
        _ => "msgs/s",
    };
    let (libs, raw_name) = stats::references(s.tls, s.axum);
    let vs_raw = raw_label(s);
    let _ = writeln!(
        md,
        "| implementation | {unit} | MB/s | server CPU/msg | server CPU | p50 | p99 | \
         {unit} vs best lib | {vs_raw} | CPU/msg vs best lib | {vs_raw} |"
    );
    md.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    let best_rate = stats::best_other(s.id, "msgs_per_s", libs, summaries);
    let best_cpu = stats::best_other(s.id, "cpu_ns_per_msg", libs, summaries);
    let raw = summaries.get(&(s.id.to_owned(), raw_name.to_owned()));
    for &name in impls {
        let Some(sum) = summaries.get(&(s.id.to_owned(), name.to_owned())) else {
            continue;
        };
        let _ = write!(md, "| {name} ");
        if sum.runs == 0 {
            let _ = writeln!(md, "| failed: {} |||||||||", first_error(sum));
            continue;
        }
        let rate = sum.get("msgs_per_s");
        let cpu = sum.get("cpu_ns_per_msg");
        let cells = [
            rate.map(count),
            sum.get("mb_per_s").map(|v| format!("{v:.1}")),
            cpu.map(nanos),
            sum.get("server_cpu_util")
                .map(|v| format!("{:.0}%", v * 100.0)),
            sum.get("p50_us").map(micros),
            sum.get("p99_us").map(micros),
            rel("msgs_per_s", rate, best_rate.map(|b| b.1)),
            rel("msgs_per_s", rate, raw.and_then(|r| r.get("msgs_per_s"))),
            rel("cpu_ns_per_msg", cpu, best_cpu.map(|b| b.1)),
            rel(
                "cpu_ns_per_msg",
                cpu,
                raw.and_then(|r| r.get("cpu_ns_per_msg")),
            ),
        ];
        for c in cells {
            let _ = write!(md, "| {} ", c.unwrap_or_else(|| "–".into()));
        }
        md.push_str("|\n");
        note_errors(md, name, sum);
    }
    if let (Some((r, _)), Some((c, _))) = (best_rate, best_cpu) {
        let _ = writeln!(md, "\nbest lib: {unit} **{r}**, CPU/msg **{c}**.");
    }
    if s.deflate {
        compression_line(md, s, impls, summaries);
    }
    if s.tls {
        negotiated_line(md, s, impls, summaries);
    }
}

/// `vs raw TCP`, or `vs raw TLS` over TLS.
fn raw_label(s: &Scenario) -> &'static str {
    if s.axum {
        "vs tether-tokio"
    } else if s.tls {
        "vs raw TLS"
    } else {
        "vs raw TCP"
    }
}

/// What TLS each server negotiated with the load generator, so that a
/// difference in cipher suite or key exchange cannot hide in the ratios.
fn negotiated_line(md: &mut String, s: &Scenario, impls: &[&str], summaries: &Summaries) {
    let mut per_impl = Vec::new();
    for &name in impls {
        let sum = summaries.get(&(s.id.to_owned(), name.to_owned()));
        if let Some(seen) = sum.and_then(|sum| sum.texts.get("tls")) {
            let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
            per_impl.push((name, seen.join("; ")));
        }
    }
    let Some((_, first)) = per_impl.first() else {
        return;
    };
    if per_impl.iter().all(|(_, t)| t == first) {
        let _ = writeln!(md, "\nNegotiated by every server: {first}.");
    } else {
        let list: Vec<String> = per_impl.iter().map(|(n, t)| format!("{n}: {t}")).collect();
        let _ = writeln!(
            md,
            "\n**Not the same TLS for every server**: {}.",
            list.join("; ")
        );
    }
}

/// What each server's permessage-deflate made of a message: bytes it sent
/// per echoed message, frame headers included, and the ratio to the
/// message's size.
fn compression_line(md: &mut String, s: &Scenario, impls: &[&str], summaries: &Summaries) {
    let mut parts = Vec::new();
    for &name in impls {
        let sum = summaries.get(&(s.id.to_owned(), name.to_owned()));
        if let Some(b) = sum.and_then(|sum| sum.get("wire_bytes_per_msg")) {
            let ratio = s.size as f64 / b;
            parts.push(format!("{name} {b:.0} B ({ratio:.2}:1)"));
        }
    }
    if !parts.is_empty() {
        let _ = writeln!(
            md,
            "\nBytes sent per echoed {} B message (compression ratio): {}. raw-tcp \
             sends back the load generator's own frame, compressed by zlib.",
            s.size,
            parts.join(", ")
        );
    }
    extensions_line(md, s, impls, summaries);
}

/// What each server answered to the load generator's offer
/// (`permessage-deflate; client_max_window_bits`), and what the Python
/// server runs.
fn extensions_line(md: &mut String, s: &Scenario, impls: &[&str], summaries: &Summaries) {
    let texts = |name: &str, key: &str| {
        let sum = summaries.get(&(s.id.to_owned(), name.to_owned()))?;
        let seen: Vec<&str> = sum.texts.get(key)?.iter().map(String::as_str).collect();
        Some(seen.join(" / "))
    };
    let answers: Vec<String> = impls
        .iter()
        .filter_map(|&n| Some(format!("{n}: `{}`", texts(n, "extensions")?)))
        .collect();
    if !answers.is_empty() {
        let _ = writeln!(
            md,
            "\nThe load generator offers `permessage-deflate; client_max_window_bits`; the \
             servers answered: {}.",
            answers.join("; ")
        );
    }
    let servers: Vec<String> = impls
        .iter()
        .filter_map(|&n| Some(format!("{n}: {}", texts(n, "server")?)))
        .collect();
    if !servers.is_empty() {
        let _ = writeln!(md, "\nServer versions: {}.", servers.join("; "));
    }
}

/// `deflate-idle`: memory per compressed idle connection next to the
/// compression ratio of the echoes, against Python `websockets`.
fn deflate_idle_table(md: &mut String, s: &Scenario, impls: &[&str], summaries: &Summaries) {
    let python = crate::servers::PYTHON_IMPLS[0];
    let _ = writeln!(
        md,
        "\n## Resident memory per idle connection with permessage-deflate\n"
    );
    let _ = writeln!(
        md,
        "{} connections, each offering `permessage-deflate; client_max_window_bits` (as \
         browsers do) and having {} JSON records (about 230 B each, the corpus of \
         `bench-deflate`) echoed one after another, compressed both ways, so the server \
         holds an inflater and a compressor with context; then held open as in the idle \
         scenario. *memory per connection* is the server's VmRSS then minus before, \
         divided by the connections. *ratio* is the records' JSON bytes ÷ the bytes of \
         the server's echo frames (headers included); every echo is checked to inflate \
         to the record sent. *÷ {python}* is this row's memory per connection divided \
         by Python's (below 1: less than Python). Python's *RSS before* includes the \
         interpreter and the library; its growth per connection is what compares. \
         raw-tcp echoes the load generator's own frames: the floor of memory, and the \
         client's compression.\n",
        s.connections,
        super::scenarios::DEFLATE_IDLE_MESSAGES,
    );
    md.push_str(
        "| implementation | memory per connection | ÷ python-websockets | ratio | bytes per \
         echo | echoes compressed | RSS before | negotiated |\n",
    );
    md.push_str("|---|--:|--:|--:|--:|--:|--:|---|\n");
    let key = |name: &str| (s.id.to_owned(), name.to_owned());
    let py = summaries
        .get(&key(python))
        .and_then(|p| p.get("bytes_per_conn"));
    for &name in impls {
        let Some(sum) = summaries.get(&key(name)) else {
            continue;
        };
        if sum.runs == 0 {
            let _ = writeln!(md, "| {name} | failed: {} |||||||", first_error(sum));
            continue;
        }
        let bytes = sum.get("bytes_per_conn");
        let dash = || "–".to_owned();
        let negotiated = sum.texts.get("extensions").map_or_else(
            || "none".to_owned(),
            |e| {
                let e: Vec<String> = e.iter().map(|x| format!("`{x}`")).collect();
                e.join(" / ")
            },
        );
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} | {negotiated} |",
            bytes.map_or_else(dash, |b| format!("{:.1} KiB", b / 1024.0)),
            bytes
                .zip(py)
                .map_or_else(dash, |(b, p)| format!("{:.2}", b / p)),
            sum.get("compression_ratio")
                .map_or_else(dash, |r| format!("{r:.2}:1")),
            sum.get("wire_bytes_per_msg")
                .map_or_else(dash, |b| format!("{b:.0} B")),
            sum.get("compressed_share")
                .map_or_else(dash, |c| format!("{:.0}%", c * 100.0)),
            sum.get("rss_before")
                .map_or_else(dash, |b| format!("{:.1} MiB", b / 1048576.0)),
        );
        note_errors(md, name, sum);
    }
    let servers: Vec<String> = impls
        .iter()
        .filter_map(|&n| {
            let sum = summaries.get(&key(n))?;
            let seen: Vec<&str> = sum
                .texts
                .get("server")?
                .iter()
                .map(String::as_str)
                .collect();
            Some(format!("{n}: {}", seen.join(" / ")))
        })
        .collect();
    if !servers.is_empty() {
        let _ = writeln!(md, "\nServer versions: {}.", servers.join("; "));
    }
}

fn idle_table(md: &mut String, s: &Scenario, impls: &[&str], summaries: &Summaries) {
    if s.tls {
        let _ = writeln!(md, "\n## Resident memory per idle TLS connection\n");
        let _ = writeln!(
            md,
            "{} connections (not 10,000: the load generator runs the TLS handshakes one \
             after another), each after the TLS handshake, the upgrade and one {} round \
             trip, then held open as in the plain scenario; the server's VmRSS then minus \
             before, divided by their number. Includes each connection's rustls state; \
             one-time costs (the server's session cache, at most 256 entries) are spread \
             over the connections. No keepalive rows: keepalive is tested in the plain \
             scenario.\n",
            s.connections,
            human_size(s.size)
        );
    } else if s.is_idle_many() {
        let _ = writeln!(
            md,
            "\n## {} idle connections with keepalive on\n",
            s.connections
        );
        let _ = writeln!(
            md,
            "As the idle scenario, with the keepalive servers (a ping every 2 s) and raw TCP \
             only, connections made from 127.0.0.1 ... 127.0.0.8 in turn so ephemeral ports \
             last. *server CPU held* is the server's CPU per second of the hold after the \
             last connection opened: what keepalive (pings, pongs, timers) costs at this \
             many connections.\n"
        );
    } else {
        let _ = writeln!(md, "\n## Resident memory per idle connection\n");
        let _ = writeln!(
            md,
            "{} connections, each after the upgrade and one {} round trip, then held \
             open (the load generator answering pings) until keepalive servers have pinged \
             each at least once; the server's VmRSS then minus before, divided by their \
             number. Only the `-keepalive` rows ping: the other libraries have no built-in \
             keepalive.\n",
            s.connections,
            human_size(s.size)
        );
    }
    let _ = writeln!(
        md,
        "| implementation | bytes per connection | vs best lib | {} | pings per connection \
         | server CPU held | pings/s held |",
        raw_label(s)
    );
    md.push_str("|---|--:|--:|--:|--:|--:|--:|\n");
    let (libs, raw_name) = stats::references(s.tls, s.axum);
    let best = stats::best_other(s.id, "bytes_per_conn", libs, summaries);
    let raw = summaries
        .get(&(s.id.to_owned(), raw_name.to_owned()))
        .and_then(|r| r.get("bytes_per_conn"));
    for &name in impls {
        let Some(sum) = summaries.get(&(s.id.to_owned(), name.to_owned())) else {
            continue;
        };
        if sum.runs == 0 {
            let _ = writeln!(md, "| {name} | failed: {} ||||||", first_error(sum));
            continue;
        }
        let bytes = sum.get("bytes_per_conn");
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            bytes.map_or("–".into(), |b| format!("{b:.0}")),
            rel("bytes_per_conn", bytes, best.map(|b| b.1)).unwrap_or_else(|| "–".into()),
            rel("bytes_per_conn", bytes, raw).unwrap_or_else(|| "–".into()),
            sum.get("pings_per_conn")
                .map_or("–".into(), |p| format!("{p:.1}")),
            sum.get("held_cpu_util")
                .map_or("–".into(), |c| format!("{:.1}%", c * 100.0)),
            sum.get("held_pings_per_s")
                .map_or("–".into(), |p| format!("{p:.0}")),
        );
        note_errors(md, name, sum);
    }
    if let Some((b, _)) = best {
        let _ = writeln!(md, "\nbest lib: **{b}**.");
    }
    if s.tls {
        negotiated_line(md, s, impls, summaries);
    }
    if s.axum {
        let tether_axum = summaries
            .get(&(s.id.to_owned(), "tether-axum".to_owned()))
            .and_then(|r| r.get("bytes_per_conn"));
        if let (Some(a), Some(floor)) = (tether_axum, raw) {
            let _ = writeln!(
                md,
                "\nThe hyper path (axum's router, hyper's connection and `Upgraded`) adds \
                 **{:.0} bytes** per connection to tether-tokio's.",
                a - floor
            );
        }
    }
}

/// The microbenchmark table (also what `bench-micro` prints).
pub fn micro_table(rows: &[Record]) -> String {
    let mut md = String::from(
        "| size | memcpy | apply_mask | Utf8Validator::feed | simdutf8 | std::str::from_utf8 | FrameHeader::decode | mask key: CSPRNG (xoshiro) | masked frame: key + apply_mask |\n\
         |--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for r in rows {
        let get = |k: &str| r.get(k).unwrap_or(f64::NAN);
        let memcpy = get("memcpy_gbps");
        let vs = |k: &str| format!("{:.1} GB/s ({:.2}×)", get(k), get(k) / memcpy);
        let _ = writeln!(
            md,
            "| {} | {memcpy:.1} GB/s | {} | {} | {} | {} | {:.1} ns | {:.1} ns ({:.1} ns) | {:.1} ns |",
            human_size(get("size") as usize),
            vs("apply_mask_gbps"),
            vs("utf8_validator_gbps"),
            vs("simdutf8_gbps"),
            vs("std_utf8_gbps"),
            get("header_decode_ns"),
            get("mask_key_csprng_ns"),
            get("mask_key_xoshiro_ns"),
            get("masked_frame_ns"),
        );
    }
    md
}

fn rel(metric: &str, value: Option<f64>, reference: Option<f64>) -> Option<String> {
    stats::ratio(metric, value?, reference?).map(|r| format!("{r:.2}×"))
}

fn note_errors(md: &mut String, name: &str, sum: &Summary) {
    if !sum.errors.is_empty() {
        let _ = writeln!(
            md,
            "| ↳ {name}: {} of {} runs failed: {} |||||||||||",
            sum.errors.len(),
            sum.errors.len() + sum.runs,
            first_error(sum)
        );
    }
}

fn first_error(sum: &Summary) -> String {
    sum.errors
        .first()
        .map_or_else(String::new, |e| e.replace('|', "/").replace('\n', " "))
}

/// `1.23 M`, `456 k`, `78.9`.
pub fn count(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e4 => format!("{:.0} k", v / 1e3),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.1}"),
    }
}

/// `812 ns`, `12.3 µs`, `25.1 ms`.
pub fn nanos(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1} ms", v / 1e6),
        v if v >= 1e4 => format!("{:.1} µs", v / 1e3),
        v => format!("{v:.0} ns"),
    }
}

fn micros(v: f64) -> String {
    nanos(v * 1e3)
}
