//! A peer that upgrades by hand over a blocking std TCP socket: for tests
//! that need a client the library does not drive (one that sends bytes of
//! its choosing, or never answers again).

#![allow(dead_code)] // each test file uses a different subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

/// Writes a valid upgrade request (the RFC 6455 sample key) to `tcp`.
pub fn send_upgrade_request(tcp: &mut TcpStream, addr: SocketAddr) {
    write!(
        tcp,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("upgrade request");
}

/// Connects to `addr`, upgrades, and reads the response head byte by byte
/// (so no frame after it is consumed); panics unless it is a 101.
pub fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    send_upgrade_request(&mut tcp, addr);
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).expect("response");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}
