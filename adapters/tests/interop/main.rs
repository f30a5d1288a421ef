//! Interop with real peers, permessage-deflate on: Python `websockets` as
//! a client of tether servers and as a server for tether clients, and
//! headless Chromium talking to tether servers from a page.
//!
//! The Python tests run by default (a machine with Python and PyPI has
//! all they need) and fail, never skip, when their peer cannot start. The
//! Python peer runs in a venv this suite makes at `target/interop-venv`
//! with a pinned `websockets` (see `support::python` for the environment
//! variables that point elsewhere). The Chromium test needs a system
//! package, so it is `#[ignore]`d and runs with `--include-ignored`
//! (`.ci/run` does); then it fails, never skips, without Chromium, found
//! on PATH or through `TETHER_CHROMIUM`. With feature `rustls` each peer
//! also runs over TLS (`tls.rs`).

#![cfg(all(feature = "smol", feature = "deflate"))]

mod browser;
#[cfg(feature = "rustls")]
#[path = "../tls/certs.rs"]
mod certs;
mod python;
mod support;
#[cfg(feature = "rustls")]
mod tls;
