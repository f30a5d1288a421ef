//! The batch encoding: rows back to back, fixed-width little-endian
//! fields and a length-prefixed status.
//!
//! Why not JSON: formatting and parsing floats is most of JSON's cost, a
//! decimal float does not always come back bit for bit, and the rows would
//! be about 2.5 times larger. Here a row is 49 bytes plus its status, it is
//! written with a few `extend_from_slice` calls, read with a few loads,
//! and every value round-trips exactly (the checksum depends on that).

use std::fmt;

/// One sensor reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Primary key, increasing.
    pub id: i64,
    /// Unix time in milliseconds.
    pub ts_ms: i64,
    /// Which device sent it.
    pub device: u32,
    /// Degrees Celsius.
    pub temperature: f64,
    /// Percent.
    pub humidity: f64,
    /// Hectopascal.
    pub pressure: f64,
    /// Percent.
    pub battery: f32,
    /// A short state word.
    pub status: String,
}

/// Fixed-width part of an encoded row.
pub const FIXED_LEN: usize = 8 + 8 + 4 + 8 + 8 + 8 + 4 + 1;

/// A batch that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad row batch: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl Row {
    /// Appends the encoding of a row given field by field (the server
    /// encodes straight from SQLite's row, with no `Row` in between).
    #[allow(clippy::too_many_arguments)]
    pub fn encode_fields(
        out: &mut Vec<u8>,
        id: i64,
        ts_ms: i64,
        device: u32,
        temperature: f64,
        humidity: f64,
        pressure: f64,
        battery: f32,
        status: &str,
    ) {
        let status = &status.as_bytes()[..status.len().min(255)];
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&ts_ms.to_le_bytes());
        out.extend_from_slice(&device.to_le_bytes());
        out.extend_from_slice(&temperature.to_le_bytes());
        out.extend_from_slice(&humidity.to_le_bytes());
        out.extend_from_slice(&pressure.to_le_bytes());
        out.extend_from_slice(&battery.to_le_bytes());
        out.push(status.len() as u8);
        out.extend_from_slice(status);
    }

    /// Appends this row's encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        Self::encode_fields(
            out,
            self.id,
            self.ts_ms,
            self.device,
            self.temperature,
            self.humidity,
            self.pressure,
            self.battery,
            &self.status,
        );
    }

    /// Decodes a whole batch into `rows` (cleared first).
    pub fn decode_all(b: &[u8], rows: &mut Vec<Row>) -> Result<(), DecodeError> {
        rows.clear();
        for row in RowRef::iter(b) {
            rows.push(row?.to_owned());
        }
        Ok(())
    }
}

/// A row decoded in place: the status borrows the batch, so a batch is
/// stored with no allocation per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowRef<'a> {
    /// See [`Row`].
    pub id: i64,
    /// See [`Row`].
    pub ts_ms: i64,
    /// See [`Row`].
    pub device: u32,
    /// See [`Row`].
    pub temperature: f64,
    /// See [`Row`].
    pub humidity: f64,
    /// See [`Row`].
    pub pressure: f64,
    /// See [`Row`].
    pub battery: f32,
    /// See [`Row`].
    pub status: &'a str,
}

impl<'a> RowRef<'a> {
    /// The rows of a batch, in order; an error ends it.
    pub fn iter(mut b: &'a [u8]) -> impl Iterator<Item = Result<RowRef<'a>, DecodeError>> {
        std::iter::from_fn(move || {
            if b.is_empty() {
                return None;
            }
            let row = Self::decode(b);
            match row {
                Ok((row, rest)) => {
                    b = rest;
                    Some(Ok(row))
                }
                Err(e) => {
                    b = &[];
                    Some(Err(e))
                }
            }
        })
    }

    fn decode(b: &'a [u8]) -> Result<(RowRef<'a>, &'a [u8]), DecodeError> {
        if b.len() < FIXED_LEN {
            return Err(DecodeError("truncated row"));
        }
        let (fixed, rest) = b.split_at(FIXED_LEN);
        let status_len = fixed[FIXED_LEN - 1] as usize;
        if rest.len() < status_len {
            return Err(DecodeError("truncated status"));
        }
        let (status, rest) = rest.split_at(status_len);
        let status = std::str::from_utf8(status).map_err(|_| DecodeError("status not UTF-8"))?;
        let at = |i: usize| -> [u8; 8] { fixed[i..i + 8].try_into().expect("8 bytes") };
        let row = RowRef {
            id: i64::from_le_bytes(at(0)),
            ts_ms: i64::from_le_bytes(at(8)),
            device: u32::from_le_bytes(fixed[16..20].try_into().expect("4 bytes")),
            temperature: f64::from_le_bytes(at(20)),
            humidity: f64::from_le_bytes(at(28)),
            pressure: f64::from_le_bytes(at(36)),
            battery: f32::from_le_bytes(fixed[44..48].try_into().expect("4 bytes")),
            status,
        };
        Ok((row, rest))
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Row {
        Row {
            id: self.id,
            ts_ms: self.ts_ms,
            device: self.device,
            temperature: self.temperature,
            humidity: self.humidity,
            pressure: self.pressure,
            battery: self.battery,
            status: self.status.to_owned(),
        }
    }
}

/// The server's cursor: the last primary key sent, big-endian.
pub fn cursor(last_id: i64) -> [u8; 8] {
    last_id.to_be_bytes()
}

/// The primary key a cursor stands after (0, before every row, for the
/// empty cursor of a fresh receiver).
pub fn after_id(cursor: &[u8]) -> Result<i64, DecodeError> {
    match cursor.len() {
        0 => Ok(0),
        8 => Ok(i64::from_be_bytes(cursor.try_into().expect("8 bytes"))),
        _ => Err(DecodeError("cursor is not a primary key")),
    }
}
