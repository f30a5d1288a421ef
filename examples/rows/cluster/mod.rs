//! The scale-out run's parts: a throwaway PostgreSQL server as the shared
//! source, server instances as processes, HAProxy in front of them, and
//! the run that cuts instances down under a transfer (see
//! `docs/scale-out.md`).

pub mod fleet;
pub mod haproxy;
pub mod instance;
pub mod postgres;
pub mod run;

use std::io;

/// A loopback port free now (the kernel's pick, released for the process
/// that will bind it; instances bind theirs again on every restart).
pub fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
