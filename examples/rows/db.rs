//! The data set: sensor readings in SQLite, generated once, read in
//! primary-key order by the server and written batch by batch by the
//! client together with its resume position.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tether::core::{Bytes, RandomSource, Xoshiro256};
use tether_resume::Position;

use super::codec::{Row, RowRef};

/// A boxed error that crosses threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS readings (
    id          INTEGER PRIMARY KEY,
    ts          INTEGER NOT NULL,
    device      INTEGER NOT NULL,
    temperature REAL NOT NULL,
    humidity    REAL NOT NULL,
    pressure    REAL NOT NULL,
    battery     REAL NOT NULL,
    status      TEXT NOT NULL
)";

const STATUSES: [&str; 6] = ["ok", "ok", "ok", "low-battery", "degraded", "recalibrated"];

/// Opens (creating if needed) a database for writing, tuned for bulk
/// loads: WAL, and `synchronous = NORMAL`, which survives a crash of the
/// program (not of the machine) with every committed transaction intact.
pub fn open_rw(path: &Path) -> rusqlite::Result<Connection> {
    let db = Connection::open(path)?;
    // Larger pages: fewer page splits and WAL frames per row appended.
    db.pragma_update(None, "page_size", 16384)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.execute_batch(SCHEMA)?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS resume_position (
            id INTEGER PRIMARY KEY CHECK (id = 0),
            next_seq INTEGER NOT NULL,
            cursor BLOB NOT NULL
        )",
    )?;
    Ok(db)
}

/// Opens the source read-only (one connection per served client).
pub fn open_ro(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// Rows in the table.
pub fn count(db: &Connection) -> rusqlite::Result<u64> {
    db.query_row("SELECT count(*) FROM readings", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// The readings of a source of `rows` rows, in primary-key order: 1 000
/// devices, one reading per device every 10 s from 2026-01-01,
/// deterministic for `seed`. Every source (SQLite or PostgreSQL) is filled
/// from here, so equal arguments give equal checksums.
pub fn generated_rows(rows: u64, seed: u64) -> impl Iterator<Item = Row> {
    let mut rng = Xoshiro256::from_seed(seed);
    let mut unit = move || f64::from(rng.next_u32()) / f64::from(u32::MAX);
    let start_ms = 1_767_225_600_000i64;
    (1..=rows as i64).map(move |id| {
        let device = (id % 1000) as u32;
        Row {
            id,
            ts_ms: start_ms + (id / 1000) * 10_000 + (unit() * 500.0) as i64,
            device,
            temperature: 15.0 + f64::from(device % 17) + unit() * 8.0,
            humidity: 30.0 + unit() * 50.0,
            pressure: 990.0 + unit() * 40.0,
            battery: (100.0 - unit() * 60.0) as f32,
            status: STATUSES[(unit() * STATUSES.len() as f64) as usize % STATUSES.len()].to_owned(),
        }
    })
}

/// Fills an empty source with `rows` readings (see [`generated_rows`]).
pub fn generate(db: &mut Connection, rows: u64, seed: u64) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO readings (id, ts, device, temperature, humidity, pressure, battery, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for row in generated_rows(rows, seed) {
            insert.execute(params![
                row.id,
                row.ts_ms,
                row.device,
                row.temperature,
                row.humidity,
                row.pressure,
                f64::from(row.battery),
                row.status
            ])?;
        }
    }
    tx.commit()
}

/// Reads up to `limit` rows after primary key `after`, encoding them into
/// `out`; returns how many and the last id.
pub fn read_after(
    db: &Connection,
    after: i64,
    limit: usize,
    out: &mut Vec<u8>,
) -> rusqlite::Result<(usize, i64)> {
    let mut stmt = db.prepare_cached(
        "SELECT id, ts, device, temperature, humidity, pressure, battery, status
         FROM readings WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![after, limit as i64])?;
    let (mut n, mut last) = (0, after);
    while let Some(r) = rows.next()? {
        let status = r.get_ref(7)?.as_str()?;
        Row::encode_fields(
            out,
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get::<_, f64>(5)?,
            r.get::<_, f64>(6)? as f32,
            status,
        );
        last = r.get(0)?;
        n += 1;
    }
    Ok((n, last))
}

/// Rows per INSERT statement: one statement with many rows costs SQLite
/// far less than as many one-row statements (8 values each, well under
/// SQLite's limit of 32 766 parameters).
const ROWS_PER_INSERT: usize = 64;

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO readings (id, ts, device, temperature, humidity, pressure, battery, status) VALUES ",
    );
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ",(" });
        sql.push_str(&["?"; 8].join(","));
        sql.push(')');
    }
    sql
}

