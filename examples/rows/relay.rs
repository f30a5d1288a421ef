//! A TCP relay that cuts its connections at chosen byte counts: the
//! "network" of the showcase, which fails on purpose.
//!
//! Cut points count bytes forwarded in one direction, summed over every
//! connection, so a cut can land anywhere: in an opening handshake, inside
//! a batch, between a batch and its ack. Plain threads and blocking sockets
//! keep it independent of the code under test.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use tether::core::{RandomSource, Xoshiro256};

/// Where to cut: byte counts in each direction, each consumed once.
#[derive(Debug, Clone, Default)]
pub struct Cuts {
    /// Server to client (data).
    pub down: Vec<u64>,
    /// Client to server (handshakes, RESUME, acks).
    pub up: Vec<u64>,
}

impl Cuts {
    /// `n` cuts at random points of a transfer expected to carry about
    /// `down_bytes` from the server: most inside the data, about one in
    /// eight in the client's direction, which is mostly handshakes and
    /// acks (about `up_bytes`).
    pub fn random(n: usize, down_bytes: u64, up_bytes: u64, seed: u64) -> Self {
        let mut rng = Xoshiro256::from_seed(seed);
        let mut next = |bound: u64| {
            let r = (u64::from(rng.next_u32()) << 32) | u64::from(rng.next_u32());
            r % bound.max(1)
        };
        let mut cuts = Cuts::default();
        for _ in 0..n {
            if next(8) == 0 {
                cuts.up.push(next(up_bytes));
            } else {
                cuts.down.push(next(down_bytes));
            }
        }
        cuts.down.sort_unstable();
        cuts.up.sort_unstable();
        cuts
    }
}

/// What the relay counted.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes forwarded server to client.
    pub down: AtomicU64,
    /// Bytes forwarded client to server.
    pub up: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections cut.
    pub cuts: AtomicU64,
}

/// A running relay; stops accepting when dropped.
pub struct Relay {
    addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

struct Schedule {
    down: VecDeque<u64>,
    up: VecDeque<u64>,
}

impl Relay {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr, cuts: Cuts) -> io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let schedule = Arc::new(Mutex::new(Schedule {
            down: cuts.down.into(),
            up: cuts.up.into(),
        }));
        let (c, s) = (counters.clone(), stop.clone());
        thread::Builder::new()
            .name("relay-accept".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    c.connections.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = pair(client, upstream, &c, &schedule) {
                        eprintln!("relay: {e}");
                    }
                }
            })?;
        Ok(Relay {
            addr,
            counters,
            stop,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it counted so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Starts forwarding both ways between a client and a new upstream
/// connection.
fn pair(
    client: TcpStream,
    upstream: SocketAddr,
    counters: &Arc<Counters>,
    schedule: &Arc<Mutex<Schedule>>,
) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let ends = Arc::new([client.try_clone()?, server.try_clone()?]);
    for (from, to, up) in [
        (client.try_clone()?, server.try_clone()?, true),
        (server, client, false),
    ] {
        let (counters, schedule, ends) = (counters.clone(), schedule.clone(), ends.clone());
        thread::Builder::new()
            .name(if up { "relay-up" } else { "relay-down" }.into())
            .spawn(move || forward(from, to, up, &counters, &schedule, &ends))?;
    }
    Ok(())
}

/// Copies one direction until either side ends, or until the next cut
/// point of this direction: then forwards exactly up to it and cuts both
/// sockets of the pair.
fn forward(
    mut from: TcpStream,
    mut to: TcpStream,
    up: bool,
    counters: &Counters,
    schedule: &Mutex<Schedule>,
    ends: &[TcpStream; 2],
) {
    let total = if up { &counters.up } else { &counters.down };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let before = total.load(Ordering::Relaxed);
        let cut_at = {
            let mut s = schedule.lock().unwrap_or_else(|p| p.into_inner());
            let points = if up { &mut s.up } else { &mut s.down };
            match points.front() {
                Some(&p) if p < before + n as u64 => {
                    points.pop_front();
                    Some(p.saturating_sub(before) as usize)
                }
                _ => None,
            }
        };
        let keep = cut_at.unwrap_or(n);
        if keep > 0 && to.write_all(&buf[..keep]).is_err() {
            break;
        }
        total.fetch_add(keep as u64, Ordering::Relaxed);
        if cut_at.is_some() {
            counters.cuts.fetch_add(1, Ordering::Relaxed);
            for end in ends {
                let _ = end.shutdown(Shutdown::Both);
            }
            break;
        }
    }
    // One side ended: end the other direction too.
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
