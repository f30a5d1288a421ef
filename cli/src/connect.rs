//! `tether connect`: stdin to messages, messages to stdout, optionally
//! reconnecting. Protocol behaviour (keepalive, close handshake, backoff,
//! proxies, TLS) is the library's; this file wires it to the terminal.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tether::http::{HeaderName, HeaderValue};
use tether::proxy::{Proxy, ProxyConfig};
use tether::reconnect::{Failure, ReconnectEvent, ReconnectOptions, Reconnector};
use tether::{ClientOptions, CloseFrame, Config, Error, Message};
use tokio::sync::mpsc;

use crate::args::ConnectArgs;
use crate::exit;
use crate::input::{self, Line, Slash};
use crate::output::{millis, Encoding, Output, Status};

type Ws = tether::tokio::WebSocket;

/// Runs `tether connect` and returns the exit status.
pub async fn run(args: ConnectArgs) -> u8 {
    let encoding = if args.hex {
        Encoding::Hex
    } else if args.base64 {
        Encoding::Base64
    } else {
        Encoding::Raw
    };
    let out = Output::new(args.jsonl, encoding);
    let options = match client_options(&args, &out) {
        Ok(o) => o,
        Err((code, e)) => {
            out.note(Status::Bad, &format!("tether: {e}"));
            return code;
        }
    };
    let interactive = std::io::stdin().is_terminal() && !args.no_interactive;
    let mut session = Session {
        binary: args.binary || args.hex || args.base64,
        interactive,
        show_pings: args.show_pings,
        count: args.count,
        once: args.once,
        out: out.clone(),
        received: 0,
        pings: HashMap::new(),
        next_ping: 0,
        input: input::spawn_reader(),
        input_open: true,
        local_error: false,
    };
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let work = async {
        if args.reconnect {
            reconnecting(&args.url, options, &mut session).await
        } else {
            once(&args.url, options, &mut session).await
        }
    };
    match deadline {
        None => work.await,
        Some(at) => match tokio::time::timeout_at(at, work).await {
            Ok(code) => code,
            Err(_) => {
                out.status(
                    Status::Warn,
                    "timed out (--timeout)",
                    Some(("error", json!({"message": "timed out (--timeout)"}))),
                );
                exit::TIMEOUT
            }
        },
    }
}

/// The request settings the flags ask for; the status and message of a
/// bad flag (2) or a certificate file that cannot be used (1).
fn client_options(args: &ConnectArgs, out: &Output) -> Result<ClientOptions, (u8, String)> {
    let usage = |e: String| (exit::USAGE, e);
    let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
    let config = Config::default()
        .with_ping_interval(nonzero(args.ping_interval))
        .with_ping_timeout(nonzero(args.ping_timeout));
    let mut headers = tether::http::HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| usage(format!("--header {h:?}: expected `Name: value`")))?;
        let name = HeaderName::try_from(name.trim()).map_err(|_| {
            usage(format!(
                "--header {h:?}: {:?} is not a header name",
                name.trim()
            ))
        })?;
        let value = HeaderValue::try_from(value.trim())
            .map_err(|_| usage(format!("--header {h:?}: the value is not a header value")))?;
        headers.append(name, value);
    }
    let proxy = match (&args.proxy, args.no_proxy) {
        (Some(url), _) => ProxyConfig::Explicit(
            Proxy::parse(url).map_err(|e| usage(format!("--proxy {url:?}: {e}")))?,
        ),
        (None, true) => ProxyConfig::Direct,
        (None, false) => ProxyConfig::FromEnv,
    };
    let tls = crate::tls::client_config(&crate::tls::TlsFlags {
        cacert: args.cacert.as_deref(),
        cert: args.cert.as_deref(),
        key: args.key.as_deref(),
        insecure: args.insecure,
    })
    .map_err(|e| (exit::FAILURE, e))?;
    if args.insecure {
        out.note(
            Status::Warn,
            "tether: WARNING: --insecure: the server's certificate is NOT checked; \
             anyone on the path can read and change this connection",
        );
    }
    let mut options = ClientOptions::default()
        .with_config(config)
        .with_origin(args.origin.clone())
        .with_protocols(args.subprotocols.clone())
        .with_headers(headers)
        .with_proxy(proxy)
        .with_deflate(if args.compress {
            vec![tether::DeflateConfig::default()]
        } else {
            Vec::new()
        });
    if let Some(tls) = tls {
        options = options.with_tls(tls);
    }
    Ok(options)
}

