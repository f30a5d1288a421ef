//! Medians over rounds and the ratios the report shows.

use std::collections::{BTreeMap, BTreeSet};

use super::Run;

/// The libraries tether is compared with (not tether itself, not raw TCP).
pub const OTHER_LIBS: &[&str] = &[
    "tokio-tungstenite",
    "fastwebsockets",
    "fastwebsockets-unbuffered",
    "tokio-websockets",
    "soketto",
];

/// The reference ceiling.
pub const RAW: &str = "raw-tcp";

/// The library tether is compared with over TLS: the fastest of
/// `OTHER_LIBS` at 64 B and 1 KiB on plain TCP, and the one most servers
/// run, over tokio-rustls.
pub const OTHER_TLS_LIBS: &[&str] = &["tungstenite-tls"];

/// The reference ceiling over TLS: tokio-rustls echoing bytes.
pub const RAW_TLS: &str = "raw-tls";

/// Behind an axum route, tether is compared with axum's own WebSocket.
pub const OTHER_AXUM_LIBS: &[&str] = &["axum-ws"];

/// The floor behind an axum route: tether on tokio without axum or hyper,
/// so the ratio says what the hyper path costs.
pub const AXUM_FLOOR: &str = "tether-tokio";

/// The libraries and the raw echo a scenario's ratios are against.
pub fn references(tls: bool, axum: bool) -> (&'static [&'static str], &'static str) {
    match (tls, axum) {
        (_, true) => (OTHER_AXUM_LIBS, AXUM_FLOOR),
        (true, false) => (OTHER_TLS_LIBS, RAW_TLS),
        (false, false) => (OTHER_LIBS, RAW),
    }
}

/// Metrics where less is better; every other one is more-is-better.
const LOWER_IS_BETTER: &[&str] = &[
    "cpu_ns_per_msg",
    "p50_us",
    "p99_us",
    "bytes_per_conn",
    "wire_bytes_per_msg",
    "held_cpu_util",
];

/// Every metric a run may report.
pub const METRICS: &[&str] = &[
    "msgs_per_s",
    "mb_per_s",
    "cpu_ns_per_msg",
    "server_cpu_util",
    "p50_us",
    "p99_us",
    "bytes_per_conn",
    "pings_per_conn",
    "wire_bytes_per_msg",
    "held_cpu_util",
    "held_pings_per_s",
    "rss_before",
    "rss_after",
    "published_per_s",
    "compression_ratio",
    "compressed_share",
];

/// Every text a run may report that the report shows: what TLS
/// negotiated, the extensions the server agreed to, and what the server
/// said it runs (the Python server: its versions).
pub const TEXTS: &[&str] = &["tls", "extensions", "server"];

/// The medians of one implementation in one scenario.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub runs: usize,
    pub errors: Vec<String>,
    pub medians: BTreeMap<&'static str, f64>,
    /// The distinct values of each of [`TEXTS`] over the runs.
    pub texts: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Summary {
    pub fn get(&self, metric: &str) -> Option<f64> {
        self.medians.get(metric).copied().filter(|v| v.is_finite())
    }
}

/// Groups runs by scenario and implementation and takes the median of
/// each metric.
pub fn summarize(runs: &[Run]) -> BTreeMap<(String, String), Summary> {
    type Values = BTreeMap<&'static str, Vec<f64>>;
    let mut groups: BTreeMap<(String, String), (Summary, Values)> = BTreeMap::new();
    for run in runs {
        let key = (run.scenario.to_owned(), run.implementation.clone());
        let (summary, values) = groups.entry(key).or_default();
        let result = match &run.outcome {
            Ok(r) => r,
            Err(e) => {
                summary.errors.push(e.clone());
                continue;
            }
        };
        summary.runs += 1;
        for &m in METRICS {
            if let Some(v) = result.get(m) {
                values.entry(m).or_default().push(v);
            }
        }
        for &t in TEXTS {
            if let Some(v) = result.get_text(t) {
                summary.texts.entry(t).or_default().insert(v.to_owned());
            }
        }
    }
    groups
        .into_iter()
        .map(|(key, (mut summary, values))| {
            for (m, mut v) in values {
                if let Some(med) = median(&mut v) {
                    summary.medians.insert(m, med);
                }
            }
            (key, summary)
        })
        .collect()
}

/// The median (mean of the middle two for an even count).
pub fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// How `value` compares with `reference`, as a factor where more than 1
/// always means better than the reference.
pub fn ratio(metric: &str, value: f64, reference: f64) -> Option<f64> {
    let r = if LOWER_IS_BETTER.contains(&metric) {
        reference / value
    } else {
        value / reference
    };
    r.is_finite().then_some(r)
}

/// The best of the other libraries `libs` in `metric` for one scenario:
/// its name and value.
pub fn best_other<'a>(
    scenario: &str,
    metric: &str,
    libs: &[&str],
    summaries: &'a BTreeMap<(String, String), Summary>,
) -> Option<(&'a str, f64)> {
    let lower = LOWER_IS_BETTER.contains(&metric);
    libs.iter()
        .filter_map(|lib| {
            let (key, s) = summaries.get_key_value(&(scenario.to_owned(), (*lib).to_owned()))?;
            Some((key.1.as_str(), s.get(metric)?))
        })
        .max_by(|a, b| {
            let ord = a.1.total_cmp(&b.1);
            if lower {
                ord.reverse()
            } else {
                ord
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn run(name: &str, round: usize, rate: f64, cpu: f64) -> Run {
        Run {
            scenario: "s",
            implementation: name.into(),
            round,
            outcome: Ok(Record::new()
                .num("msgs_per_s", rate)
                .num("cpu_ns_per_msg", cpu)),
        }
    }

    #[test]
    fn medians_and_best() {
        let runs: Vec<Run> = [(1.0, 30.0), (3.0, 10.0), (2.0, 20.0)]
            .iter()
            .enumerate()
            .flat_map(|(round, &(a, b))| {
                [
                    run("fastwebsockets", round, a, b),
                    run("tokio-websockets", round, a * 2.0, b * 2.0),
                ]
            })
            .collect();
        let s = summarize(&runs);
        let fw = &s[&("s".into(), "fastwebsockets".into())];
        assert_eq!((fw.runs, fw.get("msgs_per_s")), (3, Some(2.0)));
        assert_eq!(
            best_other("s", "msgs_per_s", OTHER_LIBS, &s),
            Some(("tokio-websockets", 4.0))
        );
        assert_eq!(
            best_other("s", "cpu_ns_per_msg", OTHER_LIBS, &s),
            Some(("fastwebsockets", 20.0))
        );
        assert_eq!(ratio("cpu_ns_per_msg", 10.0, 20.0), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        // The TLS references leave the plain libraries out.
        assert_eq!(
            best_other("s", "msgs_per_s", references(true, false).0, &s),
            None
        );
    }

    #[test]
    fn distinct_texts() {
        let tls = |round, t: &str| Run {
            scenario: "s",
            implementation: "raw-tls".into(),
            round,
            outcome: Ok(Record::new().num("msgs_per_s", 1.0).text("tls", t)),
        };
        let s = summarize(&[tls(1, "a"), tls(2, "a"), tls(3, "b")]);
        let texts = &s[&("s".into(), "raw-tls".into())].texts["tls"];
        assert_eq!(texts.iter().collect::<Vec<_>>(), ["a", "b"]);
    }
}
