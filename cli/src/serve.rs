//! `tether serve`: echo, broadcast, or a process per connection, over
//! plain TCP or TLS, with a line on stderr per connection opened and
//! closed, and a 1001 close for every connection on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::tls::rustls::ServerConfig;
use tether::{Accept, CloseFrame, Config, Message, ServerOptions};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

use crate::args::ServeArgs;
use crate::exit;
use crate::output::{Encoding, Output, Status};

/// What each connection does with its messages.
#[derive(Clone)]
enum Mode {
    Echo,
    Broadcast(broadcast::Sender<Message>),
    Exec(Arc<str>),
}

/// Runs `tether serve` until Ctrl-C or SIGTERM; returns the exit status.
pub async fn run(args: ServeArgs) -> u8 {
    let out = Output::new(false, Encoding::Raw);
    let addr = if args.addr.parse::<u16>().is_ok() {
        format!("127.0.0.1:{}", args.addr)
    } else {
        args.addr.clone()
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match read_tls(cert, key) {
            Ok(c) => Some(c),
            Err(e) => {
                out.note(Status::Bad, &format!("tether: {e}"));
                return exit::FAILURE;
            }
        },
        _ => None,
    };
    let mut listener = match tether::tokio::Listener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            out.note(
                Status::Bad,
                &format!("tether: cannot listen on {addr}: {e}"),
            );
            return exit::FAILURE;
        }
    };
    let mut sigterm = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        Ok(s) => s,
        Err(e) => {
            out.note(Status::Bad, &format!("tether: SIGTERM handler: {e}"));
            return exit::FAILURE;
        }
    };
    let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
    let config = Config::default()
        .with_ping_interval(nonzero(args.ping_interval))
        .with_ping_timeout(nonzero(args.ping_interval).map(|d| d.max(Duration::from_secs(5))));
    let options = Arc::new(
        ServerOptions::default()
            .with_config(config)
            .with_deflate(args.compress.then(tether::DeflateConfig::default)),
    );
    let mode = if args.broadcast {
        Mode::Broadcast(broadcast_stdin())
    } else if let Some(cmd) = &args.exec {
        Mode::Exec(cmd.as_str().into())
    } else {
        Mode::Echo
    };
    let local = listener.local_addr().map_or(addr, |a| a.to_string());
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let what = match &mode {
        Mode::Echo => "echo".to_owned(),
        Mode::Broadcast(_) => "broadcast".to_owned(),
        Mode::Exec(cmd) => format!("exec {cmd:?}"),
    };
    out.note(
        Status::Good,
        &format!("listening on {scheme}://{local}/ ({what})"),
    );

    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    next_id += 1;
                    let conn = Conn {
                        id: next_id,
                        peer,
                        out: out.clone(),
                        mode: mode.clone(),
                        stop: stopped.clone(),
                    };
                    let (tls, options) = (tls.clone(), options.clone());
                    tasks.spawn(async move {
                        let decide = |req: &tether::http::Request<()>| Ok(choose_protocol(req));
                        match tls {
                            Some(tls) => match tether::tokio::accept_tls_with(stream, &tls, &options, decide).await {
                                Ok(ws) => conn.serve(ws).await,
                                Err(e) => conn.failed(&e),
                            },
                            None => match tether::tokio::accept_with(stream, &options, decide).await {
                                Ok(ws) => conn.serve(ws).await,
                                Err(e) => conn.failed(&e),
                            },
                        }
                    });
                }
                Err(e) => {
                    out.note(Status::Bad, &format!("tether: accept: {e}"));
                    break;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    if !tasks.is_empty() {
        out.note(
            Status::Info,
            &format!(
                "shutting down: closing {} connection(s) with 1001",
                tasks.len()
            ),
        );
    }
    let _ = stop.send(true);
    // Each close is bounded by the close timeout.
    while tasks.join_next().await.is_some() {}
    exit::OK
}

/// The first subprotocol the client offers, so a client that insists on
/// one is served.
fn choose_protocol(req: &tether::http::Request<()>) -> Accept {
    let first = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| !p.is_empty())
        .map(str::to_owned);
    Accept::default().with_protocol(first)
}

fn read_tls(cert: &std::path::Path, key: &std::path::Path) -> Result<Arc<ServerConfig>, String> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    tether::tls::server_config(&read(cert)?, &read(key)?)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))
}

/// Stdin lines, each sent to every connected client as a text message.
fn broadcast_stdin() -> broadcast::Sender<Message> {
    let (tx, _) = broadcast::channel(1024);
    let sender = tx.clone();
    tokio::spawn(async move {
        let mut lines = crate::input::spawn_reader();
        while let Some(Ok(line)) = lines.recv().await {
            let msg = match String::from_utf8(line) {
                Ok(t) => Message::text(t),
                Err(e) => Message::binary(e.into_bytes()),
            };
            // No client connected: the line is dropped.
            let _ = sender.send(msg);
        }
    });
    tx
}

/// One connection's task.
struct Conn {
    id: u64,
    peer: SocketAddr,
    out: Output,
    mode: Mode,
    stop: watch::Receiver<bool>,
}

