//! Autobahn testee server: echoes every message.
//!
//! `testee-server --runtime smol|tokio|mio --addr 127.0.0.1:PORT
//!  [--ping-interval SECS] [--ping-timeout SECS]`
//!
//! `--via axum` serves the echo behind an axum route
//! (`tether::axum::WebSocketUpgrade`) with `axum::serve`, on tokio.

use conformance::{echo, Args};
use tether::{DeflateConfig, ServerOptions};

const USAGE: &str = "usage: testee-server --runtime smol|tokio|mio --addr HOST:PORT [--ping-interval SECS] [--ping-timeout SECS] [--via axum]";

fn main() {
    let args = Args::parse("--addr", USAGE);
    // Accept deflate with a full window, as most peers expect.
    let options = ServerOptions::default()
        .with_config(args.config())
        .with_deflate(Some(
            DeflateConfig::default()
                .with_max_window_bits(15)
                // kosoku mishandles uncompressed messages on a compressed
                // connection (it hashes them as str), so compress them all.
                .with_threshold(0),
        ));
    let result = match (args.via.as_deref(), args.runtime.as_str()) {
        (Some("axum"), "tokio") => tokio::runtime::Runtime::new()
            .expect("tokio runtime")
            .block_on(serve_axum(&args.target, options)),
        (Some(via), runtime) => {
            eprintln!(
                "error: --via {via} with --runtime {runtime}: only --via axum, on tokio\n{USAGE}"
            );
            std::process::exit(2);
        }
        (None, runtime) => match runtime {
            "smol" => smol::block_on(serve_smol(&args.target, options)),
            "tokio" => tokio::runtime::Runtime::new()
                .expect("tokio runtime")
                .block_on(serve_tokio(&args.target, options)),
            "mio" => serve_mio(&args.target, options),
            other => {
                eprintln!("error: unknown runtime {other}\n{USAGE}");
                std::process::exit(2);
            }
        },
    };
    if let Err(e) = result {
        eprintln!("testee-server: {e}");
        std::process::exit(1);
    }
}

/// Reports an accept error the listener skipped (EMFILE, say).
fn skipped(e: &std::io::Error, wait: std::time::Duration) {
    eprintln!("testee-server: accept: {e} (next attempt in {wait:?})");
}

async fn serve_smol(addr: &str, options: ServerOptions) -> std::io::Result<()> {
    let mut listener = tether::smol::Listener::bind(addr).await?.on_error(skipped);
    eprintln!(
        "testee-server (smol) listening on {}",
        listener.local_addr()?
    );
    loop {
        // TCP_NODELAY is the listener's default socket option.
        let (stream, _) = listener.accept().await?;
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
    let mut listener = tether::tokio::Listener::bind(addr).await?.on_error(skipped);
    eprintln!(
        "testee-server (tokio) listening on {}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let options = options.clone();
        tokio::spawn(async move {
            match tether::tokio::accept_with(stream, &options, |_| Ok(Default::default())).await {
                Ok(ws) => echo(ws).await,
                Err(e) => eprintln!("handshake failed: {e}"),
            }
        });
    }
}

/// The echo behind an axum route that takes any path and method (over
/// HTTP/2 a WebSocket arrives as CONNECT), served by `axum::serve`, which
/// runs hyper's HTTP/1.1 and HTTP/2 (extended CONNECT on) server.
async fn serve_axum(addr: &str, options: ServerOptions) -> std::io::Result<()> {
    use axum::serve::{Listener, ListenerExt};
    use tether::axum::WebSocketUpgrade;
    let listener = tokio::net::TcpListener::bind(addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!(
        "testee-server (axum) listening on {}",
        listener.local_addr()?
    );
    let app = axum::Router::new().fallback(move |ws: WebSocketUpgrade| {
        let options = options.clone();
        async move { ws.options(options).on_upgrade(echo) }
    });
    axum::serve(listener, app).await
}

/// One thread, one event loop. The callback answers each message before
/// the connection's next event is taken, as the async echo does, so the
/// echoes of messages before a protocol error leave before its close
/// frame; everything queued in one pass is written with one vectored write.
fn serve_mio(addr: &str, options: ServerOptions) -> std::io::Result<()> {
    use tether::mio::{Driver, Event};
    let mut driver = Driver::new()?;
    let local = driver.listen_with(addr, options, |_| Ok(Default::default()))?;
    eprintln!("testee-server (mio) listening on {local}");
    let debug = std::env::var_os("TESTEE_DEBUG").is_some();
    loop {
        driver.poll_with(None, |conns, id, event| match event {
            Event::Message(m) => {
                // Fails only while closing; the close handshake goes on.
                let _ = conns.send(id, m);
            }
            Event::Error(e) if debug => eprintln!("testee: {id}: {e}"),
            _ => {}
        })?;
        if let Some(e) = driver.take_accept_error() {
            eprintln!("testee-server: accept: {e}");
        }
    }
}
