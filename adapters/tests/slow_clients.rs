//! Slow and hostile clients against a server on each adapter (smol, tokio,
//! mio): 1,000 clients each send their upgrade request one byte per second.
//! While they trickle,
//!
//! - a well-behaved client connecting in the middle of them completes its
//!   handshake and an echo before any of the slow ones is done (the server
//!   is not stuck behind them);
//! - the server's resident memory grows by a bounded amount per slow
//!   client (well under its 16 KiB head limit, [`BYTES_PER_SLOW_CLIENT`]);
//! - every slow client is cut when the handshake deadline passes, on every
//!   adapter (mio included): none is left holding a descriptor.
//!
//! The server runs in a child process (this test binary, re-executed with
//! [`ROLE`] set), so its memory and descriptors are its own.

#![cfg(all(feature = "smol", feature = "tokio", feature = "mio"))]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::{HandshakeLimits, Message, ServerOptions};

const SLOW_CLIENTS: usize = 1000;
/// The servers' handshake deadline, the default: a few bytes from each slow
/// client arrive before it, even when opening 1,000 connections on a busy
/// machine takes seconds.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Resident memory the server may gain per slow client. Each holds a
/// partial head of a few bytes, its handshake state and a socket; one that
/// buffered without bound, or a fixed 16 KiB buffer per client, would not
/// fit.
const BYTES_PER_SLOW_CLIENT: u64 = 12 << 10;

const ROLE: &str = "TETHER_SLOW_CLIENTS_SERVER";
const MARK: &str = "SLOW_CLIENTS";

/// The request every client sends; the slow ones one byte per second.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

fn options() -> ServerOptions {
    ServerOptions::default().with_limits(HandshakeLimits::default().with_timeout(HANDSHAKE_TIMEOUT))
}

/// The child: an echo server on `runtime`, printing its address.
fn serve(runtime: &str) {
    // A backlog for 1,000 connections at once (std's is 128); mio's
    // `listen` asks for 1,024 itself.
    let bind = || {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&addr.into()).expect("bind");
        socket.listen(4096).expect("listen");
        let listener = TcpListener::from(socket);
        println!("{MARK} addr={}", listener.local_addr().expect("addr"));
        listener
    };
    match runtime {
        "smol" => smol::block_on(async {
            let listener = smol::net::TcpListener::try_from(bind()).expect("listener");
            let options = std::sync::Arc::new(options());
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let options = options.clone();
                smol::spawn(async move {
                    let accepted =
                        tether::smol::accept_with(tcp, &options, |_| Ok(Default::default()));
                    if let Ok(mut ws) = accepted.await {
                        while let Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) =
                            ws.next().await
                        {
                            let _ = ws.send(m).await;
                        }
                    }
                })
                .detach();
            }
        }),
        "tokio" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let listener = bind();
                listener.set_nonblocking(true).expect("nonblocking");
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let options = std::sync::Arc::new(options());
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let options = options.clone();
                    tokio::spawn(async move {
                        let accepted =
                            tether::tokio::accept_with(tcp, &options, |_| Ok(Default::default()));
                        if let Ok(mut ws) = accepted.await {
                            while let Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) =
                                ws.next().await
                            {
                                let _ = ws.send(m).await;
                            }
                        }
                    });
                }
            }),
        "mio" => {
            let mut driver = tether::mio::Driver::new().expect("driver");
            let addr = driver
                .listen_with("127.0.0.1:0", options(), |_| Ok(Default::default()))
                .expect("listen");
            println!("{MARK} addr={addr}");
            loop {
                driver
                    .poll_with(None, |conns, id, event| {
                        if let tether::mio::Event::Message(m) = event {
                            let _ = conns.send(id, m);
                        }
                    })
                    .expect("poll");
            }
        }
        other => panic!("unknown runtime {other}"),
    }
}

fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(runtime: &str, test: &str) -> Server {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--nocapture", "--include-ignored"])
        .env(ROLE, runtime)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines.next().expect("server output").expect("line");
        if let Some(a) = line.strip_prefix(&format!("{MARK} addr=")) {
            break a.parse().expect("address");
        }
    };
    Server { child, addr }
}

