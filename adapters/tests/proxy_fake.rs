//! The adapters' side of a proxy exchange against scripted fakes on
//! loopback, on smol, tokio and the mio loop, where real proxies cannot
//! be made to misbehave: replies cut into single bytes, then the
//! WebSocket handshake on the same socket; bytes behind the last reply;
//! a proxy that never answers or hangs up; and which refusals a
//! `Reconnector` retries. Needs nothing but Rust (`proxy.rs` has the
//! real proxies).

#![cfg(feature = "smol")]

mod proxies;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proxies::{options, RUNTIMES};
use tether::proxy::{ProxyConfig, ProxyError};
use tether::reconnect::{BackoffConfig, Failure, ReconnectEvent, ReconnectOptions, Reconnector};
use tether::{ClientOptions, Connector, HandshakeLimits, Message};

/// A fake proxy: each connection runs `script` on its own thread.
fn fake(script: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let script = Arc::new(script);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let script = script.clone();
            std::thread::spawn(move || script(stream));
        }
    });
    addr
}

fn via(scheme: &str, proxy: SocketAddr) -> ClientOptions {
    let url = format!("{scheme}://{proxy}");
    options().with_proxy(ProxyConfig::Explicit(url.parse().unwrap()))
}

/// Reads an HTTP request head; `None` if the client left first.
fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    String::from_utf8(head).ok()
}

/// Writes `bytes` one at a time, each in its own segment.
fn dribble(s: &mut TcpStream, bytes: &[u8]) {
    s.set_nodelay(true).unwrap();
    for b in bytes {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Becomes the target: a tether server that echoes, on this socket.
fn serve_websocket(s: TcpStream) {
    s.set_nonblocking(true).unwrap();
    smol::block_on(async {
        let s = smol::net::TcpStream::try_from(s).unwrap();
        let Ok(mut ws) = tether::smol::accept(s).await else {
            return;
        };
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Text(_)) && ws.send(m).await.is_err() {
                return;
            }
        }
    });
}

fn proxy_error(result: Result<(), tether::Error>) -> ProxyError {
    let e = result.expect_err("the proxy should have failed the connection");
    e.proxy_error()
        .cloned()
        .unwrap_or_else(|| panic!("not a proxy error: {e:?}"))
}

/// A SOCKS5 exchange with a password, every reply byte by byte, then
/// the WebSocket handshake through the "tunnel": the fake checks what it
/// is sent (the name, for socks5h://) and then is the server.
#[test]
fn socks5_replies_cut_into_bytes() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let proxy = fake(move |mut s| {
        let mut greeting = [0; 4];
        s.read_exact(&mut greeting).unwrap();
        assert_eq!(greeting, [5, 2, 0, 2]);
        dribble(&mut s, &[5, 2]);
        let mut auth = [0; 11];
        s.read_exact(&mut auth).unwrap();
        assert_eq!(&auth, b"\x01\x02me\x06secret");
        dribble(&mut s, &[1, 0]);
        let mut request = [0; 5 + 15 + 2];
        s.read_exact(&mut request).unwrap();
        log.lock().unwrap().push(request.to_vec());
        dribble(&mut s, &[5, 0, 0, 1, 192, 0, 2, 1, 0x1f, 0x90]);
        serve_websocket(s);
    });
    for &rt in RUNTIMES {
        let url = format!("socks5h://me:secret@{proxy}");
        let options = options().with_proxy(ProxyConfig::Explicit(url.parse().unwrap()));
        rt.echo("ws://example.invalid:8080/", options)
            .unwrap_or_else(|e| panic!("{rt:?}: {e}"));
    }
    let mut expected = vec![5, 1, 0, 3, 15];
    expected.extend_from_slice(b"example.invalid");
    expected.extend_from_slice(&8080u16.to_be_bytes());
    assert_eq!(*seen.lock().unwrap(), vec![expected; RUNTIMES.len()]);
}

/// An interim 100 and then 200, byte by byte, then the WebSocket
/// handshake on the same socket; the CONNECT names the target.
#[test]
fn http_replies_cut_into_bytes() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let proxy = fake(move |mut s| {
        let head = read_head(&mut s).unwrap();
        log.lock()
            .unwrap()
            .push(head.lines().next().unwrap().to_owned());
        dribble(
            &mut s,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        );
        serve_websocket(s);
    });
    for &rt in RUNTIMES {
        rt.echo("ws://example.invalid/", via("http", proxy))
            .unwrap_or_else(|e| panic!("{rt:?}: {e}"));
    }
    let line = "CONNECT example.invalid:80 HTTP/1.1".to_owned();
    assert_eq!(*seen.lock().unwrap(), vec![line; RUNTIMES.len()]);
}

