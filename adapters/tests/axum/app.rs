//! The application under test: a real axum router serving plain HTTP and
//! tether WebSockets on one port, run by hyper's HTTP/1.1 and HTTP/2
//! server (extended CONNECT enabled), in plain TCP or TLS with ALPN.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tether::axum::WebSocketUpgrade;
use tether::core::handshake::Mode;
use tether::tls::rustls;
use tether::{Bytes, Config, Message};

/// What the WebSocket route saw of each connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub mode: Mode,
    pub version: http::Version,
    pub protocol: Option<String>,
    pub compressed: bool,
    /// Data messages echoed.
    pub echoed: usize,
    /// How the connection ended: `closed <code>` or `error <e>`.
    pub end: String,
}

/// The reports of the WebSocket route, and the verdicts a browser page
/// posted to `/result`.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Seen>>>, Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    pub fn verdict(&self) -> Option<String> {
        self.1.lock().unwrap().pop()
    }
}

/// The router: `/` plain text naming the HTTP version; `/echo` a
/// WebSocket echo (subprotocols `echo.v2`, `echo.v1`) that also answers
/// plain GETs; `/private` a WebSocket route whose accept hook refuses
/// every request without the right cookie; `/page` the browser test's
/// page, which posts its verdict to `/result`.
pub fn router(log: Log) -> Router {
    Router::new()
        .route(
            "/page",
            get(|| async { axum::response::Html(crate::browser::PAGE) }),
        )
        .route(
            "/result",
            axum::routing::post(|State(log): State<Log>, body: String| async move {
                log.1.lock().unwrap().push(body);
                "thanks"
            }),
        )
        .route(
            "/",
            get(|version: http::Version| async move { format!("hello over {version:?}") }),
        )
        // `any`: over HTTP/2 a WebSocket arrives as CONNECT, not GET.
        .route("/echo", any(echo))
        .route("/private", any(private))
        .with_state(log)
}

async fn echo(
    State(log): State<Log>,
    version: http::Version,
    ws: Option<WebSocketUpgrade>,
) -> Response {
    let Some(ws) = ws else {
        return format!("plain {version:?}").into_response();
    };
    let mode = ws.mode();
    ws.protocols(["echo.v2", "echo.v1"])
        .config(Config::without_keepalive().with_max_message_size(4 << 20))
        .on_upgrade(move |ws| serve_echo(ws, mode, version, log))
}

async fn private(headers: http::HeaderMap, ws: WebSocketUpgrade) -> Response {
    let allowed = headers
        .get("cookie")
        .is_some_and(|c| c.as_bytes() == b"session=ok");
    let decision = if allowed {
        Ok(tether::Accept::default())
    } else {
        let mut no = http::Response::new(Bytes::from_static(b"no session\n"));
        *no.status_mut() = http::StatusCode::UNAUTHORIZED;
        Err(Box::new(no))
    };
    ws.decision(decision).on_upgrade(|mut ws| async move {
        let _ = ws.send(Message::text("welcome")).await;
        let _ = ws.close(tether::CloseCode::NORMAL, "").await;
    })
}

/// Echoes every data message until the peer closes, then reports.
async fn serve_echo(mut ws: tether::axum::WebSocket, mode: Mode, version: http::Version, log: Log) {
    let protocol = ws.protocol().map(str::to_owned);
    let compressed = ws.connection().deflate_negotiated();
    let mut echoed = 0;
    let mut code = None;
    let end = loop {
        match ws.next().await {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                echoed += 1;
                if let Err(e) = ws.send(m).await {
                    break format!("error {e}");
                }
            }
            Some(Ok(Message::Close(frame))) => code = frame.map(|f| f.code.0),
            Some(Ok(_)) => {}
            Some(Err(e)) => break format!("error {e}"),
            None => break format!("closed {code:?}"),
        }
    };
    log.0.lock().unwrap().push(Seen {
        mode,
        version,
        protocol,
        compressed,
        echoed,
        end,
    });
}

/// The server: its address, what its WebSocket route saw, and (dropped
/// with it) its accept loop.
pub struct Server {
    pub addr: SocketAddr,
    pub log: Log,
    /// TCP connections accepted.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How the server listens.
#[derive(Clone)]
pub enum Listen {
    Plain,
    /// TLS offering these ALPN protocols (`h2` for HTTP/2).
    Tls(Arc<rustls::ServerConfig>),
}

impl Server {
    /// Starts the application on 127.0.0.1 on the current tokio runtime.
    pub async fn start(listen: Listen) -> Self {
        Self::start_with(listen, true).await
    }

    /// The application over TLS with a certificate for `localhost` from
    /// `ca`, offering the `alpn` protocols.
    pub async fn start_tls(ca: &crate::certs::Ca, alpn: &[&[u8]]) -> Self {
        Self::start(Listen::Tls(tls_config(
            &ca.server_for(&["localhost"]),
            alpn,
        )))
        .await
    }

    /// The same, with HTTP/2's extended CONNECT (RFC 8441) offered or not.
    pub async fn start_with(listen: Listen, connect_protocol: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Log::default();
        let app = router(log.clone());
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = tcp.set_nodelay(true);
                let app = app.clone();
                let listen = listen.clone();
                tokio::spawn(async move {
                    let service = TowerToHyperService::new(app);
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    // RFC 8441: SETTINGS_ENABLE_CONNECT_PROTOCOL.
                    if connect_protocol {
                        builder.http2().enable_connect_protocol();
                    }
                    let _ = match listen {
                        Listen::Plain => {
                            builder
                                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                                .await
                        }
                        Listen::Tls(config) => {
                            let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                            else {
                                return;
                            };
                            builder
                                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                                .await
                        }
                    };
                });
            }
        });
        Self {
            addr,
            log,
            connections,
            task,
        }
    }

    /// Waits until the WebSocket route has reported `n` connections, and
    /// returns their reports.
    pub async fn seen(&self, n: usize) -> Vec<Seen> {
        let mut all = Vec::new();
        crate::within("the server's reports", async {
            loop {
                all.extend(self.log.take());
                if all.len() >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
        assert_eq!(all.len(), n, "{all:?}");
        all
    }
}

/// A TLS server configuration for the test certificate with `alpn`.
pub fn tls_config(server: &crate::certs::Identity, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let base =
        tether::tls::server_config(server.cert_pem.as_bytes(), server.key_pem.as_bytes()).unwrap();
    let mut config = (*base).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}