/// Whether the server has closed `tcp` (EOF or reset); false while it
/// waits for more of the request.
fn closed_by_server(mut tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    match tcp.read(&mut buf) {
        Ok(0) => true,
        // The server answers nothing before the head is complete.
        Ok(n) => panic!("a slow client got {n} bytes: {:?}", &buf[..n]),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

fn slow_clients_cannot_starve_or_bloat_the_server(runtime: &str, test: &str) {
    if let Ok(rt) = std::env::var(ROLE) {
        return serve(&rt);
    }
    let server = start(runtime, test);
    let pid = server.child.id();
    // Let the runtime settle before the baseline.
    std::thread::sleep(Duration::from_millis(200));
    let (base_rss, base_fds) = (resident_bytes(pid), open_descriptors(pid));

    let start = Instant::now();
    let mut slow: Vec<TcpStream> = (0..SLOW_CLIENTS)
        .map(|_| {
            let tcp = TcpStream::connect(server.addr).expect("connect");
            tcp.set_nonblocking(true).expect("nonblocking");
            tcp
        })
        .collect();
    eprintln!(
        "{runtime}: {SLOW_CLIENTS} connected in {:?}",
        start.elapsed()
    );
    // One byte per second each, until the good client has had its turn.
    let mut sent = 0;
    while sent < 2 {
        for tcp in &mut slow {
            // A full send buffer cannot happen at one byte a second.
            tcp.write_all(&REQUEST[sent..=sent]).expect("slow write");
        }
        sent += 1;
        std::thread::sleep(Duration::from_secs(1));
    }

    // A well-behaved client in the middle of them.
    let url = format!("ws://{}/", server.addr);
    let good_start = start.elapsed();
    let echoed = smol::block_on(async {
        let mut ws = tether::smol::connect(&url)
            .await
            .expect("good client: handshake");
        ws.send(Message::text("hello"))
            .await
            .expect("good client: send");
        ws.next().await
    });
    eprintln!(
        "{runtime}: good client from {good_start:?} to {:?}",
        start.elapsed()
    );
    assert!(
        matches!(&echoed, Some(Ok(m)) if *m == Message::text("hello")),
        "{runtime}: the good client got {echoed:?}"
    );
    // It was served while every slow client was still waiting.
    let still_waiting = slow.iter().filter(|t| !closed_by_server(t)).count();
    assert_eq!(
        still_waiting,
        SLOW_CLIENTS,
        "{runtime}: slow clients were cut before the good client was served ({:?} in)",
        start.elapsed()
    );
    let rss = resident_bytes(pid);
    let fds = open_descriptors(pid);
    eprintln!(
        "{runtime}: {SLOW_CLIENTS} slow clients: server +{} KiB resident ({} B each), {} descriptors (baseline {base_fds})",
        rss.saturating_sub(base_rss) >> 10,
        rss.saturating_sub(base_rss) / SLOW_CLIENTS as u64,
        fds,
    );
    assert!(
        rss.saturating_sub(base_rss) <= SLOW_CLIENTS as u64 * BYTES_PER_SLOW_CLIENT,
        "{runtime}: the server grew by {} KiB for {SLOW_CLIENTS} slow clients",
        rss.saturating_sub(base_rss) >> 10
    );
    assert!(
        fds >= base_fds + SLOW_CLIENTS,
        "{runtime}: {fds} descriptors"
    );

    // Keep trickling: the deadline, not the request, ends each of them.
    let give_up = start + HANDSHAKE_TIMEOUT + Duration::from_secs(10);
    while !slow.is_empty() {
        assert!(
            Instant::now() < give_up,
            "{runtime}: {} slow clients still connected {:?} after they started",
            slow.len(),
            start.elapsed()
        );
        slow.retain_mut(|tcp| {
            if closed_by_server(tcp) {
                return false;
            }
            let _ = tcp.write_all(&REQUEST[sent..=sent]);
            true
        });
        sent += 1;
        assert!(
            sent < REQUEST.len(),
            "{runtime}: the whole request went out"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let cut_after = start.elapsed();
    assert!(
        cut_after >= HANDSHAKE_TIMEOUT,
        "{runtime}: slow clients cut after {cut_after:?}, before the deadline"
    );
    // Their descriptors are gone from the server too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_descriptors(pid) > base_fds && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        open_descriptors(pid) <= base_fds,
        "{runtime}: {} descriptors left (baseline {base_fds})",
        open_descriptors(pid)
    );
}

#[test]
fn slow_clients_on_smol() {
    slow_clients_cannot_starve_or_bloat_the_server("smol", "slow_clients_on_smol");
}

#[test]
fn slow_clients_on_tokio() {
    slow_clients_cannot_starve_or_bloat_the_server("tokio", "slow_clients_on_tokio");
}

#[test]
fn slow_clients_on_mio() {
    slow_clients_cannot_starve_or_bloat_the_server("mio", "slow_clients_on_mio");
}
