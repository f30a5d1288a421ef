//! A blocking-style client on the mio driver: each call (`connect`,
//! `recv`, `close`) polls the event loop until the event it waits for.
//! The same driver could hold many more connections; here it holds one.
//!
//! `cargo run --example mio-client [-- ws://HOST:PORT/]`: without a URL it
//! starts an echo server of its own (a mio driver too) on a thread.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tether::mio::{ConnectionId, Driver, Event};
use tether::{Bytes, CloseCode, Error, Message};

/// One connection, used as if it were blocking.
struct Client {
    driver: Driver,
    id: ConnectionId,
    events: Vec<(ConnectionId, Event)>,
    inbox: VecDeque<Event>,
}

impl Client {
    fn connect(url: &str) -> Result<Self, Error> {
        let mut driver = Driver::new()?;
        let id = driver.connect(url)?;
        let mut client = Self {
            driver,
            id,
            events: Vec::new(),
            inbox: VecDeque::new(),
        };
        match client.next_event()? {
            Event::Open => Ok(client),
            Event::Error(e) => Err(e),
            other => unreachable!("before Open: {other:?}"),
        }
    }

    /// Queues a message; the next poll writes it.
    fn send(&mut self, message: Message) -> Result<(), Error> {
        self.driver.send(self.id, message)
    }

    /// The next message (pings and pongs included); `None` once closed.
    fn recv(&mut self) -> Result<Option<Message>, Error> {
        loop {
            return Ok(Some(match self.next_event()? {
                Event::Message(m) => m,
                Event::Ping(p) => Message::Ping(p),
                Event::Pong { payload, .. } => Message::Pong(payload),
                Event::Close(frame) => Message::Close(frame),
                Event::Error(e) => return Err(e),
                Event::Closed => return Ok(None),
                _ => continue,
            }));
        }
    }

    /// Starts the close handshake and waits for its end.
    fn close(mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.driver.close(self.id, code, reason)?;
        while !matches!(self.next_event()?, Event::Closed) {}
        Ok(())
    }

    fn next_event(&mut self) -> Result<Event, Error> {
        loop {
            if let Some(ev) = self.inbox.pop_front() {
                return Ok(ev);
            }
            self.driver.poll(&mut self.events, None)?;
            let id = self.id;
            let mine = self.events.drain(..).filter(|(at, _)| *at == id);
            self.inbox.extend(mine.map(|(_, ev)| ev));
        }
    }
}

/// What `--help` prints.
const USAGE: &str = "\
A blocking-style client on the mio driver: an echo, a ping, timed round
trips and a close.

usage: cargo run --example mio-client [-- URL]

  URL         a ws:// echo server (default: one of its own, on a thread)
  -h, --help  this help";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tether_examples::help(USAGE);
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => start_echo_server()?,
    };
    let mut ws = Client::connect(&url)?;
    println!("connected to {url}");

    ws.send(Message::text("hello from mio"))?;
    println!("echo: {:?}", ws.recv()?);

    ws.send(Message::Ping(Bytes::from_static(b"ping")))?;
    println!("answer: {:?}", ws.recv()?);

    // Round trips, one message at a time.
    let n = 10_000;
    let start = Instant::now();
    for i in 0..n {
        ws.send(Message::binary(format!("message {i}").into_bytes()))?;
        match ws.recv()? {
            Some(Message::Binary(b)) if b == format!("message {i}").as_bytes() => {}
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
    let rtt = start.elapsed() / n;
    println!("{n} round trips, {rtt:?} each");

    ws.close(CloseCode::NORMAL, "bye")?;
    println!("closed");
    Ok(())
}

/// An echo server on its own thread; returns its URL.
fn start_echo_server() -> std::io::Result<String> {
    let mut driver = Driver::new()?;
    let addr = driver.listen("127.0.0.1:0")?;
    std::thread::spawn(move || loop {
        let polled = driver.poll_with(Some(Duration::from_secs(1)), |conns, id, event| {
            if let Event::Message(m) = event {
                let _ = conns.send(id, m);
            }
        });
        if let Err(e) = polled {
            eprintln!("echo server: {e}");
            return;
        }
    });
    Ok(format!("ws://{addr}/"))
}
