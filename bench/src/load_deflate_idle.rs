//! The `deflate-idle` load: connections that negotiated permessage-deflate,
//! each had a few compressed JSON records echoed (so the server's inflater
//! and compressor both exist and hold context), then sit idle; reports the
//! server's resident memory per connection next to the compression ratio
//! of what it sent back and the extension parameters it agreed to.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

use flate2::{Decompress, FlushDecompress, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::load::{self, LoadConfig};
use crate::record::Record;
use crate::wire::{self, MessageReader, Received};

/// Records in the corpus; connection `k` sends records `k * messages ..`,
/// wrapping around, so neighbouring connections send different ones.
const CORPUS: usize = 1000;

/// No record of the corpus is longer (checked when the frames are made):
/// the window the server allows the client must hold one.
pub(crate) const LARGEST_RECORD: usize = 512;

/// Opens `cfg.connections` connections offering permessage-deflate, has
/// `cfg.messages` records echoed on each (checking every echo inflates to
/// the record sent), holds them open and reports memory and compression.
pub fn run_deflate_idle(cfg: &LoadConfig) -> io::Result<Record> {
    load::with_runtime(async {
        let corpus = crate::corpus::records(CORPUS);
        let frames: Vec<Vec<u8>> = corpus
            .iter()
            .map(|r| wire::masked_deflate_text(r.as_bytes()))
            .collect();
        assert!(corpus.iter().all(|r| r.len() <= LARGEST_RECORD));
        let rss0 = crate::procfs::rss_bytes(cfg.server_pid)?;
        let pings = Rc::new(Cell::new(0u64));
        let lost = Rc::new(RefCell::new(None::<String>));
        let mut extensions = BTreeSet::new();
        let mut totals = Totals::default();
        for k in 0..cfg.connections {
            // As in the idle scenario: 127.0.0.1 ... 127.0.0.8 in turn.
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (k % 8) as u8));
            let (mut stream, ext) = load::connect_negotiated(cfg, Some(source)).await?;
            extensions.extend(ext);
            // Window 15 inflates whatever window the server compresses
            // with; dropped once the connection's echoes are checked.
            let mut inflater = Decompress::new(false);
            let mut reader = MessageReader::default();
            for j in 0..cfg.messages {
                let i = (k * cfg.messages + j) % CORPUS;
                stream.write_all(&frames[i]).await?;
                stream.flush().await?;
                let echo = read_message(&mut stream, &mut reader).await?;
                totals.add(&echo, corpus[i].len());
                let text = if echo.compressed {
                    inflate(&mut inflater, &echo.payload)?
                } else {
                    echo.payload
                };
                if text != corpus[i].as_bytes() {
                    return Err(io::Error::other(format!(
                        "connection {k}: the echo of record {i} is not the record ({} bytes \
                         for {})",
                        text.len(),
                        corpus[i].len()
                    )));
                }
            }
            let (pings, lost) = (pings.clone(), lost.clone());
            tokio::task::spawn_local(async move {
                let e = load::answer_pings(stream, &pings).await;
                lost.borrow_mut().get_or_insert(e.to_string());
            });
        }
        let mut rec = load::hold(cfg, rss0, &pings, &lost).await?;
        let messages = (cfg.connections * cfg.messages) as f64;
        rec = rec
            .num("messages_per_conn", cfg.messages as f64)
            .num("json_bytes", totals.json as f64)
            .num("wire_bytes", totals.wire as f64)
            .num("wire_bytes_per_msg", totals.wire as f64 / messages)
            // JSON bytes per byte on the wire, frame headers included.
            .num("compression_ratio", totals.json as f64 / totals.wire as f64)
            .num("compressed_share", totals.compressed as f64 / messages);
        if let Some(x) = load::joined(extensions) {
            rec = rec.text("extensions", &x);
        }
        Ok(rec)
    })
}

/// What the echoes took on the wire.
#[derive(Default)]
struct Totals {
    /// JSON bytes echoed (the records' length).
    json: u64,
    /// Bytes of the echo frames, headers included.
    wire: u64,
    /// Echoes sent compressed (RSV1 set).
    compressed: u64,
}

impl Totals {
    /// An echo of a `json`-byte record.
    fn add(&mut self, echo: &Received, json: usize) {
        self.json += json as u64;
        self.wire += echo.wire_bytes as u64;
        self.compressed += u64::from(echo.compressed);
    }
}

/// Reads until `reader` has a whole data message.
async fn read_message(
    stream: &mut load::Stream,
    reader: &mut MessageReader,
) -> io::Result<Received> {
    let mut buf = [0u8; 4096];
    let unexpected = |e: wire::Unexpected| io::Error::other(format!("server sent opcode {}", e.0));
    if let Some(m) = reader.feed(&[]).map_err(unexpected)? {
        return Ok(m);
    }
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(m) = reader.feed(&buf[..n]).map_err(unexpected)? {
            return Ok(m);
        }
    }
}

/// Inflates one message's payload (RFC 7692 section 7.2.2: with the empty
/// block's tail appended). A message that ends the deflate stream (a final
/// block: the server keeps no context) resets the inflater for the next.
fn inflate(z: &mut Decompress, payload: &[u8]) -> io::Result<Vec<u8>> {
    let mut input = Vec::with_capacity(payload.len() + 4);
    input.extend_from_slice(payload);
    input.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    let mut out = Vec::with_capacity(payload.len() * 4 + 256);
    let start = z.total_in();
    loop {
        if out.capacity() - out.len() < 256 {
            out.reserve(out.capacity());
        }
        let before = (z.total_in(), z.total_out());
        let used = (z.total_in() - start) as usize;
        let status = z
            .decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
            .map_err(|e| io::Error::other(format!("the echo does not inflate: {e}")))?;
        if status == Status::StreamEnd {
            z.reset(false);
            return Ok(out);
        }
        let used = (z.total_in() - start) as usize;
        if used == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        if (z.total_in(), z.total_out()) == before {
            return Err(io::Error::other("the echo does not inflate: truncated"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's own frames (what raw TCP echoes) inflate to the
    /// records, one after another in one inflater.
    #[test]
    fn own_frames_inflate_in_one_stream() {
        let corpus = crate::corpus::records(5);
        let mut z = Decompress::new(false);
        for r in &corpus {
            let frame = wire::masked_deflate_text(r.as_bytes());
            let mut reader = MessageReader::default();
            let m = reader.feed(&frame).unwrap().unwrap();
            assert!(m.compressed);
            assert_eq!(m.wire_bytes, frame.len());
            assert_eq!(inflate(&mut z, &m.payload).unwrap(), r.as_bytes());
        }
    }

    /// A message that ends with a final block resets the inflater.
    #[test]
    fn final_block_resets() {
        use flate2::{Compress, Compression, FlushCompress};
        let mut z = Decompress::new(false);
        for text in [&b"first message, first message"[..], b"second"] {
            let mut c = Compress::new(Compression::default(), false);
            let mut out = Vec::with_capacity(128);
            c.compress_vec(text, &mut out, FlushCompress::Finish)
                .unwrap();
            assert_eq!(inflate(&mut z, &out).unwrap(), text);
        }
        assert!(inflate(&mut z, &[0xFF, 0xFF, 0xFF]).is_err());
    }
}