/// Bytes behind the proxy's 200 came before the client sent anything
/// through the tunnel: a WebSocket server never speaks first.
#[test]
fn data_behind_the_reply_is_refused() {
    let proxy = fake(|mut s| {
        if read_head(&mut s).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nSSH-2.0-OpenSSH\r\n");
            let _ = s.read(&mut [0; 64]);
        }
    });
    for &rt in RUNTIMES {
        let e = proxy_error(rt.echo("ws://example.invalid/", via("http", proxy)));
        assert!(matches!(e, ProxyError::UnexpectedData(_)), "{rt:?}: {e:?}");
        assert!(!e.is_retryable());
    }
}

/// A proxy that reads the request and never answers: the exchange's
/// deadline (`limits.timeout`) ends it.
#[test]
fn silent_proxy_times_out() {
    let proxy = fake(|mut s| {
        // Hold the socket until the client gives up.
        while s.read(&mut [0; 64]).is_ok_and(|n| n > 0) {}
    });
    let limits = HandshakeLimits::default().with_timeout(Duration::from_millis(200));
    for &rt in RUNTIMES {
        for scheme in ["http", "socks5h"] {
            let options = via(scheme, proxy).with_limits(limits.clone());
            let e = proxy_error(rt.echo("ws://example.invalid/", options));
            assert_eq!(e, ProxyError::TimedOut, "{rt:?} {scheme}");
            assert!(e.is_retryable());
        }
    }
}

/// A proxy that hangs up before answering.
#[test]
fn proxy_hanging_up_is_eof() {
    let proxy = fake(|mut s| {
        // FIN, and no RST: what the client sends is read to its end.
        let _ = s.shutdown(std::net::Shutdown::Write);
        while s.read(&mut [0; 64]).is_ok_and(|n| n > 0) {}
    });
    for &rt in RUNTIMES {
        for scheme in ["http", "socks5h"] {
            let e = proxy_error(rt.echo("ws://example.invalid/", via(scheme, proxy)));
            assert_eq!(e, ProxyError::Eof, "{rt:?} {scheme}");
        }
    }
}

/// A target the proxy refuses by rule is not retried; one it cannot
/// reach now (503) is, until the attempts run out.
async fn reconnect_policy<R: Connector>() {
    let answer = |status: &'static str| {
        fake(move |mut s| {
            if read_head(&mut s).is_some() {
                let _ = s.write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes());
            }
        })
    };
    for (status, attempts, failure) in [
        ("407 Proxy Authentication Required", 1, Failure::Handshake),
        ("403 Forbidden", 1, Failure::Handshake),
        (
            "503 Service Unavailable",
            3,
            Failure::Connect(std::io::ErrorKind::ConnectionRefused),
        ),
    ] {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let retry = ReconnectOptions::default().with_backoff(
            BackoffConfig::default()
                .with_initial(Duration::from_millis(1))
                .with_jitter(0.0)
                .with_max_attempts(Some(2)),
        );
        let mut rc =
            Reconnector::<R>::new("ws://example.invalid/", via("http", answer(status)), retry)
                .on_event(move |e| seen.lock().unwrap().push(e.clone()));
        let Err(err) = rc.connect().await else {
            panic!("{status}: connected");
        };
        let code: u16 = status[..3].parse().unwrap();
        assert_eq!(
            err.proxy_error().and_then(ProxyError::http_status),
            Some(code)
        );
        let failed: Vec<_> = events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                ReconnectEvent::Failed { failure, .. } => Some(*failure),
                _ => None,
            })
            .collect();
        assert_eq!(failed, vec![failure; attempts], "{status}");
    }
}

#[test]
fn reconnect_policy_on_smol() {
    smol::block_on(reconnect_policy::<tether::smol::Smol>());
}

#[cfg(feature = "tokio")]
#[test]
fn reconnect_policy_on_tokio() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(reconnect_policy::<tether::tokio::Tokio>());
}
