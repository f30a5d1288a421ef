//! A decompression bomb against a tether server: one compressed message of
//! about 1 MiB that inflates past 1 GiB must end the connection with close
//! code 1009, and the server's memory must grow by less than twice its
//! message limit.
//!
//! The server runs in a child process (this test binary again, selecting
//! this test with an environment variable set), so that its memory is
//! measured alone: the bomb, the client and the test harness live in the
//! parent. The measure is the child's peak resident set (`VmHWM` in
//! `/proc/PID/status`), reset to the current resident set once the server
//! is up and idle (writing 5 to `/proc/PID/clear_refs`), and compared with
//! the resident set at that moment (`VmRSS`). The peak is what the kernel
//! saw resident at any instant, so an allocation freed before the end of
//! the test still counts; were the reset refused, the peak since start
//! would be used instead, which can only overstate the growth.

#![cfg(all(feature = "smol", feature = "deflate"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tether::core::{Error as CoreError, ProtocolError};
use tether::{Config, Error, ServerOptions};

/// Set in the child's environment: run as the server.
const CHILD_ENV: &str = "TETHER_BOMB_SERVER_CHILD";
/// The server's message limit.
const LIMIT: usize = 16 << 20;
/// How far the bomb inflates.
const INFLATED: u64 = (1 << 30) + (64 << 20);
/// Bound on every wait.
const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn decompression_bomb_closes_1009_within_the_memory_bound() {
    if std::env::var_os(CHILD_ENV).is_some() {
        serve_one();
        return;
    }

    let payload = bomb();
    assert!(
        payload.len() < 2 << 20,
        "bomb of {} bytes is not about 1 MiB",
        payload.len()
    );
    let frame = masked_frame(&payload);

    let mut server = Server::start();
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port)).expect("connect to the child");
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(TIMEOUT)).unwrap();
    handshake(&mut tcp);

    // The server is up, has accepted and is waiting for frames: the
    // baseline. Then the bomb, written from another thread (the server
    // stops reading when it gives up, so the write may fail).
    let pid = server.child.id();
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let before = proc_status(pid);
    let writer = {
        let mut tcp = tcp.try_clone().unwrap();
        thread::spawn(move || {
            let _ = tcp.write_all(&frame);
        })
    };
    let code = read_close_code(&mut tcp);
    let after = proc_status(pid);
    let _ = tcp.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    let outcome = server.finish();

    let growth = after.hwm_kib.saturating_sub(before.rss_kib) * 1024;
    eprintln!(
        "bomb: {} bytes compressed, {} inflated; server limit {LIMIT}; server RSS {} KiB before, \
         peak {} KiB after (peak reset: {reset}): grew by {} KiB; close code {code:?}; {outcome}",
        payload.len(),
        INFLATED,
        before.rss_kib,
        after.hwm_kib,
        growth / 1024,
    );
    assert_eq!(code, Some(1009), "close code for the bomb");
    assert!(
        outcome.starts_with("message too big"),
        "server saw: {outcome}"
    );
    assert!(
        growth < 2 * LIMIT as u64,
        "server memory grew by {growth} bytes for a message limit of {LIMIT}"
    );
}

/// Raw deflate (RFC 7692 framing: sync flush, tail stripped) of INFLATED
/// zero bytes: about 1 MiB, at deflate's best ratio of about 1030:1.
fn bomb() -> Vec<u8> {
    let mut z = zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig {
        level: 9,
        window_bits: -15,
        mem_level: 9,
        strategy: zlib_rs::Strategy::Rle,
        ..zlib_rs::DeflateConfig::default()
    });
    let zeros = vec![0u8; 1 << 20];
    let mut out = vec![0u8; 4 << 20];
    let mut written = 0usize;
    let mut fed = 0u64;
    while fed < INFLATED {
        let last = fed + zeros.len() as u64 >= INFLATED;
        let flush = if last {
            zlib_rs::DeflateFlush::SyncFlush
        } else {
            zlib_rs::DeflateFlush::NoFlush
        };
        let mut input = &zeros[..];
        loop {
            let (in0, out0) = (z.total_in(), z.total_out());
            z.compress(input, &mut out[written..], flush)
                .expect("deflate");
            input = &input[(z.total_in() - in0) as usize..];
            written += (z.total_out() - out0) as usize;
            if input.is_empty() && written < out.len() {
                break;
            }
            assert!(written < out.len(), "bomb output buffer too small");
        }
        fed += zeros.len() as u64;
    }
    out.truncate(written);
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "sync flush tail");
    out.truncate(written - 4);
    out
}

