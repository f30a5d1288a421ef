//! The receiving side: connects (and reconnects), resumes from the
//! position stored with the data, and commits every batch with its
//! position in one SQLite transaction on a writer thread, so the network
//! and the disk work at the same time.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use indicatif::ProgressBar;
use tether::reconnect::{BackoffConfig, ReconnectEvent, ReconnectOptions, Reconnector};
use tether::ClientOptions;
use tether_resume::{Batch, SUBPROTOCOL};

use super::db;

/// What the client needs to know.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ws://` or `wss://` URL of the server (or of a relay in front of it).
    pub url: String,
    /// For `wss://`: the TLS configuration (the roots to trust).
    pub tls: Option<Arc<tether::tls::rustls::ClientConfig>>,
    /// The client's own database.
    pub db: PathBuf,
    /// Most batches in flight, unacknowledged.
    pub window: u32,
    /// Backoff between reconnection attempts.
    pub backoff: BackoffConfig,
    /// Commit at most this many rows per second (`None`: as fast as it
    /// goes). The scale-out test caps the rate so its kills and drain
    /// fall inside the transfer on a machine of any speed.
    pub max_rate: Option<u64>,
}

/// What a finished transfer counted.
#[derive(Debug, Default)]
pub struct ClientReport {
    /// Connections made, the first included.
    pub connections: u64,
    /// Batches committed.
    pub batches: u64,
    /// Rows committed.
    pub rows: u64,
    /// Time spent waiting between connection attempts (backoff).
    pub backoff: Duration,
    /// Sessions the server ended with 1001 (going away: a drain).
    pub going_away: u64,
}

pub use super::db::BoxError;

/// Receives the whole table into `config.db`, reconnecting and resuming
/// until it is complete. `progress` counts committed rows.
pub async fn run(config: ClientConfig, progress: ProgressBar) -> Result<ClientReport, BoxError> {
    let store = db::open_rw(&config.db)?;
    let mut position = db::position(&store)?;
    let window = config.window.max(1);
    let max_rate = config.max_rate.filter(|&r| r > 0);

    // The writer thread: batches in, committed sequence numbers out. The
    // inbound channel holds at most a window of batches.
    let (batch_tx, batch_rx) = smol::channel::bounded::<Batch>(window as usize);
    let (done_tx, done_rx) = smol::channel::unbounded::<io::Result<u64>>();
    let rows = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let writer = {
        let (rows, batches, progress) = (rows.clone(), batches.clone(), progress.clone());
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                write_batches(
                    store, batch_rx, done_tx, &rows, &batches, &progress, max_rate,
                )
            })?
    };
    let mut commits = Box::pin(futures_util::sink::unfold(
        batch_tx,
        |tx, batch: Batch| async move {
            tx.send(batch).await.map_err(|_| {
                io::Error::new(io::ErrorKind::BrokenPipe, "the SQLite writer stopped")
            })?;
            Ok::<_, io::Error>(tx)
        },
    ));
    let mut committed = Box::pin(done_rx);

    let connections = Arc::new(AtomicU64::new(0));
    let backoff_us = Arc::new(AtomicU64::new(0));
    let mut reconnector = Reconnector::smol(
        &config.url,
        client_options(config.tls.clone()),
        ReconnectOptions::default().with_backoff(config.backoff.clone()),
    )
    .on_event({
        let (connections, backoff_us, progress) =
            (connections.clone(), backoff_us.clone(), progress.clone());
        move |event| match event {
            ReconnectEvent::Waiting { delay, .. } => {
                backoff_us.fetch_add(delay.as_micros() as u64, Ordering::Relaxed);
            }
            ReconnectEvent::Connected { .. } => {
                let n = connections.fetch_add(1, Ordering::Relaxed) + 1;
                if n > 1 {
                    progress.set_message(format!("{} reconnects", n - 1));
                }
            }
            ReconnectEvent::Failed { failure, .. } | ReconnectEvent::GaveUp { failure, .. } => {
                progress.println(format!("connection attempt failed: {failure:?}"));
            }
            _ => {}
        }
    });

    let mut going_away = 0;
    let debug = std::env::var_os("ROWS_DEBUG").is_some();
    let started = std::time::Instant::now();
    loop {
        let mut ws = reconnector.connect().await?;
        if debug {
            eprintln!(
                "client: {:.3?} connected at batch {}",
                started.elapsed(),
                position.next_seq
            );
        }
        let before = position.clone();
        let outcome =
            tether_resume::receive(&mut ws, &mut position, window, &mut commits, &mut committed)
                .await;
        // A session that committed a batch was healthy, however short: the
        // next attempt waits only the first delay.
        if position != before {
            reconnector.progressed();
        }
        if debug {
            eprintln!(
                "client: {:.3?} session ended at batch {}: {outcome:?}",
                started.elapsed(),
                position.next_seq
            );
        }
        match outcome {
            Ok(received) if received.complete => break,
            Ok(received) => {
                if received.close.as_ref().map(|c| c.code) == Some(tether::CloseCode::GOING_AWAY) {
                    going_away += 1;
                }
                reconnector.session_ended(received.close.as_ref())?
            }
            Err(e) => reconnector.session_ended(&e)?,
        }
    }
    drop(commits);
    writer
        .join()
        .map_err(|_| io::Error::other("the SQLite writer panicked"))??;
    Ok(ClientReport {
        connections: connections.load(Ordering::Relaxed),
        batches: batches.load(Ordering::Relaxed),
        rows: rows.load(Ordering::Relaxed),
        backoff: Duration::from_micros(backoff_us.load(Ordering::Relaxed)),
        going_away,
    })
}

