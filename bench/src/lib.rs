//! Comparative WebSocket benchmarks: tether against other Rust libraries
//! and plain TCP, all echo servers driven by one load generator whose cost
//! is the same for every server.
//!
//! Binaries: `bench-server` (one echo server per library), `bench-load`
//! (the load generator), `bench-micro` (tether-core primitives) and
//! `bench-suite` (runs everything and writes the report). `bench/run` is
//! the single entry point.

pub mod args;
pub mod corpus;
pub mod load;
pub mod load_broadcast;
pub mod load_connect;
pub mod load_deflate_idle;
pub mod procfs;
pub mod record;
pub mod servers;
pub mod suite;
pub mod tls;
pub mod wire;