/// The process of `--exec` for one connection.
struct Child {
    process: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Conn {
    fn failed(&self, e: &tether::Error) {
        self.out.note(
            Status::Warn,
            &format!("#{} {}: handshake failed: {e}", self.id, self.peer),
        );
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        mut self,
        mut ws: tether::tokio::WebSocket<S>,
    ) {
        let started = Instant::now();
        self.out.note(
            Status::Good,
            &format!(
                "#{} open {}{}",
                self.id,
                self.peer,
                ws.protocol()
                    .map(|p| format!(" (subprotocol {p})"))
                    .unwrap_or_default()
            ),
        );
        let (mut received, mut sent) = (0u64, 0u64);
        let mut ours: Option<(u16, String)> = None;
        let mut theirs: Option<Option<CloseFrame>> = None;
        let mut error = None;
        let mut child = match &self.mode {
            Mode::Exec(cmd) => match spawn(cmd) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.out
                        .note(Status::Bad, &format!("#{} --exec {cmd:?}: {e}", self.id));
                    ours = Some((1011, "cannot start the command".into()));
                    let _ = ws.send(close(1011, "cannot start the command")).await;
                    None
                }
            },
            _ => None,
        };
        let mut updates = match &self.mode {
            Mode::Broadcast(tx) => Some(tx.subscribe()),
            _ => None,
        };
        loop {
            let closing = ours.is_some() || theirs.is_some();
            tokio::select! {
                item = ws.next() => match item {
                    None => break,
                    Some(Ok(Message::Close(frame))) => theirs = Some(frame),
                    Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                        received += 1;
                        match (&self.mode, &mut child) {
                            (Mode::Echo, _) => {
                                if ws.send(m).await.is_ok() {
                                    sent += 1;
                                }
                            }
                            (Mode::Broadcast(_), _) => {
                                let _ = match &m {
                                    Message::Text(t) => self.out.text(t.as_str(), ""),
                                    Message::Binary(b) => self.out.binary(b, ""),
                                    _ => Ok(()),
                                };
                            }
                            (Mode::Exec(_), Some(c)) => {
                                if let Some(stdin) = &mut c.stdin {
                                    let bytes = match &m {
                                        Message::Text(t) => t.as_bytes().clone(),
                                        Message::Binary(b) => b.clone(),
                                        _ => Default::default(),
                                    };
                                    let write = async {
                                        stdin.write_all(&bytes).await?;
                                        stdin.write_all(b"\n").await?;
                                        stdin.flush().await
                                    };
                                    // The child stopped reading: it gets no more.
                                    if write.await.is_err() {
                                        c.stdin = None;
                                    }
                                }
                            }
                            (Mode::Exec(_), None) => {}
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => { error.get_or_insert(e); }
                },
                _ = self.stop.changed(), if !closing => {
                    ours = Some((1001, "server shutting down".into()));
                    let _ = ws.send(close(1001, "server shutting down")).await;
                }
                update = next_update(&mut updates), if updates.is_some() && !closing => {
                    match update {
                        Some(m) => {
                            if ws.send(m).await.is_ok() {
                                sent += 1;
                            }
                        }
                        // Stdin ended: nothing more to forward.
                        None => updates = None,
                    }
                }
                line = async { child.as_mut()?.stdout.next_line().await.ok().flatten() }, if child.is_some() && !closing => {
                    match line {
                        Some(l) => {
                            if ws.send(Message::text(l)).await.is_ok() {
                                sent += 1;
                            }
                        }
                        None => {
                            // The command ended: so does the connection.
                            let status = match child.as_mut() {
                                Some(c) => c.process.wait().await.ok(),
                                None => None,
                            };
                            child = None;
                            let (code, reason) = match status {
                                Some(s) if s.success() => (1000, String::new()),
                                Some(s) => (1011, format!("command failed: {s}")),
                                None => (1011, "command lost".to_owned()),
                            };
                            let _ = ws.send(close(code, &reason)).await;
                            ours = Some((code, reason));
                        }
                    }
                }
            }
        }
        if let Some(mut c) = child {
            // The connection ended first: the command goes too.
            let _ = c.process.start_kill();
            let _ = c.process.wait().await;
        }
        let (code, reason) = match (&theirs, &ours, &error) {
            (Some(Some(f)), None, _) => (f.code.0, f.reason.clone()),
            (Some(None), None, _) => (1005, String::new()),
            (_, Some((c, r)), _) => (*c, r.clone()),
            (None, None, Some(e)) => (e.close_code().map_or(1006, |c| c.0), e.to_string()),
            (None, None, None) => (1006, String::new()),
        };
        let by = match (&ours, &theirs) {
            (Some(_), _) => "server",
            (None, Some(_)) => "client",
            (None, None) => "lost",
        };
        self.out.note(
            if code == 1000 {
                Status::Info
            } else {
                Status::Warn
            },
            &format!(
                "#{} closed {} code={code}{} by {by} after {:.3}s, {received} in, {sent} out",
                self.id,
                self.peer,
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({reason})")
                },
                started.elapsed().as_secs_f64(),
            ),
        );
    }
}

/// The next broadcast line; `None` once stdin ended. A client too slow
/// for the buffer skips the lines it missed.
async fn next_update(updates: &mut Option<broadcast::Receiver<Message>>) -> Option<Message> {
    loop {
        match updates.as_mut()?.recv().await {
            Ok(m) => return Some(m),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: reason.to_owned(),
    }))
}

fn spawn(cmd: &str) -> std::io::Result<Child> {
    let mut process = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = process.stdin.take();
    let stdout = process
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
    Ok(Child {
        process,
        stdin,
        stdout: tokio::io::BufReader::new(stdout).lines(),
    })
}
