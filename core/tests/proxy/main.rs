//! The sans-IO proxy exchanges and proxy selection: HTTP CONNECT and
//! SOCKS5 byte for byte, every reply cut at every byte, every refusal,
//! proxy URLs, the environment's choice, and properties on arbitrary
//! input.

mod env;
mod errors;
mod http_connect;
mod properties;
mod socks5;
mod url;

pub use std::time::{Duration, Instant};

pub use tether_core::handshake::HandshakeLimits;
pub use tether_core::proxy::{
    Credentials, Host, HttpConnect, Proxy, ProxyError, ProxyHandshake, ProxyKind, Socks5,
    Socks5Failure, Step, Tunnel,
};

/// What one read (or a sequence of reads) of an exchange gives.
pub type Outcome = Result<Option<Step>, ProxyError>;

/// What the tests need of an exchange.
pub trait Exchange {
    fn read(&mut self, data: &[u8]) -> Outcome;
    fn buffered(&self) -> usize;
}

impl Exchange for HttpConnect {
    fn read(&mut self, data: &[u8]) -> Outcome {
        self.handle_read(data)
    }
    fn buffered(&self) -> usize {
        HttpConnect::buffered(self)
    }
}

impl Exchange for Socks5 {
    fn read(&mut self, data: &[u8]) -> Outcome {
        self.handle_read(data)
    }
    fn buffered(&self) -> usize {
        Socks5::buffered(self)
    }
}

impl Exchange for ProxyHandshake {
    fn read(&mut self, data: &[u8]) -> Outcome {
        self.handle_read(data)
    }
    fn buffered(&self) -> usize {
        ProxyHandshake::buffered(self)
    }
}

/// Feeds `pieces` in order and returns the first answer (`Ok(None)` if
/// there is none). Pieces after a `Done` are read later from the tunnel,
/// so they join its leftover; a `Write` with pieces left is an answer to
/// a request not yet written, which no test here sends.
pub fn feed<E: Exchange>(hs: &mut E, pieces: &[&[u8]]) -> Outcome {
    for (i, piece) in pieces.iter().enumerate() {
        match hs.read(piece) {
            Ok(None) => {}
            Ok(Some(Step::Done(mut tunnel))) => {
                for later in &pieces[i + 1..] {
                    tunnel.leftover.extend_from_slice(later);
                }
                return Ok(Some(Step::Done(tunnel)));
            }
            Ok(Some(Step::Write(w))) => {
                assert!(
                    pieces[i + 1..].iter().all(|p| p.is_empty()),
                    "asked to write with bytes of the reply left"
                );
                return Ok(Some(Step::Write(w)));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Every way of cutting `bytes` the tests try: one piece, two pieces at
/// every position, and one byte at a time.
pub fn splits(bytes: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut out = vec![vec![bytes]];
    for cut in 0..=bytes.len() {
        out.push(vec![&bytes[..cut], &bytes[cut..]]);
    }
    out.push(bytes.chunks(1).collect());
    out
}

/// Feeds `reply` to fresh exchanges from `make`, cut every way, checks
/// that every cut gives the same answer, and returns it.
pub fn every_split<E: Exchange>(mut make: impl FnMut() -> E, reply: &[u8]) -> Outcome {
    let whole = feed(&mut make(), &[reply]);
    for pieces in splits(reply) {
        let mut hs = make();
        assert_eq!(
            feed(&mut hs, &pieces),
            whole,
            "cut into {:?}",
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
        );
    }
    whole
}

/// The tunnel of a `Done`, or a panic naming what came instead.
#[track_caller]
pub fn done(outcome: Outcome) -> Tunnel {
    match outcome {
        Ok(Some(Step::Done(t))) => t,
        other => panic!("expected Done, got {other:?}"),
    }
}

/// The bytes of a `Write`, or a panic naming what came instead.
#[track_caller]
pub fn write(outcome: Outcome) -> Vec<u8> {
    match outcome {
        Ok(Some(Step::Write(w))) => w,
        other => panic!("expected Write, got {other:?}"),
    }
}

pub fn limits() -> HandshakeLimits {
    HandshakeLimits::default()
}

pub fn host(s: &str) -> Host {
    Host::from(s)
}
