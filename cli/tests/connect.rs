//! `tether connect` in pipelines, as a script would run it: what it
//! prints, what the server saw, and the exit status for each way a
//! session ends.

mod common;

use std::time::Duration;

use common::{run, run_holding, Script, Serve, TestServer};
use tether::Message;

#[test]
fn a_pipeline_gets_its_echo_and_exits_0() {
    let serve = Serve::start(&[]);
    let r = run(&["connect", &serve.url(), "-n", "1"], b"hi\n");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "hi\n");
    assert!(r.stderr.contains("connected to"), "{r:?}");
    // `tether URL` is `tether connect URL`.
    let r = run(&[&serve.url(), "-n", "2"], b"one\ntwo\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "one\ntwo\n"), "{r:?}");
}

#[test]
fn eof_closes_with_1000_and_exits_0() {
    let server = TestServer::start(Script::Echo);
    let r = run(&["connect", &server.url], b"");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("closed: 1000"), "{r:?}");
}

/// Each close code the server may send, and the status it becomes.
#[test]
fn the_exit_status_says_how_the_server_closed() {
    for (code, status) in [
        (1000, 0),
        (1001, 4),
        (1012, 4),
        (1008, 5),
        (1002, 6),
        (1003, 6),
        (1007, 6),
        (1011, 6),
        (4000, 9),
        (3001, 9),
    ] {
        let server = TestServer::start(Script::CloseWith(code));
        let r = run_holding(&["connect", &server.url], b"go\n", Duration::from_secs(30));
        assert_eq!(r.code, status, "close code {code}: {r:?}");
        assert!(
            r.stderr.contains(&format!("closed: {code} bye")),
            "close code {code}: {r:?}"
        );
    }
}

#[test]
fn a_connection_cut_without_a_close_frame_exits_7() {
    let server = TestServer::start(Script::Drop);
    let r = run_holding(&["connect", &server.url], b"go\n", Duration::from_secs(30));
    assert_eq!(r.code, 7, "{r:?}");
}

#[test]
fn a_failed_connection_or_handshake_exits_3() {
    let port = common::free_port();
    let r = run(&["connect", &format!("ws://127.0.0.1:{port}/")], b"");
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("cannot connect"), "{r:?}");
    let server = TestServer::start(Script::Refuse);
    let r = run(&["connect", &server.url], b"");
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("403"), "{r:?}");
    // With --jsonl the failure is an event too.
    let r = run(&["connect", &server.url, "--jsonl"], b"");
    assert_eq!(r.code, 3, "{r:?}");
    let event: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(event["event"], "error", "{event}");
    assert_eq!(event["http_status"], 403, "{event}");
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    let r = run(&["connect"], b"");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("<URL>"), "{r:?}");
    let r = run(&["connect", "ws://127.0.0.1:1/", "-H", "no colon"], b"");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("expected `Name: value`"), "{r:?}");
    let r = run(
        &["connect", "ws://127.0.0.1:1/", "--ping-interval", "soon"],
        b"",
    );
    assert_eq!(r.code, 2, "{r:?}");
    let r = run(&["connect", "ws://127.0.0.1:1/", "--proxy", "ftp://x"], b"");
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn help_and_version() {
    let r = run(&["--help"], b"");
    assert_eq!(r.code, 0);
    for word in ["connect", "serve", "bench", "Examples:", "Exit status:"] {
        assert!(
            r.stdout.contains(word),
            "{word} missing from --help: {}",
            r.stdout
        );
    }
    let r = run(&["connect", "--help"], b"");
    assert_eq!(r.code, 0);
    for word in [
        "--jsonl",
        "--reconnect",
        "--proxy",
        "--insecure",
        "/close",
        "Exit status:",
        "8  --timeout",
    ] {
        assert!(r.stdout.contains(word), "{word} missing: {}", r.stdout);
    }
    let r = run(&["--version"], b"");
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("tether "), "{r:?}");
}

