//! The sending side: serves the table to any number of clients, each from
//! wherever its RESUME says, with no state kept between connections.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use futures_util::future::{self, Either};
use futures_util::{Stream, StreamExt};
use smol::net::TcpListener;
use tether::core::Bytes;
use tether::http::{Response, StatusCode};
use tether::tls::rustls;
use tether::{Accept, Decision, ServerOptions, WebSocket};
use tether_resume::{BatchWriter, Position, SUBPROTOCOL};

use super::{codec, db, pg};

/// Where the rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An SQLite file, opened read-only per connection (the default).
    Sqlite(PathBuf),
    /// A PostgreSQL server (`postgres://…`), shared by every instance.
    Postgres(String),
}

impl Source {
    /// A `postgres://` or `postgresql://` URL, or else an SQLite path.
    pub fn parse(s: &str) -> Source {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Source::Postgres(s.to_owned())
        } else {
            Source::Sqlite(PathBuf::from(s))
        }
    }
}

/// What the server needs to know.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The source table.
    pub source: Source,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Most unacknowledged batches per client.
    pub max_window: u32,
    /// Serve `wss://` with this configuration (`None`: plain `ws://`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Called as each batch is taken for sending (the scale-out run's
    /// instances count them on stdout).
    pub on_batch: Option<fn()>,
    /// While set, `GET /healthz` answers 503, so a load balancer's health
    /// check takes the instance out of rotation; clients that still arrive
    /// are served.
    pub draining: Arc<AtomicBool>,
}

impl ServeConfig {
    /// Plain `ws://`, no hook, not draining.
    pub fn new(source: Source, batch_rows: usize, max_window: u32) -> Self {
        Self {
            source,
            batch_rows,
            max_window,
            tls: None,
            on_batch: None,
            draining: Arc::default(),
        }
    }
}

/// Accepts connections forever, one task each. tether's `Listener` waits
/// out a shortage of descriptors instead of ending here, and sets
/// TCP_NODELAY on each socket.
pub async fn run(listener: TcpListener, config: ServeConfig) -> io::Result<()> {
    let mut listener = tether::smol::Listener::new(listener);
    loop {
        let (stream, _) = listener.accept().await?;
        let config = config.clone();
        smol::spawn(async move {
            if let Err(e) = serve_one(stream, &config).await {
                // A cut connection is the normal case under chaos.
                if std::env::var_os("ROWS_DEBUG").is_some() {
                    eprintln!("server: connection ended: {e}");
                }
            }
        })
        .detach();
    }
}

async fn serve_one(
    stream: tether::smol::TcpStream,
    config: &ServeConfig,
) -> Result<(), tether_resume::Error> {
    let decide = |req: &tether::http::Request<()>| decide(req, &config.draining);
    match &config.tls {
        None => {
            let ws = tether::smol::accept_with(stream, &server_options(), decide).await?;
            serve_ws(ws, config).await
        }
        Some(tls) => {
            let ws = tether::smol::accept_tls_with(stream, tls, &server_options(), decide).await?;
            serve_ws(ws, config).await
        }
    }
}

/// Accepts one connection and serves it as [`run`] does, taking part in
/// a graceful `shutdown`: when it starts, the batch being written is
/// finished and the connection closes with 1001 (going away), which the
/// client answers by resuming elsewhere; the shutdown counts the
/// connection until its close handshake is done, and cuts it at its
/// deadline.
pub async fn serve_until(
    stream: tether::smol::TcpStream,
    config: &ServeConfig,
    shutdown: &tether::smol::Shutdown,
) -> Result<(), tether_resume::Error> {
    let decide = |req: &tether::http::Request<()>| decide(req, &config.draining);
    let mut ws = tether::smol::accept_with(stream, &server_options(), decide).await?;
    ws.watch(shutdown);
    let (source, batch_rows) = (config.source.clone(), config.batch_rows);
    let on_batch = config.on_batch;
    {
        let serve = tether_resume::serve(&mut ws, config.max_window, |from| {
            batches(source, from, batch_rows, on_batch)
        });
        futures_util::pin_mut!(serve);
        if let Either::Left((served, _)) = future::select(serve, shutdown.signal()).await {
            return served.map(drop);
        }
    }
    // `serve` hands each batch to the connection whole and is dropped only
    // between polls, so what is queued is whole messages: the close frame
    // goes out after them.
    ws.close(
        tether::shutdown::GOING_AWAY,
        tether::shutdown::GOING_AWAY_REASON,
    )
    .await?;
    Ok(())
}

