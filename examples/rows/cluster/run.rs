//! The scale-out run: PostgreSQL as the shared source, instances behind
//! HAProxy, one client storing into its own SQLite database, and a chaos
//! thread that kills the serving instance with SIGKILL (and restarts it)
//! or drains it with SIGTERM as a deploy would, at random points of the
//! transfer. At the end the client's table is checked against the source.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use tether::core::{RandomSource, Xoshiro256};

use super::super::db::{self, BoxError};
use super::super::server::Source;
use super::super::{client, pg};
use super::fleet::{Fleet, InstanceCommand, InstanceStats};
use super::haproxy::Haproxy;
use super::instance::InstanceArgs;
use super::postgres::TempPostgres;

/// Seed of the generated rows: the showcase's, so the PostgreSQL table
/// has the checksum of `million-rows`' SQLite source.
pub const DATA_SEED: u64 = 0x7e7e_4e55;

/// What to run.
#[derive(Debug, Clone)]
pub struct ScaleOut {
    /// Rows in the source.
    pub rows: u64,
    /// Rows per batch.
    pub batch: usize,
    /// Unacknowledged batches in flight.
    pub window: u32,
    /// Server instances behind the load balancer.
    pub instances: usize,
    /// SIGKILLs of the serving instance, each followed by a restart.
    pub kills: usize,
    /// SIGTERM drains of the serving instance, each followed by a
    /// restart (a rolling deploy's step).
    pub drains: usize,
    /// Where the kills and drains fall, and which comes first.
    pub seed: u64,
    /// The client's database lives here.
    pub dir: PathBuf,
    /// PostgreSQL's cluster and HAProxy's files live here (must be
    /// searchable by the `postgres` user when run as root).
    pub scratch: PathBuf,
    /// Use this PostgreSQL server instead of starting one.
    pub postgres: Option<String>,
    /// Before each kill or drain, wait until every restarted instance is
    /// back in rotation (the test's setting: then the client must land on
    /// restarted instances). Without it restarts run beside later events.
    pub settle: bool,
    /// How instances are started.
    pub instance: InstanceCommand,
    /// The client commits at most this many rows per second (`None`: no
    /// cap).
    pub max_rate: Option<u64>,
    /// Counts committed rows (hidden or drawn).
    pub progress: ProgressBar,
}

/// A kill or a drain, and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `kill` or `drain`.
    pub kind: &'static str,
    /// The instance (`i1`...).
    pub instance: String,
    /// Rows committed when it happened.
    pub at_rows: u64,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The client's counts.
    pub rows: u64,
    /// Batches committed.
    pub batches: u64,
    /// Connections made through the load balancer, the first included.
    pub connections: u64,
    /// Sessions an instance ended with 1001 (drained).
    pub going_away: u64,
    /// Time spent in backoff waits.
    pub backoff: Duration,
    /// The transfer's duration.
    pub elapsed: Duration,
    /// Per instance slot.
    pub instances: Vec<InstanceStats>,
    /// The kills and drains, in order.
    pub events: Vec<Event>,
    /// Source and received (rows, checksum).
    pub source: (u64, u64),
    /// See `source`.
    pub received: (u64, u64),
}

impl Report {
    /// Every row arrived once with every field intact.
    pub fn verified(&self) -> bool {
        self.source == self.received && self.rows == self.source.0
    }
}

/// How long a restarted instance may take to pass the health checks.
const UP_LIMIT: Duration = Duration::from_secs(20);

/// Runs the whole thing; `say` gets progress lines (set-up, events).
pub fn run(cfg: &ScaleOut, say: &(dyn Fn(&str) + Sync)) -> Result<Report, BoxError> {
    if cfg.instances == 0 || cfg.rows == 0 || cfg.batch == 0 || cfg.window == 0 {
        return Err("instances, rows, batch and window must be positive".into());
    }
    std::fs::create_dir_all(&cfg.dir)?;
    std::fs::create_dir_all(&cfg.scratch)?;
    let started = Instant::now();
    let _server;
    let url = match &cfg.postgres {
        Some(url) => url.clone(),
        None => {
            let server = TempPostgres::start(&cfg.scratch)?;
            let url = server.url();
            say(&format!(
                "PostgreSQL up at {url} ({:.2?})",
                started.elapsed()
            ));
            _server = server;
            url
        }
    };
    let fill = Instant::now();
    if pg::ensure(&mut pg::connect(&url)?, cfg.rows, DATA_SEED)? {
        say(&format!(
            "filled `readings` with {} rows ({:.2?})",
            cfg.rows,
            fill.elapsed()
        ));
    }
    let source = pg::checksum(&url)?;

    let instances = (0..cfg.instances)
        .map(|_| {
            Ok(InstanceArgs {
                source: Source::Postgres(url.clone()),
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], super::free_port()?)),
                batch: cfg.batch,
                window: cfg.window,
                grace: Duration::from_millis(400),
                deadline: Duration::from_secs(5),
            })
        })
        .collect::<Result<Vec<_>, BoxError>>()?;
    let fleet = Fleet::start(cfg.instance.clone(), instances)?;
    let proxy_dir = RemoveOnDrop(cfg.scratch.join(format!("haproxy-{}", std::process::id())));
    std::fs::create_dir_all(&proxy_dir.0)?;
    // Declared after the directory, so dropped (stopped) before it goes.
    let proxy = Haproxy::start(&proxy_dir.0, &fleet.servers())?;
    for (name, _) in fleet.servers() {
        proxy.wait_state(&name, "UP", UP_LIMIT)?;
    }
    say(&format!(
        "{} instances up behind HAProxy at {}",
        cfg.instances,
        proxy.addr()
    ));

    let target = cfg.dir.join("received.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", target.display()));
    }
    let fleet = Mutex::new(fleet);
    let done = AtomicBool::new(false);
    let plan = plan(cfg);
    let (client_result, chaos_result, elapsed) = std::thread::scope(|s| {
        let chaos = s.spawn(|| chaos(cfg, &plan, &fleet, &proxy, &done, say));
        let start = Instant::now();
        let result = smol::block_on(client::run(
            client::ClientConfig {
                url: format!("ws://{}/readings", proxy.addr()),
                tls: None,
                db: target.clone(),
                window: cfg.window,
                backoff: client::quick_backoff(),
                max_rate: cfg.max_rate,
            },
            cfg.progress.clone(),
        ));
        let elapsed = start.elapsed();
        done.store(true, Ordering::SeqCst);
        let chaos = chaos
            .join()
            .unwrap_or_else(|_| Err("the chaos thread panicked".into()));
        (result, chaos, elapsed)
    });
    let report = client_result?;
    let events = chaos_result?;
    cfg.progress.finish();
    let received = db::checksum(&db::open_ro(&target)?)?;
    let instances = fleet.lock().unwrap_or_else(|p| p.into_inner()).stats();
    Ok(Report {
        rows: report.rows,
        batches: report.batches,
        connections: report.connections,
        going_away: report.going_away,
        backoff: report.backoff,
        elapsed,
        instances,
        events,
        source,
        received,
    })
}