#[test]
fn jsonl_is_one_object_per_event() {
    let server = TestServer::start(Script::CloseWith(1001));
    let r = run_holding(
        &["connect", &server.url, "--jsonl"],
        b"go\n",
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 4, "{r:?}");
    let events: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["open", "close"], "{events:?}");
    assert_eq!(events[1]["code"], 1001);
    assert_eq!(events[1]["reason"], "bye");
    for e in &events {
        let ts = e["ts"].as_str().expect("a timestamp");
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
    }
    // Messages, and binary ones with their encoding.
    let serve = Serve::start(&[]);
    let r = run(
        &["connect", &serve.url(), "--jsonl", "--hex", "-n", "1"],
        b"00ff\n",
    );
    assert_eq!(r.code, 0, "{r:?}");
    let message = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "message")
        .expect("a message event");
    assert_eq!(message["type"], "binary");
    assert_eq!(message["encoding"], "hex");
    assert_eq!(message["data"], "00ff");
    let r = run(&["connect", &serve.url(), "--jsonl", "-n", "1"], b"hello\n");
    assert!(r.stdout.contains(r#""data":"hello""#), "{r:?}");
    assert!(r.stdout.contains(r#""type":"text""#), "{r:?}");
}

#[test]
fn hex_and_base64_payloads_both_ways() {
    let server = TestServer::start(Script::Echo);
    let r = run(&["connect", &server.url, "--hex", "-n", "1"], b"00ff10\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "00ff10\n"), "{r:?}");
    let r = run(&["connect", &server.url, "--base64", "-n", "1"], b"AP8Q\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "AP8Q\n"), "{r:?}");
    let r = run(&["connect", &server.url, "--binary", "-n", "1"], b"raw\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "raw\n"), "{r:?}");
    let seen = server.seen.lock().unwrap().messages.clone();
    assert_eq!(
        seen,
        [
            Message::binary(vec![0, 255, 16]),
            Message::binary(vec![0, 255, 16]),
            Message::binary(b"raw".to_vec()),
        ]
    );
    // Bad input is refused with a reason and a failing status.
    let r = run(&["connect", &server.url, "--hex"], b"zz\n");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not hex"), "{r:?}");
}

#[test]
fn headers_origin_and_subprotocol_reach_the_server() {
    let server = TestServer::start(Script::Protocol("v2.chat".into()));
    let r = run(
        &[
            "connect",
            &server.url,
            "-H",
            "Authorization: Bearer abc",
            "--header",
            "X-Trace: 1",
            "--origin",
            "https://example.test",
            "--subprotocol",
            "v2.chat",
            "-s",
            "v1.chat",
            "--jsonl",
            "-n",
            "1",
        ],
        b"x\n",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(r#""subprotocol":"v2.chat""#), "{r:?}");
    let headers = server.seen.lock().unwrap().headers[0].clone();
    assert_eq!(headers["authorization"], "Bearer abc");
    assert_eq!(headers["x-trace"], "1");
    assert_eq!(headers["origin"], "https://example.test");
    assert_eq!(headers["sec-websocket-protocol"], "v2.chat, v1.chat");
    assert!(headers.get("sec-websocket-extensions").is_none());
    // --compress offers permessage-deflate.
    let server = TestServer::start(Script::Echo);
    let r = run(&["connect", &server.url, "--compress", "-n", "1"], b"x\n");
    assert_eq!(r.code, 0, "{r:?}");
    let headers = server.seen.lock().unwrap().headers[0].clone();
    let ext = headers["sec-websocket-extensions"].to_str().unwrap();
    assert!(ext.contains("permessage-deflate"), "{ext}");
}

#[test]
fn once_sends_stdin_and_waits_for_one_reply() {
    let serve = Serve::start(&[]);
    let r = run(&["connect", &serve.url(), "--once"], b"ping\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "ping\n"), "{r:?}");
}

#[test]
fn timeout_exits_8() {
    let serve = Serve::start(&[]);
    // Stdin stays open and nothing comes back: only --timeout ends it.
    let r = run_holding(
        &["connect", &serve.url(), "--timeout", "500ms"],
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 8, "{r:?}");
    assert!(r.stderr.contains("timed out"), "{r:?}");
}

#[test]
fn show_pings_prints_each_keepalive_round_trip() {
    let serve = Serve::start(&[]);
    let r = run_holding(
        &[
            "connect",
            &serve.url(),
            "--ping-interval",
            "100ms",
            "--show-pings",
            "--timeout",
            "1s",
        ],
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 8, "{r:?}");
    let pings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("ping: ") && l.ends_with(" ms"))
        .collect();
    assert!(pings.len() >= 2, "{r:?}");
    // And as events with --jsonl.
    let r = run_holding(
        &[
            "connect",
            &serve.url(),
            "--ping-interval",
            "100ms",
            "--jsonl",
            "--timeout",
            "1s",
        ],
        b"",
        Duration::from_secs(30),
    );
    let ping = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "ping")
        .unwrap_or_else(|| panic!("no ping event: {r:?}"));
    assert!(ping["rtt_ms"].as_f64().is_some(), "{ping}");
    assert_eq!(ping["keepalive"], true);
}