/// Sends the table over an open connection, plain or TLS.
async fn serve_ws<S: tether::Transport, R: tether::Runtime>(
    mut ws: WebSocket<S, R>,
    config: &ServeConfig,
) -> Result<(), tether_resume::Error> {
    let (source, batch_rows, on_batch) =
        (config.source.clone(), config.batch_rows, config.on_batch);
    tether_resume::serve(&mut ws, config.max_window, |from| {
        batches(source, from, batch_rows, on_batch)
    })
    .await?;
    Ok(())
}

/// Accepts clients that offer the resume subprotocol; a 400 with a reason
/// for any other. `/healthz` is the load balancer's health check (an
/// upgrade request, so it goes through the same handshake as a client):
/// 200 while serving, 503 while draining.
fn decide(req: &tether::http::Request<()>, draining: &AtomicBool) -> Decision {
    if req.uri().path() == "/healthz" {
        let (status, body) = if draining.load(Ordering::SeqCst) {
            (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
        } else {
            (StatusCode::OK, "ok\n")
        };
        let mut response = Response::new(Bytes::from_static(body.as_bytes()));
        *response.status_mut() = status;
        return Err(Box::new(response));
    }
    let offered = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if offered {
        Ok(Accept::default().with_protocol(Some(SUBPROTOCOL.into())))
    } else {
        let mut response = Response::new(Bytes::from_static(
            b"this endpoint speaks the tether.resume.v1 subprotocol only\n",
        ));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        Err(Box::new(response))
    }
}

/// Compression stays off: the binary rows compress about 2:1, which on
/// loopback costs more CPU than it saves.
fn server_options() -> ServerOptions {
    ServerOptions::default().with_deflate(None)
}

/// The table from `from` on, as finished batches: a thread reads the
/// source one batch ahead of the connection and stops when the connection
/// drops the stream.
fn batches(
    source: Source,
    from: &Position,
    batch_rows: usize,
    on_batch: Option<fn()>,
) -> impl Stream<Item = io::Result<(BatchWriter, Bytes)>> {
    let (tx, rx) = smol::channel::bounded(1);
    let after = codec::after_id(&from.cursor);
    thread::spawn(move || {
        let result = (|| -> io::Result<()> {
            let mut after = after.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let mut reader = Reader::open(&source)?;
            loop {
                let mut writer = BatchWriter::with_capacity(batch_rows * (codec::FIXED_LEN + 16));
                let (n, last) = reader.read_after(after, batch_rows, writer.payload_mut())?;
                if n == 0 {
                    return Ok(());
                }
                after = last;
                let cursor = Bytes::copy_from_slice(&codec::cursor(last));
                if tx.send_blocking(Ok((writer, cursor))).is_err() {
                    return Ok(()); // the connection is gone
                }
            }
        })();
        if let Err(e) = result {
            let _ = tx.send_blocking(Err(e));
        }
    });
    rx.inspect(move |_| {
        if let Some(f) = on_batch {
            f();
        }
    })
}

/// One connection's reader of either source.
enum Reader {
    Sqlite(rusqlite::Connection),
    Postgres(Box<pg::Reader>),
}

impl Reader {
    fn open(source: &Source) -> io::Result<Self> {
        Ok(match source {
            Source::Sqlite(path) => Reader::Sqlite(db::open_ro(path).map_err(io::Error::other)?),
            Source::Postgres(url) => {
                Reader::Postgres(Box::new(pg::Reader::open(url).map_err(io::Error::other)?))
            }
        })
    }

    fn read_after(
        &mut self,
        after: i64,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> io::Result<(usize, i64)> {
        match self {
            Reader::Sqlite(db) => db::read_after(db, after, limit, out).map_err(io::Error::other),
            Reader::Postgres(pg) => pg.read_after(after, limit, out).map_err(io::Error::other),
        }
    }
}
