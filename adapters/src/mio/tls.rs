//! TLS in the loop: rustls's own sans-IO connection, between the TCP
//! stream (after a client's proxy tunnel) and the WebSocket handshake.
//! When the socket is readable the loop feeds it records (`read_tls`,
//! `process_new_packets`) and takes plaintext out for the core; the core's
//! bytes go in through `writer()` and out as records (`write_tls`) while
//! the socket takes them. `Socket` in `conn.rs` picks plain TCP or this
//! in one `match` per operation. Nothing here reads WebSocket bytes.
//!
//! Without feature `rustls` the types below are empty: no session exists,
//! and a `wss://` URL is refused before any connect.

#[cfg(feature = "rustls")]
pub(super) use on::{ServerTls, TlsSession};

#[cfg(not(feature = "rustls"))]
pub(super) use off::{ServerTls, TlsSession};

#[cfg(feature = "rustls")]
mod on {
    use std::io::{self, IoSlice, Read, Write};
    use std::net::{SocketAddr, ToSocketAddrs};
    use std::sync::Arc;

    use mio::net::TcpStream;
    use rustls::{Connection, ServerConfig, ServerConnection};

    use super::super::conn::{Acceptor, Decide};
    use super::super::service::would_block;
    use super::super::{ConnectionId, ConnectionSet};
    use crate::tls::ClientTls;
    use crate::{Decision, Error, ServerOptions};

    /// A TLS listener's (or accepted socket's) configuration.
    pub(in crate::mio) type ServerTls = Arc<ServerConfig>;

    /// One connection's TLS. Its methods take the socket and its
    /// readiness flags, which stay in `Socket`.
    pub(in crate::mio) struct TlsSession {
        conn: Connection,
        /// close_notify is queued.
        ended: bool,
    }

    impl TlsSession {
        fn new(conn: Connection) -> Box<Self> {
            Box::new(Self { conn, ended: false })
        }

        /// A client session for the URL's host; its ClientHello waits to
        /// be written.
        pub(in crate::mio) fn client(tls: ClientTls) -> Result<Box<Self>, Error> {
            Ok(Self::new(tls.into_connection()?.into()))
        }

        pub(in crate::mio) fn server(config: &ServerTls) -> io::Result<Box<Self>> {
            let conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
            Ok(Self::new(conn.into()))
        }

        pub(in crate::mio) fn connection(&self) -> &Connection {
            &self.conn
        }

