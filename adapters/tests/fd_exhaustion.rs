//! A server that runs out of file descriptors keeps going: it neither
//! exits nor spins, and serves again once descriptors are free.
//!
//! Each test re-runs this test binary as a child process (the `child_role`
//! test, selected by [`CHILD_ENV`]) that lowers its own `RLIMIT_NOFILE`
//! to [`LIMIT`] and runs an echo server on one adapter: the smol and tokio
//! `Listener`s, or the mio driver's `listen`. The parent opens [`CLIENTS`]
//! connections, more than the child can hold, and keeps them. It checks
//! the child reported EMFILE, is still alive, and spent little CPU over a
//! few seconds (a loop that retries `accept` at once burns a whole core;
//! the bound is 7.5% of one), then drops its clients and checks a new
//! one completes a handshake and an echo.

#![cfg(feature = "smol")] // the parent's client runs on smol

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::{Message, Runtime, Transport, WebSocket};

/// Set in the child's environment to the runtime it serves on.
const CHILD_ENV: &str = "TETHER_FD_EXHAUSTION_CHILD";
/// The child's descriptor limit.
const LIMIT: u64 = 64;
/// Connections the parent holds: well past `LIMIT`, well within the
/// listen backlog (128 for std's and async-io's listeners).
const CLIENTS: usize = 100;
/// How long the child's CPU time is watched while it is out of descriptors.
const WINDOW: Duration = Duration::from_secs(4);
/// The most CPU time the child may spend in `WINDOW`: 7.5% of one core.
/// A waiting server wakes a few times a second at most and spends a few
/// milliseconds; one that retries at once spends all the CPU it gets,
/// which on a 2-core machine busy with two other processes at its own
/// priority was still about 25% (measured: 780 ms in 3 s).
const CPU_BOUND: Duration = Duration::from_millis(300);
/// Bound on every wait in the parent.
const DEADLINE: Duration = Duration::from_secs(30);

/// An upgrade request, written by the held clients so the connections the
/// child accepted become open WebSockets (and stay, holding descriptors).
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

// ---- the child ----

/// The child's side; does nothing unless run as the child.
#[test]
fn child_role() {
    let Ok(runtime) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = LIMIT as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let result = match runtime.as_str() {
        #[cfg(feature = "smol")]
        "smol" => serve_smol(),
        #[cfg(feature = "tokio")]
        "tokio" => serve_tokio(),
        #[cfg(feature = "mio")]
        "mio" => serve_mio(),
        other => panic!("no runtime {other} in this build"),
    };
    // Only an error gets here: the server gave up.
    eprintln!("child: the server ended: {result:?}");
    std::process::exit(3);
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn on_error(e: &std::io::Error, wait: Duration) {
    say(&format!("skipped {:?} wait {wait:?}", e.raw_os_error()));
}

async fn echo<S: Transport, R: Runtime>(mut ws: WebSocket<S, R>) {
    while let Some(Ok(m)) = ws.next().await {
        if matches!(m, Message::Text(_) | Message::Binary(_)) && ws.send(m).await.is_err() {
            return;
        }
    }
}

#[cfg(feature = "smol")]
fn serve_smol() -> std::io::Result<()> {
    // A local executor: smol's global one also runs async-process's
    // reaper, which panics (once, caught by smol) when it first needs a
    // descriptor and there is none, a message that is not this test's.
    let ex = smol::Executor::new();
    smol::block_on(ex.run(async {
        let mut listener = tether::smol::Listener::bind("127.0.0.1:0")
            .await?
            .on_error(on_error);
        say(&format!("listening {}", listener.local_addr()?));
        loop {
            let (stream, _) = listener.accept().await?;
            ex.spawn(async move {
                if let Ok(ws) = tether::smol::accept(stream).await {
                    echo(ws).await;
                }
            })
            .detach();
        }
    }))
}

#[cfg(feature = "tokio")]
fn serve_tokio() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut listener = tether::tokio::Listener::bind("127.0.0.1:0")
            .await?
            .on_error(on_error);
        say(&format!("listening {}", listener.local_addr()?));
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                if let Ok(ws) = tether::tokio::accept(stream).await {
                    echo(ws).await;
                }
            });
        }
    })
}