/// Stores a batch's rows, decoded in place, and the position after them
/// in one transaction: the exactly-once guarantee of `tether_resume`
/// rests on this. Returns the rows stored. A row that is already there
/// (a duplicate) fails the primary key, and with it the transaction.
pub fn commit_batch(
    db: &mut Connection,
    payload: &[u8],
    after: &Position,
) -> Result<usize, BoxError> {
    let tx = db.transaction()?;
    let mut stored = 0;
    {
        let mut many = tx.prepare_cached(&insert_sql(ROWS_PER_INSERT))?;
        let mut one = tx.prepare_cached(&insert_sql(1))?;
        let mut rows = RowRef::iter(payload).peekable();
        let mut chunk = Vec::with_capacity(ROWS_PER_INSERT);
        while rows.peek().is_some() {
            chunk.clear();
            for row in rows.by_ref().take(ROWS_PER_INSERT) {
                chunk.push(row?);
            }
            if chunk.len() == ROWS_PER_INSERT {
                bind_rows(&mut many, &chunk)?;
                many.raw_execute()?;
            } else {
                // The batch's last few rows, one statement each.
                for row in &chunk {
                    bind_rows(&mut one, std::slice::from_ref(row))?;
                    one.raw_execute()?;
                }
            }
            stored += chunk.len();
        }
        tx.execute(
            "INSERT INTO resume_position (id, next_seq, cursor) VALUES (0, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET next_seq = excluded.next_seq, cursor = excluded.cursor",
            params![after.next_seq as i64, &after.cursor[..]],
        )?;
    }
    tx.commit()?;
    Ok(stored)
}

fn bind_rows(
    stmt: &mut rusqlite::CachedStatement<'_>,
    rows: &[RowRef<'_>],
) -> rusqlite::Result<()> {
    for (i, row) in rows.iter().enumerate() {
        let at = i * 8;
        stmt.raw_bind_parameter(at + 1, row.id)?;
        stmt.raw_bind_parameter(at + 2, row.ts_ms)?;
        stmt.raw_bind_parameter(at + 3, row.device)?;
        stmt.raw_bind_parameter(at + 4, row.temperature)?;
        stmt.raw_bind_parameter(at + 5, row.humidity)?;
        stmt.raw_bind_parameter(at + 6, row.pressure)?;
        stmt.raw_bind_parameter(at + 7, f64::from(row.battery))?;
        stmt.raw_bind_parameter(at + 8, row.status)?;
    }
    Ok(())
}

/// The stored resume position (the start when nothing is stored).
pub fn position(db: &Connection) -> rusqlite::Result<Position> {
    let row = db
        .query_row(
            "SELECT next_seq, cursor FROM resume_position WHERE id = 0",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?;
    Ok(match row {
        Some((next_seq, cursor)) => Position {
            next_seq: next_seq as u64,
            cursor: Bytes::from(cursor),
        },
        None => Position::default(),
    })
}

/// Row count and an order-sensitive 64-bit checksum of every field of
/// every row, by primary key: equal on both sides means the same rows.
pub fn checksum(db: &Connection) -> rusqlite::Result<(u64, u64)> {
    let mut stmt = db.prepare(
        "SELECT id, ts, device, temperature, humidity, pressure, battery, status
         FROM readings ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    let mut buf = Vec::with_capacity(128);
    let mut sum = Checksum::default();
    while let Some(r) = rows.next()? {
        buf.clear();
        Row::encode_fields(
            &mut buf,
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get::<_, f64>(6)? as f32,
            r.get_ref(7)?.as_str()?,
        );
        sum.add(&buf);
    }
    Ok(sum.value())
}

/// The checksum of [`checksum`], fed one encoded row at a time, so a
/// source of any kind computes the same value.
#[derive(Debug, Clone, Copy)]
pub struct Checksum {
    rows: u64,
    sum: u64,
}

impl Default for Checksum {
    fn default() -> Self {
        Self {
            rows: 0,
            sum: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl Checksum {
    /// Adds one row, in its canonical encoding ([`Row::encode_fields`]).
    pub fn add(&mut self, encoded_row: &[u8]) {
        // FNV-1a over the row's encoding, one word at a time.
        for w in encoded_row.chunks(8) {
            let mut word = [0u8; 8];
            word[..w.len()].copy_from_slice(w);
            self.sum = (self.sum ^ u64::from_le_bytes(word)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.rows += 1;
    }

    /// Rows added and the checksum.
    pub fn value(&self) -> (u64, u64) {
        (self.rows, self.sum)
    }
}
