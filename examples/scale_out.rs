//! The showcase beyond one machine: the rows come from PostgreSQL, three
//! server instances serve them behind HAProxy, and while the client
//! transfers them the instance serving it is killed with SIGKILL and
//! restarted, or drained with SIGTERM as in a rolling deploy. The client
//! reconnects through the load balancer, resumes on whichever instance it
//! lands, and at the end its table must match the source: every row once,
//! every field intact. `docs/scale-out.md` explains the architecture.
//!
//! It starts its own PostgreSQL (initdb in a temporary directory, run as
//! the `postgres` user when root) and HAProxy; both come from Debian
//! (`apt-get install postgresql haproxy`).
//!
//! `cargo run --release --example scale-out [-- OPTIONS]`; `--help` lists
//! the options.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tether_examples::rows::cluster::fleet::InstanceCommand;
use tether_examples::rows::cluster::instance::{self, InstanceArgs};
use tether_examples::rows::cluster::run::{self, ScaleOut};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "\
scale-out: the rows transfer through HAProxy to instances that get killed

usage: cargo run --release --example scale-out [-- OPTIONS]

  --rows N          rows in the PostgreSQL source             (1000000)
  --batch N         rows per batch                            (10000)
  --window N        unacknowledged batches in flight          (4)
  --instances N     server instances behind HAProxy           (3)
  --kills N         SIGKILLs of the serving instance          (4)
  --drains N        SIGTERM drains of the serving instance    (1)
  --seed N          where kills and drains fall               (from the clock)
  --rate N          commit at most N rows/s, to watch it      (no cap)
  --settle          before each kill or drain, wait until the restarted
                    instances are back in rotation
  --dir PATH        the client's database                     (target/scale-out)
  --scratch PATH    PostgreSQL's and HAProxy's files          (the temp dir)
  --postgres URL    use this PostgreSQL (postgres://...) instead of starting one
  --no-progress     no progress bar (logs, CI)
  -h, --help        this help

Each killed or drained instance is started again on the same address.
Needs PostgreSQL's server binaries and HAProxy: apt-get install postgresql haproxy
";

fn main() -> Result<(), BoxError> {
    tether_examples::help(USAGE);
    let mut raw = std::env::args().skip(1).peekable();
    if raw.peek().map(String::as_str) == Some("--instance") {
        // A child: one server instance (see `instance`).
        return instance::main(InstanceArgs::parse(raw.skip(1))?);
    }
    let mut cfg = ScaleOut {
        rows: 1_000_000,
        batch: 10_000,
        window: 4,
        instances: 3,
        kills: 4,
        drains: 1,
        seed: SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64,
        dir: Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .join("target/scale-out"),
        scratch: std::env::temp_dir(),
        postgres: None,
        settle: false,
        instance: InstanceCommand {
            program: std::env::current_exe()?,
            prefix: vec!["--instance".into()],
        },
        max_rate: None,
        progress: ProgressBar::hidden(),
    };
    let mut progress = true;
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--rows" => cfg.rows = value()?.parse()?,
            "--batch" => cfg.batch = value()?.parse()?,
            "--window" => cfg.window = value()?.parse()?,
            "--instances" => cfg.instances = value()?.parse()?,
            "--kills" => cfg.kills = value()?.parse()?,
            "--drains" => cfg.drains = value()?.parse()?,
            "--seed" => cfg.seed = value()?.parse()?,
            "--rate" => cfg.max_rate = Some(value()?.parse()?),
            "--settle" => cfg.settle = true,
            "--dir" => cfg.dir = PathBuf::from(value()?),
            "--scratch" => cfg.scratch = PathBuf::from(value()?),
            "--postgres" => cfg.postgres = Some(value()?),
            "--no-progress" => progress = false,
            other => return Err(format!("unknown option {other}; try --help").into()),
        }
    }
    cfg.progress = if progress {
        ProgressBar::new(cfg.rows)
    } else {
        ProgressBar::with_draw_target(Some(cfg.rows), ProgressDrawTarget::hidden())
    };
    cfg.progress.set_style(ProgressStyle::with_template(
        "{bar:40} {pos:>9}/{len} rows  {per_sec:>14}  {elapsed_precise}  {msg}",
    )?);
    println!(
        "scale-out: {} rows in batches of {}, {} instances behind HAProxy, {} kills and {} drains (seed {})",
        cfg.rows, cfg.batch, cfg.instances, cfg.kills, cfg.drains, cfg.seed
    );
    let bar = cfg.progress.clone();
    let report = run::run(&cfg, &move |line| {
        if progress {
            bar.println(line);
        } else {
            println!("{line}");
        }
    })?;

    println!(
        "received {} rows ({} batches) in {:.2?}: {:.0} rows/s",
        report.rows,
        report.batches,
        report.elapsed,
        report.rows as f64 / report.elapsed.as_secs_f64()
    );
    println!(
        "connections {} (reconnects {}, of which {} after a drain's 1001), {:.2?} of backoff waits",
        report.connections,
        report.connections.saturating_sub(1),
        report.going_away,
        report.backoff
    );
    println!("instance  batches  after restart  kills  drains");
    for i in &report.instances {
        println!(
            "{:<8}  {:>7}  {:>13}  {:>5}  {:>6}",
            i.name,
            i.total(),
            i.after_restart(),
            i.kills,
            i.drains
        );
    }
    println!(
        "source {} rows, checksum {:016x}; received {} rows, checksum {:016x}",
        report.source.0, report.source.1, report.received.0, report.received.1
    );
    let done = report.events.len();
    if done < cfg.kills + cfg.drains {
        println!(
            "note: the transfer ended after {done} of {} kills and drains",
            cfg.kills + cfg.drains
        );
    }
    if !report.verified() {
        return Err("VERIFY FAILED: the received table differs from the source".into());
    }
    println!("verified: every row arrived exactly once, every field intact");
    Ok(())
}
