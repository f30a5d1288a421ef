//! `tether`: a WebSocket client, server and load generator for the
//! terminal, on the tether library's tokio adapter.

mod args;
mod bench;
mod connect;
mod exit;
mod input;
mod output;
mod serve;
mod tls;

use clap::Parser;

fn main() {
    let argv = args::with_implicit_connect(std::env::args_os().collect());
    let cli = match args::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        // --help and --version exit 0, bad usage 2 (clap's convention).
        Err(e) => e.exit(),
    };
    // One thread for a client or server; the load generator uses them all.
    let mut builder = match cli.command {
        args::Command::Bench(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether: cannot start the runtime: {e}");
            std::process::exit(exit::FAILURE.into());
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            args::Command::Connect(a) => connect::run(*a).await,
            args::Command::Serve(a) => serve::run(a).await,
            args::Command::Bench(a) => bench::run(a).await,
        }
    });
    // Not a return from main: the stdin reader may sit in a blocking read
    // the runtime would wait for.
    std::process::exit(code.into());
}
