//! The broadcast load: `connections` subscribers; the first also
//! publishes. Every data message the server receives goes to every
//! connection, the publisher's included. The publisher keeps `in_flight`
//! messages undelivered at most: message n is sent once message
//! n - in_flight has reached every subscriber, so no server queues
//! without bound and the rate is the server's fan-out rate. Subscribers
//! only read and count.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use crate::load::{connect, read_some, with_runtime, LoadConfig, Stream};
use crate::procfs;
use crate::record::Record;
use crate::wire::{self, FrameCounter};

/// What every subscriber task shares.
struct Fanout {
    /// Deliveries so far, all connections.
    delivered: Cell<u64>,
    /// `ring[j % in_flight]`: subscribers that have received message j,
    /// for the messages not yet delivered to all.
    ring: RefCell<Vec<usize>>,
    subscribers: usize,
    /// Messages delivered to every subscriber, not yet used to publish.
    credits: Cell<usize>,
    refill: Notify,
    error: RefCell<Option<String>>,
}

impl Fanout {
    /// A subscriber received its `j`-th message.
    fn received(&self, j: u64) {
        self.delivered.set(self.delivered.get() + 1);
        let mut ring = self.ring.borrow_mut();
        let len = ring.len();
        let slot = &mut ring[(j % len as u64) as usize];
        *slot += 1;
        if *slot == self.subscribers {
            *slot = 0;
            self.credits.set(self.credits.get() + 1);
            self.refill.notify_one();
        }
    }
}

pub fn run_broadcast(cfg: &LoadConfig) -> io::Result<Record> {
    with_runtime(async {
        let frame = wire::masked_binary_frame(cfg.size);
        let batch: Rc<[u8]> = frame.repeat(cfg.in_flight).into();
        let fanout = Rc::new(Fanout {
            delivered: Cell::new(0),
            ring: RefCell::new(vec![0; cfg.in_flight]),
            subscribers: cfg.connections,
            credits: Cell::new(cfg.in_flight),
            refill: Notify::new(),
            error: RefCell::new(None),
        });
        let mut streams = Vec::with_capacity(cfg.connections);
        for _ in 0..cfg.connections {
            streams.push(connect(cfg).await?);
        }
        for (k, stream) in streams.into_iter().enumerate() {
            let fanout = fanout.clone();
            let batch = batch.clone();
            let len = frame.len();
            tokio::task::spawn_local(async move {
                let Stream::Tcp(mut tcp) = stream else {
                    unreachable!("broadcast runs over plain TCP")
                };
                let (rd, wr) = tcp.split();
                let e = if k == 0 {
                    tokio::select! {
                        e = subscribe(rd, &fanout) => e,
                        e = publish(wr, &batch, len, &fanout) => e,
                    }
                } else {
                    subscribe(rd, &fanout).await
                };
                fanout.error.borrow_mut().get_or_insert(e.to_string());
            });
        }

        tokio::time::sleep(cfg.warmup).await;
        let me = std::process::id();
        let (t0, n0, cpu0, own0, all0) = (
            Instant::now(),
            fanout.delivered.get(),
            procfs::cpu_ns(cfg.server_pid)?,
            procfs::cpu_ns(me)?,
            procfs::machine_task_ns()?,
        );
        tokio::time::sleep(cfg.duration).await;
        let (t1, n1, cpu1, own1, all1) = (
            Instant::now(),
            fanout.delivered.get(),
            procfs::cpu_ns(cfg.server_pid)?,
            procfs::cpu_ns(me)?,
            procfs::machine_task_ns()?,
        );
        let secs = (t1 - t0).as_secs_f64();
        let deliveries = n1 - n0;
        let cpu_ns = cpu1.saturating_sub(cpu0);
        let own_ns = own1.saturating_sub(own0);
        let others_ns = all1.saturating_sub(all0).saturating_sub(cpu_ns + own_ns);
        let mut rec = Record::new()
            .num("messages", deliveries as f64)
            .num("seconds", secs)
            // A delivery is one message arriving at one subscriber.
            .num("msgs_per_s", deliveries as f64 / secs)
            .num(
                "published_per_s",
                deliveries as f64 / cfg.connections as f64 / secs,
            )
            .num(
                "mb_per_s",
                (deliveries * cfg.size as u64) as f64 / secs / 1e6,
            )
            .num("server_cpu_ns", cpu_ns as f64)
            .num("server_cpu_util", cpu_ns as f64 / 1e9 / secs)
            .num("cpu_ns_per_msg", cpu_ns as f64 / deliveries as f64)
            .num("load_cpu_util", own_ns as f64 / 1e9 / secs)
            .num("others_cpu_util", others_ns as f64 / 1e9 / secs);
        if deliveries == 0 {
            rec = rec.text("error", "no message was delivered in the measured window");
        }
        if let Some(e) = fanout.error.take() {
            rec = rec.text("error", &e);
        }
        Ok(rec)
    })
}

/// Reads one subscriber's messages, counting each (until it fails).
async fn subscribe(mut rd: impl AsyncRead + Unpin, fanout: &Fanout) -> io::Error {
    let mut buf = vec![0u8; 16 << 10];
    let mut counter = FrameCounter::default();
    let mut received = 0u64;
    loop {
        match read_some(&mut rd, &mut buf, &mut counter).await {
            Ok((done, _)) => {
                for j in received..received + done {
                    fanout.received(j);
                }
                received += done;
            }
            Err(e) => return e,
        }
    }
}

/// Publishes a message for every credit, several in one write.
async fn publish(
    mut wr: impl AsyncWrite + Unpin,
    batch: &[u8],
    frame_len: usize,
    fanout: &Fanout,
) -> io::Error {
    loop {
        while fanout.credits.get() == 0 {
            fanout.refill.notified().await;
        }
        let n = fanout.credits.replace(0);
        if let Err(e) = wr.write_all(&batch[..n * frame_len]).await {
            return e;
        }
    }
}
