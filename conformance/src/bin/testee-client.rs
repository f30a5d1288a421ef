//! Autobahn testee client: asks the fuzzing server how many cases there
//! are, echoes each case, then asks it to write its reports.
//!
//! `testee-client --runtime smol|tokio|mio --url ws://127.0.0.1:PORT --agent NAME`

use conformance::{echo, Args};
use futures_util::StreamExt;
use tether::{ClientOptions, DeflateConfig, Message};

const USAGE: &str = "usage: testee-client --runtime smol|tokio|mio --url ws://HOST:PORT --agent NAME [--ping-interval SECS] [--ping-timeout SECS]";

fn main() {
    let args = Args::parse("--url", USAGE);
    let result = match args.runtime.as_str() {
        "smol" => smol::block_on(run_smol(&args)),
        "tokio" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(run_tokio(&args)),
        "mio" => run_mio(&args),
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
    let offer = DeflateConfig::default()
        .with_max_window_bits(15)
        // kosoku mishandles uncompressed messages on a compressed
        // connection (it hashes them as str), so compress them all.
        .with_threshold(0);
    ClientOptions::default()
        .with_config(args.config())
        .with_deflate(vec![offer.clone(), offer.with_no_context_takeover(true)])
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

/// The same protocol on the mio event loop, one connection at a time.
fn run_mio(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use tether::mio::{ConnectionId, Driver, Event};
    let mut driver = Driver::new()?;
    let base = args.target.trim_end_matches('/');
    let debug = std::env::var_os("TESTEE_DEBUG").is_some();

    // Runs one connection to its end, echoing its messages (each answered
    // before the next event is taken, as the async echo does); returns the
    // first text message and the error that ended it, if any.
    let mut run = |url: &str| -> std::io::Result<(Option<String>, Option<tether::Error>)> {
        let id: ConnectionId = match driver.connect_with(url, options(args)) {
            Ok(id) => id,
            Err(e) => return Ok((None, Some(e))),
        };
        let (mut first_text, mut opened, mut failure, mut closed) = (None, false, None, false);
        while !closed {
            driver.poll_with(None, |conns, at, event| {
                if at != id {
                    return;
                }
                match event {
                    Event::Open => opened = true,
                    Event::Message(m) => {
                        if let (None, Message::Text(t)) = (&first_text, &m) {
                            first_text = Some(t.to_string());
                        }
                        let _ = conns.send(id, m);
                    }
                    Event::Error(e) => {
                        if debug {
                            eprintln!("testee: {e}");
                        }
                        if !opened {
                            failure = Some(e);
                        }
                    }
                    Event::Closed => closed = true,
                    _ => {}
                }
            })?;
        }
        Ok((first_text, failure))
    };

    let count: u32 = match run(&format!("{base}/getCaseCount"))? {
        (Some(t), None) => t
            .trim()
            .parse()
            .map_err(|_| format!("bad case count {t:?}"))?,
        (_, Some(e)) => return Err(e.into()),
        (None, None) => return Err("no case count".into()),
    };
    eprintln!("testee-client (mio): {count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={}", args.agent);
        if let (_, Some(e)) = run(&url)? {
            eprintln!("case {case}: {e}");
        }
    }
    if let (_, Some(e)) = run(&format!("{base}/updateReports?agent={}", args.agent))? {
        return Err(e.into());
    }
    Ok(())
}
