//! `tether serve` with `tether connect` clients: echo, a process per
//! connection, broadcast, and the 1001 close on SIGTERM.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::{run, run_holding, tether, Serve, LIMIT};

#[test]
fn exec_cat_echoes_through_a_process() {
    let mut serve = Serve::start(&["--exec", "cat"]);
    let r = run(&["connect", &serve.url(), "-n", "2"], b"one\ntwo\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "one\ntwo\n"), "{r:?}");
    serve.line_with("#1 open 127.0.0.1:");
    let closed = serve.line_with("#1 closed");
    assert!(closed.contains("code=1000"), "{closed}");
    assert!(closed.contains("2 in, 2 out"), "{closed}");
}

#[test]
fn exec_closes_when_the_process_exits() {
    let dir = common::TempDir::new("exec");
    let script = dir.file(
        "upper.sh",
        "#!/bin/sh\nread line\necho \"$line\" | tr a-z A-Z\necho done\n",
    );
    let mut serve = Serve::start(&["--exec", &format!("sh {script}")]);
    // Stdin stays open: the command's exit is what ends the session.
    let r = run_holding(
        &["connect", &serve.url()],
        b"shout\n",
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "SHOUT\ndone\n");
    let closed = serve.line_with("#1 closed");
    assert!(closed.contains("code=1000 by server"), "{closed}");
    // A failing command closes with 1011, which the client reports as 6.
    let mut failing = Serve::start(&["--exec", "exit 3"]);
    let r = run_holding(&["connect", &failing.url()], b"", Duration::from_secs(30));
    assert_eq!(r.code, 6, "{r:?}");
    let closed = failing.line_with("#1 closed");
    assert!(closed.contains("code=1011"), "{closed}");
}

#[test]
fn exec_process_is_killed_when_the_connection_closes() {
    let dir = common::TempDir::new("exec-kill");
    let pidfile = dir.0.join("pid");
    // It says it is ready (a message) once its pid is written; the client
    // closes after that message, while the command would sleep on.
    let cmd = format!(
        "echo $$ > {}; echo ready; exec sleep 600",
        pidfile.display()
    );
    let mut serve = Serve::start(&["--exec", &cmd]);
    let r = run_holding(
        &["connect", &serve.url(), "-n", "1"],
        b"",
        Duration::from_secs(30),
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "ready\n"), "{r:?}");
    serve.line_with("#1 closed");
    let pid = std::fs::read_to_string(&pidfile).expect("the command wrote its pid");
    let alive = std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "the command {pid} outlived its connection");
}

#[test]
fn broadcast_sends_stdin_to_every_client_and_prints_theirs() {
    let mut serve = Serve::start_on("127.0.0.1:0", &["--broadcast"], Stdio::piped());
    let url = serve.url();
    let clients: Vec<_> = ["from-a", "from-b"]
        .into_iter()
        .map(|line| {
            let url = url.clone();
            std::thread::spawn(move || {
                run_holding(
                    &["connect", &url, "-n", "1"],
                    format!("{line}\n").as_bytes(),
                    Duration::from_secs(30),
                )
            })
        })
        .collect();
    serve.opened(2);
    let mut printed: Vec<String> = (0..2)
        .map(|_| serve.stdout.recv_timeout(LIMIT).expect("a client's line"))
        .collect();
    printed.sort();
    assert_eq!(printed, ["from-a", "from-b"]);
    let mut stdin = serve.child.stdin.take().expect("serve stdin");
    stdin.write_all(b"news for all\n").unwrap();
    stdin.flush().unwrap();
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!((r.code, r.stdout.as_str()), (0, "news for all\n"), "{r:?}");
    }
}

#[test]
fn sigterm_closes_every_connection_with_1001() {
    let mut serve = Serve::start(&[]);
    let clients: Vec<_> = (0..2)
        .map(|_| {
            tether()
                .args(["connect", &serve.url()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    serve.opened(2);
    assert_eq!(serve.terminate(), 0);
    assert!(
        serve
            .seen
            .iter()
            .any(|l| l.contains("closing 2 connection(s) with 1001")),
        "{:#?}",
        serve.seen
    );
    for mut c in clients {
        let status = common::wait(&mut c, LIMIT).expect("the client exits");
        assert_eq!(status.code(), Some(4), "going away");
    }
}

#[test]
fn serve_help_and_bad_arguments() {
    let r = run(&["serve", "--help"], b"");
    assert_eq!(r.code, 0);
    for word in [
        "--echo",
        "--broadcast",
        "--exec",
        "--tls-cert",
        "--ping-interval",
        "Examples:",
    ] {
        assert!(r.stdout.contains(word), "{word}: {}", r.stdout);
    }
    let r = run(&["serve", "127.0.0.1:0", "--echo", "--broadcast"], b"");
    assert_eq!(r.code, 2, "{r:?}");
    let r = run(&["serve", "no-such-host.invalid:1"], b"");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cannot listen"), "{r:?}");
}

#[test]
fn serve_pings_its_clients_at_the_interval_asked() {
    use futures_util::StreamExt;
    let serve = Serve::start(&["--ping-interval", "100ms"]);
    let url = serve.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = tether::ClientOptions::default()
            .with_config(tether::Config::without_keepalive())
            .with_proxy(tether::proxy::ProxyConfig::Direct);
        let mut ws = tether::tokio::connect_with(&url, options).await.unwrap();
        let mut pings = 0;
        while pings < 2 {
            match tokio::time::timeout(LIMIT, ws.next()).await {
                Ok(Some(Ok(tether::Message::Ping(_)))) => pings += 1,
                Ok(Some(Ok(_))) => {}
                other => panic!("expected the server's pings, got {other:?}"),
            }
        }
    });
}
