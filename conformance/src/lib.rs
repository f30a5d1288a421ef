//! Shared parts of the Autobahn testees: argument parsing and the echo
//! loop, written once over tether's runtime-generic `WebSocket`.

use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tether::{Config, Message, Runtime, Transport, WebSocket};

/// Command-line options shared by both testees.
#[derive(Debug, Default)]
pub struct Args {
    /// `smol`, `tokio` or `mio`.
    pub runtime: String,
    /// `--addr` (server) or `--url` (client).
    pub target: String,
    /// `--agent` (client).
    pub agent: String,
    /// `--ping-interval SECS`.
    pub ping_interval: Option<Duration>,
    /// `--ping-timeout SECS`.
    pub ping_timeout: Option<Duration>,
    /// `--via axum` (server): behind an axum route instead of a listener
    /// of tether's own.
    pub via: Option<String>,
}

impl Args {
    /// Parses `std::env::args`, exiting with a usage message on error.
    pub fn parse(target_flag: &str, usage: &str) -> Self {
        let mut args = Args {
            runtime: "smol".into(),
            agent: "tether".into(),
            ..Args::default()
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .unwrap_or_else(|| die(usage, &format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--runtime" => args.runtime = value(),
                "--agent" => args.agent = value(),
                "--via" => args.via = Some(value()),
                "--ping-interval" => args.ping_interval = Some(secs(&value(), usage)),
                "--ping-timeout" => args.ping_timeout = Some(secs(&value(), usage)),
                f if f == target_flag => args.target = value(),
                "-h" | "--help" => {
                    println!("{usage}");
                    std::process::exit(0);
                }
                other => die(usage, &format!("unknown argument {other}")),
            }
        }
        if args.target.is_empty() {
            die(usage, &format!("{target_flag} is required"));
        }
        args
    }

    /// The connection settings for a testee: room for Autobahn's largest
    /// messages, keepalive only when asked for.
    pub fn config(&self) -> Config {
        Config::without_keepalive()
            .with_ping_interval(self.ping_interval)
            .with_ping_timeout(self.ping_timeout)
    }
}

fn secs(v: &str, usage: &str) -> Duration {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s),
        _ => die(usage, &format!("not a positive number of seconds: {v}")),
    }
}

fn die(usage: &str, msg: &str) -> ! {
    eprintln!("error: {msg}\n{usage}");
    std::process::exit(2);
}

/// Echoes every text and binary message until the connection ends.
/// Messages already received are queued together and flushed once, so a
/// burst of messages costs one write.
pub async fn echo<S: Transport, R: Runtime>(mut ws: WebSocket<S, R>) {
    loop {
        let next = match ws.next().now_or_never() {
            Some(next) => next,
            None => {
                if ws.flush().await.is_err() {
                    return;
                }
                ws.next().await
            }
        };
        match next {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                if ws.feed(m).await.is_err() {
                    // Closing: keep reading so the close handshake finishes.
                    continue;
                }
            }
            // Pings are answered by the core; a protocol error has queued
            // its close frame and the stream ends after it.
            Some(Err(e)) if std::env::var_os("TESTEE_DEBUG").is_some() => eprintln!("testee: {e}"),
            Some(_) => {}
            None => return,
        }
    }
}
