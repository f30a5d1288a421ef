//! The showcase's transfer, small and cut at random points: real SQLite
//! databases on both sides, a real tether server and reconnecting client
//! on loopback, and the relay cutting connections wherever quickcheck
//! says, in either direction (handshakes, RESUME, batches, acks). Every
//! case must end with the client's table equal to the source, field for
//! field, with no row lost or duplicated (a duplicate would also violate
//! the primary key and fail the transfer).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use indicatif::ProgressBar;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use tether_examples::rows::{client, db, relay, server, spawn_server, tls};

const ROWS: u64 = 3_000;

struct Fixture {
    dir: PathBuf,
    source: PathBuf,
    server: SocketAddr,
    /// The same table over `wss://`, with a certificate made for the run.
    tls_server: SocketAddr,
    checksum: (u64, u64),
}

/// One source database and one server for every case: the server keeps
/// no state between connections, so sharing it is part of the test.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tether-rows-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("source.sqlite");
        let mut conn = db::open_rw(&source).unwrap();
        db::generate(&mut conn, ROWS, 42).unwrap();
        let checksum = db::checksum(&conn).unwrap();
        assert_eq!(checksum.0, ROWS);
        let config = server::ServeConfig::new(server::Source::Sqlite(source.clone()), 100, 8);
        let server = spawn_server(config.clone()).unwrap();
        tls::make_cert(&dir).unwrap();
        let tls_server = spawn_server(server::ServeConfig {
            tls: Some(tls::server_config(&dir).unwrap()),
            ..config
        })
        .unwrap();
        Fixture {
            dir,
            source,
            server,
            tls_server,
            checksum,
        }
    })
}

#[derive(Debug, Clone)]
struct Chaos {
    down: Vec<u64>,
    up: Vec<u64>,
    window: u32,
    /// Over `wss://`: the cuts fall inside TLS records and handshakes.
    tls: bool,
}

impl Arbitrary for Chaos {
    fn arbitrary(g: &mut Gen) -> Self {
        // Batches of 100 rows are about 5.5 KB; the data is about 170 KB
        // down, and the client sends about 300 bytes per connection.
        let cuts = usize::arbitrary(g) % 8;
        let (mut down, mut up) = (Vec::new(), Vec::new());
        for _ in 0..cuts {
            if bool::arbitrary(g) && bool::arbitrary(g) {
                up.push(u64::arbitrary(g) % 1_500);
            } else {
                down.push(u64::arbitrary(g) % 170_000);
            }
        }
        down.sort_unstable();
        up.sort_unstable();
        Chaos {
            down,
            up,
            window: 1 + u32::arbitrary(g) % 5,
            tls: false,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let me = self.clone();
        Box::new(
            self.down
                .shrink()
                .map(move |down| Chaos { down, ..me.clone() }),
        )
    }
}

/// Runs one transfer through a relay with these cuts; returns the rows
/// received, the cuts made and the connections used.
fn transfer(chaos: &Chaos, name: &str) -> (u64, u64, u64) {
    let f = fixture();
    let relay = relay::Relay::start(
        if chaos.tls { f.tls_server } else { f.server },
        relay::Cuts {
            down: chaos.down.clone(),
            up: chaos.up.clone(),
        },
    )
    .unwrap();
    let target = f.dir.join(format!("{name}.sqlite"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", target.display()));
    }
    let report = smol::block_on(client::run(
        client::ClientConfig {
            url: format!(
                "{}://localhost:{}/readings",
                if chaos.tls { "wss" } else { "ws" },
                relay.addr().port()
            ),
            tls: chaos.tls.then(|| tls::client_config(&f.dir).unwrap()),
            db: target.clone(),
            window: chaos.window,
            backoff: client::quick_backoff()
                .with_initial(std::time::Duration::from_millis(1))
                .with_max(std::time::Duration::from_millis(20)),
            max_rate: None,
        },
        ProgressBar::hidden(),
    ))
    .unwrap_or_else(|e| panic!("transfer under {chaos:?} failed: {e}"));
    let received = db::checksum(&db::open_ro(&target).unwrap()).unwrap();
    assert_eq!(
        received, f.checksum,
        "the received table differs from the source under {chaos:?}"
    );
    assert_eq!(report.rows, ROWS, "rows committed under {chaos:?}");
    let stored = db::position(&db::open_ro(&target).unwrap()).unwrap();
    assert_eq!(
        stored.next_seq,
        ROWS / 100,
        "resume position after the last batch"
    );
    (
        report.rows,
        relay.counters().cuts.load(Ordering::Relaxed),
        report.connections,
    )
}

#[test]
fn random_cuts_lose_and_duplicate_nothing() {
    fn prop(chaos: Chaos) -> TestResult {
        static CASE: AtomicU64 = AtomicU64::new(0);
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        let (rows, cuts, connections) = transfer(&chaos, &format!("qc-{case}"));
        // Every cut that lands after a connection is up costs one
        // connection; cuts in a handshake cost an attempt instead.
        TestResult::from_bool(rows == ROWS && connections <= cuts + 1)
    }
    QuickCheck::new()
        .tests(16)
        .quickcheck(prop as fn(Chaos) -> TestResult);
}

#[test]
fn cuts_in_handshakes_and_acks_and_on_every_batch() {
    // Up-direction cuts from the first byte of the first handshake to
    // well past it; down-direction cuts every 7 KB, so most batches are
    // cut at least once.
    let chaos = Chaos {
        down: (1..24).map(|i| i * 7_000).collect(),
        up: vec![0, 5, 120, 260, 330, 700],
        window: 3,
        tls: false,
    };
    let (rows, cuts, connections) = transfer(&chaos, "dense");
    assert_eq!(rows, ROWS);
    assert!(cuts >= 20, "the relay made only {cuts} cuts");
    assert!(connections > 10, "only {connections} connections");
}

#[test]
fn without_cuts_one_connection_suffices() {
    let (rows, cuts, connections) = transfer(
        &Chaos {
            down: Vec::new(),
            up: Vec::new(),
            window: 4,
            tls: false,
        },
        "clean",
    );
    assert_eq!((rows, cuts, connections), (ROWS, 0, 1));
}

/// The same over `wss://`: cuts inside the TLS handshake (the client's
/// hello is about 250 bytes, the server's reply about 1 KB) and inside
/// records. A cut TLS stream is a lost connection, retried; only a
/// certificate the client cannot trust would stop it.
#[test]
fn over_tls_cuts_in_tls_handshakes_and_records_lose_nothing() {
    let chaos = Chaos {
        down: vec![0, 40, 600, 1_200, 9_000, 30_000, 30_001, 75_000, 120_000],
        up: vec![0, 3, 100, 300, 900],
        window: 3,
        tls: true,
    };
    let (rows, cuts, connections) = transfer(&chaos, "tls-dense");
    assert_eq!(rows, ROWS);
    assert!(cuts >= 10, "the relay made only {cuts} cuts");
    assert!(connections > 3, "only {connections} connections");
    let clean = Chaos {
        down: Vec::new(),
        up: Vec::new(),
        window: 4,
        tls: true,
    };
    assert_eq!(transfer(&clean, "tls-clean"), (ROWS, 0, 1));
}

#[test]
fn a_client_without_the_subprotocol_is_refused() {
    let f = fixture();
    let err = smol::block_on(tether::smol::connect(&format!(
        "ws://{}/readings",
        f.server
    )))
    .err()
    .expect("the server must refuse");
    assert!(
        err.to_string().contains("400"),
        "expected a 400 answer, got {err}"
    );
    let _ = &f.source;
}