/// A scratch directory, removed when the run ends however it ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The events, in order, each at a fraction of the rows: spread over the
/// middle of the transfer, in an order drawn from the seed.
fn plan(cfg: &ScaleOut) -> Vec<(&'static str, u64)> {
    let mut rng = Xoshiro256::from_seed(cfg.seed);
    let mut unit = move || f64::from(rng.next_u32()) / f64::from(u32::MAX);
    let n = cfg.kills + cfg.drains;
    let mut kinds: Vec<&'static str> = std::iter::repeat_n("kill", cfg.kills)
        .chain(std::iter::repeat_n("drain", cfg.drains))
        .collect();
    // Fisher-Yates, seeded.
    for i in (1..kinds.len()).rev() {
        let j = (unit() * (i + 1) as f64) as usize % (i + 1);
        kinds.swap(i, j);
    }
    // Event k falls at random inside the k-th of n equal slices of 10% to
    // 80% of the rows, so none waits on the one before for long.
    kinds
        .into_iter()
        .enumerate()
        .map(|(k, kind)| {
            let slice = 0.7 / n as f64;
            let at = 0.1 + slice * (k as f64 + 0.2 + 0.6 * unit());
            (kind, (cfg.rows as f64 * at) as u64)
        })
        .collect()
}

/// Carries out the plan while the client runs: at each point, the
/// instance serving the client is killed (then restarted after a short
/// random pause, as a supervisor would) or drained (then started again, as
/// a deploy's new version). Restarts run beside the transfer; each event
/// waits until the client is taking batches again, and with `settle`
/// also until every restarted instance is back in rotation. Stops early,
/// with the events done, if the transfer ends first.
fn chaos(
    cfg: &ScaleOut,
    plan: &[(&'static str, u64)],
    fleet: &Mutex<Fleet>,
    proxy: &Haproxy,
    done: &AtomicBool,
    say: &(dyn Fn(&str) + Sync),
) -> Result<Vec<Event>, BoxError> {
    let lock = || fleet.lock().unwrap_or_else(|p| p.into_inner());
    let mut rng = Xoshiro256::from_seed(cfg.seed ^ 0x5ca1_e007);
    let mut events = Vec::new();
    std::thread::scope(|s| {
        let mut restarts = Vec::new();
        let join = |restarts: &mut Vec<std::thread::ScopedJoinHandle<'_, Result<(), BoxError>>>| {
            restarts
                .drain(..)
                .try_for_each(|h: std::thread::ScopedJoinHandle<'_, _>| {
                    h.join()
                        .unwrap_or_else(|_| Err("a restart thread panicked".into()))
                })
        };
        for &(kind, at_rows) in plan {
            if cfg.settle {
                join(&mut restarts)?;
            }
            // Wait for the point, and for an instance to be serving.
            let victim = loop {
                if done.load(Ordering::SeqCst) {
                    join(&mut restarts)?;
                    return Ok(events);
                }
                match lock().active() {
                    Some(i) if cfg.progress.position() >= at_rows => break i,
                    _ => std::thread::sleep(Duration::from_millis(2)),
                }
            };
            let at_rows = cfg.progress.position();
            let name = format!("i{}", victim + 1);
            let pause = if kind == "kill" {
                lock().kill(victim)?;
                say(&format!("SIGKILL {name} at {at_rows} rows"));
                Duration::from_millis(50 + u64::from(rng.next_u32() % 250))
            } else {
                let draining = lock().term(victim)?;
                say(&format!("SIGTERM {name} at {at_rows} rows: draining"));
                draining.wait(Duration::from_secs(15))?;
                Duration::ZERO
            };
            lock().clear_active();
            events.push(Event {
                kind,
                instance: name.clone(),
                at_rows,
            });
            restarts.push(s.spawn(move || {
                std::thread::sleep(pause);
                lock().restart(victim)?;
                proxy.wait_state(&name, "UP", UP_LIMIT)?;
                say(&format!("{name} restarted and back in rotation"));
                Ok(())
            }));
        }
        join(&mut restarts)?;
        Ok(events)
    })
}
