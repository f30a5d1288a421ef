//! The sans-IO core over a plain `std::net::TcpStream`: no async runtime,
//! no mio, nothing but blocking reads and writes. The client connects,
//! does the opening handshake, answers the server's ping (the core does),
//! exchanges messages and closes. Everything an adapter does is here, in
//! `flush` and `next_event`.
//!
//! `cargo run --example blocking-std` (it starts a tether server on a
//! thread to talk to).

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tether::core::handshake::{ClientHandshake, ClientRequest, HandshakeLimits};
use tether::core::{CloseCode, Config, Connection, Event, Message};

/// What `--help` prints.
const USAGE: &str = "\
The sans-IO core over a blocking std::net::TcpStream, against a tether
server it starts on a thread.

usage: cargo run --example blocking-std

No options (-h, --help: this help).";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tether_examples::help(USAGE);
    let addr = start_server()?;
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;

    // The opening handshake: request bytes out, response bytes in.
    let mut rng = tether::os_rng();
    let request = ClientRequest::from_url(&format!("ws://{addr}/"))?;
    let limits = HandshakeLimits::default();
    let (mut hs, bytes) = ClientHandshake::new(&request, limits, &mut *rng, Instant::now())?;
    stream.write_all(&bytes)?;
    let mut buf = [0u8; 4096];
    let response = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err("server closed during the handshake".into());
        }
        if let Some(response) = hs.handle_read(&buf[..n])? {
            break response;
        }
    };
    // The handshake hands over the connection, with deflate as agreed and
    // any frames that came with the response already read.
    let mut ws = hs.into_connection(Config::default(), rng, Instant::now());
    println!("connected to ws://{addr}/ ({})", response.response.status());

    // The server pings first; the core has queued the pong by the time
    // the event comes out, and `flush` writes it.
    ws.send(Message::text("hello"))?;
    ws.send(Message::binary(vec![1, 2, 3]))?;
    let mut echoes = 0;
    while echoes < 2 {
        match next_event(&mut ws, &mut stream)? {
            Some(Event::Ping(p)) => println!("ping {p:?} (answered)"),
            Some(Event::Message(m)) => {
                println!("echo: {m:?}");
                echoes += 1;
            }
            Some(other) => println!("{other:?}"),
            None => return Err("connection ended early".into()),
        }
    }

    // Close, and read until the server ends TCP.
    ws.close(CloseCode::NORMAL, "bye")?;
    while let Some(event) = next_event(&mut ws, &mut stream)? {
        println!("{event:?}");
    }
    println!("closed");
    Ok(())
}

/// Writes everything the core has queued.
fn flush(ws: &mut Connection, stream: &mut TcpStream) -> io::Result<()> {
    loop {
        let mut iov = [IoSlice::new(&[]); 16];
        let n = ws.poll_transmit(&mut iov);
        if n == 0 {
            return Ok(());
        }
        let written = stream.write_vectored(&iov[..n])?;
        ws.advance_transmit(written);
    }
}

/// Drives the connection until it has an event, or until it is over
/// (`None`): write, read with the core's next deadline as the timeout,
/// run the timers. (A blocking write can stall if the peer stops reading;
/// a program that streams both ways wants non-blocking sockets.)
fn next_event(ws: &mut Connection, stream: &mut TcpStream) -> io::Result<Option<Event>> {
    loop {
        let event = ws.poll_event();
        flush(ws, stream)?;
        if event.is_some() {
            return Ok(event);
        }
        if ws.can_close_transport() {
            return Ok(None);
        }
        let wait = ws.poll_timeout().map(|at| {
            at.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        stream.set_read_timeout(wait)?;
        // No scratch (`&mut []`): with one connection there is no memory
        // to save by sharing one, so reads go to the core's buffer.
        match ws.read_with(&mut [], Instant::now, |buf| stream.read(buf)) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        if ws.poll_timeout().is_some_and(|at| now >= at) {
            ws.handle_timeout(now);
        }
    }
}

/// A tether server on a thread (the mio driver): pings each new client,
/// echoes its messages.
fn start_server() -> io::Result<std::net::SocketAddr> {
    use tether::mio::{Driver, Event};
    let mut driver = Driver::new()?;
    let addr = driver.listen("127.0.0.1:0")?;
    std::thread::spawn(move || loop {
        let polled = driver.poll_with(None, |conns, id, event| {
            let _ = match event {
                Event::Open => conns.send(id, Message::Ping("are you there?".into())),
                Event::Message(m) => conns.send(id, m),
                _ => Ok(()),
            };
        });
        if polled.is_err() {
            return;
        }
    });
    Ok(addr)
}
