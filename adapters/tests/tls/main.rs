//! TLS with real parts: certificates made at test time (rcgen), tether TLS
//! servers and `wss://` clients on smol and tokio over loopback, and the
//! typed errors of every way a certificate is refused.

#![cfg(all(feature = "rustls", feature = "smol", feature = "tokio"))]

mod certs;
mod config;
mod deadline;
mod echo;
mod failures;
mod reconnect_pool;
mod support;
