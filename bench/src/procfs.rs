//! What the load generator and the suite read about the server process:
//! CPU time and resident memory from /proc, plus the file-descriptor limit
//! both processes raise for the idle-connection scenario.

use std::fs;
use std::io;

/// CPU time (user + system) the process has used, in nanoseconds.
///
/// Sums `/proc/PID/task/*/schedstat` (nanosecond resolution); where the
/// kernel has no schedstat, falls back to utime + stime from
/// `/proc/PID/stat`, whose 10 ms ticks are coarse for short windows.
pub fn cpu_ns(pid: u32) -> io::Result<u64> {
    match schedstat_ns(pid) {
        Ok(ns) if ns > 0 => Ok(ns),
        _ => stat_ns(pid),
    }
}

fn schedstat_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread that exited meanwhile simply no longer counts.
        if let Ok(s) = fs::read_to_string(path) {
            total += first_number(&s)?;
        }
    }
    Ok(total)
}

fn stat_ns(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; fields are counted after its ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| bad("/proc/PID/stat without ')'"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks: u64 = fields
        .get(11..13)
        .ok_or_else(|| bad("short /proc/PID/stat"))?
        .iter()
        .map(|f| f.parse::<u64>().map_err(|_| bad("non-numeric CPU time")))
        .sum::<io::Result<u64>>()?;
    Ok(ticks * 1_000_000_000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64
}

/// CPU time all processes spent in user and system mode, machine-wide, in
/// nanoseconds (from /proc/stat; interrupt time is left out, as it is from
/// a process's own CPU time).
pub fn machine_task_ns() -> io::Result<u64> {
    let stat = fs::read_to_string("/proc/stat")?;
    let cpu = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or_else(|| bad("no cpu line in /proc/stat"))?;
    // user nice system
    let ticks: u64 = cpu
        .split_whitespace()
        .take(3)
        .map(|f| f.parse::<u64>().map_err(|_| bad("non-numeric /proc/stat")))
        .sum::<io::Result<u64>>()?;
    Ok(ticks * 1_000_000_000 / clock_ticks())
}

/// Resident set size (VmRSS) in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| bad("no VmRSS"))?;
    Ok(first_number(&line["VmRSS:".len()..])? * 1024)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (raising the hard limit
/// itself needs a privilege not every sandbox grants) and returns it.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        let want = libc::rlimit {
            rlim_cur: 1 << 20,
            rlim_max: 1 << 20,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            return want.rlim_cur;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

fn first_number(s: &str) -> io::Result<u64> {
    s.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad("expected a number"))
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
