//! PostgreSQL as the source: the table every server instance reads, so a
//! client may resume on any of them.
//!
//! The driver is the synchronous `postgres` crate. The rows server runs
//! on smol, and already reads its source on a thread of its own, one
//! batch ahead of the connection; a blocking client fits there unchanged
//! and keeps database waits off the executor. `tokio-postgres` would need
//! a tokio runtime beside smol to drive its connection task; `postgres`
//! is that same client with a small runtime of its own per connection,
//! hidden behind blocking calls.
//!
//! Pagination is by key, never by offset: each batch is `WHERE id > $1
//! ORDER BY id LIMIT $2` from the cursor the client sent (the last id it
//! stored), an index range scan that costs the same at row 10 and at row
//! 10 million, and needs nothing remembered by the instance that served
//! the batch before.

use postgres::{Client, NoTls, Statement};

use super::codec::Row;
use super::db::{generated_rows, BoxError, Checksum};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS readings (
    id          bigint PRIMARY KEY,
    ts          bigint NOT NULL,
    device      integer NOT NULL,
    temperature double precision NOT NULL,
    humidity    double precision NOT NULL,
    pressure    double precision NOT NULL,
    battery     double precision NOT NULL,
    status      text NOT NULL
)";

const SELECT_AFTER: &str = "SELECT id, ts, device, temperature, humidity, pressure, battery, status
    FROM readings WHERE id > $1 ORDER BY id LIMIT $2";

/// Connects to `url` (`postgres://user@host:port/dbname`), without TLS:
/// the demo's server is on loopback.
pub fn connect(url: &str) -> Result<Client, BoxError> {
    Client::connect(url, NoTls).map_err(|e| format!("PostgreSQL at {url}: {e}").into())
}

/// A connection reading the table in key order.
pub struct Reader {
    client: Client,
    select: Statement,
}

impl Reader {
    /// Connects and prepares the keyset query.
    pub fn open(url: &str) -> Result<Self, BoxError> {
        let mut client = connect(url)?;
        let select = client.prepare(SELECT_AFTER)?;
        Ok(Self { client, select })
    }

    /// Reads up to `limit` rows after primary key `after`, encoding them
    /// into `out`; returns how many and the last id (as
    /// `db::read_after` does for SQLite).
    pub fn read_after(
        &mut self,
        after: i64,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(usize, i64), BoxError> {
        let limit = i64::try_from(limit)?;
        let rows = self.client.query(&self.select, &[&after, &limit])?;
        let mut last = after;
        for r in &rows {
            let device: i32 = r.try_get(2)?;
            let battery: f64 = r.try_get(6)?;
            last = r.try_get(0)?;
            Row::encode_fields(
                out,
                last,
                r.try_get(1)?,
                u32::try_from(device).map_err(|_| format!("row {last}: negative device"))?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
                battery as f32,
                r.try_get(7)?,
            );
        }
        Ok((rows.len(), last))
    }
}

/// Rows in the table (0 when there is no table yet).
pub fn count(client: &mut Client) -> Result<u64, BoxError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('readings') IS NOT NULL", &[])?
        .try_get(0)?;
    if !exists {
        return Ok(0);
    }
    let n: i64 = client
        .query_one("SELECT count(*) FROM readings", &[])?
        .try_get(0)?;
    Ok(u64::try_from(n)?)
}

/// Makes the table hold exactly the `rows` readings of `seed` (the rows
/// of `db::generate`, so the same checksum as the SQLite source): does
/// nothing when it already holds that many, else empties it and fills it
/// with COPY, the bulk path (one statement, rows streamed as text).
/// Returns whether it filled.
pub fn ensure(client: &mut Client, rows: u64, seed: u64) -> Result<bool, BoxError> {
    client.batch_execute(SCHEMA)?;
    if count(client)? == rows {
        return Ok(false);
    }
    let mut tx = client.transaction()?;
    tx.batch_execute("TRUNCATE readings")?;
    {
        use std::io::Write;
        let mut copy = tx.copy_in(
            "COPY readings (id, ts, device, temperature, humidity, pressure, battery, status) FROM STDIN",
        )?;
        let mut line = String::with_capacity(128);
        for row in generated_rows(rows, seed) {
            use std::fmt::Write as _;
            line.clear();
            // `{}` prints the shortest decimal that reads back to the same
            // f64, so every value arrives bit for bit (the checksum needs
            // that); the battery goes through f64 as in SQLite.
            writeln!(
                line,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                row.id,
                row.ts_ms,
                row.device,
                row.temperature,
                row.humidity,
                row.pressure,
                f64::from(row.battery),
                row.status
            )?;
            copy.write_all(line.as_bytes())?;
        }
        copy.finish()?;
    }
    tx.commit()?;
    client.batch_execute("ANALYZE readings")?;
    Ok(true)
}

/// Row count and checksum of the table, the same function of the rows as
/// `db::checksum`, read in key order a page at a time.
pub fn checksum(url: &str) -> Result<(u64, u64), BoxError> {
    let mut reader = Reader::open(url)?;
    let (mut after, mut page, mut row) = (0, Vec::new(), Vec::with_capacity(128));
    let mut sum = Checksum::default();
    loop {
        page.clear();
        let (n, last) = reader.read_after(after, 50_000, &mut page)?;
        if n == 0 {
            return Ok(sum.value());
        }
        for r in super::codec::RowRef::iter(&page) {
            row.clear();
            r?.to_owned().encode(&mut row);
            sum.add(&row);
        }
        after = last;
    }
}
