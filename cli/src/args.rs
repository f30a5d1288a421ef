//! The command line: what each subcommand takes, with the help text a
//! user reads instead of a manual.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::exit;

const EXAMPLES: &str = "\
Examples:
  echo hi | tether ws://127.0.0.1:9001/ -n 1     send one line, print one reply
  tether connect wss://example.com/ws --jsonl     every event as one JSON line
  tether serve 127.0.0.1:9001                     an echo server
  tether serve 0.0.0.0:9001 --exec 'tr a-z A-Z'   a process per connection
  tether bench ws://127.0.0.1:9001/ --duration 5s load test an echo server

`tether URL` is short for `tether connect URL`.";

/// A WebSocket client, server and load generator for the terminal, built
/// on the tether library.
#[derive(Debug, Parser)]
#[command(name = "tether", version, after_help = EXAMPLES, after_long_help = format!("{EXAMPLES}\n\n{}", exit::HELP))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect to a server: stdin lines become messages, messages go to
    /// stdout (an interactive prompt when stdin is a terminal).
    #[command(after_help = CONNECT_EXAMPLES, after_long_help = format!("{CONNECT_EXAMPLES}\n\n{}", exit::HELP))]
    Connect(Box<ConnectArgs>),
    /// Serve WebSocket connections: echo, broadcast or a process each.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Load an echo server: messages/s, MB/s and latency percentiles.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
}

const CONNECT_EXAMPLES: &str = "\
Examples:
  echo hi | tether connect ws://127.0.0.1:9001/ -n 1
  tether connect wss://host/ws -H 'Authorization: Bearer t' --subprotocol chat
  printf '00ff\\n' | tether connect ws://host/ --hex --once
  tether connect wss://localhost:9443/ --cacert ca.pem --show-pings
  tether connect ws://host/ --proxy socks5://127.0.0.1:1080 --reconnect

Interactive mode (stdin is a terminal): type a line to send it, or
  /ping [TEXT]   ping, and print the round trip
  /close [CODE [REASON]]   close (default 1000) and wait for the server
  /binary HEX    send a binary message
  /help          list the commands;   /quit   close with 1000 and exit
A line starting with `//` sends its text from the second `/` on.

Exit status: 0 normal close (1000), 1 local error, 2 usage, 3 connection or
handshake failed, 4 going away (1001), 5 policy (1008), 6 protocol error,
7 abnormal (no close frame), 8 --timeout, 9 application code (3000-4999);
`--help` lists them in full.";

const SERVE_EXAMPLES: &str = "\
Examples:
  tether serve 9001                               echo on 127.0.0.1:9001
  tether serve 0.0.0.0:9443 --tls-cert c.pem --tls-key k.pem
  tether serve 127.0.0.1:9001 --broadcast         stdin to every client
  tether serve 127.0.0.1:9001 --exec 'python3 bot.py'

A line on stderr for each connection opened (peer address) and closed
(close code, duration, messages). Ctrl-C or SIGTERM closes every
connection with 1001, then exits 0.";

const BENCH_EXAMPLES: &str = "\
Examples:
  tether serve 127.0.0.1:9001 & tether bench ws://127.0.0.1:9001/
  tether bench ws://127.0.0.1:9001/ --connections 8 --in-flight 32 --size 1024
  tether bench ws://127.0.0.1:9001/ --count 100000 --json

Sends binary messages to an echo server and times each echo. Targets
other than loopback are refused unless --allow-remote.";