#[cfg(feature = "mio")]
fn serve_mio() -> std::io::Result<()> {
    use tether::mio::{Driver, Event};
    let mut driver = Driver::new()?;
    say(&format!("listening {}", driver.listen("127.0.0.1:0")?));
    loop {
        driver.poll_with(None, |conns, id, event| {
            if let Event::Message(m) = event {
                let _ = conns.send(id, m);
            }
        })?;
        if let Some(e) = driver.take_accept_error() {
            say(&format!("skipped {:?}", e.raw_os_error()));
        }
    }
}

// ---- the parent ----

/// The child process, killed when dropped (a failed assertion included).
struct ChildServer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChildServer {
    fn spawn(runtime: &str) -> (Self, String) {
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, runtime)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the child");
        let mut child = ChildServer {
            lines: mpsc::channel().1,
            child,
        };
        let stdout = child.child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        child.lines = rx;
        let addr = loop {
            let line = child
                .lines
                .recv_timeout(DEADLINE)
                .expect("the child never said where it listens");
            // The harness may have started the line ("test child_role ... ").
            if let Some((_, addr)) = line.split_once("listening ") {
                break addr.trim().to_owned();
            }
        };
        (child, addr)
    }

    fn assert_alive(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("the server exited {when}: {status}");
        }
    }

    /// User plus system CPU time so far, from /proc/PID/stat.
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc/PID/stat");
        // Fields after the command name, which is in parentheses and may
        // hold spaces: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }
}

fn survives_running_out_of_descriptors(runtime: &str) {
    let (mut server, addr) = ChildServer::spawn(runtime);

    // More clients than the child has descriptors; each asks for an
    // upgrade, so those accepted stay open.
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).expect("connect (the backlog takes it)");
            c.write_all(REQUEST).expect("write the request");
            c
        })
        .collect();

    // The child must report EMFILE...
    let give_up = Instant::now() + DEADLINE;
    let emfile = format!("skipped Some({})", libc::EMFILE);
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        match server.lines.recv_timeout(left) {
            Ok(line) if line.contains(&emfile) => break,
            Ok(_) => {}
            Err(_) => {
                server.assert_alive("without reporting EMFILE");
                panic!("the server never reported EMFILE");
            }
        }
    }
    // ...and, out of descriptors, live on without spinning.
    let before = server.cpu_time();
    std::thread::sleep(WINDOW);
    let spent = server.cpu_time().saturating_sub(before);
    server.assert_alive("while out of descriptors");
    eprintln!("{runtime}: {spent:?} of CPU in {WINDOW:?} out of descriptors");
    assert!(
        spent < CPU_BOUND,
        "the server spent {spent:?} of CPU in {WINDOW:?} while out of descriptors: spinning"
    );

    // Free the descriptors; a new client is served.
    drop(clients);
    let echoed = smol::block_on(async {
        let give_up = Instant::now() + DEADLINE;
        loop {
            let attempt = async {
                let mut ws = tether::smol::connect(&format!("ws://{addr}/")).await?;
                ws.send(Message::text("after the shortage")).await?;
                match ws.next().await {
                    Some(Ok(m)) => Ok::<_, tether::Error>(m),
                    Some(Err(e)) => Err(e),
                    None => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
                }
            };
            match attempt.await {
                Ok(m) => return m,
                Err(e) if Instant::now() > give_up => panic!("no echo after the shortage: {e}"),
                Err(_) => smol::Timer::after(Duration::from_millis(100)).await,
            };
        }
    });
    assert_eq!(echoed, Message::text("after the shortage"));
    server.assert_alive("after the shortage");
}

#[cfg(feature = "smol")]
#[test]
fn smol_listener_survives_running_out_of_descriptors() {
    survives_running_out_of_descriptors("smol");
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_listener_survives_running_out_of_descriptors() {
    survives_running_out_of_descriptors("tokio");
}

#[cfg(feature = "mio")]
#[test]
fn mio_driver_survives_running_out_of_descriptors() {
    survives_running_out_of_descriptors("mio");
}
