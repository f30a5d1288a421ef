//! `tether bench` against `tether serve`: it reports a count and rates
//! (never judged by their size: speed is the benchmarks' business), stops
//! at --count, and refuses a remote target unless asked.

mod common;

use common::{run, Serve};

#[test]
fn bench_against_tether_serve_reports_counts_and_rates() {
    let serve = Serve::start(&[]);
    let r = run(
        &[
            "bench",
            &serve.url(),
            "--connections",
            "3",
            "--in-flight",
            "4",
            "--size",
            "100",
            "--count",
            "3000",
            "--json",
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{r:?}");
    let report: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one JSON object");
    assert_eq!(report["messages"], 3000, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["connections"], 3);
    assert!(
        report["messages_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(report["mb_per_sec"].as_f64().unwrap() > 0.0, "{report}");
    for p in ["p50", "p99", "p999"] {
        assert!(report["latency_us"][p].as_u64().is_some(), "{report}");
    }
    // No progress line when stderr is not a terminal.
    assert!(!r.stderr.contains('\r'), "{r:?}");
}

#[test]
fn bench_with_compression_and_a_duration_prints_a_summary() {
    let serve = Serve::start(&["--compress"]);
    let r = run(
        &[
            "bench",
            &serve.url(),
            "--compress",
            "--duration",
            "300ms",
            "-c",
            "1",
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("messages/s"), "{r:?}");
    assert!(r.stdout.contains("MB/s"), "{r:?}");
    assert!(r.stdout.contains("p99.9"), "{r:?}");
}

#[test]
fn bench_refuses_a_remote_target_without_allow_remote() {
    let r = run(&["bench", "ws://192.0.2.1:9001/", "--count", "1"], b"");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--allow-remote"), "{r:?}");
    let r = run(&["bench", "ws://127.0.0.1:9001/", "--size", "4"], b"");
    assert_eq!(r.code, 2, "{r:?}");
}