/// A binary frame with RSV1 (compressed), masked as a client must.
fn masked_frame(payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | 0x40 | 0x2, 0x80 | 127];
    frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// The opening handshake, offering permessage-deflate; checks it was
/// accepted.
fn handshake(tcp: &mut TcpStream) {
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "response head too long");
        tcp.read_exact(&mut byte).expect("handshake response");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-extensions: permessage-deflate"),
        "deflate not accepted: {head}"
    );
}

/// Reads frames until a close frame; returns its code (`None`: the
/// connection ended without one).
fn read_close_code(tcp: &mut TcpStream) -> Option<u16> {
    loop {
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).ok()?;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            tcp.read_exact(&mut b).ok()?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            tcp.read_exact(&mut b).ok()?;
            len = u64::from_be_bytes(b);
        }
        assert!(len <= 1 << 20, "unexpected frame of {len} bytes");
        let mut payload = vec![0u8; len as usize];
        tcp.read_exact(&mut payload).ok()?;
        if head[0] & 0x0f == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

struct Status {
    rss_kib: u64,
    hwm_kib: u64,
}

fn proc_status(pid: u32) -> Status {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Status {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// The child server, killed if the test ends early.
struct Server {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start() -> Self {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "decompression_bomb_closes_1009_within_the_memory_bound",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server child");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            port: 0,
            lines,
        };
        let line = server.line_with("BOMB-SERVER-PORT ");
        server.port = line.parse().expect("port");
        server
    }

    /// What follows `prefix` in the child's first stdout line holding it.
    fn line_with(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    // libtest may have started the line ("test name ... ").
                    if let Some((_, rest)) = line.split_once(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(e) => panic!("server child: no {prefix:?} line: {e:?}"),
            }
        }
    }

    /// Lets the child finish and returns what its connection ended with.
    fn finish(&mut self) -> String {
        let outcome = self.line_with("BOMB-SERVER-RESULT ");
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"exit\n");
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.child.try_wait().unwrap() {
                Some(status) => {
                    assert!(status.success(), "server child: {status}");
                    return outcome;
                }
                None if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                None => panic!("server child did not exit"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The child: one tether server connection (smol) with a 16 MiB message
/// limit and deflate on; reports how it ended, then waits for the parent
/// to read its memory figures.
fn serve_one() {
    let outcome = smol::block_on(async {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("BOMB-SERVER-PORT {}", listener.local_addr().unwrap().port());
        let (stream, _) = listener.accept().await.unwrap();
        let options = ServerOptions::default()
            .with_config(Config::without_keepalive().with_max_message_size(LIMIT));
        let mut ws = tether::smol::accept_with(stream, &options, |_| Ok(Default::default()))
            .await
            .unwrap();
        let mut outcome = String::from("no error");
        while let Some(item) = ws.next().await {
            match item {
                Err(Error::WebSocket(CoreError::Protocol(ProtocolError::MessageTooLarge {
                    size,
                    limit,
                }))) => outcome = format!("message too big ({size} > {limit})"),
                Err(e) => outcome = format!("other error: {e}"),
                Ok(m) => outcome = format!("unexpected message of {} bytes", m.len()),
            }
        }
        outcome
    });
    println!("BOMB-SERVER-RESULT {outcome}");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}
