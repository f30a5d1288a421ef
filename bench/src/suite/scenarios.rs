//! The scenarios of issue 7, in full and in the quick CI form.

use std::time::Duration;

/// What the load generator does in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Keep messages in flight and count echoes.
    Echo,
    /// Open connections and measure the server's memory.
    Idle,
    /// One publisher, every connection subscribed: deliveries per second.
    Broadcast,
    /// Clients connecting, echoing once and closing, over and over.
    ConnectRate,
}

/// One load shape.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub id: &'static str,
    pub title: String,
    pub kind: Kind,
    pub connections: usize,
    pub in_flight: usize,
    pub size: usize,
    /// permessage-deflate negotiated, JSON-like text sent compressed.
    pub deflate: bool,
    /// Over TLS: run against the TLS servers only, compared with
    /// tungstenite-tls and raw-tls.
    pub tls: bool,
    /// Behind an axum route: tether-axum against axum-ws, with
    /// tether-tokio (no axum, no hyper) as the floor.
    pub axum: bool,
}

/// How long each run lasts.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub duration: Duration,
}

impl Scenario {
    fn echo(id: &'static str, connections: usize, in_flight: usize, size: usize) -> Self {
        Self {
            id,
            title: format!(
                "{} messages, {}",
                human_size(size),
                shape(connections, in_flight)
            ),
            kind: Kind::Echo,
            connections,
            in_flight,
            size,
            deflate: false,
            tls: false,
            axum: false,
        }
    }

    fn axum_echo(id: &'static str, connections: usize, in_flight: usize, size: usize) -> Self {
        let plain = Self::echo(id, connections, in_flight, size);
        Self {
            title: format!("axum route: {}", plain.title),
            axum: true,
            ..plain
        }
    }

    fn axum_idle(connections: usize) -> Self {
        Self {
            id: "axum-idle",
            title: format!(
                "axum route: resident memory per idle connection, {connections} connections"
            ),
            axum: true,
            ..Self::idle(connections)
        }
    }

    fn tls_echo(id: &'static str, connections: usize, in_flight: usize, size: usize) -> Self {
        let plain = Self::echo(id, connections, in_flight, size);
        Self {
            title: format!("TLS: {}", plain.title),
            tls: true,
            ..plain
        }
    }

    fn deflate(id: &'static str, connections: usize, in_flight: usize, size: usize) -> Self {
        Self {
            title: format!(
                "permessage-deflate: {} JSON text messages, {}",
                human_size(size),
                shape(connections, in_flight)
            ),
            deflate: true,
            ..Self::echo(id, connections, in_flight, size)
        }
    }

