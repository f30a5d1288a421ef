//! A hand-written peer on a blocking `std` socket, for what a well-behaved
//! client never does. It runs on a thread of its own, so it is the same
//! for every runtime, and every read and write has a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Deadline of each blocking read or write of the raw peer.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The RFC 6455 section 1.3 example key and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Runs `f` on a thread; join it with [`join`].
pub fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    thread::Builder::new()
        .name("raw peer".into())
        .spawn(f)
        .expect("spawn raw peer")
}

/// Waits for a raw peer, resuming its panic.
pub fn join<T>(handle: JoinHandle<T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

pub struct RawPeer {
    stream: TcpStream,
}

impl RawPeer {
    /// Connects, with deadlines on every read and write.
    pub fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).expect("raw peer: connect"))
    }

    /// Wraps a connected (or accepted) stream, with deadlines.
    pub fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set_read_timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("set_write_timeout");
        stream.set_nodelay(true).expect("set_nodelay");
        Self { stream }
    }

    /// Connects and performs the opening handshake by hand, with the fixed
    /// key; checks the 101 and its accept value.
    pub fn upgrade(addr: SocketAddr) -> Self {
        let mut peer = Self::connect(addr);
        peer.write(&upgrade_request(addr, ""));
        let head = peer.read_head();
        assert!(
            head.starts_with("HTTP/1.1 101 "),
            "raw peer: expected 101, got {head:?}"
        );
        let accept = format!("sec-websocket-accept: {ACCEPT}\r\n").to_ascii_lowercase();
        assert!(
            head.to_ascii_lowercase().contains(&accept),
            "raw peer: no or wrong Sec-WebSocket-Accept in {head:?}"
        );
        peer
    }

    /// Aborts the connection: SO_LINGER 0, then close, so the kernel sends
    /// RST instead of FIN.
    pub fn reset(self) {
        socket2::SockRef::from(&self.stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER");
    }

    pub fn write(&mut self, data: &[u8]) {
        self.stream.write_all(data).expect("raw peer: write");
    }

    /// Reads an HTTP head, byte by byte so that nothing after it is taken.
    pub fn read_head(&mut self) -> String {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            assert!(head.len() < 16 << 10, "raw peer: HTTP head too long");
            let mut b = [0u8; 1];
            let n = self.stream.read(&mut b).expect("raw peer: read head");
            assert_eq!(
                n,
                1,
                "raw peer: EOF inside the HTTP head {:?}",
                String::from_utf8_lossy(&head)
            );
            head.push(b[0]);
        }
        String::from_utf8(head).expect("raw peer: HTTP head is not UTF-8")
    }

    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        self.stream
            .read_exact(&mut buf)
            .expect("raw peer: read_exact");
        buf
    }

    /// Reads until the peer ends the stream (fails on a reset or timeout).
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.stream
            .read_to_end(&mut buf)
            .expect("raw peer: read to EOF");
        buf
    }

    /// Reads one unmasked, unfragmented frame: (first byte, payload).
    pub fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let head = self.read_exact(2);
        assert_eq!(
            head[1] & 0x80,
            0,
            "raw peer: a server frame must not be masked"
        );
        let len = match head[1] & 0x7f {
            126 => u16::from_be_bytes(self.read_exact(2).try_into().expect("2 bytes")) as usize,
            127 => u64::from_be_bytes(self.read_exact(8).try_into().expect("8 bytes")) as usize,
            n => n as usize,
        };
        (head[0], self.read_exact(len))
    }
}

/// A WebSocket upgrade request with the fixed key and `extra` header lines.
pub fn upgrade_request(addr: SocketAddr, extra: &str) -> Vec<u8> {
    format!(
        "GET /raw HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A client frame header (FIN set, masked with `key`) for `len` bytes.
pub fn masked_header(opcode: u8, len: u64, key: [u8; 4]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out
}

/// `payload` masked with `key` from its first byte.
pub fn mask(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect()
}
