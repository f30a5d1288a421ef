//! The opening handshake over any [`Transport`]: writes and reads bytes
//! for the core's sans-IO handshake, within the core's deadline (counted
//! from the start of the TLS handshake when one comes first).

// The async handshake serves smol and tokio; a build with neither (mio
// alone, or no runtime for tether-resume) leaves it unused.
#![cfg_attr(
    not(any(feature = "smol", feature = "tokio")),
    allow(dead_code, unused_imports)
)]
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Instant;

use tether_core::handshake::{
    Answer, ClientHandshake, ClientRequest, Decision, HandshakeError, HandshakeLimits,
    ServerHandshake,
};
use tether_core::Config;

use crate::driver::WebSocket;
use crate::error::Error;
use crate::random::os_rng;
use crate::transport::{Runtime, Transport};

/// Settings for a client connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The connection's limits and timers.
    pub config: Config,
    /// Handshake size and time bounds.
    pub limits: HandshakeLimits,
    /// Origin header.
    pub origin: Option<String>,
    /// Subprotocols to offer, most preferred first.
    pub protocols: Vec<String>,
    /// Extra request headers (authentication, cookies).
    pub headers: http::HeaderMap,
    /// Socket options, applied by `connect`.
    pub socket: crate::SocketOptions,
    /// The proxy to connect through: the environment's by default
    /// (`http_proxy`, `no_proxy`, ...; see [`crate::proxy`]).
    pub proxy: crate::proxy::ProxyConfig,
    /// permessage-deflate offers, most preferred first (empty: no
    /// compression). One offer with the default settings by default.
    #[cfg(feature = "deflate")]
    pub deflate: Vec<tether_core::DeflateConfig>,
    /// TLS for `wss://` URLs: the roots to trust (a private CA), a client
    /// certificate (mutual TLS), a crypto provider of your choice; see
    /// [`tls::client_config`](crate::tls::client_config). `None`: the
    /// roots of the enabled root features
    /// ([`tls::default_client_config`](crate::tls::default_client_config)).
    /// A configuration offering no ALPN protocol is used with `http/1.1`.
    #[cfg(feature = "rustls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

tether_core::__with_setters!(ClientOptions {
    with_config => config: Config,
    with_limits => limits: HandshakeLimits,
    with_origin => origin: Option<String>,
    with_protocols => protocols: Vec<String>,
    with_headers => headers: http::HeaderMap,
    with_socket => socket: crate::SocketOptions,
    with_proxy => proxy: crate::proxy::ProxyConfig,
});

#[cfg(feature = "deflate")]
tether_core::__with_setters!(ClientOptions {
    with_deflate => deflate: Vec<tether_core::DeflateConfig>,
});

#[cfg(feature = "rustls")]
impl ClientOptions {
    /// Sets [`tls`](Self::tls).
    #[must_use]
    pub fn with_tls(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            config: Config::default(),
            limits: HandshakeLimits::default(),
            origin: None,
            protocols: Vec::new(),
            headers: http::HeaderMap::new(),
            socket: crate::SocketOptions::default(),
            proxy: crate::proxy::ProxyConfig::default(),
            #[cfg(feature = "deflate")]
            deflate: vec![tether_core::DeflateConfig::default()],
            #[cfg(feature = "rustls")]
            tls: None,
        }
    }
}

/// Settings for a server connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The connection's limits and timers.
    pub config: Config,
    /// Handshake size and time bounds.
    pub limits: HandshakeLimits,
    /// permessage-deflate settings when a client offers it (`None`:
    /// never compress). On with the default settings by default.
    #[cfg(feature = "deflate")]
    pub deflate: Option<tether_core::DeflateConfig>,
}

tether_core::__with_setters!(ServerOptions {
    with_config => config: Config,
    with_limits => limits: HandshakeLimits,
});

#[cfg(feature = "deflate")]
tether_core::__with_setters!(ServerOptions {
    with_deflate => deflate: Option<tether_core::DeflateConfig>,
});

// Derivable without `deflate`, whose default is on.
#[cfg_attr(not(feature = "deflate"), allow(clippy::derivable_impls))]
impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            config: Config::default(),
            limits: HandshakeLimits::default(),
            #[cfg(feature = "deflate")]
            deflate: Some(tether_core::DeflateConfig::default()),
        }
    }
}