    /// The implementations this scenario runs against, of `all`.
    pub fn impls<'a>(&self, all: &[&'a str]) -> Vec<&'a str> {
        all.iter()
            .copied()
            .filter(|i| self.tls == crate::servers::TLS_IMPLS.contains(i))
            .filter(|i| {
                let axum = crate::servers::AXUM_IMPLS.contains(i);
                if self.axum {
                    axum || *i == "tether-tokio"
                } else {
                    !axum
                }
            })
            .filter(|i| !self.deflate || crate::servers::DEFLATE_IMPLS.contains(i))
            .filter(|i| self.deflate || !crate::servers::PYTHON_IMPLS.contains(i))
            .filter(|i| self.kind == Kind::Idle || !crate::servers::KEEPALIVE_IMPLS.contains(i))
            .filter(|i| self.size >= 1 << 20 || !crate::servers::CHUNK_IMPLS.contains(i))
            .filter(|i| self.kind != Kind::Broadcast || crate::servers::BROADCAST_IMPLS.contains(i))
            .filter(|i| {
                !self.is_idle_many()
                    || crate::servers::KEEPALIVE_IMPLS.contains(i)
                    || crate::servers::RAW_IMPLS.contains(i)
            })
            .collect()
    }

    /// Many idle connections with keepalive on: only the keepalive
    /// servers and the raw TCP floor.
    fn idle_many(connections: usize) -> Self {
        Self {
            id: "idle-100k",
            title: format!(
                "resident memory per idle connection and CPU of keepalive, {connections} \
                 connections"
            ),
            ..Self::idle(connections)
        }
    }

    /// Whether this is `idle-100k`, which runs the keepalive servers and
    /// raw TCP only.
    pub fn is_idle_many(&self) -> bool {
        self.id == "idle-100k"
    }

    fn idle(connections: usize) -> Self {
        Self {
            id: "idle",
            title: format!("resident memory per idle connection, {connections} connections"),
            kind: Kind::Idle,
            connections,
            in_flight: 1,
            size: 32,
            deflate: false,
            tls: false,
            axum: false,
        }
    }

    /// Idle connections with permessage-deflate: each has had
    /// [`DEFLATE_IDLE_MESSAGES`] compressed JSON records echoed first, so
    /// the server holds both an inflater and a compressor with context.
    fn deflate_idle(connections: usize) -> Self {
        Self {
            id: "deflate-idle",
            title: format!(
                "permessage-deflate: resident memory per idle connection and compression                  ratio, {connections} connections"
            ),
            deflate: true,
            ..Self::idle(connections)
        }
    }

    fn broadcast(connections: usize, in_flight: usize, size: usize) -> Self {
        Self {
            id: "broadcast",
            title: format!(
                "broadcast: {} messages from one publisher to {connections} subscribed \
                 connections, {in_flight} in flight",
                human_size(size)
            ),
            kind: Kind::Broadcast,
            connections,
            in_flight,
            size,
            deflate: false,
            tls: false,
            axum: false,
        }
    }

    fn connect_rate(connections: usize) -> Self {
        Self {
            id: "connect-rate",
            title: format!(
                "connection rate: {connections} clients each connecting, echoing one 32 B \
                 message and closing, over and over"
            ),
            kind: Kind::ConnectRate,
            connections,
            in_flight: 1,
            size: 32,
            deflate: false,
            tls: false,
            axum: false,
        }
    }

    fn tls_idle(connections: usize) -> Self {
        Self {
            id: "tls-idle",
            title: format!("resident memory per idle TLS connection, {connections} connections"),
            tls: true,
            ..Self::idle(connections)
        }
    }

    /// A single connection with one small message in flight: the round
    /// trip scenario, reported with latencies.
    pub fn is_round_trip(&self) -> bool {
        self.kind == Kind::Echo && self.connections == 1 && self.in_flight == 1 && self.size <= 64
    }
}

/// The compressed JSON records each `deflate-idle` connection has echoed,
/// one after another, before it idles.
pub const DEFLATE_IDLE_MESSAGES: usize = 3;

/// Every scenario; `quick` uses fewer connections for the CI smoke run.
/// `tls-idle` opens 2,000 connections, not 10,000: the load generator
/// makes them one after another, about 2 ms a TLS handshake.
pub fn all(quick: bool) -> Vec<Scenario> {
    let c = |full: usize, small: usize| if quick { small } else { full };
    vec![
        Scenario::echo("echo-64", c(64, 16), 16, 64),
        Scenario::echo("echo-1k", c(64, 16), 16, 1 << 10),
        Scenario::echo("echo-16k", c(200, 32), 4, 16 << 10),
        Scenario::echo("echo-64k", c(8, 4), 4, 64 << 10),
        Scenario::echo("round-trip", 1, 1, 32),
        Scenario::echo("echo-16m", 1, 1, 16 << 20),
        Scenario::deflate("deflate-1k", c(64, 16), 16, 1 << 10),
        Scenario::idle(c(10_000, 1_000)),
        Scenario::deflate_idle(c(2_000, 200)),
        Scenario::broadcast(c(10_000, 500), 16, 256),
        Scenario::connect_rate(c(1_000, 100)),
        Scenario::idle_many(c(100_000, 2_000)),
        Scenario::tls_echo("tls-echo-64", c(64, 16), 16, 64),
        Scenario::tls_echo("tls-echo-1k", c(64, 16), 16, 1 << 10),
        Scenario::tls_echo("tls-echo-64k", c(8, 4), 4, 64 << 10),
        Scenario::tls_idle(c(2_000, 500)),
        Scenario::axum_echo("axum-echo-64", c(64, 16), 16, 64),
        Scenario::axum_echo("axum-echo-1k", c(64, 16), 16, 1 << 10),
        Scenario::axum_idle(c(10_000, 1_000)),
    ]
}

/// `64 connections × 16 in flight`.
fn shape(connections: usize, in_flight: usize) -> String {
    let plural = if connections == 1 { "" } else { "s" };
    format!("{connections} connection{plural} × {in_flight} in flight")
}

/// `64 B`, `1 KiB`, `16 MiB`.
pub fn human_size(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}
