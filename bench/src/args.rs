//! A minimal `--flag value` parser; the binaries take a handful of flags
//! and a parser crate would cost more build time than it saves.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// Parsed `--flag value` pairs and bare `--switch`es.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    /// Parses the process arguments. `switches` names the flags that take
    /// no value; any other `--flag` takes the next argument.
    pub fn parse(usage: &str, switches: &[&str]) -> Self {
        let mut args = Args::default();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                println!("{usage}");
                std::process::exit(0);
            }
            let Some(name) = flag.strip_prefix("--") else {
                die(usage, &format!("unexpected argument {flag}"));
            };
            if switches.contains(&name) {
                args.switches.push(name.to_owned());
            } else {
                let value = it
                    .next()
                    .unwrap_or_else(|| die(usage, &format!("{flag} needs a value")));
                args.values.insert(name.to_owned(), value);
            }
        }
        args
    }

    /// Whether `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// The raw value of `--name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// `--name` parsed, or `default`; exits on a malformed value.
    pub fn or<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.get(name) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die("", &format!("--{name}: cannot parse {v:?}"))),
        }
    }

    /// `--name` in (fractional) seconds, or `default`.
    pub fn secs(&self, name: &str, default: f64) -> Duration {
        let s: f64 = self.or(name, default);
        if !(s.is_finite() && s >= 0.0) {
            die("", &format!("--{name}: not a duration in seconds: {s}"));
        }
        Duration::from_secs_f64(s)
    }

    /// `--name`, which must be present.
    pub fn required(&self, name: &str, usage: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| die(usage, &format!("--{name} is required")))
    }
}

/// Prints `msg` (and the usage, if any) and exits with status 2.
pub fn die(usage: &str, msg: &str) -> ! {
    eprintln!("error: {msg}");
    if !usage.is_empty() {
        eprintln!("{usage}");
    }
    std::process::exit(2);
}
