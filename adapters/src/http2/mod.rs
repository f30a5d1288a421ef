//! WebSockets over HTTP/2 (RFC 8441), client side: many WebSockets as
//! streams of one HTTP/2 connection, on tokio.
//!
//! [`connect`] opens one TLS connection offering `h2` by ALPN (browsers
//! speak HTTP/2 only over TLS, and so do servers that offer RFC 8441)
//! and waits for the server's SETTINGS. When the server chose `h2` and
//! its SETTINGS carry `ENABLE_CONNECT_PROTOCOL`, each
//! [`Http2Client::open`] is an extended CONNECT on a new stream of that
//! connection; otherwise (HTTP/1.1 by ALPN, the setting absent, a
//! `ws://` URL) each opens an HTTP/1.1 connection of its own, as
//! `tether::tokio::connect_with` does. Either way the WebSocket is run by
//! the shared driver: keepalive, backpressure (HTTP/2 flow control on a
//! stream), streaming and the close handshake are those of every tether
//! connection, and closing one leaves the others running.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tether::Error> {
//! use futures_util::SinkExt;
//! let client = tether::http2::connect("wss://example.com", Default::default()).await?;
//! let mut a = client.open("/feed/a").await?;
//! let mut b = client.open("/feed/b").await?; // same TCP connection when HTTP/2
//! a.send(tether::Message::text("hi")).await?;
//! # Ok(()) }
//! ```

mod stream;

use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use bytes::Bytes;
use tether_core::handshake::{ClientRequest, ConnectHandshake};

use crate::handshake::{self, ClientOptions};
use crate::tls::ClientTls;
use crate::tokio::{ClientStream, Tokio, TokioIo};
use crate::transport::{Runtime, Transport};
use crate::Error;

pub use stream::H2Stream;

/// A WebSocket from [`Http2Client::open`]: on an HTTP/2 stream, or on an
/// HTTP/1.1 connection of its own.
pub type WebSocket = crate::WebSocket<Http2Io, Tokio>;

/// The transport of an [`Http2Client`]'s WebSocket.
#[derive(Debug)]
pub struct Http2Io(Io);

#[derive(Debug)]
enum Io {
    Stream(H2Stream),
    Http1(TokioIo<ClientStream>),
}

impl Http2Io {
    /// Whether the WebSocket runs on a stream of the HTTP/2 connection.
    pub fn is_http2_stream(&self) -> bool {
        matches!(self.0, Io::Stream(_))
    }
}

impl Transport for Http2Io {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Io::Stream(s) => s.poll_read(cx, buf),
            Io::Http1(s) => s.poll_read(cx, buf),
        }
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Io::Stream(s) => s.poll_write_vectored(cx, bufs),
            Io::Http1(s) => s.poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 {
            Io::Stream(s) => s.poll_flush(cx),
            Io::Http1(s) => s.poll_flush(cx),
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 {
            Io::Stream(s) => s.poll_shutdown(cx),
            Io::Http1(s) => s.poll_shutdown(cx),
        }
    }
}

/// Per-stream receive window: how much of one WebSocket's data the
/// server may send ahead of the application's reads (HTTP/2's default,
/// 64 KiB, would cost a round trip per 64 KiB of a large message).
#[cfg(feature = "rustls")]
const STREAM_WINDOW: u32 = 256 << 10;
/// Receive window of the whole connection, shared by its streams.
#[cfg(feature = "rustls")]
const CONNECTION_WINDOW: u32 = 4 << 20;

/// WebSockets to one server: streams of one HTTP/2 connection when the
/// server offers RFC 8441, HTTP/1.1 connections otherwise.
#[derive(Debug, Clone)]
pub struct Http2Client {
    /// `ws://host[:port]` or `wss://…`, paths go after it.
    origin: String,
    options: ClientOptions,
    /// The HTTP/2 connection, when WebSockets go over it.
    h2: Option<h2::client::SendRequest<Bytes>>,
}

/// Connects to the server of `url` (its path is not used: each
/// [`open`](Http2Client::open) names its own). Over `wss://` with
/// feature `rustls`, offers `h2` and `http/1.1` by ALPN; the TLS
/// handshake and the wait for the server's SETTINGS are due within
/// `options.limits.timeout`. Proxies are used as `connect_with` uses them.
pub async fn connect(url: &str, options: ClientOptions) -> Result<Http2Client, Error> {
    let request = crate::client_request(url, &options)?;
    let origin = format!(
        "{}://{}",
        if request.secure { "wss" } else { "ws" },
        request.host
    );
    let h2 = match ClientTls::prepare(&request, &options)? {
        #[cfg(feature = "rustls")]
        Some(tls) => open_h2(&request, &options, tls).await?,
        #[cfg(not(feature = "rustls"))]
        Some(never) => match never {},
        None => None,
    };
    Ok(Http2Client {
        origin,
        options,
        h2,
    })
}

