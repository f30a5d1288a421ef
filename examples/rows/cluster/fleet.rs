//! The instances, seen from outside: started as child processes, killed
//! with SIGKILL, drained with SIGTERM, restarted on the same address, and
//! counted from what each prints (see `instance`).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::db::BoxError;
use super::instance::InstanceArgs;

/// How to start an instance process: a program and the arguments before
/// the instance's own (the example runs itself with `--instance`, the
/// test runs the `rows-instance` binary).
#[derive(Debug, Clone)]
pub struct InstanceCommand {
    /// The program.
    pub program: PathBuf,
    /// Arguments before [`InstanceArgs::to_args`].
    pub prefix: Vec<OsString>,
}

/// What one instance slot did over the run.
#[derive(Debug, Clone, Default)]
pub struct InstanceStats {
    /// Its name in the load balancer (`i1`, `i2`...).
    pub name: String,
    /// Batches taken for sending, per process (the first, then one per
    /// restart).
    pub batches: Vec<u64>,
    /// Processes killed with SIGKILL (each confirmed by its exit status).
    pub kills: u32,
    /// Processes drained with SIGTERM (each printed `drained 0` and exited
    /// with success).
    pub drains: u32,
}

impl InstanceStats {
    /// Batches over every process of the slot.
    pub fn total(&self) -> u64 {
        self.batches.iter().sum()
    }

    /// Batches served by processes started after a kill or a drain.
    pub fn after_restart(&self) -> u64 {
        self.batches.iter().skip(1).sum()
    }
}

struct Slot {
    args: InstanceArgs,
    child: Option<Child>,
    /// Lines the reader thread saw after `listening`, for the drain.
    lines: Arc<Mutex<Vec<String>>>,
}

/// The running instances.
pub struct Fleet {
    command: InstanceCommand,
    slots: Vec<Slot>,
    stats: Arc<Mutex<Vec<InstanceStats>>>,
    /// The slot that took the latest batch: the one serving the client.
    active: Arc<AtomicUsize>,
}

impl Fleet {
    /// Starts one instance per entry of `instances`.
    pub fn start(command: InstanceCommand, instances: Vec<InstanceArgs>) -> Result<Self, BoxError> {
        let stats = (0..instances.len())
            .map(|i| InstanceStats {
                name: format!("i{}", i + 1),
                ..InstanceStats::default()
            })
            .collect();
        let mut fleet = Fleet {
            command,
            slots: instances
                .into_iter()
                .map(|args| Slot {
                    args,
                    child: None,
                    lines: Arc::default(),
                })
                .collect(),
            stats: Arc::new(Mutex::new(stats)),
            active: Arc::new(AtomicUsize::new(usize::MAX)),
        };
        for i in 0..fleet.slots.len() {
            fleet.spawn(i)?;
        }
        Ok(fleet)
    }

    /// The load balancer's view: each slot's name and address.
    pub fn servers(&self) -> Vec<(String, SocketAddr)> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("i{}", i + 1), s.args.listen))
            .collect()
    }

    /// The slot serving the client now (the last to take a batch).
    pub fn active(&self) -> Option<usize> {
        Some(self.active.load(Ordering::SeqCst)).filter(|&i| i < self.slots.len())
    }

    /// Every slot's counts so far.
    pub fn stats(&self) -> Vec<InstanceStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn spawn(&mut self, i: usize) -> Result<(), BoxError> {
        let slot = &mut self.slots[i];
        let mut child = Command::new(&self.command.program)
            .args(&self.command.prefix)
            .args(slot.args.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no instance stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        if !line.starts_with("listening ") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("instance i{} said {line:?} instead of listening", i + 1).into());
        }
        let generation = {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats[i].batches.push(0);
            stats[i].batches.len() - 1
        };
        slot.lines = Arc::default();
        let (stats, active, lines) = (self.stats.clone(), self.active.clone(), slot.lines.clone());
        std::thread::Builder::new()
            .name(format!("i{}-stdout", i + 1))
            .spawn(move || {
                for line in out.lines() {
                    let Ok(line) = line else { break };
                    if line == "batch" {
                        stats.lock().unwrap_or_else(|p| p.into_inner())[i].batches[generation] += 1;
                        active.store(i, Ordering::SeqCst);
                    } else {
                        lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                    }
                }
            })?;
        slot.child = Some(child);
        Ok(())
    }

    /// SIGKILL to slot `i`'s process; returns once it is gone, after
    /// checking that the signal is what ended it.
    pub fn kill(&mut self, i: usize) -> Result<(), BoxError> {
        let mut child = self.slots[i].child.take().ok_or("instance not running")?;
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        let status = child.wait()?;
        if status.signal() != Some(libc::SIGKILL) {
            return Err(format!("instance i{} ended with {status}, not by SIGKILL", i + 1).into());
        }
        self.stats.lock().unwrap_or_else(|p| p.into_inner())[i].kills += 1;
        Ok(())
    }

    /// SIGTERM to slot `i`'s process. The drain takes a while (the
    /// grace period, then the open connections' last batch): wait for it
    /// with [`Draining::wait`], without holding the fleet.
    pub fn term(&mut self, i: usize) -> Result<Draining, BoxError> {
        let child = self.slots[i].child.take().ok_or("instance not running")?;
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        Ok(Draining {
            slot: i,
            child,
            lines: self.slots[i].lines.clone(),
            stats: self.stats.clone(),
        })
    }

    /// Forgets which slot served last, so that [`active`](Self::active)
    /// names the next slot to take a batch.
    pub fn clear_active(&self) {
        self.active.store(usize::MAX, Ordering::SeqCst);
    }

    /// Starts slot `i` again, on the same address.
    pub fn restart(&mut self, i: usize) -> Result<(), BoxError> {
        if self.slots[i].child.is_some() {
            return Err(format!("instance i{} is running", i + 1).into());
        }
        self.spawn(i)
    }
}

/// An instance told to drain.
pub struct Draining {
    slot: usize,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stats: Arc<Mutex<Vec<InstanceStats>>>,
}

impl Draining {
    /// Waits until the process has exited, and checks that it drained
    /// every connection (`drained 0`) and exited with success.
    pub fn wait(mut self, limit: Duration) -> Result<(), BoxError> {
        let name = format!("i{}", self.slot + 1);
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("instance {name} did not drain within {limit:?}").into());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The reader thread reads the last lines a moment after the exit.
        let said = || self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let start = Instant::now();
        while !said().iter().any(|l| l == "drained 0") && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let said = said();
        let seen = |what: &str| said.iter().any(|l| l == what);
        if !status.success() || !seen("draining") || !seen("drained 0") {
            return Err(format!("instance {name} drained badly: {status}, said {said:?}").into());
        }
        self.stats.lock().unwrap_or_else(|p| p.into_inner())[self.slot].drains += 1;
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
