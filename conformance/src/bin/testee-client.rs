//! Autobahn testee client: asks the fuzzing server how many cases there
//! are, echoes each case, then asks it to write its reports.
//!
//! `testee-client --runtime smol|tokio --url ws://127.0.0.1:PORT --agent NAME`

use conformance::{echo, Args};
use futures_util::StreamExt;
use tether::{ClientOptions, DeflateConfig, Message};

const USAGE: &str = "usage: testee-client --runtime smol|tokio --url ws://HOST:PORT --agent NAME [--ping-interval SECS] [--ping-timeout SECS]";

fn main() {
    let args = Args::parse("--url", USAGE);
    let result = match args.runtime.as_str() {
        "smol" => smol::block_on(run_smol(&args)),
        "tokio" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(run_tokio(&args)),
        other => {
            eprintln!("error: unknown runtime {other}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("testee-client: {e}");
        std::process::exit(1);
    }
}

/// Two deflate offers: with context takeover, then without (the fuzzing
/// server's cases pick either), both letting the server size our window.
fn options(args: &Args) -> ClientOptions {
    let offer = DeflateConfig {
        max_window_bits: 15,
        // kosoku mishandles uncompressed messages on a compressed
        // connection (it hashes them as str), so compress them all.
        threshold: 0,
        ..DeflateConfig::default()
    };
    ClientOptions {
        config: args.config(),
        deflate: vec![
            offer.clone(),
            DeflateConfig {
                no_context_takeover: true,
                ..offer
            },
        ],
        ..ClientOptions::default()
    }
}

/// The Autobahn client protocol, once per runtime: `$connect` opens a
/// connection to a URL, `$echo` echoes on it until it ends.
macro_rules! autobahn_client {
    ($args:expr, $connect:path) => {{
        let args = $args;
        let base = args.target.trim_end_matches('/');
        let mut ws = $connect(&format!("{base}/getCaseCount"), options(args)).await?;
        let count: u32 = match ws.next().await {
            Some(Ok(Message::Text(t))) => t
                .trim()
                .parse()
                .map_err(|_| format!("bad case count {t:?}"))?,
            other => return Err(format!("no case count: {other:?}").into()),
        };
        while ws.next().await.is_some() {}
        eprintln!("testee-client ({}): {count} cases", args.runtime);
        for case in 1..=count {
            let url = format!("{base}/runCase?case={case}&agent={}", args.agent);
            match $connect(&url, options(args)).await {
                Ok(ws) => echo(ws).await,
                Err(e) => eprintln!("case {case}: {e}"),
            }
        }
        let url = format!("{base}/updateReports?agent={}", args.agent);
        let mut ws = $connect(&url, options(args)).await?;
        while ws.next().await.is_some() {}
        Ok(())
    }};
}

async fn run_smol(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    autobahn_client!(args, tether::smol::connect_with)
}

async fn run_tokio(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    autobahn_client!(args, tether::tokio::connect_with)
}
