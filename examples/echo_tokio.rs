//! The echo example on tokio: a server task and a client in one process.
//!
//! `cargo run --release --example echo-tokio`

use futures_util::{SinkExt, StreamExt};
use tether::{tokio as ws, CloseCode, Message};

/// What `--help` prints.
const USAGE: &str = "\
The echo example on tokio: a server task and a client in one process.

usage: cargo run --release --example echo-tokio

No options (-h, --help: this help).";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tether_examples::help(USAGE);
    // tether's Listener sets TCP_NODELAY and waits out EMFILE; `accept`
    // fails only if the listener itself breaks.
    let mut listener = ws::Listener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(ws) = ws::accept(stream).await else {
                    return;
                };
                let (mut tx, rx) = ws.split();
                let mut data = rx.filter(|m| {
                    std::future::ready(matches!(m, Ok(Message::Text(_) | Message::Binary(_))))
                });
                let _ = tx.send_all(&mut data).await;
            });
        }
    });

    let mut client = ws::connect(&format!("ws://{addr}/chat")).await?;
    for i in 0..5 {
        client.send(Message::text(format!("hello #{i}"))).await?;
        match client.next().await {
            Some(Ok(Message::Text(t))) => println!("echo: {t}"),
            other => return Err(format!("unexpected: {other:?}").into()),
        }
    }
    client.close(CloseCode::NORMAL, "bye").await?;
    println!("closed");
    Ok(())
}
