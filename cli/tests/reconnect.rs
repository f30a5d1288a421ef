//! `connect --reconnect` against a `tether serve` child that the test
//! kills and starts again on the same port: the disconnect and the
//! reconnect are printed, and messages flow on the new connection.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use common::{line_channel, tether, Serve, LIMIT};

fn line_with(lines: &Receiver<String>, what: &str, seen: &mut Vec<String>) -> String {
    let until = Instant::now() + LIMIT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if l.contains(what) {
                    return l;
                }
            }
            Err(_) => panic!("no line with {what:?}; saw {seen:#?}"),
        }
    }
}

#[test]
fn reconnects_after_the_server_is_killed_and_restarted() {
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let first = Serve::start_on(&addr, &[], Stdio::null());
    let url = first.url();
    let mut client = tether()
        .args(["connect", &url, "--reconnect"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let out = line_channel(client.stdout.take().unwrap());
    let err = line_channel(client.stderr.take().unwrap());
    let (mut seen_out, mut seen_err) = (Vec::new(), Vec::new());
    line_with(&err, "connected to", &mut seen_err);
    writeln!(stdin, "before").unwrap();
    line_with(&out, "before", &mut seen_out);

    // Killed: TCP ends without a close frame.
    drop(first);
    let down = line_with(&err, "disconnected", &mut seen_err);
    assert!(down.contains("reconnecting"), "{down}");
    let second = Serve::start_on(&addr, &[], Stdio::null());
    line_with(&err, "connected to", &mut seen_err);
    assert!(
        seen_err.iter().any(|l| l.starts_with("reconnecting in")),
        "{seen_err:#?}"
    );
    writeln!(stdin, "after").unwrap();
    line_with(&out, "after", &mut seen_out);

    // EOF ends it normally, however many connections it took.
    drop(stdin);
    let status = common::wait(&mut client, LIMIT).expect("the client exits at EOF");
    assert_eq!(status.code(), Some(0), "{seen_err:#?}");
    drop(second);
}

#[test]
fn a_normal_close_is_not_retried() {
    let mut serve = Serve::start(&["--exec", "head -n 1"]);
    let r = common::run_holding(
        &["connect", &serve.url(), "--reconnect"],
        b"once\n",
        std::time::Duration::from_secs(30),
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "once\n"), "{r:?}");
    assert!(!r.stderr.contains("reconnecting"), "{r:?}");
    serve.line_with("#1 closed");
}
