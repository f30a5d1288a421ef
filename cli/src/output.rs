//! Where events go: data on stdout, status on stderr (coloured only on a
//! terminal without NO_COLOR), or everything as JSON lines on stdout.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{json, Value};

/// How binary payloads are written and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As they are (stdout gets the bytes and a newline).
    Raw,
    Hex,
    Base64,
}

impl Encoding {
    pub fn encode(self, data: &[u8]) -> String {
        match self {
            Self::Raw | Self::Base64 => base64::engine::general_purpose::STANDARD.encode(data),
            Self::Hex => hex(data),
        }
    }

    /// A line of stdin as a binary payload.
    pub fn decode(self, line: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Self::Raw => Ok(line.to_vec()),
            Self::Hex => unhex(line),
            Self::Base64 => base64::engine::general_purpose::STANDARD
                .decode(line.trim_ascii())
                .map_err(|e| format!("not base64: {e}")),
        }
    }
}

pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &[u8]) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if digits.len() % 2 != 0 {
        return Err("not hex: an odd number of digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| format!("not hex: {:?}", String::from_utf8_lossy(pair)))
        })
        .collect()
}

/// The event printer of one run.
#[derive(Debug, Clone)]
pub struct Output {
    pub jsonl: bool,
    pub encoding: Encoding,
    colour: bool,
}

const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

impl Output {
    pub fn new(jsonl: bool, encoding: Encoding) -> Self {
        Self {
            jsonl,
            encoding,
            colour: colour_on_stderr(),
        }
    }

    /// A received text message.
    pub fn text(&self, text: &str, prefix: &str) -> std::io::Result<()> {
        if self.jsonl {
            return self.event("message", json!({"type": "text", "data": text}));
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{prefix}{text}")?;
        out.flush()
    }

    /// A received binary message.
    pub fn binary(&self, data: &[u8], prefix: &str) -> std::io::Result<()> {
        if self.jsonl {
            let name = if self.encoding == Encoding::Hex {
                "hex"
            } else {
                "base64"
            };
            let payload = self.encoding.encode(data);
            return self.event(
                "message",
                json!({"type": "binary", "encoding": name, "data": payload}),
            );
        }
        let mut out = std::io::stdout().lock();
        out.write_all(prefix.as_bytes())?;
        match self.encoding {
            Encoding::Raw => out.write_all(data)?,
            e => out.write_all(e.encode(data).as_bytes())?,
        }
        out.write_all(b"\n")?;
        out.flush()
    }

    /// A JSON event line on stdout: `{"ts": …, "event": name, …fields}`.
    pub fn event(&self, name: &str, fields: Value) -> std::io::Result<()> {
        let mut object = json!({"ts": timestamp(SystemTime::now()), "event": name});
        if let (Value::Object(o), Value::Object(f)) = (&mut object, fields) {
            o.extend(f);
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{object}")?;
        out.flush()
    }

    /// A status line on stderr (or, with --jsonl, an event on stdout).
    pub fn status(&self, kind: Status, text: &str, event: Option<(&str, Value)>) {
        if self.jsonl {
            if let Some((name, fields)) = event {
                let _ = self.event(name, fields);
            }
            return;
        }
        self.note(kind, text);
    }

    /// A line on stderr whatever the mode.
    pub fn note(&self, kind: Status, text: &str) {
        let (on, off) = match (self.colour, kind) {
            (false, _) => ("", ""),
            (true, Status::Info) => (DIM, RESET),
            (true, Status::Good) => (GREEN, RESET),
            (true, Status::Warn) => (YELLOW, RESET),
            (true, Status::Bad) => (RED, RESET),
        };
        eprintln!("{on}{text}{off}");
    }
}

/// The tone of a status line.
#[derive(Debug, Clone, Copy)]
pub enum Status {
    Info,
    Good,
    Warn,
    Bad,
}

/// Colours when stderr is a terminal and NO_COLOR (https://no-color.org)
/// is unset or empty.
pub fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// RFC 3339 in UTC with milliseconds: `2026-12-05T08:05:04.123Z`.
pub fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm, written out here).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Milliseconds with three decimals, for round trips.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_764_921_904_123);
        assert_eq!(timestamp(t), "2025-12-05T08:05:04.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn encodings() {
        assert_eq!(unhex(b"00ff 10").unwrap(), vec![0, 255, 16]);
        assert!(unhex(b"0").is_err());
        assert!(unhex(b"zz").is_err());
        assert_eq!(Encoding::Hex.encode(&[1, 171]), "01ab");
        assert_eq!(Encoding::Base64.decode(b"aGk=").unwrap(), b"hi");
        assert!(Encoding::Base64.decode(b"***").is_err());
    }
}
