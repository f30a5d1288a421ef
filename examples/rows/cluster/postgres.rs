//! A throwaway PostgreSQL server: `initdb` in a temporary directory, the
//! server on a free loopback port, removed again on drop.
//!
//! PostgreSQL refuses to run as root, so when this process is root both
//! run as the `postgres` user (the Debian package creates it), with the
//! directory handed to that user. The binaries are found in
//! `$TETHER_PG_BINDIR`, `pg_config --bindir`, `/usr/lib/postgresql/*/bin`
//! or the `PATH`, in that order.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::super::db::BoxError;

/// A running server and its directory.
pub struct TempPostgres {
    dir: PathBuf,
    child: Child,
    port: u16,
}

/// The uid and gid to run as: the `postgres` user's when root, else none.
fn run_as() -> Result<Option<(u32, u32)>, BoxError> {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        return Ok(None);
    }
    // SAFETY: a NUL-terminated name; the record is read before any other
    // getpw* call could overwrite it.
    let pw = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if pw.is_null() {
        return Err(
            "running as root, and there is no `postgres` user to run PostgreSQL as \
             (apt-get install postgresql creates it)"
                .into(),
        );
    }
    // SAFETY: non-null, from getpwnam.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

/// Where `initdb` and `postgres` are.
pub fn bindir() -> Result<PathBuf, BoxError> {
    if let Some(dir) = std::env::var_os("TETHER_PG_BINDIR") {
        return Ok(dir.into());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|d| d.join("initdb").exists())
            .collect();
        dirs.sort();
        if let Some(dir) = dirs.pop() {
            return Ok(dir);
        }
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
    });
    on_path.ok_or_else(|| {
        "no PostgreSQL server binaries (initdb, postgres) found: apt-get install postgresql, \
         or set TETHER_PG_BINDIR"
            .into()
    })
}

fn command(program: &Path, user: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd.env_remove("PGDATA").env("LC_ALL", "C");
    cmd
}

impl TempPostgres {
    /// Creates a cluster under a new directory in `parent` and starts it.
    pub fn start(parent: &Path) -> Result<Self, BoxError> {
        let bin = bindir()?;
        let user = run_as()?;
        let dir = parent.join(format!("pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
            // The postgres user must reach the directory through its parents.
            let mut p = dir.parent();
            while let Some(parent) = p {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(parent)?.permissions().mode();
                if mode & 0o001 == 0 {
                    return Err(format!(
                        "{} is not searchable by the postgres user; choose a directory under /tmp",
                        parent.display()
                    )
                    .into());
                }
                p = parent.parent();
            }
        }
        let data = dir.join("data");
        let out = command(&bin.join("initdb"), user)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .map_err(|e| {
                format!(
                    "cannot run {}/initdb: {e} (apt-get install postgresql)",
                    bin.display()
                )
            })?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let port = super::free_port()?;
        let log = std::fs::File::create(dir.join("postgres.log"))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid))?;
        }
        // A scratch database: durability off (fsync, synchronous commit),
        // the socket directory inside ours, TCP on loopback only.
        let child = command(&bin.join("postgres"), user)
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut pg = TempPostgres { dir, child, port };
        pg.wait_ready(Duration::from_secs(30))?;
        Ok(pg)
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), BoxError> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "postgres exited ({status}) during start-up: {}",
                    std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
                )
                .into());
            }
            match postgres::Client::connect(&self.url(), postgres::NoTls) {
                Ok(_) => return Ok(()),
                Err(e) if start.elapsed() > limit => {
                    return Err(format!("postgres not ready after {limit:?}: {e}").into())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown (ends sessions, no checkpoint
        // wait worth having for scratch data).
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
