//! The showcase: a million database rows over one WebSocket connection
//! that keeps getting cut, with nothing lost and nothing duplicated.
//!
//! On first run it creates an SQLite database of sensor readings. A server
//! (a child process) streams the table in batches with `tether_resume`; a
//! client stores them in its own SQLite database, each batch and its
//! resume position in one transaction. Between them a relay cuts the
//! connection `--chaos N` times at random byte counts; the client
//! reconnects with backoff and resumes where its database says. At the
//! end it checks the row count and a checksum of every field against the
//! source and prints the rates and each side's peak memory.
//!
//! `cargo run --release --example million-rows [-- OPTIONS]`
//!
//! ```text
//! --rows N        rows in the source table          (1000000)
//! --batch N       rows per batch                    (10000)
//! --window N      unacknowledged batches in flight  (4)
//! --chaos N       connection cuts                   (3)
//! --seed N        where the cuts fall               (from the clock)
//! --dir PATH      where the databases live          (target/million-rows)
//! --source URL    read the rows from PostgreSQL at a postgres:// URL
//!                 instead of the SQLite file in --dir; the table
//!                 `readings` is created and filled with the same rows
//!                 (same checksum) when it does not hold --rows rows
//! --tls           wss:// with a certificate made at start-up, which the
//!                 client trusts alone
//! --no-progress   no progress bar (logs, CI)
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tether_examples::rows::{self, client, db, pg, relay, server};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Seed of the generated data, fixed so the source is the same everywhere.
const DATA_SEED: u64 = 0x7e7e_4e55;

struct Args {
    rows: u64,
    batch: usize,
    window: u32,
    chaos: usize,
    seed: u64,
    dir: PathBuf,
    progress: bool,
    tls: bool,
    source: Option<String>,
    serve: Option<String>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        rows: 1_000_000,
        batch: 10_000,
        window: 4,
        chaos: 3,
        seed: SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64,
        // The workspace's target directory (the package is `examples/`).
        dir: Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .join("target/million-rows"),
        progress: true,
        tls: false,
        source: None,
        serve: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--rows" => args.rows = value()?.parse()?,
            "--batch" => args.batch = value()?.parse()?,
            "--window" => args.window = value()?.parse()?,
            "--chaos" => args.chaos = value()?.parse()?,
            "--seed" => args.seed = value()?.parse()?,
            "--dir" => args.dir = value()?.into(),
            "--no-progress" => args.progress = false,
            "--tls" => args.tls = true,
            "--source" => {
                let url = value()?;
                if !matches!(server::Source::parse(&url), server::Source::Postgres(_)) {
                    return Err(format!("--source takes a postgres:// URL, not {url:?}").into());
                }
                args.source = Some(url);
            }
            // Internal: run as the server child process on this source.
            "--serve" => args.serve = Some(value()?),
            other => return Err(format!("unknown option {other}; --help lists the options").into()),
        }
    }
    if args.rows == 0 || args.batch == 0 {
        return Err("--rows and --batch must be positive".into());
    }
    Ok(args)
}

/// What `--help` prints.
const USAGE: &str = "\
A million database rows over one WebSocket connection that keeps getting
cut, with nothing lost and nothing duplicated (tether_resume).

usage: cargo run --release --example million-rows [-- OPTIONS]

  --rows N        rows in the source table          (1000000)
  --batch N       rows per batch                    (10000)
  --window N      unacknowledged batches in flight  (4)
  --chaos N       connection cuts                   (3)
  --seed N        where the cuts fall               (from the clock)
  --dir PATH      where the databases live          (target/million-rows)
  --tls           wss:// with a certificate made at start-up, which the
                  client trusts alone
  --source URL    read the rows from PostgreSQL at a postgres:// URL
                  (filled on first use; default: the SQLite source)
  --no-progress   no progress bar (logs, CI)
  -h, --help      this help";

