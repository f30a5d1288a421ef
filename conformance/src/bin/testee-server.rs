//! Autobahn testee server: echoes every message.
//!
//! `testee-server --runtime smol|tokio --addr 127.0.0.1:PORT
//!  [--ping-interval SECS] [--ping-timeout SECS]`

use conformance::{echo, Args};
use tether::{DeflateConfig, ServerOptions};

const USAGE: &str = "usage: testee-server --runtime smol|tokio --addr HOST:PORT [--ping-interval SECS] [--ping-timeout SECS]";

fn main() {
    let args = Args::parse("--addr", USAGE);
    // Accept deflate with a full window, as most peers expect.
    let options = ServerOptions {
        config: args.config(),
        deflate: Some(DeflateConfig {
            max_window_bits: 15,
            // kosoku mishandles uncompressed messages on a compressed
            // connection (it hashes them as str), so compress them all.
            threshold: 0,
            ..DeflateConfig::default()
        }),
        ..ServerOptions::default()
    };
    let result = match args.runtime.as_str() {
        "smol" => smol::block_on(serve_smol(&args.target, options)),
        "tokio" => tokio::runtime::Runtime::new()
            .expect("tokio runtime")
            .block_on(serve_tokio(&args.target, options)),
        other => {
            eprintln!("error: unknown runtime {other}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("testee-server: {e}");
        std::process::exit(1);
    }
}

async fn serve_smol(addr: &str, options: ServerOptions) -> std::io::Result<()> {
    let listener = smol::net::TcpListener::bind(addr).await?;
    eprintln!(
        "testee-server (smol) listening on {}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let options = options.clone();
        smol::spawn(async move {
            match tether::smol::accept_with(stream, &options, |_| Ok(Default::default())).await {
                Ok(ws) => echo(ws).await,
                Err(e) => eprintln!("handshake failed: {e}"),
            }
        })
        .detach();
    }
}

async fn serve_tokio(addr: &str, options: ServerOptions) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!(
        "testee-server (tokio) listening on {}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let options = options.clone();
        tokio::spawn(async move {
            match tether::tokio::accept_with(stream, &options, |_| Ok(Default::default())).await {
                Ok(ws) => echo(ws).await,
                Err(e) => eprintln!("handshake failed: {e}"),
            }
        });
    }
}
