//! Messages larger than any buffer, streamed both ways over loopback: sent
//! from a byte stream with `send_stream`, received with `next_chunk`, with
//! and without compression, on smol and tokio (each test where its
//! runtime's feature, and `deflate` for the compressed ones, is on).

#![cfg(any(feature = "smol", feature = "tokio"))]

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use tether::{ClientOptions, Config, DataKind, ServerOptions};

/// Far above every configured buffer (the default message limit is
/// 64 MiB, and chunk delivery applies none); 256 MiB in release builds, a
/// bit less in debug ones so CI stays quick.
const TOTAL: usize = if cfg!(debug_assertions) {
    80 << 20
} else {
    256 << 20
};
const PIECE: usize = 1 << 20;

/// One pseudo-random MiB, made once.
fn base() -> &'static [u8] {
    static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..PIECE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    })
}

/// Piece `i`: the base with its index in the first 8 bytes, so order and
/// content are both checked without holding the message.
fn piece(i: usize) -> Bytes {
    let mut v = base().to_vec();
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Bytes::from(v)
}

fn source() -> impl futures_util::Stream<Item = io::Result<Bytes>> {
    stream::iter((0..TOTAL / PIECE).map(|i| Ok(piece(i))))
}

/// Checks chunks against the pieces as they come; records the byte count
/// and the largest chunk seen.
struct Checker {
    seen: usize,
    largest: usize,
}

impl Checker {
    fn take(&mut self, mut data: &[u8]) {
        self.largest = self.largest.max(data.len());
        while !data.is_empty() {
            let (i, j) = (self.seen / PIECE, self.seen % PIECE);
            let n = data.len().min(PIECE - j);
            let index = (i as u64).to_le_bytes();
            let ok = (j..(j + n).min(8)).all(|k| data[k - j] == index[k])
                && data[8usize.saturating_sub(j).min(n)..n] == base()[j.max(8).min(j + n)..j + n];
            assert!(ok, "bytes {}..{} differ", self.seen, self.seen + n);
            self.seen += n;
            data = &data[n..];
        }
    }
}

fn options(compress: bool) -> (ServerOptions, ClientOptions) {
    let config = Config::without_keepalive();
    #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
    let mut server = ServerOptions::default().with_config(config.clone());
    // The server streams as soon as the connection opens, so the client
    // asks for chunks from the start (`next_chunk` alone would switch
    // chunk delivery on only after the first frames may have arrived).
    #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
    let mut client = ClientOptions::default().with_config(config.with_deliver_chunks(true));
    #[cfg(feature = "deflate")]
    if !compress {
        server.deflate = None;
        client.deflate.clear();
    }
    #[cfg(not(feature = "deflate"))]
    assert!(!compress, "compressed streaming needs feature deflate");
    (server, client)
}

macro_rules! streaming_test {
    ($name:ident, $block_on:expr, $spawn:path, $listener:ty, $rt:ident, $compress:expr) => {
        #[test]
        fn $name() {
            let (server_opts, client_opts) = options($compress);
            let run = async move {
                let listener = <$listener>::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = $spawn(async move {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let mut ws =
                        tether::$rt::accept_with(tcp, &server_opts, |_| Ok(Default::default()))
                            .await
                            .unwrap();
                    ws.send_stream(DataKind::Binary, source()).await.unwrap();
                    // Then receive the client's copy, also in chunks.
                    let mut check = Checker {
                        seen: 0,
                        largest: 0,
                    };
                    while let Some(chunk) = ws.next_chunk().await {
                        let chunk = chunk.unwrap();
                        check.take(&chunk.data);
                        if chunk.fin {
                            break;
                        }
                    }
                    assert_eq!(check.seen, TOTAL);
                    ws.close(tether::CloseCode::NORMAL, "").await.unwrap();
                    check.largest
                });
                let mut ws = tether::$rt::connect_with(&format!("ws://{addr}/"), client_opts)
                    .await
                    .unwrap();
                assert_eq!(ws.connection().deflate_negotiated(), $compress);
                let mut check = Checker {
                    seen: 0,
                    largest: 0,
                };
                while let Some(chunk) = ws.next_chunk().await {
                    let chunk = chunk.unwrap();
                    assert_eq!(chunk.kind, DataKind::Binary);
                    check.take(&chunk.data);
                    if chunk.fin {
                        break;
                    }
                }
                assert_eq!(check.seen, TOTAL, "the whole message arrived");
                ws.send_stream(DataKind::Binary, source()).await.unwrap();
                while ws.next_chunk().await.is_some() {}
                // No chunk is anywhere near the message: memory stays at
                // the size of a read or an inflate step.
                let server_largest = server.await;
                for largest in [check.largest, server_largest] {
                    assert!(largest <= 1 << 20, "largest chunk {largest} B");
                }
            };
            let done = std::thread::spawn(move || $block_on(run));
            let deadline = std::time::Instant::now() + Duration::from_secs(300);
            while !done.is_finished() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "streaming test timed out"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            done.join().unwrap();
        }
    };
}

#[cfg(feature = "tokio")]
fn tokio_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[cfg(feature = "tokio")]
fn tokio_spawn_now<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> impl std::future::Future<Output = T> {
    let handle = tokio::spawn(f);
    async move { handle.await.unwrap() }
}

#[cfg(feature = "smol")]
streaming_test!(
    smol_plain,
    smol::block_on,
    smol::spawn,
    smol::net::TcpListener,
    smol,
    false
);
#[cfg(all(feature = "smol", feature = "deflate"))]
streaming_test!(
    smol_compressed,
    smol::block_on,
    smol::spawn,
    smol::net::TcpListener,
    smol,
    true
);
#[cfg(feature = "tokio")]
streaming_test!(
    tokio_plain,
    tokio_block_on,
    tokio_spawn_now,
    tokio::net::TcpListener,
    tokio,
    false
);
#[cfg(all(feature = "tokio", feature = "deflate"))]
streaming_test!(
    tokio_compressed,
    tokio_block_on,
    tokio_spawn_now,
    tokio::net::TcpListener,
    tokio,
    true
);
