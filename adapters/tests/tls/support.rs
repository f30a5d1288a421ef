//! What the TLS tests share: tether TLS echo servers on smol and tokio
//! that report each connection (or its failure), and clients that
//! connect, exchange messages and close, on either runtime.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether::tls::rustls::ServerConfig;
use tether::tls::{TlsError, TlsErrorKind};
use tether::{
    ClientOptions, CloseCode, Error, Message, Runtime, ServerOptions, Transport, WebSocket,
};

/// Bound on any single wait.
pub const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    Smol,
    Tokio,
}

pub const BOTH: [Rt; 2] = [Rt::Smol, Rt::Tokio];

/// Runs `fut` to completion on `rt`, on this thread.
pub fn on<F: Future>(rt: Rt, fut: F) -> F::Output {
    match rt {
        Rt::Smol => smol::block_on(fut),
        Rt::Tokio => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(fut),
    }
}

/// What a server saw of one connection that opened.
#[derive(Debug)]
pub struct Served {
    pub echoed: usize,
    pub alpn: Option<Vec<u8>>,
    /// The SNI the client sent (none for an IP address).
    pub sni: Option<String>,
    pub client_cert: bool,
    /// "closed", or the error that ended it.
    pub end: String,
}

/// A tether TLS echo server on its own thread and runtime; each
/// connection's outcome arrives in order of ending.
pub struct TlsServer {
    pub addr: SocketAddr,
    outcomes: mpsc::Receiver<Result<Served, Error>>,
}

impl TlsServer {
    pub fn start(rt: Rt, tls: Arc<ServerConfig>, options: ServerOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, outcomes) = mpsc::channel();
        thread::Builder::new()
            .name(format!("tls-server-{rt:?}"))
            .spawn(move || match rt {
                Rt::Smol => smol::block_on(async move {
                    let listener = smol::net::TcpListener::try_from(listener).expect("listener");
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            return;
                        };
                        let (tls, options, tx) = (tls.clone(), options.clone(), tx.clone());
                        smol::spawn(async move {
                            let ws = tether::smol::accept_tls_with(tcp, &tls, &options, |_| {
                                Ok(Default::default())
                            })
                            .await;
                            let outcome = match ws {
                                Ok(ws) => {
                                    let (_, conn) = ws.get_ref().0.get_ref();
                                    let seen = Seen::of(conn);
                                    Ok(echo(ws, seen).await)
                                }
                                Err(e) => Err(e),
                            };
                            let _ = tx.send(outcome);
                        })
                        .detach();
                    }
                }),
                Rt::Tokio => on(Rt::Tokio, async move {
                    listener.set_nonblocking(true).expect("nonblocking");
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            return;
                        };
                        let (tls, options, tx) = (tls.clone(), options.clone(), tx.clone());
                        tokio::spawn(async move {
                            let ws = tether::tokio::accept_tls_with(tcp, &tls, &options, |_| {
                                Ok(Default::default())
                            })
                            .await;
                            let outcome = match ws {
                                Ok(ws) => {
                                    let (_, conn) = ws.get_ref().0.get_ref();
                                    let seen = Seen::of(conn);
                                    Ok(echo(ws, seen).await)
                                }
                                Err(e) => Err(e),
                            };
                            let _ = tx.send(outcome);
                        });
                    }
                }),
            })
            .expect("server thread");
        Self { addr, outcomes }
    }

    /// `wss://127.0.0.1:PORT/echo`.
    pub fn url(&self) -> String {
        format!("wss://{}/echo", self.addr)
    }

    /// The outcome of the next connection to end.
    pub fn next(&self) -> Result<Served, Error> {
        self.outcomes
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("server: no connection outcome: {e:?}"))
    }

    /// The error the next connection failed with; panics if it opened.
    pub fn next_error(&self) -> Error {
        match self.next() {
            Ok(served) => panic!("server: connection opened: {served:?}"),
            Err(e) => e,
        }
    }
}

/// The TLS facts a server reads off a connection before echoing on it.
struct Seen {
    alpn: Option<Vec<u8>>,
    sni: Option<String>,
    client_cert: bool,
}