fn main() -> Result<(), BoxError> {
    tether_examples::help(USAGE);
    let args = parse_args()?;
    if let Some(source) = &args.serve {
        return serve_child(server::Source::parse(source), &args);
    }
    std::fs::create_dir_all(&args.dir)?;
    let source = match &args.source {
        Some(url) => {
            ensure_pg_source(url, args.rows)?;
            server::Source::Postgres(url.clone())
        }
        None => {
            let path = args.dir.join("source.sqlite");
            ensure_source(&path, args.rows)?;
            server::Source::Sqlite(path)
        }
    };
    let source_arg = match &source {
        server::Source::Sqlite(path) => path.display().to_string(),
        server::Source::Postgres(url) => url.clone(),
    };
    let target = args.dir.join("received.sqlite");
    if args.tls {
        rows::tls::make_cert(&args.dir)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", target.display()));
    }

    // The server, in its own process so its memory is its own.
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["--serve", &source_arg])
        .args(["--batch", &args.batch.to_string()])
        .args(["--window", &args.window.to_string()]);
    if args.tls {
        // The child reads the certificate from the same directory.
        command.args(["--tls".as_ref(), "--dir".as_ref(), args.dir.as_os_str()]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut child_out = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
    let mut line = String::new();
    child_out.read_line(&mut line)?;
    let server_addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| format!("server said {line:?}"))?
        .parse()?;

    // About 55 bytes per row go down; handshakes and acks go up.
    let cuts = relay::Cuts::random(args.chaos, args.rows * 55, 400, args.seed);
    let relay = relay::Relay::start(server_addr, cuts)?;
    println!(
        "streaming {} rows from {} in batches of {} over {} through a relay that cuts {} times (seed {})",
        args.rows,
        match &source {
            server::Source::Sqlite(_) => "SQLite",
            server::Source::Postgres(_) => "PostgreSQL",
        },
        args.batch,
        if args.tls { "wss:// (TLS)" } else { "ws://" },
        args.chaos,
        args.seed
    );

    let progress = if args.progress {
        ProgressBar::new(args.rows)
    } else {
        ProgressBar::with_draw_target(Some(args.rows), ProgressDrawTarget::hidden())
    };
    progress.set_style(ProgressStyle::with_template(
        "{bar:40} {pos:>9}/{len} rows  {per_sec:>14}  {elapsed_precise}  {msg}",
    )?);
    let start = Instant::now();
    let report = smol::block_on(client::run(
        client::ClientConfig {
            url: format!(
                "{}://{}/readings",
                if args.tls { "wss" } else { "ws" },
                relay.addr()
            ),
            tls: args
                .tls
                .then(|| rows::tls::client_config(&args.dir))
                .transpose()?,
            db: target.clone(),
            window: args.window,
            backoff: client::quick_backoff(),
            max_rate: None,
        },
        progress.clone(),
    ))?;
    let elapsed = start.elapsed();
    progress.finish();

    // The server reports its peak memory when its stdin closes.
    drop(child.stdin.take());
    line.clear();
    child_out.read_line(&mut line)?;
    let server_kib: u64 = line
        .trim()
        .strip_prefix("peak_rss_kib ")
        .ok_or_else(|| format!("server said {line:?}"))?
        .parse()?;
    child.wait()?;
    let client_kib = rows::peak_rss_kib()?;

    let verify = Instant::now();
    let (src_rows, src_sum) = match &source {
        server::Source::Sqlite(path) => db::checksum(&db::open_ro(path)?)?,
        server::Source::Postgres(url) => pg::checksum(url)?,
    };
    let (dst_rows, dst_sum) = db::checksum(&db::open_ro(&target)?)?;
    let counters = relay.counters();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "received {} rows ({} batches) in {:.2?}: {:.0} rows/s",
        report.rows,
        report.batches,
        elapsed,
        report.rows as f64 / elapsed.as_secs_f64()
    );
    println!(
        "connections {} (reconnects {}, {:.2?} of backoff waits), cuts made {} of {}",
        report.connections,
        report.connections.saturating_sub(1),
        report.backoff,
        load(&counters.cuts),
        args.chaos
    );
    println!(
        "bytes on the wire: {:.1} MiB down, {:.1} KiB up",
        load(&counters.down) as f64 / f64::from(1 << 20),
        load(&counters.up) as f64 / 1024.0
    );
    println!(
        "peak resident memory: server {:.1} MiB, client {:.1} MiB (relay and progress bar included)",
        server_kib as f64 / 1024.0,
        client_kib as f64 / 1024.0
    );
    println!(
        "source {src_rows} rows, checksum {src_sum:016x}; received {dst_rows} rows, checksum {dst_sum:016x} (checked in {:.2?})",
        verify.elapsed()
    );
    if (src_rows, src_sum) != (dst_rows, dst_sum) || report.rows != src_rows {
        return Err("VERIFY FAILED: the received table differs from the source".into());
    }
    println!("verified: every row arrived exactly once, every field intact");
    Ok(())
}

/// Creates the source table on first run (or when `--rows` changed).
fn ensure_source(path: &Path, rows: u64) -> Result<(), BoxError> {
    if path.exists() && db::count(&db::open_ro(path)?).ok() == Some(rows) {
        return Ok(());
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let start = Instant::now();
    print!("creating {} with {rows} rows... ", path.display());
    std::io::stdout().flush()?;
    let mut conn = db::open_rw(path)?;
    db::generate(&mut conn, rows, DATA_SEED)?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    println!("{:.2?}", start.elapsed());
    Ok(())
}

/// Fills the PostgreSQL source with the rows of the SQLite one, unless it
/// holds them already.
fn ensure_pg_source(url: &str, rows: u64) -> Result<(), BoxError> {
    let start = Instant::now();
    let mut client = pg::connect(url)?;
    if pg::count(&mut client)? != rows {
        print!("filling the PostgreSQL table `readings` with {rows} rows... ");
        std::io::stdout().flush()?;
        pg::ensure(&mut client, rows, DATA_SEED)?;
        println!("{:.2?}", start.elapsed());
    }
    Ok(())
}

/// The child process: serve until stdin closes, then report peak memory.
fn serve_child(source: server::Source, args: &Args) -> Result<(), BoxError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        // Let the last connection's close finish.
        std::thread::sleep(Duration::from_millis(50));
        match rows::peak_rss_kib() {
            Ok(kib) => println!("peak_rss_kib {kib}"),
            Err(e) => println!("error {e}"),
        }
        std::process::exit(0);
    });
    let config = server::ServeConfig {
        tls: args
            .tls
            .then(|| rows::tls::server_config(&args.dir))
            .transpose()?,
        ..server::ServeConfig::new(source, args.batch, args.window)
    };
    smol::block_on(server::run(
        smol::net::TcpListener::try_from(listener)?,
        config,
    ))?;
    Ok(())
}
