//! Interop with real peers, permessage-deflate on: Python `websockets` as
//! a client of tether servers and as a server for tether clients, and
//! headless Chromium talking to tether servers from a page.
//!
//! These tests never skip: when a peer cannot be started (no Python, no
//! network for pip, no Chromium) they fail and say why. The Python peer
//! runs in a venv this suite makes at `target/interop-venv` with a pinned
//! `websockets` (see `support::python` for the environment variables that
//! point elsewhere); Chromium is found on PATH or through
//! `TETHER_CHROMIUM`.

#![cfg(all(feature = "smol", feature = "deflate"))]

mod browser;
mod python;
mod support;
