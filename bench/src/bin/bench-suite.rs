//! `bench-suite`: runs the microbenchmarks and every scenario against every
//! implementation, then writes report.md and results.json.

use std::path::PathBuf;
use std::time::Instant;

use tether_bench::args::{self, Args};
use tether_bench::record::{json_array, json_string, Record};
use tether_bench::servers::IMPLS;
use tether_bench::suite::{report, scenarios, stats, Run, Runner, Scenario, Timing};
use tether_bench::tls;

const USAGE: &str = "usage: bench-suite [--quick] [--rounds N] [--warmup SECS] [--duration SECS]
    [--impls a,b,..] [--scenarios a,b,..] [--connections N] [--out DIR] [--no-micro]
    [--revision TEXT]
  --quick      the CI smoke pass: one short round with fewer connections
  --connections N  every chosen scenario with N connections instead of its own
               (idle-100k at 10,000 where the descriptor limit is lower, say)
  --out DIR    where report.md and results.json go (default: target/bench
               of the repository)
  --revision   what code is measured (bench/run passes the git commit)";

fn main() {
    let a = Args::parse(USAGE, &["quick", "no-micro"]);
    let quick = a.switch("quick");
    let rounds: usize = a.or("rounds", if quick { 1 } else { 3 });
    let timing = Timing {
        warmup: a.secs("warmup", if quick { 0.2 } else { 1.0 }),
        duration: a.secs("duration", if quick { 0.3 } else { 3.0 }),
    };
    let impls = pick(&a, "impls", IMPLS.to_vec());
    let all = scenarios::all(quick);
    let ids: Vec<&str> = all.iter().map(|s| s.id).collect();
    let wanted = pick(&a, "scenarios", ids);
    let mut scenarios: Vec<Scenario> = all.into_iter().filter(|s| wanted.contains(&s.id)).collect();
    if let Some(n) = a.get("connections") {
        let n: usize = n
            .parse()
            .unwrap_or_else(|_| args::die(USAGE, "--connections: not a number"));
        for s in &mut scenarios {
            s.connections = n;
            s.title = format!("{} (--connections {n})", s.title);
        }
    }
    let out = a.get("out").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench"),
        PathBuf::from,
    );
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let mut runner = Runner::new(&bin_dir);
    // One certificate for every TLS server of the run, made now, in a
    // directory of this run's own (removed when the runs are done).
    let tls_dir = scenarios
        .iter()
        .any(|s| s.tls && !s.impls(&impls).is_empty())
        .then(|| std::env::temp_dir().join(format!("tether-bench-tls-{}", std::process::id())));
    if let Some(dir) = &tls_dir {
        if let Err(e) = tls::ensure_identity(dir) {
            args::die("", &format!("TLS certificate in {}: {e}", dir.display()));
        }
        runner = runner.with_tls(dir);
    }
    let started = Instant::now();

    let micro = if a.switch("no-micro") {
        None
    } else {
        eprintln!("microbenchmarks ...");
        runner
            .micro(quick)
            .map_err(|e| eprintln!("microbenchmarks failed: {e}"))
            .ok()
    };

    let mut runs = Vec::new();
    for round in 1..=rounds {
        for s in &scenarios {
            for name in s.impls(&impls) {
                let outcome = runner.run(name, s, timing);
                eprintln!(
                    "[round {round}/{rounds}] {:<10} {name:<18} {}",
                    s.id,
                    brief(&outcome)
                );
                runs.push(Run {
                    scenario: s.id,
                    implementation: name.to_owned(),
                    round,
                    outcome,
                });
            }
        }
    }

    if let Some(dir) = &tls_dir {
        let _ = std::fs::remove_dir_all(dir);
    }

    let summaries = stats::summarize(&runs);
    let revision = a.get("revision").unwrap_or("unknown revision");
    let header = format!(
        "{} run of {revision}, {rounds} round{} of {:.1} s warm-up + {:.1} s measured per \
         implementation and scenario, {}; {}. Took {:.0} s. {}",
        if quick { "Quick (CI smoke)" } else { "Full" },
        if rounds == 1 { "" } else { "s" },
        timing.warmup.as_secs_f64(),
        timing.duration.as_secs_f64(),
        if runner.pinned() {
            "server pinned to core 0 and load generator to core 1"
        } else {
            "unpinned"
        },
        machine(),
        started.elapsed().as_secs_f64(),
        contention(&runs),
    );
    let md = report::markdown(&header, &scenarios, &impls, &summaries, micro.as_deref());

    let meta = Record::new()
        .text("mode", if quick { "quick" } else { "full" })
        .text("revision", revision)
        .num("rounds", rounds as f64)
        .num("warmup_s", timing.warmup.as_secs_f64())
        .num("duration_s", timing.duration.as_secs_f64())
        .text("pinned", if runner.pinned() { "yes" } else { "no" })
        .text("machine", &machine());
    let scenario_json = scenarios.iter().map(|s| {
        Record::new()
            .text("id", s.id)
            .text("title", &s.title)
            .num("connections", s.connections as f64)
            .num("in_flight", s.in_flight as f64)
            .num("size", s.size as f64)
            .to_json()
    });
    let summary_json = summaries.iter().map(|((s, i), sum)| {
        let medians = sum
            .medians
            .iter()
            .fold(Record::new(), |r, (m, v)| r.num(m, *v));
        format!(
            "{{\"scenario\": {}, \"impl\": {}, \"runs\": {}, \"failed\": {}, \"medians\": {}}}",
            json_string(s),
            json_string(i),
            sum.runs,
            sum.errors.len(),
            medians.to_json()
        )
    });
    let results = format!(
        "{{\n\"meta\": {},\n\"scenarios\": {},\n\"runs\": {},\n\"summary\": {},\n\"micro\": {}\n}}\n",
        meta.to_json(),
        json_array(scenario_json),
        json_array(runs.iter().map(Run::to_json)),
        json_array(summary_json),
        json_array(micro.iter().flatten().map(Record::to_json)),
    );
    if let Err(e) = std::fs::create_dir_all(&out)
        .and_then(|()| std::fs::write(out.join("report.md"), &md))
        .and_then(|()| std::fs::write(out.join("results.json"), results))
    {
        args::die("", &format!("writing {}: {e}", out.display()));
    }
    eprintln!("wrote {}", out.join("report.md").display());
    let failed = runs.iter().filter(|r| r.outcome.is_err()).count();
    if failed > 0 {
        eprintln!("{failed} of {} runs failed", runs.len());
        std::process::exit(1);
    }
}