/// Runs `fut` until the core's handshake deadline.
pub(crate) async fn before<R: Runtime, T>(
    deadline: Instant,
    fut: impl Future<Output = T>,
) -> Result<T, Error> {
    let mut fut = pin!(fut);
    let mut sleep = R::sleep_until(deadline);
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if Pin::new(&mut sleep).poll(cx).is_ready() {
            return Poll::Ready(Err(HandshakeError::TimedOut.into()));
        }
        Poll::Pending
    })
    .await
}

pub(crate) async fn write_all<S: Transport>(io: &mut S, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| io.poll_write_vectored(cx, &[io::IoSlice::new(data)])).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    poll_fn(|cx| io.poll_flush(cx)).await
}

async fn read_some<S: Transport>(io: &mut S, buf: &mut [u8]) -> Result<usize, Error> {
    match poll_fn(|cx| io.poll_read(cx, buf)).await? {
        0 => Err(HandshakeError::Eof.into()),
        n => Ok(n),
    }
}

/// Client handshake on a connected transport, due `limits.timeout` after
/// `started` (now, or when the TLS handshake before it began).
///
/// Its state (buffers, the parsed response, the timer) is boxed: inline, it
/// would make every task that awaits it that much larger for the whole
/// connection, not just the handshake.
pub(crate) async fn client<S: Transport, R: Runtime>(
    io: S,
    request: &ClientRequest,
    options: &ClientOptions,
    started: Instant,
) -> Result<WebSocket<S, R>, Error> {
    Box::pin(client_inner::<S, R>(io, request, options, started)).await
}

async fn client_inner<S: Transport, R: Runtime>(
    mut io: S,
    request: &ClientRequest,
    options: &ClientOptions,
    started: Instant,
) -> Result<WebSocket<S, R>, Error> {
    let mut rng = os_rng();
    let (mut hs, bytes) =
        ClientHandshake::new(request, options.limits.clone(), &mut *rng, started)?;
    let deadline = hs.poll_timeout();
    let response = before::<R, _>(deadline, async {
        write_all(&mut io, &bytes).await?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = read_some(&mut io, &mut buf).await?;
            if let Some(response) = hs.handle_read(&buf[..n])? {
                return Ok::<_, Error>(response);
            }
        }
    })
    .await??;
    let conn = hs.into_connection(options.config.clone(), rng, R::now());
    Ok(WebSocket::from_parts(io, conn, response.protocol))
}

/// Server handshake on an accepted transport; `decide` sees the request.
/// Due like [`client`]'s, and boxed like it.
pub(crate) async fn server<S: Transport, R: Runtime>(
    io: S,
    options: &ServerOptions,
    decide: impl FnOnce(&http::Request<()>) -> Decision,
    started: Instant,
) -> Result<WebSocket<S, R>, Error> {
    Box::pin(server_inner::<S, R>(io, options, decide, started)).await
}

async fn server_inner<S: Transport, R: Runtime>(
    mut io: S,
    options: &ServerOptions,
    decide: impl FnOnce(&http::Request<()>) -> Decision,
    started: Instant,
) -> Result<WebSocket<S, R>, Error> {
    let hs = ServerHandshake::new(options.limits.clone(), started);
    #[cfg(feature = "deflate")]
    let hs = hs.with_deflate(options.deflate.clone());
    let mut hs = hs;
    let deadline = hs.poll_timeout();
    let outcome = before::<R, _>(deadline, async {
        let mut buf = vec![0u8; 4096];
        let answer = loop {
            let n = read_some(&mut io, &mut buf).await?;
            match hs.handle_read(&buf[..n]) {
                Ok(Some(request)) => break hs.answer(decide(&request)),
                Ok(None) => {}
                Err(e) => break Answer::failed(e),
            }
        };
        // A refusal tells the client why before closing; its error stands
        // whether or not that write succeeds.
        let written = write_all(&mut io, &answer.bytes).await;
        let protocol = answer.result?;
        written?;
        Ok(protocol)
    })
    .await;
    let protocol = match outcome {
        Ok(Ok(p)) => p,
        Ok(Err(e)) | Err(e) => {
            let _ = poll_fn(|cx| io.poll_shutdown(cx)).await;
            return Err(e);
        }
    };
    let conn = hs.into_connection(options.config.clone(), os_rng(), R::now());
    Ok(WebSocket::from_parts(io, conn, protocol))
}
