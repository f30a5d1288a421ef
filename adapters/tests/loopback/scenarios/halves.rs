//! Split halves in two tasks, and a slow reader pushing back.

use super::*;

// ---- 8. split halves in two tasks ----

pub async fn split_reunite<R: Rt>() {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let (url2, server2) = serve::<R, _, _>(echo::<R>).await;
    let ws = R::connect(&url).await.expect("connect");
    let other = R::connect(&url2).await.expect("connect");

    let msgs: Arc<Vec<Message>> = Arc::new(
        (0..1000u64)
            .map(|i| {
                if i % 3 == 0 {
                    text(i, 10 + i as usize)
                } else {
                    binary(i, i as usize)
                }
            })
            .collect(),
    );
    let (tx, mut rx) = ws.halves();
    let (other_tx, other_rx) = other.halves();
    assert!(tx.is_pair_of(&rx) && !tx.is_pair_of(&other_rx));
    // Halves of different connections do not reunite, and come back.
    let (mut tx, other_rx) = tx
        .reunite(other_rx)
        .err()
        .expect("halves of two connections must not reunite");

    let sent = msgs.clone();
    let sender = R::spawn(async move {
        for m in sent.iter() {
            tx.send(m.clone()).await.expect("sink half: send");
        }
        tx
    });
    let want = msgs.clone();
    let receiver = R::spawn(async move {
        expect_echoes(&mut rx, &want).await;
        rx
    });
    let tx = sender.await;
    let rx = receiver.await;

    let mut ws = tx
        .reunite(rx)
        .ok()
        .expect("halves of one connection reunite");
    ws.send(Message::text("after reunite")).await.expect("send");
    assert_eq!(
        next_data(&mut ws, "echo").await,
        Message::text("after reunite")
    );
    ws.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");
    assert_eq!(
        without_keepalive(server.await),
        vec![close_message(1000, "")]
    );

    let mut other = other_tx
        .reunite(other_rx)
        .ok()
        .expect("reunite the other connection");
    other
        .close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close other");
    assert_eq!(
        without_keepalive(server2.await),
        vec![close_message(1000, "")]
    );
}

/// Both halves under backpressure at once: the sink half blocks above
/// the high-water mark while the stream half drives the socket, and the
/// other way round, so each half depends on I/O the other half did.
pub async fn split_under_pressure<R: Rt>() {
    let (url, server) = serve::<R, _, _>(echo::<R>).await;
    let ws = R::connect(&url).await.expect("connect");
    let msgs: Arc<Vec<Message>> = Arc::new(
        (0..400u64)
            .map(|i| match i % 10 {
                0 => binary(i, 256 << 10),
                5 => text(i, 100 << 10),
                _ => binary(i, 1000),
            })
            .collect(),
    );
    let (mut tx, mut rx) = ws.halves();
    let sent = msgs.clone();
    let sender = R::spawn(async move {
        for (i, m) in sent.iter().enumerate() {
            tx.feed(m.clone()).await.expect("sink half: feed");
            if i % 7 == 6 {
                tx.flush().await.expect("sink half: flush");
            }
        }
        tx.flush().await.expect("sink half: flush");
        tx
    });
    let want = msgs.clone();
    let receiver = R::spawn(async move {
        for (i, w) in want.iter().enumerate() {
            if i % 50 == 0 {
                // Stop reading for a moment: the server stalls, then the
                // sink half fills up.
                R::sleep(Duration::from_millis(20)).await;
            }
            let what = format!("echo {i}");
            let got = next_data(&mut rx, &what).await;
            assert_same_message(&got, w, &what);
        }
        rx
    });
    let tx = sender.await;
    let rx = receiver.await;
    let mut ws = tx.reunite(rx).ok().expect("reunite");
    ws.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");
    assert_eq!(
        without_keepalive(server.await),
        vec![close_message(1000, "")]
    );
}

// ---- 9. a slow reader and backpressure ----

pub(crate) const BULK_COUNT: usize = 64;

pub(crate) async fn bulk_sender<R: Rt>(mut ws: Ws<R>) -> usize {
    let mut max_buffered = 0;
    for i in 0..BULK_COUNT {
        ws.feed(binary(1000 + i as u64, MIB))
            .await
            .expect("server: feed");
        max_buffered = max_buffered.max(ws.buffered_amount());
    }
    ws.flush().await.expect("server: flush");
    assert_eq!(ws.buffered_amount(), 0, "flushed");
    while let Some(m) = ws.next().await {
        m.expect("server: stream error");
    }
    max_buffered
}

pub async fn slow_reader_backpressure<R: Rt>() {
    let (url, server) = serve::<R, _, _>(bulk_sender::<R>).await;
    let mut ws = R::connect(&url).await.expect("connect");
    // Read nothing for a while, then slowly: the server must wait rather
    // than queue 64 MiB.
    R::sleep(Duration::from_millis(300)).await;
    let mut total = 0;
    for i in 0..BULK_COUNT {
        if i < 8 {
            R::sleep(Duration::from_millis(25)).await;
        }
        let what = format!("bulk message {i}");
        let got = next_data(&mut ws, &what).await;
        assert_same_message(&got, &binary(1000 + i as u64, MIB), &what);
        total += got.len();
    }
    assert_eq!(total, BULK_COUNT * MIB);
    ws.close_handshake(CloseCode::NORMAL, "")
        .await
        .expect("close");

    let max_buffered = server.await;
    // poll_ready waits while more than write_high_water is queued, so a
    // feed adds at most one message (with its framing, and compression
    // overhead on random bytes) above it.
    let bound = Config::default().write_high_water + MIB + (64 << 10);
    assert!(
        max_buffered <= bound,
        "the server queued up to {max_buffered} bytes (bound {bound}): no backpressure"
    );
}
