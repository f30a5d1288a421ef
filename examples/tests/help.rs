//! Every example answers `--help` and `-h`: its usage on stdout, its
//! options listed, status 0, before it starts any work.

use std::path::PathBuf;
use std::process::Command;

/// The examples `cargo test` built next to this test binary
/// (target/<profile>/examples/).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .ancestors()
        .nth(2)
        .expect("test binary inside target/<profile>/deps")
        .join("examples");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{path:?} missing: `cargo test -p tether-examples` builds the examples"
    );
    path
}

#[test]
fn every_example_prints_its_usage_with_help() {
    let examples: &[(&str, &[&str])] = &[
        ("echo", &["--messages", "--size"]),
        ("echo-tokio", &["No options"]),
        ("blocking-std", &["No options"]),
        (
            "million-rows",
            &[
                "--rows",
                "--batch",
                "--window",
                "--chaos",
                "--seed",
                "--dir",
                "--tls",
                "--source",
                "--no-progress",
            ],
        ),
        (
            "scale-out",
            &[
                "--rows",
                "--instances",
                "--kills",
                "--drains",
                "--postgres",
                "--no-progress",
            ],
        ),
        ("mio-client", &["URL"]),
        ("mio-echo-server", &["ADDR"]),
        ("mio-hold", &["URL", "CONNECTIONS", "SECONDS"]),
        (
            "soak",
            &[
                "--connections",
                "--duration",
                "--runtime",
                "--cycle",
                "--ping-interval",
            ],
        ),
    ];
    for (name, options) in examples {
        for flag in ["--help", "-h"] {
            let out = Command::new(example(name))
                .arg(flag)
                .output()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{name} {flag}: {:?}", out.status);
            assert!(
                stdout.contains("usage: cargo run"),
                "{name} {flag}: {stdout}"
            );
            assert!(
                stdout.contains(&format!("--example {name}")),
                "{name}: {stdout}"
            );
            for option in *options {
                assert!(
                    stdout.contains(option),
                    "{name} {flag}: {option} missing: {stdout}"
                );
            }
        }
    }
}
