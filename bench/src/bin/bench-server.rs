//! `bench-server --impl NAME --addr 127.0.0.1:PORT [--tls DIR]`: one echo
//! server.

use std::path::PathBuf;

use tether_bench::{args, procfs, servers, tls};

const USAGE: &str =
    "usage: bench-server --impl NAME --addr 127.0.0.1:PORT [--tls DIR] [--broadcast]
  --broadcast  instead of echoing, send every message received to every
             connection (the broadcast scenario)
  --tls DIR  the TLS servers' certificate and key (cert.pem, key.pem in DIR;
             made there, for 127.0.0.1, if missing)";

fn main() {
    let a = args::Args::parse(USAGE, &["broadcast"]);
    let name = a.required("impl", USAGE).to_owned();
    let addr = a
        .required("addr", USAGE)
        .parse()
        .unwrap_or_else(|e| args::die(USAGE, &format!("--addr: {e}")));
    let tls_dir = a.get("tls").map(PathBuf::from);
    if let Some(dir) = &tls_dir {
        if let Err(e) = tls::ensure_identity(dir) {
            args::die("", &format!("--tls {}: {e}", dir.display()));
        }
    }
    // The idle-connection scenario holds 10,000 sockets.
    procfs::raise_nofile();
    let run = if a.switch("broadcast") {
        servers::broadcast::run(&name, addr)
    } else {
        servers::run(&name, addr, tls_dir.as_deref())
    };
    if let Err(e) = run {
        args::die("", &format!("{name}: {e}"));
    }
}
