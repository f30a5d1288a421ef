//! `bench-load`: drives one echo server and prints one JSON object.

use tether_bench::args::{self, Args};
use tether_bench::load::{self, LoadConfig};
use tether_bench::{procfs, tls};

const USAGE: &str = "usage: bench-load --addr 127.0.0.1:PORT --server-pid PID
    [--connections N] [--in-flight N] [--size BYTES]
    [--warmup SECS] [--duration SECS] [--raw] [--idle [--hold SECS]] [--deflate]
    [--tls DIR] [--broadcast] [--connect-rate] [--messages N]
  --raw   the server echoes bytes (it echoes the upgrade request)
  --idle  open the connections, one round trip each, hold them open for
          --hold seconds (default 0.5) answering pings, and report the
          server's resident memory per connection
  --deflate  offer permessage-deflate and send compressed JSON-like text;
          with --idle: each connection first has --messages (default 3)
          compressed JSON records echoed, one after another, and the report
          adds the compression ratio of the echoes and what was negotiated
  --tls DIR  connect with TLS, trusting DIR/cert.pem (the server's --tls DIR)
  --broadcast  every connection subscribes, the first also publishes --size
             byte messages, at most --in-flight not yet delivered to all;
             reports deliveries per second and server CPU per delivery
  --connect-rate  --connections clients each repeat: connect, upgrade, one
             --size message echoed, close; reports connections per second";

fn main() {
    let a = Args::parse(
        USAGE,
        &["raw", "idle", "deflate", "broadcast", "connect-rate"],
    );
    let cfg = LoadConfig {
        addr: a
            .required("addr", USAGE)
            .parse()
            .unwrap_or_else(|e| args::die(USAGE, &format!("--addr: {e}"))),
        server_pid: a.required("server-pid", USAGE).parse().unwrap_or_else(|_| {
            args::die(USAGE, "--server-pid: not a pid");
        }),
        connections: a.or("connections", 1),
        in_flight: a.or::<usize>("in-flight", 1).max(1),
        size: a.or("size", 32),
        warmup: a.secs("warmup", 1.0),
        duration: a.secs("duration", 3.0),
        raw: a.switch("raw"),
        deflate: a.switch("deflate"),
        hold: a.secs("hold", 0.5),
        messages: a.or("messages", 3),
        tls: a.get("tls").map(|dir| {
            let path = std::path::Path::new(dir).join(tls::CERT_FILE);
            std::fs::read(&path)
                .and_then(|pem| tls::client_config(&pem))
                .unwrap_or_else(|e| args::die("", &format!("{}: {e}", path.display())))
        }),
    };
    let nofile = procfs::raise_nofile();
    // Each connection is a descriptor here and one in the server, which
    // raises its limit the same way: say so now rather than fail midway.
    if (nofile as usize) < cfg.connections + 64 {
        args::die(
            "",
            &format!(
                "{} connections need RLIMIT_NOFILE of at least {} in this process and the \
                 server; the hard limit allows {nofile}: raise it in the shell that runs \
                 bench/run (as root: `ulimit -Hn 300000; ulimit -n 300000`, which needs \
                 CAP_SYS_RESOURCE, often dropped in containers; or /etc/security/limits.conf) \
                 or pass fewer --connections (see bench/README.md)",
                cfg.connections,
                cfg.connections + 64
            ),
        );
    }
    let result = if a.switch("idle") && cfg.deflate {
        tether_bench::load_deflate_idle::run_deflate_idle(&cfg)
    } else if a.switch("idle") {
        load::run_idle(&cfg)
    } else if a.switch("connect-rate") {
        tether_bench::load_connect::run_connect_rate(&cfg)
    } else if a.switch("broadcast") {
        tether_bench::load_broadcast::run_broadcast(&cfg)
    } else {
        load::run_echo(&cfg)
    };
    match result {
        Ok(r) => print!("{}", r.to_lines()),
        Err(e) => args::die("", &format!("load: {e}")),
    }
}
