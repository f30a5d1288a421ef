//! `bench-server --impl NAME --addr 127.0.0.1:PORT`: one echo server.

use tether_bench::{args, procfs, servers};

const USAGE: &str = "usage: bench-server --impl NAME --addr 127.0.0.1:PORT";

fn main() {
    let a = args::Args::parse(USAGE, &[]);
    let name = a.required("impl", USAGE).to_owned();
    let addr = a
        .required("addr", USAGE)
        .parse()
        .unwrap_or_else(|e| args::die(USAGE, &format!("--addr: {e}")));
    // The idle-connection scenario holds 10,000 sockets.
    procfs::raise_nofile();
    if let Err(e) = servers::run(&name, addr) {
        args::die("", &format!("{name}: {e}"));
    }
}
