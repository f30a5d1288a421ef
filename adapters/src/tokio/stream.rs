//! The streams tokio connections run over: a client's TCP or TLS over
//! TCP, and a TLS server's.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[cfg(feature = "rustls")]
use super::compat::{self, Compat};
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
    Tls(Box<futures_rustls::client::TlsStream<Compat<TcpStream>>>),
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
                let stream = tls
                    .connect::<_, super::Tokio>(Compat(tcp), deadline)
                    .await?;
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
            Inner::Tls(s) => &s.get_ref().0 .0,
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
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "rustls")]
            Inner::Tls(s) => compat::poll_read(&mut **s, cx, buf),
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
            Inner::Tls(s) => futures_io::AsyncWrite::poll_write(Pin::new(&mut **s), cx, buf),
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
            Inner::Tls(s) => {
                futures_io::AsyncWrite::poll_write_vectored(Pin::new(&mut **s), cx, bufs)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.0 {
            Inner::Plain(s) => s.is_write_vectored(),
            // rustls takes every slice into its records.
            #[cfg(feature = "rustls")]
            Inner::Tls(_) => true,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "rustls")]
            Inner::Tls(s) => futures_io::AsyncWrite::poll_flush(Pin::new(&mut **s), cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "rustls")]
            Inner::Tls(s) => futures_io::AsyncWrite::poll_close(Pin::new(&mut **s), cx),
        }
    }
}

/// The stream a WebSocket accepted by [`accept_tls`](super::accept_tls)
/// runs over: TLS over `S`.
#[cfg(feature = "rustls")]
#[derive(Debug)]
pub struct TlsStream<S = TcpStream>(futures_rustls::server::TlsStream<Compat<S>>);

#[cfg(feature = "rustls")]
impl<S> TlsStream<S> {
    pub(crate) fn new(inner: futures_rustls::server::TlsStream<Compat<S>>) -> Self {
        Self(inner)
    }

    /// The stream underneath and the TLS connection (the client's
    /// certificates, the protocol version, ALPN).
    pub fn get_ref(&self) -> (&S, &rustls::ServerConnection) {
        let (io, conn) = self.0.get_ref();
        (&io.0, conn)
    }
}

#[cfg(feature = "rustls")]
impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        compat::poll_read(&mut self.get_mut().0, cx, buf)
    }
}

#[cfg(feature = "rustls")]
impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(Pin::new(&mut self.get_mut().0), cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write_vectored(Pin::new(&mut self.get_mut().0), cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().0), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(Pin::new(&mut self.get_mut().0), cx)
    }
}