/// One connection, no retry.
async fn once(url: &str, options: ClientOptions, s: &mut Session) -> u8 {
    match tether::tokio::connect_with(url, options).await {
        Ok(ws) => {
            s.opened(url, &ws);
            s.run(ws).await.code
        }
        Err(e) => s.connect_failed(&e),
    }
}

/// Connections made again by the library's [`Reconnector`] until a
/// session ends in a way its policy does not retry.
async fn reconnecting(url: &str, options: ClientOptions, s: &mut Session) -> u8 {
    let out = s.out.clone();
    let mut rc = Reconnector::tokio(url, options, ReconnectOptions::default())
        .on_event(move |ev| reconnect_event(&out, ev));
    loop {
        let ws = match rc.connect().await {
            Ok(ws) => ws,
            Err(e) => return s.connect_failed(&e),
        };
        s.opened(url, &ws);
        let end = s.run(ws).await;
        match end.failure {
            // Ended here (EOF, -n, /quit): nothing to retry.
            None => return end.code,
            Some(failure) => {
                if rc.session_ended(failure).is_err() {
                    return end.code;
                }
            }
        }
    }
}

fn reconnect_event(out: &Output, ev: &ReconnectEvent) {
    match ev {
        ReconnectEvent::Disconnected {
            failure,
            up_for,
            retry,
        } => out.status(
            Status::Warn,
            &format!(
                "disconnected ({failure}) after {:.1}s{}",
                up_for.as_secs_f64(),
                if *retry { "; reconnecting" } else { "" }
            ),
            Some((
                "disconnect",
                json!({"reason": failure.to_string(), "up_for_s": up_for.as_secs_f64(), "retry": retry}),
            )),
        ),
        ReconnectEvent::Waiting { attempt, delay } => out.status(
            Status::Info,
            &format!(
                "reconnecting in {:.0} ms (attempt {attempt})",
                millis(*delay)
            ),
            Some((
                "reconnect",
                json!({"attempt": attempt, "delay_ms": millis(*delay)}),
            )),
        ),
        ReconnectEvent::Failed {
            attempt,
            failure,
            retry,
        } => out.status(
            Status::Warn,
            &format!(
                "attempt {attempt} failed: {failure}{}",
                if *retry { "" } else { " (not retried)" }
            ),
            Some((
                "error",
                json!({"message": format!("attempt {attempt} failed: {failure}"), "retry": retry}),
            )),
        ),
        ReconnectEvent::GaveUp { attempts, failure } => out.status(
            Status::Bad,
            &format!("gave up after {attempts} attempts: {failure}"),
            None,
        ),
        _ => {}
    }
}

/// What a session needs from one run to the next.
struct Session {
    binary: bool,
    interactive: bool,
    show_pings: bool,
    count: Option<u64>,
    once: bool,
    out: Output,
    /// Data messages received, over every connection of the run.
    received: u64,
    /// `/ping`s awaiting their pong: payload and when it was sent.
    pings: HashMap<Vec<u8>, Instant>,
    next_ping: u64,
    input: mpsc::Receiver<Line>,
    input_open: bool,
    /// A line could not be sent (bad hex, not UTF-8): the status is 1
    /// when the session otherwise ends well.
    local_error: bool,
}

/// How a session ended.
struct End {
    code: u8,
    /// What to tell the reconnector; `None` when this side ended it.
    failure: Option<Failure>,
}

impl Session {
    fn opened(&self, url: &str, ws: &Ws) {
        let protocol = ws.protocol().map(str::to_owned);
        self.out.status(
            Status::Good,
            &format!(
                "connected to {url}{}",
                protocol
                    .as_deref()
                    .map(|p| format!(" (subprotocol {p})"))
                    .unwrap_or_default()
            ),
            Some(("open", json!({"url": url, "subprotocol": protocol}))),
        );
        if self.interactive {
            eprintln!("type a line to send it; /help lists the commands");
            self.reprompt();
        }
    }

    fn connect_failed(&self, e: &Error) -> u8 {
        self.out.status(
            Status::Bad,
            &format!("tether: cannot connect: {e}"),
            Some((
                "error",
                json!({"message": format!("cannot connect: {e}"), "http_status": e.http_status()}),
            )),
        );
        exit::CONNECT
    }

