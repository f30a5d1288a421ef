//! One server instance of the scale-out run, as a process of its own so
//! it can be killed with SIGKILL and drained with SIGTERM.
//!
//! It serves the rows from the shared source on a fixed address (the load
//! balancer's configuration names it, and a restarted instance binds it
//! again) and reports on stdout, one line each: `listening ADDR`, `batch`
//! for every batch taken for sending, `draining` on SIGTERM and
//! `drained N` (connections still open at the deadline) before it exits.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future;
use smol::Timer;
use tether::shutdown::Drained;
use tether::smol::Shutdown;

use super::super::db::BoxError;
use super::super::server::{self, ServeConfig, Source};

/// What an instance is told on its command line.
#[derive(Debug, Clone)]
pub struct InstanceArgs {
    /// The shared source (`--source`).
    pub source: Source,
    /// Where to listen (`--listen`).
    pub listen: SocketAddr,
    /// Rows per batch (`--batch`).
    pub batch: usize,
    /// Most unacknowledged batches per client (`--window`).
    pub window: u32,
    /// On SIGTERM, how long to keep accepting while the load balancer's
    /// health checks see the 503 and take the instance out (`--grace-ms`).
    pub grace: Duration,
    /// How long open connections get to finish their batch and close
    /// (`--deadline-ms`).
    pub deadline: Duration,
}

impl InstanceArgs {
    /// The arguments for [`parse`](Self::parse), as a command line.
    pub fn to_args(&self) -> Vec<String> {
        let source = match &self.source {
            Source::Sqlite(path) => path.display().to_string(),
            Source::Postgres(url) => url.clone(),
        };
        vec![
            "--source".into(),
            source,
            "--listen".into(),
            self.listen.to_string(),
            "--batch".into(),
            self.batch.to_string(),
            "--window".into(),
            self.window.to_string(),
            "--grace-ms".into(),
            self.grace.as_millis().to_string(),
            "--deadline-ms".into(),
            self.deadline.as_millis().to_string(),
        ]
    }

    /// Reads the options [`to_args`](Self::to_args) writes.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, BoxError> {
        let (mut source, mut listen) = (None, None);
        let mut parsed = InstanceArgs {
            source: Source::Sqlite("".into()),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            batch: 10_000,
            window: 4,
            grace: Duration::from_millis(500),
            deadline: Duration::from_secs(5),
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--source" => source = Some(Source::parse(&value)),
                "--listen" => listen = Some(value.parse()?),
                "--batch" => parsed.batch = value.parse()?,
                "--window" => parsed.window = value.parse()?,
                "--grace-ms" => parsed.grace = Duration::from_millis(value.parse()?),
                "--deadline-ms" => parsed.deadline = Duration::from_millis(value.parse()?),
                other => return Err(format!("unknown instance option {other}").into()),
            }
        }
        parsed.source = source.ok_or("--source is required")?;
        parsed.listen = listen.ok_or("--listen is required")?;
        if parsed.batch == 0 {
            return Err("--batch must be positive".into());
        }
        Ok(parsed)
    }
}

fn print_batch() {
    println!("batch");
}

/// Runs the instance until SIGTERM has drained it. Call it first thing in
/// `main`, before any thread starts: it blocks SIGTERM for the whole
/// process so that one thread can wait for it.
pub fn main(args: InstanceArgs) -> Result<(), BoxError> {
    let term = sigterm_channel()?;
    let config = ServeConfig {
        on_batch: Some(print_batch),
        ..ServeConfig::new(args.source.clone(), args.batch, args.window)
    };
    let shutdown = Shutdown::new();
    smol::block_on(async {
        let listener = smol::net::TcpListener::bind(args.listen).await?;
        println!("listening {}", listener.local_addr()?);
        let mut listener = tether::smol::Listener::new(listener);
        let accept = async {
            while let Some((stream, _)) = listener.accept_until(&shutdown).await? {
                let (config, shutdown) = (config.clone(), shutdown.clone());
                smol::spawn(async move {
                    if let Err(e) = server::serve_until(stream, &config, &shutdown).await {
                        if std::env::var_os("ROWS_DEBUG").is_some() {
                            eprintln!("instance: connection ended: {e}");
                        }
                    }
                })
                .detach();
            }
            // The listener is dropped with this future: connects are refused.
            Ok::<_, BoxError>(())
        };
        let stop = async {
            let _ = term.recv().await;
            Ok(drain(&config, &shutdown, &args).await)
        };
        // A failing accept loop ends the instance at once.
        let ((), drained) = future::try_join(accept, stop).await?;
        println!("drained {}", drained.cut);
        Ok(())
    })
}

/// The rolling-deploy drain: fail the health check and keep serving for
/// the grace period, so the load balancer takes the instance out before
/// anyone is refused; then tether's graceful shutdown, which ends the
/// accept loop (the listener closes), has each connection finish the
/// batch it is writing and close with 1001 (`serve_until`), and waits for
/// them until the deadline. A connection that has not closed by then is
/// closed with 1001 by its driver after the drain period (a second),
/// and cut at the deadline.
async fn drain(config: &ServeConfig, shutdown: &Shutdown, args: &InstanceArgs) -> Drained {
    println!("draining");
    config.draining.store(true, Ordering::SeqCst);
    Timer::after(args.grace).await;
    shutdown
        .shutdown(Duration::from_secs(1).min(args.deadline), args.deadline)
        .await
}

/// Blocks SIGTERM in this thread (and so in every thread started after)
/// and waits for it on a thread of its own, which reports it on the
/// returned channel.
fn sigterm_channel() -> Result<smol::channel::Receiver<()>, BoxError> {
    // SAFETY: plain libc calls on a local signal set.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc).into());
        }
        set
    };
    let (tx, rx) = smol::channel::bounded(1);
    std::thread::Builder::new()
        .name("sigterm".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: waits on the set blocked above.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                let _ = tx.send_blocking(());
            }
        })?;
    Ok(rx)
}
