//! A server and a client in one process, on smol: the client sends text
//! and binary messages of several sizes, checks every echo, pings, and
//! closes with a code; then it prints what it measured.
//!
//! `cargo run --release --example echo [-- --messages N --size BYTES]`

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tether::{smol as ws, CloseCode, Message};

/// What `--help` prints.
const USAGE: &str = "\
A server and a client in one process on smol: text and binary echoes of
several sizes, a ping and a close, then what was measured.

usage: cargo run --release --example echo [-- OPTIONS]

  --messages N   messages to echo            (100000)
  --size BYTES   size of each message        (64)
  -h, --help     this help";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tether_examples::help(USAGE);
    let (messages, size) = parse_args();
    smol::block_on(async {
        // tether's Listener sets TCP_NODELAY and rides out EMFILE.
        let listener = ws::Listener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        println!("echo server listening on ws://{addr}/");
        smol::spawn(serve(listener)).detach();

        let mut client = ws::connect(&format!("ws://{addr}/")).await?;

        // A few sizes across the three frame-length forms, text and binary.
        for len in [0usize, 125, 126, 65_535, 65_536, 1 << 20] {
            let text: String = "tether κόσμε ".chars().cycle().take(len).collect();
            client.send(Message::text(text.clone())).await?;
            expect(client.next().await, &Message::text(text))?;
            let bin: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            client.send(Message::binary(bin.clone())).await?;
            expect(client.next().await, &Message::binary(bin))?;
        }
        println!("echoed text and binary messages of 0 B to 1 MiB");

        // Round trip of a ping, answered by the server's core.
        let start = Instant::now();
        client.send(Message::Ping("are you there".into())).await?;
        expect(client.next().await, &Message::Pong("are you there".into()))?;
        println!("ping answered in {:?}", start.elapsed());

        // Throughput: one task writes (feed queues, flush writes in
        // batches) while another reads the echoes, so neither side's
        // bounded buffers can fill up with nobody draining them.
        let payload = Message::binary(vec![7u8; size]);
        let (mut tx, mut rx) = client.split();
        let start = Instant::now();
        let writer = async {
            for _ in 0..messages {
                tx.feed(payload.clone()).await?;
            }
            tx.flush().await?;
            Ok::<_, tether::Error>(())
        };
        let reader = async {
            for _ in 0..messages {
                expect(rx.next().await, &payload)?;
            }
            Ok::<_, Box<dyn std::error::Error>>(())
        };
        let (written, read) = futures_util::future::join(writer, reader).await;
        written?;
        read?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{messages} messages of {size} B echoed in {secs:.3} s: {:.0} messages/s, {:.1} MB/s each way",
            messages as f64 / secs,
            (messages * size) as f64 / secs / 1e6
        );
        let mut client = tx
            .reunite(rx)
            .map_err(|_| "halves of different connections")?;

        client.close(CloseCode::NORMAL, "done").await?;
        println!("closed with {} \"done\"", CloseCode::NORMAL);
        Ok(())
    })
}

/// Accepts connections and echoes every data message on each. `accept`
/// fails only if the listener itself breaks.
async fn serve(mut listener: ws::Listener) {
    while let Ok((stream, _)) = listener.accept().await {
        smol::spawn(async move {
            let Ok(mut ws) = ws::accept(stream).await else {
                return;
            };
            // Every message already read comes in one batch; the data
            // messages go back in one flush.
            let mut batch = Vec::new();
            while let Some(Ok(_)) = ws.next_batch(&mut batch).await {
                batch.retain(|m| matches!(m, Message::Text(_) | Message::Binary(_)));
                if ws.send_batch(&mut batch).await.is_err() {
                    return;
                }
            }
        })
        .detach();
    }
}

fn expect(
    got: Option<Result<Message, tether::Error>>,
    want: &Message,
) -> Result<(), Box<dyn std::error::Error>> {
    match got {
        Some(Ok(m)) if &m == want => Ok(()),
        Some(Ok(m)) => Err(format!("expected a {} B echo, got {:?}", want.len(), short(&m)).into()),
        Some(Err(e)) => Err(e.into()),
        None => Err("connection ended early".into()),
    }
}

fn short(m: &Message) -> String {
    let s = format!("{m:?}");
    s.chars().take(80).collect()
}

fn parse_args() -> (usize, usize) {
    let (mut messages, mut size) = (100_000, 64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().and_then(|v| v.parse().ok());
        match (a.as_str(), v) {
            ("--messages", Some(n)) => messages = n,
            ("--size", Some(n)) => size = n,
            _ => {
                eprintln!("usage: echo [--messages N] [--size BYTES]");
                std::process::exit(2);
            }
        }
    }
    (messages, size)
}