/// The resume subprotocol; no compression (see the server's options);
/// `tls` for `wss://`.
fn client_options(tls: Option<Arc<tether::tls::rustls::ClientConfig>>) -> ClientOptions {
    let options = ClientOptions::default()
        .with_protocols(vec![SUBPROTOCOL.into()])
        .with_deflate(Vec::new());
    match tls {
        Some(tls) => options.with_tls(tls),
        None => options,
    }
}

/// Commits each batch with its position, and reports it.
fn write_batches(
    mut store: rusqlite::Connection,
    batches: smol::channel::Receiver<Batch>,
    done: smol::channel::Sender<io::Result<u64>>,
    rows: &AtomicU64,
    batch_count: &AtomicU64,
    progress: &ProgressBar,
    max_rate: Option<u64>,
) -> Result<(), BoxError> {
    let mut busy = std::time::Duration::ZERO;
    let start = std::time::Instant::now();
    while let Ok(batch) = batches.recv_blocking() {
        let started = std::time::Instant::now();
        let result = db::commit_batch(&mut store, &batch.payload, &batch.position_after());
        busy += started.elapsed();
        match result {
            Ok(n) => {
                rows.fetch_add(n as u64, Ordering::Relaxed);
                batch_count.fetch_add(1, Ordering::Relaxed);
                progress.inc(n as u64);
                if let Some(rate) = max_rate {
                    // Ahead of the rate: wait until the rows are due.
                    let due =
                        Duration::from_secs_f64(rows.load(Ordering::Relaxed) as f64 / rate as f64);
                    thread::sleep(due.saturating_sub(start.elapsed()));
                }
                if done.send_blocking(Ok(batch.seq)).is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = done.send_blocking(Err(io::Error::other(e.to_string())));
                return Err(e);
            }
        }
    }
    if std::env::var_os("ROWS_DEBUG").is_some() {
        eprintln!("client: SQLite writer busy {busy:.2?}");
    }
    Ok(())
}

/// Backoff for a demo on loopback: quick first retries, a short cap.
pub fn quick_backoff() -> BackoffConfig {
    BackoffConfig::default()
        .with_initial(Duration::from_millis(20))
        .with_max(Duration::from_millis(500))
        .with_reset_after(Duration::from_millis(500))
}
