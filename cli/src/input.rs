//! Stdin as a channel of lines, read by one task for the whole run so a
//! reconnect loses nothing, and the interactive mode's slash commands.

use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::mpsc;

/// Longest line read from stdin; a longer one is an error, not an
/// allocation without end.
const MAX_LINE: usize = 64 << 20;

/// A line of stdin (without its line ending), or why reading stopped.
pub type Line = Result<Vec<u8>, String>;

/// Reads stdin into a channel; the channel closes at end of input.
pub fn spawn_reader() -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        loop {
            let mut line = Vec::new();
            let read = (&mut stdin)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .await;
            let item = match read {
                Ok(0) => return,
                Ok(_) if line.len() > MAX_LINE && line.last() != Some(&b'\n') => {
                    Err(format!("a line of stdin is longer than {MAX_LINE} bytes"))
                }
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    Ok(line)
                }
                Err(e) => Err(format!("stdin: {e}")),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// A command typed in the interactive mode.
#[derive(Debug, PartialEq, Eq)]
pub enum Slash {
    Ping(String),
    Close(u16, String),
    Binary(Vec<u8>),
    /// Text to send as it is (a line starting with `//` loses one `/`).
    Send(String),
    Help,
    Quit,
}

pub const SLASH_HELP: &str = "\
/ping [TEXT]            ping the server and print the round trip
/close [CODE [REASON]]  close (default 1000) and wait for the server's close
/binary HEX             send a binary message
/quit                   close with 1000 and exit
//TEXT                  send /TEXT as text";

/// Parses a line that starts with `/`.
pub fn parse_slash(line: &str) -> Result<Slash, String> {
    if let Some(rest) = line.strip_prefix("//") {
        return Ok(Slash::Send(format!("/{rest}")));
    }
    let line = line.trim_start_matches('/');
    let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match name {
        "ping" => Ok(Slash::Ping(rest.to_owned())),
        "close" => {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let code = if code.is_empty() {
                1000
            } else {
                code.parse::<u16>()
                    .ok()
                    .filter(|c| tether::CloseCode(*c).is_sendable())
                    .ok_or_else(|| {
                        format!("/close: {code:?} is not a close code one may send (1000-1003, 1007-1014, 3000-4999)")
                    })?
            };
            Ok(Slash::Close(code, reason.trim().to_owned()))
        }
        "binary" => crate::output::unhex(rest.as_bytes())
            .map(Slash::Binary)
            .map_err(|e| format!("/binary: {e}")),
        "help" | "?" => Ok(Slash::Help),
        "quit" | "exit" | "q" => Ok(Slash::Quit),
        _ => Err(format!("unknown command /{name}; /help lists them")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_commands() {
        assert_eq!(parse_slash("/ping"), Ok(Slash::Ping(String::new())));
        assert_eq!(parse_slash("/close"), Ok(Slash::Close(1000, String::new())));
        assert_eq!(
            parse_slash("/close 4000 all done"),
            Ok(Slash::Close(4000, "all done".into()))
        );
        assert!(parse_slash("/close 1006").is_err());
        assert!(parse_slash("/close abc").is_err());
        assert_eq!(parse_slash("/binary 00ff"), Ok(Slash::Binary(vec![0, 255])));
        assert!(parse_slash("/binary xyz").is_err());
        assert_eq!(parse_slash("//hi"), Ok(Slash::Send("/hi".into())));
        assert_eq!(parse_slash("/quit"), Ok(Slash::Quit));
        assert!(parse_slash("/nope").is_err());
    }
}
