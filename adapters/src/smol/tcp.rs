//! The TCP stream a smol [`Listener`](super::Listener) accepts.

use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use async_io::Async;
use futures_io::{AsyncRead, AsyncWrite};

/// A TCP stream on smol's reactor: async-io's `Async` around the std
/// stream, owned, whose close shuts down the write side (a FIN), as the
/// close handshake needs. async-net's `TcpStream` (what its listener
/// accepts) keeps the same behind an `Arc`, with a readiness future of
/// its own for each direction: 360–470 bytes more per idle connection
/// (`bench/run`, the idle scenario) and an `Arc` clone each time a read
/// would block. Both work with [`accept`](super::accept); convert with
/// `From`.
#[derive(Debug)]
pub struct TcpStream(Async<std::net::TcpStream>);

impl TcpStream {
    /// Registers a connected std stream with the reactor (and makes it
    /// non-blocking).
    pub fn new(stream: std::net::TcpStream) -> io::Result<Self> {
        Async::new(stream).map(Self)
    }

    /// The std stream (socket options, addresses).
    pub fn get_ref(&self) -> &std::net::TcpStream {
        self.0.get_ref()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

impl From<Async<std::net::TcpStream>> for TcpStream {
    fn from(stream: Async<std::net::TcpStream>) -> Self {
        Self(stream)
    }
}

impl From<TcpStream> for Async<std::net::TcpStream> {
    fn from(stream: TcpStream) -> Self {
        stream.0
    }
}

/// For code that wants async-net's shared stream (to read and write from
/// two tasks, say).
impl From<TcpStream> for async_net::TcpStream {
    fn from(stream: TcpStream) -> Self {
        stream.0.into()
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    /// Flushes, then shuts down the write side: `Async`'s own close only
    /// flushes, and the peer would see no end until the stream is dropped.
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.0).poll_flush(cx))?;
        Poll::Ready(self.0.get_ref().shutdown(Shutdown::Write))
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for TcpStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.get_ref().as_raw_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for TcpStream {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.0.get_ref().as_socket()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for TcpStream {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        self.0.get_ref().as_raw_socket()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use futures_util::{AsyncReadExt, AsyncWriteExt};

    use super::TcpStream;

    /// What the Listener accepts reads and writes, and its close ends the
    /// peer's stream (EOF) while it is still held: the server side of the
    /// close handshake closes TCP first without dropping the WebSocket.
    #[test]
    fn accepted_streams_send_a_fin_on_close() {
        smol::block_on(async {
            let mut listener = crate::smol::Listener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let peer = std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                // No FIN: an error here, not a hang.
                s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                std::io::Write::write_all(&mut s, b"ping").unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).unwrap();
                got
            });
            let (mut stream, from): (TcpStream, _) = listener.accept().await.unwrap();
            assert_eq!(stream.peer_addr().unwrap(), from);
            assert!(
                stream.get_ref().nodelay().unwrap(),
                "the Listener's options"
            );
            let mut buf = [0; 4];
            stream.read_exact(&mut buf).await.unwrap();
            stream.write_all(b"pong").await.unwrap();
            stream.close().await.unwrap();
            // Held until the peer has seen the end.
            let got = smol::unblock(move || peer.join().unwrap()).await;
            assert_eq!(got, b"pong");
            drop(stream);
        });
    }
}
