//! Flat records of named numbers and texts: what the child processes
//! report (one `key=value` per line, records separated by a blank line)
//! and what results.json is made of. Hand-written because the format is
//! this small and a JSON crate would be most of the build time it adds.

use std::collections::BTreeMap;
use std::fmt::Write;

/// A value in a record; a missing key stands for "none".
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Num(f64),
    Text(String),
}

/// Named values, kept in key order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record(BTreeMap<String, Field>);

impl Record {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a number; NaN and infinities are left out (JSON has none).
    pub fn num(mut self, key: &str, v: f64) -> Self {
        if v.is_finite() {
            self.0.insert(key.to_owned(), Field::Num(v));
        }
        self
    }

    /// Sets a number when there is one.
    pub fn opt(self, key: &str, v: Option<f64>) -> Self {
        match v {
            Some(v) => self.num(key, v),
            None => self,
        }
    }

    /// Sets a text; line breaks become spaces so that a record stays one
    /// line per key.
    pub fn text(mut self, key: &str, v: &str) -> Self {
        let v = v.replace(['\n', '\r'], " ");
        self.0.insert(key.to_owned(), Field::Text(v));
        self
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        match self.0.get(key) {
            Some(Field::Num(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn get_text(&self, key: &str) -> Option<&str> {
        match self.0.get(key) {
            Some(Field::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// The `key=value` lines of this record.
    pub fn to_lines(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.0 {
            let _ = match v {
                Field::Num(n) => writeln!(out, "{k}={n}"),
                Field::Text(t) => writeln!(out, "{k}={t}"),
            };
        }
        out
    }

    /// Parses records written by [`to_lines`](Self::to_lines), separated by
    /// blank lines. A value that parses as a number is one.
    pub fn parse_all(text: &str) -> Result<Vec<Record>, String> {
        let mut records = Vec::new();
        let mut current = Record::new();
        for line in text.lines() {
            if line.trim().is_empty() {
                if !current.0.is_empty() {
                    records.push(std::mem::take(&mut current));
                }
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("not key=value: {line:?}"))?;
            let field = match v.parse::<f64>() {
                Ok(n) => Field::Num(n),
                Err(_) => Field::Text(v.to_owned()),
            };
            current.0.insert(k.to_owned(), field);
        }
        if !current.0.is_empty() {
            records.push(current);
        }
        Ok(records)
    }

    /// The record as a JSON object.
    pub fn to_json(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Field::Num(n) => format!("{n}"),
                    Field::Text(t) => json_string(t),
                };
                format!("{}: {v}", json_string(k))
            })
            .collect();
        format!("{{{}}}", fields.join(", "))
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON array of already-encoded values, one per line.
pub fn json_array(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.is_empty() {
        return "[]".into();
    }
    format!("[\n  {}\n]", items.join(",\n  "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_lines() {
        let a = Record::new()
            .num("msgs_per_s", 1.5e6)
            .num("nan", f64::NAN)
            .opt("p50_us", None)
            .text("error", "bad\nthing=1");
        let b = Record::new().num("size", 64.0);
        let text = format!("{}\n{}", a.to_lines(), b.to_lines());
        let parsed = Record::parse_all(&text).unwrap();
        assert_eq!(parsed, vec![a.clone(), b]);
        assert_eq!(parsed[0].get("msgs_per_s"), Some(1.5e6));
        assert_eq!(parsed[0].get("nan"), None);
        assert_eq!(parsed[0].get_text("error"), Some("bad thing=1"));
        assert_eq!(
            a.to_json(),
            r#"{"error": "bad thing=1", "msgs_per_s": 1500000}"#
        );
        assert_eq!(json_string("a\"\\\u{1}"), r#""a\"\\\u0001""#);
    }
}