/// `tether connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The server: ws://host[:port]/path or wss://…
    pub url: String,

    /// Send stdin lines as binary messages (raw bytes, newline removed).
    #[arg(long, short = 'b')]
    pub binary: bool,
    /// Binary payloads as base64, both ways: stdin lines are decoded and
    /// sent as binary, binary messages are printed encoded.
    #[arg(long, conflicts_with = "hex")]
    pub base64: bool,
    /// Binary payloads as hex, both ways (like --base64).
    #[arg(long)]
    pub hex: bool,

    /// An extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The Origin header.
    #[arg(long)]
    pub origin: Option<String>,
    /// A subprotocol to offer, most preferred first (repeatable).
    #[arg(long = "subprotocol", short = 's', value_name = "NAME")]
    pub subprotocols: Vec<String>,
    /// Offer permessage-deflate compression.
    #[arg(long)]
    pub compress: bool,

    /// Connect through this proxy: http://[user:pass@]host:port or
    /// socks5://…  (default: the http_proxy/https_proxy/all_proxy/no_proxy
    /// environment variables).
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    pub proxy: Option<String>,
    /// Ignore the proxy environment variables: connect directly.
    #[arg(long)]
    pub no_proxy: bool,

    /// Trust the CA certificates in this PEM file (instead of the
    /// built-in Mozilla roots).
    #[arg(long, value_name = "PEM")]
    pub cacert: Option<PathBuf>,
    /// A client certificate chain (PEM) for mutual TLS; needs --key.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Accept any server certificate. DANGEROUS: anyone on the path can
    /// read and change the traffic. For test servers only.
    #[arg(long, short = 'k', conflicts_with = "cacert")]
    pub insecure: bool,

    /// Send a keepalive ping after this long without one (0: never).
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// Fail the connection when a ping has no pong after this long (0: never).
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub ping_timeout: Duration,
    /// Print the round-trip time of each keepalive ping (stderr).
    #[arg(long)]
    pub show_pings: bool,

    /// Reconnect with backoff when the connection is lost or the server
    /// goes away (1001, 1006, 1011-1014); each disconnect and reconnect
    /// is printed on stderr.
    #[arg(long)]
    pub reconnect: bool,

    /// Print every event (open, message, ping, close, error, reconnect)
    /// as one JSON object per line on stdout, with a timestamp.
    #[arg(long)]
    pub jsonl: bool,

    /// Exit after this many incoming messages (closing with 1000).
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
    /// Close with 1000 and exit 8 after this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Send all of stdin, wait for one reply, close and exit.
    #[arg(long, conflicts_with = "count")]
    pub once: bool,
    /// Read stdin as lines to send even when it is a terminal (no prompt).
    #[arg(long)]
    pub no_interactive: bool,
}

/// `tether serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen: HOST:PORT, or PORT for 127.0.0.1:PORT (port 0
    /// picks a free one; the address is printed on stderr).
    pub addr: String,
    /// Send every message back to its sender (the default).
    #[arg(long, group = "mode")]
    pub echo: bool,
    /// Stdin lines go to every client; every client's messages go to
    /// stdout.
    #[arg(long, group = "mode")]
    pub broadcast: bool,
    /// Run CMD (with `sh -c`) for each connection: each message becomes a
    /// line on its stdin, each line of its stdout a text message. The
    /// connection closes when it exits; it is killed when the connection
    /// closes.
    #[arg(long, group = "mode", value_name = "CMD")]
    pub exec: Option<String>,
    /// Serve TLS (wss://) with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Ping each client after this long without one (0: never); a client
    /// that leaves a ping unanswered as long (at least 5s) is dropped.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// Accept permessage-deflate when a client offers it.
    #[arg(long)]
    pub compress: bool,
}

/// `tether bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// An echo server: ws://host[:port]/path or wss://…
    pub url: String,
    /// Connections to open.
    #[arg(long, short = 'c', default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,
    /// Messages awaiting their echo on each connection.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub in_flight: u32,
    /// Message size in bytes (at least 8: each carries its send time).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=(64 << 20)))]
    pub size: u32,
    /// Stop sending after this long (default 10s; at most 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many messages in total.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Offer permessage-deflate.
    #[arg(long)]
    pub compress: bool,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Accept any server certificate (DANGEROUS; test servers only).
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub cacert: Option<PathBuf>,
}

/// `500ms`, `20s`, `2m`, `1h`, or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (like 500ms, 20s, 2m, 1h)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} (ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{s:?} is out of range"))
}

/// `tether URL …` means `tether connect URL …`.
pub fn with_implicit_connect(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    if let Some(first) = argv.get(1).and_then(|a| a.to_str()) {
        if first.starts_with("ws://") || first.starts_with("wss://") {
            argv.insert(1, "connect".into());
        }
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("1e999").is_err());
    }

    #[test]
    fn the_cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