/// `--name a,b` restricted to the known values, or all of them.
fn pick<'a>(a: &Args, name: &str, known: Vec<&'a str>) -> Vec<&'a str> {
    let Some(list) = a.get(name) else {
        return known;
    };
    let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
    for w in &wanted {
        if !known.contains(w) {
            args::die(
                USAGE,
                &format!("--{name}: unknown {w}; known: {}", known.join(",")),
            );
        }
    }
    known.into_iter().filter(|k| wanted.contains(k)).collect()
}

fn brief(outcome: &Result<Record, String>) -> String {
    match outcome {
        Err(e) => format!("FAILED: {e}"),
        Ok(r) => match r.get("bytes_per_conn") {
            Some(b) => format!("{b:.0} B/conn"),
            None => format!(
                "{} msgs/s, {} CPU/msg",
                report::count(r.get("msgs_per_s").unwrap_or(0.0)),
                report::nanos(r.get("cpu_ns_per_msg").unwrap_or(f64::NAN)),
            ),
        },
    }
}

/// How busy the rest of the machine was while runs were measured: other
/// processes on the two cores make every number noisier.
fn contention(runs: &[Run]) -> String {
    let mut others: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok()?.get("others_cpu_util"))
        .collect();
    let Some(median) = stats::median(&mut others) else {
        return String::new();
    };
    let max = others.last().copied().unwrap_or(median);
    let mut line = format!(
        "Other processes used a median {:.0}% (at most {:.0}%) of one core while runs were \
         measured",
        median * 100.0,
        max * 100.0
    );
    line.push_str(if median > 0.1 {
        ": the machine was shared, so treat small differences as noise."
    } else {
        "."
    });
    line
}

/// CPU model, cores and kernel, for the report header.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {kernel}")
}
