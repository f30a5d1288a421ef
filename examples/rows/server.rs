//! The sending side: serves the table to any number of clients, each from
//! wherever its RESUME says, with no state kept between connections.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use futures_util::Stream;
use smol::net::TcpListener;
use tether::core::Bytes;
use tether::http::{Response, StatusCode};
use tether::tls::rustls;
use tether::{Accept, Decision, ServerOptions, WebSocket};
use tether_resume::{BatchWriter, Position, SUBPROTOCOL};

use super::{codec, db};

/// What the server needs to know.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The source database.
    pub db: PathBuf,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Most unacknowledged batches per client.
    pub max_window: u32,
    /// Serve `wss://` with this configuration (`None`: plain `ws://`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
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
    stream: smol::net::TcpStream,
    config: &ServeConfig,
) -> Result<(), tether_resume::Error> {
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

/// Sends the table over an open connection, plain or TLS.
async fn serve_ws<S: tether::Transport, R: tether::Runtime>(
    mut ws: WebSocket<S, R>,
    config: &ServeConfig,
) -> Result<(), tether_resume::Error> {
    let (db, batch_rows) = (config.db.clone(), config.batch_rows);
    tether_resume::serve(&mut ws, config.max_window, |from| {
        source(db, from, batch_rows)
    })
    .await?;
    Ok(())
}

/// Accepts clients that offer the resume subprotocol; a 400 with a reason
/// for any other.
fn decide(req: &tether::http::Request<()>) -> Decision {
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

/// The table from `from` on, as finished batches: a thread reads SQLite
/// one batch ahead of the connection and stops when the connection drops
/// the stream.
fn source(
    db_path: PathBuf,
    from: &Position,
    batch_rows: usize,
) -> impl Stream<Item = io::Result<(BatchWriter, Bytes)>> {
    let (tx, rx) = smol::channel::bounded(1);
    let after = codec::after_id(&from.cursor);
    thread::spawn(move || {
        let result = (|| -> io::Result<()> {
            let mut after = after.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let db = db::open_ro(Path::new(&db_path)).map_err(io::Error::other)?;
            loop {
                let mut writer = BatchWriter::with_capacity(batch_rows * (codec::FIXED_LEN + 16));
                let (n, last) = db::read_after(&db, after, batch_rows, writer.payload_mut())
                    .map_err(io::Error::other)?;
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
    rx
}
