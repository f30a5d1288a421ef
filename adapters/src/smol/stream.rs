//! The stream a smol client connection runs over: TCP, or TLS over TCP.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_net::TcpStream;
use futures_io::{AsyncRead, AsyncWrite};

use crate::tls::ClientTls;
use crate::Error;

/// What [`connect`](super::connect) opens: TCP for `ws://`, TLS over TCP
/// for `wss://` (feature `rustls`). The TLS state is boxed, so a plain
/// connection holds a `TcpStream` and a tag, and each read or write
/// costs one match more than TCP alone.
#[derive(Debug)]
pub struct ClientStream(Inner);

#[derive(Debug)]
enum Inner {
    Plain(TcpStream),
    #[cfg(feature = "rustls")]
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl ClientStream {
    /// Wraps `tcp` in TLS when `tls` says so, the handshake due by
    /// `deadline`.
    pub(crate) async fn open(
        tcp: TcpStream,
        tls: Option<ClientTls>,
        #[cfg_attr(not(feature = "rustls"), allow(unused_variables))] deadline: Instant,
    ) -> Result<Self, Error> {
        match tls {
            None => Ok(Self(Inner::Plain(tcp))),
            #[cfg(feature = "rustls")]
            Some(tls) => {
                let stream = tls.connect::<_, super::Smol>(tcp, deadline).await?;
                Ok(Self(Inner::Tls(Box::new(stream))))
            }
            #[cfg(not(feature = "rustls"))]
            Some(never) => match never {},
        }
    }

    /// The TCP stream underneath (addresses, socket options).
    pub fn tcp(&self) -> &TcpStream {
        match &self.0 {
            Inner::Plain(s) => s,
            #[cfg(feature = "rustls")]
            Inner::Tls(s) => s.get_ref().0,
        }
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        !matches!(self.0, Inner::Plain(_))
    }

    /// The TLS connection (the server's certificates, the protocol
    /// version, ALPN), when there is one.
    #[cfg(feature = "rustls")]
    pub fn tls(&self) -> Option<&rustls::ClientConnection> {
        match &self.0 {
            Inner::Plain(_) => None,
            Inner::Tls(s) => Some(s.get_ref().1),
        }
    }
}

/// The TCP socket's, so `socket2::SockRef::from(&stream)` and the like
/// reach it (linger, keepalive, buffer sizes) whether TLS runs on it or
/// not.
#[cfg(unix)]
impl std::os::fd::AsFd for ClientStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.tcp().as_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for ClientStream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.tcp().as_raw_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for ClientStream {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.tcp().as_socket()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for ClientStream {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        self.tcp().as_raw_socket()
    }
}

/// A plain stream, for running [`client`](super::client) over a socket
/// connected some other way.
impl From<TcpStream> for ClientStream {
    fn from(tcp: TcpStream) -> Self {
        Self(Inner::Plain(tcp))
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "rustls")]
            Inner::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "rustls")]
            Inner::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "rustls")]
            Inner::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "rustls")]
            Inner::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Plain(s) => Pin::new(s).poll_close(cx),
            #[cfg(feature = "rustls")]
            Inner::Tls(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}
