//! The scale-out run with the real parts: a PostgreSQL server started for
//! the test (its cluster in a temporary directory, run as the `postgres`
//! user when root), three `rows-instance` processes behind HAProxy, and
//! the client storing into its own SQLite database. Two SIGKILLs and one
//! SIGTERM drain hit the instance serving the client; every row must
//! arrive once with every field intact, and the kills and the drain must
//! show in what the instances, the processes' exit statuses and the
//! client counted.

use std::path::PathBuf;

use indicatif::ProgressBar;
use tether_examples::rows::cluster::fleet::InstanceCommand;
use tether_examples::rows::cluster::run::{self, ScaleOut};

const ROWS: u64 = 200_000;
const BATCH: usize = 2_000;

#[test]
#[ignore = "needs postgresql and haproxy: apt-get install postgresql haproxy"]
fn kills_and_a_drain_behind_haproxy_lose_and_duplicate_nothing() {
    let dir = std::env::temp_dir().join(format!("tether-scale-out-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = ScaleOut {
        rows: ROWS,
        batch: BATCH,
        window: 4,
        instances: 3,
        kills: 2,
        drains: 1,
        seed: 17,
        dir: dir.clone(),
        scratch: dir.clone(),
        postgres: None,
        settle: true,
        instance: InstanceCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_rows-instance")),
            prefix: Vec::new(),
        },
        // A cap, not a measurement: the transfer lasts at least 8 s, long
        // enough for three restarts to pass the health checks, so every
        // planned kill and drain falls inside it on any machine.
        max_rate: Some(25_000),
        progress: ProgressBar::hidden(),
    };
    let report = run::run(&cfg, &|line| eprintln!("{line}"))
        .unwrap_or_else(|e| panic!("the scale-out run failed: {e}"));
    eprintln!("{report:#?}");
    let _ = std::fs::remove_dir_all(&dir);

    // Every row, once, every field: the client's table equals the source.
    assert_eq!(report.source.0, ROWS);
    assert_eq!(
        report.received, report.source,
        "received table differs from the source"
    );
    assert_eq!(report.rows, ROWS);
    assert_eq!(report.batches, ROWS / BATCH as u64);

    // The plan ran: two kills and one drain, each of the instance serving
    // the client, each confirmed by how its process ended.
    let kinds: Vec<&str> = report.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "kill").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "drain").count(),
        1,
        "{kinds:?}"
    );
    let kills: u32 = report.instances.iter().map(|i| i.kills).sum();
    let drains: u32 = report.instances.iter().map(|i| i.drains).sum();
    assert_eq!((kills, drains), (2, 1));

    // The client felt each one: a new connection per event, and the
    // drain's 1001 (going away) closed a session.
    assert!(
        report.connections >= 4,
        "{} connections for 3 events",
        report.connections
    );
    assert!(report.going_away >= 1, "no session ended with 1001");

    // Restarted instances came back into rotation and served: the last
    // event waits until the previous victims pass the health checks, and
    // its own victim is then out of rotation.
    let after_restart: u64 = report.instances.iter().map(|i| i.after_restart()).sum();
    assert!(after_restart > 0, "no restarted instance served a batch");
    // Every committed batch was sent by some instance.
    let sent: u64 = report.instances.iter().map(|i| i.total()).sum();
    assert!(
        sent >= report.batches,
        "{sent} batches sent, {} committed",
        report.batches
    );
}