        /// Moves the TLS handshake as far as the socket allows: `true`
        /// once it is over (and ever after). The peer's end before the
        /// handshake's is `UnexpectedEof`; a rustls error comes wrapped in
        /// the `io::Error`, where `Error::from` finds and classifies it.
        pub(in crate::mio) fn handshake(
            &mut self,
            tcp: &mut TcpStream,
            readable: &mut bool,
            writable: &mut bool,
        ) -> io::Result<bool> {
            while self.conn.is_handshaking() {
                // Our flight first; a socket that takes none now does not
                // stop us reading the peer's.
                self.flush(tcp, writable)?;
                match self.fill(tcp, readable, writable)? {
                    None => return Ok(false),
                    Some(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the peer ended the connection during the TLS handshake",
                        ))
                    }
                    Some(_) => {}
                }
            }
            // The last flight (a client's Finished, a server's tickets),
            // again on each call until it is out.
            self.flush(tcp, writable)?;
            Ok(true)
        }

        /// Plaintext into `buf`: what rustls holds, else what the socket's
        /// records decrypt to. `Some(0)` is the end: the peer's
        /// close_notify, or TCP's end without one, an end all the same
        /// (the WebSocket close handshake, not TLS's, tells a clean end
        /// from a cut one, and the core reports the latter). `None`: no
        /// plaintext until the socket is readable again.
        ///
        /// The socket is read only once rustls holds no plaintext, and
        /// `readable` is cleared only by a read that would block (or the
        /// end), so plaintext left in rustls never waits for a readiness
        /// event that edge-triggered polling would not send.
        pub(in crate::mio) fn read(
            &mut self,
            tcp: &mut TcpStream,
            readable: &mut bool,
            writable: &mut bool,
            buf: &mut [u8],
        ) -> io::Result<Option<usize>> {
            loop {
                match self.conn.reader().read(buf) {
                    Ok(n) => return Ok(Some(n)),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Some(0)),
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(e),
                }
                if self.fill(tcp, readable, writable)?.is_none() {
                    return Ok(None);
                }
            }
        }

        /// Hands rustls what of `bufs` it takes and writes the records
        /// out: `Some(taken)`, or `None` while the socket does not take
        /// what rustls already holds (so rustls holds at most one
        /// buffer's worth, 64 KiB by default).
        pub(in crate::mio) fn write(
            &mut self,
            tcp: &mut TcpStream,
            writable: &mut bool,
            bufs: &[IoSlice<'_>],
        ) -> io::Result<Option<usize>> {
            if !self.flush(tcp, writable)? {
                return Ok(None);
            }
            let n = self.conn.writer().write_vectored(bufs)?;
            if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
                // rustls takes plaintext whenever its record buffer has
                // room, and it was just emptied.
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "TLS took no plaintext",
                ));
            }
            self.flush(tcp, writable)?;
            Ok(Some(n))
        }

        /// Writes the records rustls holds: `true` once none is left.
        pub(in crate::mio) fn flush(
            &mut self,
            tcp: &mut TcpStream,
            writable: &mut bool,
        ) -> io::Result<bool> {
            while self.conn.wants_write() {
                if !*writable {
                    return Ok(false);
                }
                match self.conn.write_tls(tcp) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if would_block(&e) => *writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(true)
        }

        /// Ends the session: close_notify goes out behind what is queued
        /// (rustls sends none after a fatal alert).
        pub(in crate::mio) fn end(&mut self) {
            if !self.ended {
                self.conn.send_close_notify();
                self.ended = true;
            }
        }

        /// Ended, and every record written.
        pub(in crate::mio) fn is_drained(&self) -> bool {
            self.ended && !self.conn.wants_write()
        }

        /// One read of records from the socket, processed: `Some(n)` bytes
        /// read (0: the socket's end), `None` when it would block or
        /// readiness is not known.
        fn fill(
            &mut self,
            tcp: &mut TcpStream,
            readable: &mut bool,
            writable: &mut bool,
        ) -> io::Result<Option<usize>> {
            while *readable {
                match self.conn.read_tls(tcp) {
                    Ok(n) => {
                        if n == 0 {
                            *readable = false;
                        }
                        self.process(tcp, writable)?;
                        return Ok(Some(n));
                    }
                    Err(e) if would_block(&e) => *readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        }

        fn process(&mut self, tcp: &mut TcpStream, writable: &mut bool) -> io::Result<()> {
            match self.conn.process_new_packets() {
                Ok(_) => {
                    // What the records ask for (handshake messages, a key
                    // update) goes out now; a blocked socket keeps it.
                    self.flush(tcp, writable)?;
                    Ok(())
                }
                Err(e) => {
                    // Its alert, if the socket takes it now: the error
                    // stands either way.
                    let _ = self.flush(tcp, writable);
                    Err(io::Error::new(io::ErrorKind::InvalidData, e))
                }
            }
        }
    }

    impl ConnectionSet {
        /// Listens on `addr` and accepts WebSocket connections over TLS
        /// (`wss://`) with `tls` (from
        /// [`tls::server_config`](crate::tls::server_config), or your
        /// own: a client-certificate verifier in it makes this mutual
        /// TLS), with the default options; returns the bound address.
        pub fn listen_tls(
            &mut self,
            addr: impl ToSocketAddrs,
            tls: Arc<ServerConfig>,
        ) -> io::Result<SocketAddr> {
            self.listen_tls_with(addr, tls, ServerOptions::default(), |_| {
                Ok(Default::default())
            })
        }

        /// [`listen_with`](Self::listen_with) over TLS. The TLS handshake
        /// and the WebSocket one are due together within
        /// `options.limits.timeout` of the accept, so a client that
        /// stalls in either is dropped then (`Event::Error` with
        /// `HandshakeError::TimedOut`, then `Event::Closed`); a failed TLS
        /// handshake (a refused client certificate, say) is an
        /// [`Error::Tls`].
        pub fn listen_tls_with(
            &mut self,
            addr: impl ToSocketAddrs,
            tls: Arc<ServerConfig>,
            options: ServerOptions,
            hook: impl FnMut(&http::Request<()>) -> Decision + Send + 'static,
        ) -> io::Result<SocketAddr> {
            self.bind(
                addr,
                Acceptor {
                    options,
                    hook: Box::new(hook),
                    tls: Some(tls),
                },
            )
        }

        /// Runs the TLS handshake, then the WebSocket one, on a TCP stream
        /// accepted elsewhere, accepting every request with the default
        /// options.
        pub fn accept_tls(
            &mut self,
            stream: std::net::TcpStream,
            tls: &Arc<ServerConfig>,
        ) -> io::Result<ConnectionId> {
            self.accept_tls_with(stream, tls, &ServerOptions::default(), |_| {
                Ok(Default::default())
            })
        }

        /// [`accept_with`](Self::accept_with) over TLS, with the deadline
        /// of [`listen_tls_with`](Self::listen_tls_with).
        pub fn accept_tls_with(
            &mut self,
            stream: std::net::TcpStream,
            tls: &Arc<ServerConfig>,
            options: &ServerOptions,
            decide: impl FnOnce(&http::Request<()>) -> Decision + Send + 'static,
        ) -> io::Result<ConnectionId> {
            stream.set_nonblocking(true)?;
            let decide = Decide::Once(Some(Box::new(decide)));
            self.add_server(TcpStream::from_std(stream), options, decide, Some(tls))
        }

        /// The TLS session of a connection (the peer's certificates, ALPN,
        /// SNI, the protocol version); `None` for one over plain TCP, and
        /// for a client still in its proxy tunnel.
        pub fn tls(&self, id: ConnectionId) -> Option<&Connection> {
            Some(self.get_ref(id)?.io.tls.as_deref()?.connection())
        }
    }
}

/// The types of a build without TLS: empty, so every `Option` of them is
/// `None` and each method below is unreachable.
#[cfg(not(feature = "rustls"))]
mod off {
    use std::io::{self, IoSlice};

    use mio::net::TcpStream;

    use crate::tls::ClientTls;
    use crate::Error;

    #[derive(Clone)]
    pub(in crate::mio) enum ServerTls {}

    pub(in crate::mio) enum TlsSession {}

    #[allow(clippy::needless_pass_by_ref_mut)]
    impl TlsSession {
        pub(in crate::mio) fn client(tls: ClientTls) -> Result<Box<Self>, Error> {
            match tls {}
        }
        pub(in crate::mio) fn server(tls: &ServerTls) -> io::Result<Box<Self>> {
            match *tls {}
        }
        pub(in crate::mio) fn handshake(
            &mut self,
            _: &mut TcpStream,
            _: &mut bool,
            _: &mut bool,
        ) -> io::Result<bool> {
            match *self {}
        }
        pub(in crate::mio) fn read(
            &mut self,
            _: &mut TcpStream,
            _: &mut bool,
            _: &mut bool,
            _: &mut [u8],
        ) -> io::Result<Option<usize>> {
            match *self {}
        }
        pub(in crate::mio) fn write(
            &mut self,
            _: &mut TcpStream,
            _: &mut bool,
            _: &[IoSlice<'_>],
        ) -> io::Result<Option<usize>> {
            match *self {}
        }
        pub(in crate::mio) fn flush(
            &mut self,
            _: &mut TcpStream,
            _: &mut bool,
        ) -> io::Result<bool> {
            match *self {}
        }
        pub(in crate::mio) fn end(&mut self) {
            match *self {}
        }
        pub(in crate::mio) fn is_drained(&self) -> bool {
            match *self {}
        }
    }
}