impl Seen {
    fn of(conn: &tether::tls::rustls::ServerConnection) -> Self {
        Self {
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            sni: conn.server_name().map(str::to_owned),
            client_cert: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
        }
    }
}

async fn echo<S: Transport, R: Runtime>(mut ws: WebSocket<S, R>, seen: Seen) -> Served {
    let mut echoed = 0;
    let end = loop {
        match ws.next().await {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                if let Err(e) = ws.send(m).await {
                    break format!("send failed: {e}");
                }
                echoed += 1;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break format!("error: {e}"),
            None => break "closed".to_owned(),
        }
    };
    Served {
        echoed,
        alpn: seen.alpn,
        sni: seen.sni,
        client_cert: seen.client_cert,
        end,
    }
}

/// What a client saw of a connection it opened.
#[derive(Debug)]
pub struct Exchanged {
    pub tls: bool,
    pub alpn: Option<Vec<u8>>,
}

/// Connects on `rt`, sends each message and checks its echo, and closes
/// with 1000.
pub fn exchange(
    rt: Rt,
    url: &str,
    options: ClientOptions,
    messages: &[Message],
) -> Result<Exchanged, Error> {
    on(rt, async {
        match rt {
            Rt::Smol => {
                let ws = tether::smol::connect_with(url, options).await?;
                let stream = &ws.get_ref().0;
                let seen = Exchanged {
                    tls: stream.is_tls(),
                    alpn: stream
                        .tls()
                        .and_then(|c| c.alpn_protocol())
                        .map(<[u8]>::to_vec),
                };
                round_trips(ws, messages).await;
                Ok(seen)
            }
            Rt::Tokio => {
                let ws = tether::tokio::connect_with(url, options).await?;
                let stream = &ws.get_ref().0;
                let seen = Exchanged {
                    tls: stream.is_tls(),
                    alpn: stream
                        .tls()
                        .and_then(|c| c.alpn_protocol())
                        .map(<[u8]>::to_vec),
                };
                round_trips(ws, messages).await;
                Ok(seen)
            }
        }
    })
}

/// The error connecting on `rt` fails with; panics if it connects.
pub fn connect_error(rt: Rt, url: &str, options: ClientOptions) -> Error {
    match exchange(rt, url, options, &[]) {
        Ok(seen) => panic!("{rt:?}: connected: {seen:?}"),
        Err(e) => e,
    }
}

pub async fn round_trips<S: Transport, R: Runtime>(mut ws: WebSocket<S, R>, messages: &[Message]) {
    for (i, m) in messages.iter().enumerate() {
        ws.send(m.clone()).await.expect("send");
        loop {
            match ws.next().await {
                Some(Ok(got @ (Message::Text(_) | Message::Binary(_)))) => {
                    assert!(got == *m, "echo {i} differs ({} bytes sent)", m.len());
                    break;
                }
                Some(Ok(_)) => {}
                other => panic!("echo {i}: {other:?}"),
            }
        }
    }
    ws.close(CloseCode::NORMAL, "done").await.expect("close");
}

/// Text and binary messages of the frame-length edges, up to 1 MiB.
pub fn messages() -> Vec<Message> {
    let mut out = Vec::new();
    for n in [0usize, 1, 125, 126, 127, 65_535, 65_536, 65_537, 1 << 20] {
        out.push(Message::text("ü".repeat(n / 2) + &"x".repeat(n % 2)));
        out.push(Message::binary(
            (0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>(),
        ));
    }
    out
}

/// The TLS error inside `e`, with its kind; panics with `e` otherwise.
pub fn tls_kind(e: &Error) -> TlsErrorKind {
    match e {
        Error::Tls(t) => t.kind(),
        other => panic!("expected a TLS error, got {other:?} ({other})"),
    }
}

/// Asserts `e` is a TLS error of `kind` whose message says `words`.
pub fn assert_tls(e: &Error, kind: TlsErrorKind, words: &str) {
    assert_eq!(tls_kind(e), kind, "{e}");
    let text = e.to_string();
    assert!(text.contains(words), "{text:?} does not say {words:?}");
    let tls: &TlsError = e.tls_error().expect("tls_error");
    assert!(tls.rustls_error().is_some(), "{e}: no rustls error kept");
}