    fn prefix(&self) -> &'static str {
        if self.interactive && !self.out.jsonl {
            "< "
        } else {
            ""
        }
    }

    /// Clears the prompt before a line is printed over it.
    fn clear_prompt(&self) {
        if self.interactive {
            eprint!("\r\x1b[K");
        }
    }

    fn reprompt(&self) {
        if self.interactive && self.input_open {
            eprint!("> ");
        }
    }

    /// Runs one open connection to its end.
    async fn run(&mut self, ws: Ws) -> End {
        let mut ws = ws;
        // Set once this side sent a close frame.
        let mut closing = false;
        let mut peer_close: Option<Option<CloseFrame>> = None;
        let mut error: Option<Error> = None;
        // With --once or -n already met by earlier connections, end now.
        if self.done() {
            closing = self.close(&mut ws, 1000, "").await;
        }
        loop {
            tokio::select! {
                item = ws.next() => match item {
                    None => break,
                    Some(Ok(msg)) => {
                        if let Some(frame) = self.incoming(&ws, msg) {
                            peer_close = Some(frame);
                        }
                        if !closing && self.done() {
                            closing = self.close(&mut ws, 1000, "").await;
                        }
                    }
                    Some(Err(e)) => {
                        self.clear_prompt();
                        self.out.status(
                            Status::Bad,
                            &format!("error: {e}"),
                            Some(("error", json!({"message": e.to_string(), "close_code": e.close_code().map(|c| c.0)}))),
                        );
                        error.get_or_insert(e);
                    }
                },
                line = self.input.recv(), if self.input_open && !closing => match line {
                    Some(Ok(line)) => {
                        if let Some(code) = self.line(&mut ws, line).await {
                            closing = code;
                        }
                    }
                    Some(Err(e)) => {
                        self.out.note(Status::Bad, &format!("tether: {e}"));
                        self.local_error = true;
                        self.input_open = false;
                        closing = self.close(&mut ws, 1000, "").await;
                    }
                    None => {
                        self.input_open = false;
                        // EOF: close now, unless --once still awaits its reply
                        // or -n its messages.
                        if !self.once && self.count.is_none() || self.done() {
                            closing = self.close(&mut ws, 1000, "").await;
                        }
                    }
                },
            }
        }
        let mut end = match (&error, &peer_close, closing) {
            (Some(e), _, _) if peer_close.is_none() || !closing => End {
                code: exit::for_session_error(e),
                failure: Some(Failure::from(e)),
            },
            (_, Some(_), true) => End {
                code: exit::OK,
                failure: None,
            },
            (_, Some(frame), false) => End {
                code: exit::for_close(frame.as_ref()),
                failure: Some(Failure::from_close(frame.as_ref())),
            },
            (_, None, _) => {
                self.out.status(
                    Status::Bad,
                    "connection ended without a close frame (1006)",
                    Some((
                        "close",
                        json!({"code": 1006, "reason": "", "abnormal": true}),
                    )),
                );
                End {
                    code: exit::ABNORMAL,
                    failure: Some(Failure::Close(1006)),
                }
            }
        };
        if end.code == exit::OK && self.local_error {
            end.code = exit::FAILURE;
        }
        end
    }

    /// Whether -n or --once is satisfied.
    fn done(&self) -> bool {
        match (self.count, self.once) {
            (Some(n), _) => self.received >= n,
            (None, true) => !self.input_open && self.received >= 1,
            (None, false) => false,
        }
    }

    /// Sends a close frame; true when the close handshake started.
    async fn close(&mut self, ws: &mut Ws, code: u16, reason: &str) -> bool {
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.to_owned(),
        };
        // An error means the peer's close came first: the stream ends by
        // itself all the same.
        let _ = ws.send(Message::Close(Some(frame))).await;
        true
    }

    /// Handles a message from the server; returns the peer's close frame.
    fn incoming(&mut self, ws: &Ws, msg: Message) -> Option<Option<CloseFrame>> {
        let printed = match msg {
            Message::Text(t) => {
                self.received += 1;
                self.clear_prompt();
                self.out.text(t.as_str(), self.prefix())
            }
            Message::Binary(b) => {
                self.received += 1;
                self.clear_prompt();
                if self.interactive && self.out.encoding == Encoding::Raw && !self.out.jsonl {
                    // Raw bytes would garble a terminal: show them in hex.
                    let shown = format!("[binary, {} bytes] {}", b.len(), crate::output::hex(&b));
                    self.out.text(&shown, self.prefix())
                } else {
                    self.out.binary(&b, self.prefix())
                }
            }
            Message::Pong(payload) => {
                if let Some(rtt) = ws.pong_latency() {
                    if self.show_pings || self.out.jsonl {
                        self.clear_prompt();
                        self.out.status(
                            Status::Info,
                            &format!("ping: {:.3} ms", millis(rtt)),
                            Some(("ping", json!({"rtt_ms": millis(rtt), "keepalive": true}))),
                        );
                    }
                } else if let Some(sent) = self.pings.remove(&payload[..]) {
                    let rtt = sent.elapsed();
                    self.clear_prompt();
                    self.out.status(
                        Status::Info,
                        &format!("pong: {:.3} ms", millis(rtt)),
                        Some(("ping", json!({"rtt_ms": millis(rtt), "keepalive": false}))),
                    );
                }
                Ok(())
            }
            Message::Ping(_) => return None,
            Message::Close(frame) => {
                self.clear_prompt();
                let (code, reason) = frame
                    .as_ref()
                    .map_or((1005, ""), |f| (f.code.0, f.reason.as_str()));
                self.out.status(
                    if exit::for_close(frame.as_ref()) == exit::OK {
                        Status::Good
                    } else {
                        Status::Warn
                    },
                    format!("closed: {code} {reason}").trim_end(),
                    Some(("close", json!({"code": code, "reason": reason}))),
                );
                return Some(frame);
            }
        };
        if let Err(e) = printed {
            // stdout is gone (a closed pipe): stop reading it and end.
            self.out.note(Status::Bad, &format!("tether: stdout: {e}"));
            self.local_error = true;
            self.count = Some(0);
        }
        self.reprompt();
        None
    }

    /// Handles a line of stdin; `Some(true)` when it started the close.
    async fn line(&mut self, ws: &mut Ws, line: Vec<u8>) -> Option<bool> {
        let msg = if self.interactive && line.first() == Some(&b'/') {
            let text = String::from_utf8_lossy(&line).into_owned();
            match input::parse_slash(&text) {
                Ok(Slash::Send(t)) => Message::text(t),
                Ok(Slash::Binary(b)) => Message::binary(b),
                Ok(Slash::Ping(text)) => {
                    self.next_ping += 1;
                    let payload = if text.is_empty() {
                        format!("tether-ping-{}", self.next_ping).into_bytes()
                    } else {
                        text.into_bytes()
                    };
                    if payload.len() > 125 {
                        self.out.note(Status::Bad, "/ping: at most 125 bytes");
                        self.reprompt();
                        return None;
                    }
                    self.pings.insert(payload.clone(), Instant::now());
                    Message::Ping(payload.into())
                }
                Ok(Slash::Close(code, reason)) => {
                    return Some(self.close(ws, code, &reason).await);
                }
                Ok(Slash::Quit) => return Some(self.close(ws, 1000, "").await),
                Ok(Slash::Help) => {
                    eprintln!("{}", input::SLASH_HELP);
                    self.reprompt();
                    return None;
                }
                Err(e) => {
                    self.out.note(Status::Bad, &e);
                    self.reprompt();
                    return None;
                }
            }
        } else if self.binary {
            match self.out.encoding.decode(&line) {
                Ok(b) => Message::binary(b),
                Err(e) => return self.bad_line(e),
            }
        } else {
            match String::from_utf8(line) {
                Ok(t) => Message::text(t),
                Err(_) => {
                    return self.bad_line("a line is not UTF-8; send it with --binary".to_owned())
                }
            }
        };
        if let Err(e) = ws.send(msg).await {
            self.out.note(Status::Bad, &format!("tether: send: {e}"));
        }
        self.reprompt();
        None
    }

    fn bad_line(&mut self, e: String) -> Option<bool> {
        self.out
            .note(Status::Bad, &format!("tether: line not sent: {e}"));
        if !self.interactive {
            self.local_error = true;
        }
        self.reprompt();
        None
    }
}