/// The HTTP/2 connection, or `None` when the server does not speak
/// HTTP/2 with extended CONNECT.
#[cfg(feature = "rustls")]
async fn open_h2(
    request: &ClientRequest,
    options: &ClientOptions,
    mut tls: ClientTls,
) -> Result<Option<h2::client::SendRequest<Bytes>>, Error> {
    tls.offer_h2();
    let tcp = crate::tunnel::open::<Tokio>(request, options, true).await?;
    let deadline = tether_core::time::deadline_after(Tokio::now(), options.limits.timeout);
    let stream = ClientStream::open(tcp, Some(tls), deadline).await?;
    if stream.tls().and_then(|t| t.alpn_protocol()) != Some(b"h2") {
        return Ok(None);
    }
    let (send, mut connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(h2_error)?;
    let mut ping = connection
        .ping_pong()
        .expect("a new connection's ping handle");
    tokio::spawn(async move {
        // Ends with the last stream and handle; an error ends every stream.
        let _ = connection.await;
    });
    // The server's SETTINGS are its first frame, so once the answer to a
    // PING is in, so is ENABLE_CONNECT_PROTOCOL, if the server sent it.
    handshake::before::<Tokio, _>(deadline, ping.ping(h2::Ping::opaque()))
        .await?
        .map_err(h2_error)?;
    Ok(send.is_extended_connect_protocol_enabled().then_some(send))
}

fn h2_error(e: h2::Error) -> Error {
    if e.is_io() {
        return Error::Io(e.into_io().expect("an I/O error"));
    }
    Error::Io(io::Error::other(e))
}

impl Http2Client {
    /// Whether WebSockets go over the HTTP/2 connection (RFC 8441), or
    /// each over an HTTP/1.1 connection of its own.
    pub fn is_http2(&self) -> bool {
        self.h2.is_some()
    }

    /// Opens a WebSocket to `path` (with its query) on this server, with
    /// the client's options: an extended CONNECT on a new stream, or an
    /// HTTP/1.1 connection and upgrade. The response is due within
    /// `options.limits.timeout`.
    pub async fn open(&self, path: &str) -> Result<WebSocket, Error> {
        let url = format!("{}{path}", self.origin);
        let request = crate::client_request(&url, &self.options)?;
        match &self.h2 {
            Some(send) => self.open_stream(send.clone(), &request).await,
            None => self.open_http1(&request).await,
        }
    }

    async fn open_stream(
        &self,
        send: h2::client::SendRequest<Bytes>,
        request: &ClientRequest,
    ) -> Result<WebSocket, Error> {
        let (mut hs, head) = ConnectHandshake::new(request)?;
        let (parts, ()) = head.into_parts();
        let mut head = http::Request::from_parts(parts, ());
        head.extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        let deadline = tether_core::time::deadline_after(Tokio::now(), self.options.limits.timeout);
        let (response, mut stream) = handshake::before::<Tokio, _>(deadline, async {
            // Waits while the server's stream limit is reached.
            let mut send = send.ready().await.map_err(h2_error)?;
            let (response, stream) = send.send_request(head, false).map_err(h2_error)?;
            Ok::<_, Error>((response.await.map_err(h2_error)?, stream))
        })
        .await??;
        let (parts, recv) = response.into_parts();
        let accepted = match hs.handle_response(&http::Response::from_parts(parts, ())) {
            Ok(a) => a,
            Err(e) => {
                stream.send_reset(h2::Reason::CANCEL);
                return Err(e.into());
            }
        };
        let conn = hs.into_connection(self.options.config.clone(), crate::os_rng(), Tokio::now());
        Ok(WebSocket::from_parts(
            Http2Io(Io::Stream(H2Stream::new(stream, recv))),
            conn,
            accepted.protocol,
        ))
    }

    async fn open_http1(&self, request: &ClientRequest) -> Result<WebSocket, Error> {
        let tls = ClientTls::prepare(request, &self.options)?;
        let tcp = crate::tunnel::open::<Tokio>(request, &self.options, tls.is_some()).await?;
        let started = Tokio::now();
        let deadline = tether_core::time::deadline_after(started, self.options.limits.timeout);
        let stream = ClientStream::open(tcp, tls, deadline).await?;
        let io = Http2Io(Io::Http1(TokioIo(stream)));
        handshake::client::<_, Tokio>(io, request, &self.options, started).await
    }
}
