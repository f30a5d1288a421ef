//! Echo of every length encoding and of many small messages, pipelined.

use super::*;

// ---- 1. echo of every length encoding ----

/// Payload sizes at the frame header's length boundaries, an empty one,
/// and one spanning many fragments and reads.
pub(crate) const ECHO_SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 16 * MIB];

pub(crate) async fn echo_sizes<R: Rt>(
    options: Option<ClientOptions>,
    make: fn(u64, usize) -> Message,
) {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let mut ws = match options {
        None => R::connect(&url).await,
        Some(options) => R::connect_with(&url, options).await,
    }
    .expect("connect");
    for (i, len) in ECHO_SIZES.into_iter().enumerate() {
        let msg = make(i as u64, len);
        assert_eq!(msg.len(), len);
        ws.send(msg.clone()).await.expect("send");
        let what = format!("echo of {len} bytes");
        let got = next_data(&mut ws, &what).await;
        assert_same_message(&got, &msg, &what);
    }
    ws.close_handshake(CloseCode::NORMAL, "done")
        .await
        .expect("close");
    assert_eq!(
        without_keepalive(server.await),
        vec![close_message(1000, "done")]
    );
}

/// Client options that offer no compression, so that frames carry the
/// payload as is (with the default options, peers built with the
/// `deflate` feature compress).
pub(crate) fn uncompressed() -> ClientOptions {
    #[allow(unused_mut)]
    let mut options = ClientOptions::default();
    #[cfg(feature = "deflate")]
    options.deflate.clear();
    options
}

pub async fn echo_text_sizes<R: Rt>() {
    echo_sizes::<R>(None, text).await;
}

pub async fn echo_binary_sizes<R: Rt>() {
    echo_sizes::<R>(None, binary).await;
}

pub async fn echo_sizes_uncompressed<R: Rt>() {
    echo_sizes::<R>(Some(uncompressed()), text).await;
    echo_sizes::<R>(Some(uncompressed()), binary).await;
}

// ---- 2. many small messages, pipelined ----

pub(crate) const SMALL_COUNT: usize = 10_000;
pub(crate) const SMALL_SIZE: usize = 64;

pub(crate) fn small_messages() -> Vec<Message> {
    (0..SMALL_COUNT as u64)
        .map(|i| {
            if i % 2 == 0 {
                binary(i, SMALL_SIZE)
            } else {
                text(i, SMALL_SIZE)
            }
        })
        .collect()
}

/// `feed` queues without writing, one `flush` writes it all; the echoes
/// are read concurrently so neither side can stall on full buffers.
pub async fn pipelined_feed_flush<R: Rt>() {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let mut ws = R::connect(&url).await.expect("connect");
    let msgs = small_messages();
    // `feed` only queues: the queue grows with every message (by a frame,
    // compressed or not) and nothing leaves before the flush.
    let mut queued = ws.buffered_amount();
    for (i, m) in msgs.iter().enumerate() {
        ws.feed(m.clone()).await.expect("feed");
        let now = ws.buffered_amount();
        assert!(
            now > queued,
            "feed {i}: {now} bytes queued, {queued} before"
        );
        queued = now;
    }
    let (mut tx, mut rx) = ws.halves();
    let send = async {
        tx.flush().await.expect("flush");
        tx
    };
    let recv = async {
        expect_echoes(&mut rx, &msgs).await;
        rx
    };
    let (tx, rx) = future::join(send, recv).await;
    let mut ws = tx.reunite(rx).ok().expect("reunite");
    assert_eq!(ws.buffered_amount(), 0);
    ws.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");
    assert_eq!(
        without_keepalive(server.await),
        vec![close_message(1000, "")]
    );
}

pub async fn pipelined_send_all<R: Rt>() {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let ws = R::connect(&url).await.expect("connect");
    let msgs = small_messages();
    let (mut tx, mut rx) = ws.halves();
    let send = async {
        let mut source = stream::iter(msgs.clone()).map(Ok);
        tx.send_all(&mut source).await.expect("send_all");
        tx
    };
    let recv = async {
        expect_echoes(&mut rx, &msgs).await;
        rx
    };
    let (mut tx, rx) = future::join(send, recv).await;
    tx.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");
    // The stream half sees the server's answer (the code echoed), then the end.
    let mut rx = rx;
    assert_eq!(
        next_message(&mut rx, "stream half").await,
        close_message(1000, "")
    );
    assert!(
        rx.next().await.is_none(),
        "the stream half ends after the close handshake"
    );
    assert_eq!(
        without_keepalive(server.await),
        vec![close_message(1000, "")]
    );
}
