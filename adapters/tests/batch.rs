//! `next_batch` and `send_batch` over real sockets, on smol and tokio, on
//! the whole `WebSocket` and on split halves: every message arrives once,
//! in order, pings and the close among them; an error waits behind the
//! messages read before it; a batch sent is emptied and delivered whole.
//! Also the split sink's shortcut past the lock in `poll_ready`: a send
//! after the peer's close still fails.

#![cfg(any(feature = "smol", feature = "tokio"))]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether::core::ProtocolError;
use tether::{ClientOptions, CloseCode, Error, Message, ServerOptions};

mod raw_peer;
mod runtimes;
use runtimes::{Rt, Ws};

/// Messages per test.
const COUNT: usize = 200;

fn message(i: usize) -> Message {
    let body = format!("message {i}: {}", "y".repeat(i % 50));
    if i % 2 == 0 {
        Message::text(body)
    } else {
        Message::binary(body.into_bytes())
    }
}

/// A listener and its `ws://` URL.
fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/", l.local_addr().expect("addr"));
    (l, url)
}

/// Runs `server` on the accepted connection on its own thread, on `T`.
fn serve<T: Rt, O: Send + 'static, F>(
    l: TcpListener,
    server: impl FnOnce(Ws<T>) -> F + Send + 'static,
) -> thread::JoinHandle<O>
where
    F: std::future::Future<Output = O>,
{
    thread::spawn(move || {
        let (tcp, _) = l.accept().expect("accept");
        T::block_on(async move { server(T::accept(tcp, ServerOptions::default()).await).await })
    })
}

/// The client feeds all messages with a ping in the middle and flushes
/// once, then closes; the server gathers what `next_batch` gives.
fn batches_keep_order<T: Rt>() {
    let (l, url) = listener();
    let server = serve::<T, _, _>(l, |mut ws| async move {
        let (mut all, mut sizes) = (Vec::new(), Vec::new());
        let mut batch = Vec::new();
        while let Some(n) = ws.next_batch(&mut batch).await {
            let n = n.expect("no error");
            assert_eq!(n, batch.len(), "the count is what was appended");
            sizes.push(n);
            all.append(&mut batch);
        }
        (all, sizes)
    });
    T::block_on(async {
        let mut ws = T::connect(&url, ClientOptions::default()).await;
        for i in 0..COUNT {
            if i == COUNT / 2 {
                ws.feed(Message::Ping("mid".into()))
                    .await
                    .expect("feed ping");
            }
            ws.feed(message(i)).await.expect("feed");
        }
        ws.flush().await.expect("flush");
        ws.close(CloseCode::NORMAL, "done").await.expect("close");
    });
    let (all, sizes) = server.join().expect("server");
    let mut expected: Vec<Message> = (0..COUNT).map(message).collect();
    expected.insert(COUNT / 2, Message::Ping("mid".into()));
    let close = all.last().cloned();
    assert!(
        matches!(&close, Some(Message::Close(Some(f))) if f.code == CloseCode::NORMAL),
        "the close is the last message: {close:?}"
    );
    assert_eq!(&all[..all.len() - 1], &expected[..]);
    // Sent in one flush, read in a few reads: some batch holds many.
    assert!(
        sizes.iter().any(|&n| n > 1),
        "every batch held one message: {sizes:?}"
    );
}

/// A hand-made client: three masked text frames, then an unmasked one (a
/// violation), in one write. The server's first batch has the three, the
/// next call the error.
fn error_waits_behind_messages<T: Rt>() {
    let (l, _) = listener();
    let addr = l.local_addr().expect("addr");
    let server = serve::<T, _, _>(l, |mut ws| async move {
        let mut batch = Vec::new();
        let mut got = Vec::new();
        let err = loop {
            match ws.next_batch(&mut batch).await {
                Some(Ok(_)) => got.append(&mut batch),
                Some(Err(e)) => break e,
                None => panic!("ended without the error"),
            }
        };
        // Reading on sends the close (1002) and sees the end.
        while ws.next_batch(&mut batch).await.is_some() {}
        (got, err)
    });
    let mut tcp = raw_peer::upgraded(addr);
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut frames = Vec::new();
    for word in ["one", "two", "three"] {
        // FIN + text, masked with the all-zero key: the payload as is.
        frames.extend_from_slice(&[0x81, 0x80 | word.len() as u8, 0, 0, 0, 0]);
        frames.extend_from_slice(word.as_bytes());
    }
    frames.extend_from_slice(&[0x81, 0x02, b'n', b'o']);
    tcp.write_all(&frames).expect("frames");
    let (got, err) = server.join().expect("server");
    assert_eq!(got, ["one", "two", "three"].map(Message::text));
    assert!(
        matches!(
            err,
            Error::WebSocket(tether::core::Error::Protocol(ProtocolError::UnmaskedFrame))
        ),
        "{err:?}"
    );
    // And the peer is told why: 1002.
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    assert!(
        rest.len() >= 4 && rest[0] == 0x88 && rest[2..4] == [0x03, 0xEA],
        "{rest:?}"
    );
}

/// `send_batch` empties the batch and the peer gets every message in
/// order.
fn send_batch_delivers<T: Rt>() {
    let (l, url) = listener();
    let server = serve::<T, _, _>(l, |mut ws| async move {
        let mut batch: Vec<Message> = (0..COUNT).map(message).collect();
        ws.send_batch(&mut batch).await.expect("send_batch");
        assert!(batch.is_empty(), "the batch is drained");
        ws.close(CloseCode::NORMAL, "sent").await.expect("close");
    });
    let got = T::block_on(async {
        let mut ws = T::connect(&url, ClientOptions::default()).await;
        let mut got = Vec::new();
        while let Some(m) = ws.next().await {
            match m.expect("message") {
                Message::Close(_) => {}
                m => got.push(m),
            }
        }
        got
    });
    server.join().expect("server");
    assert_eq!(got, (0..COUNT).map(message).collect::<Vec<_>>());
}

/// An echo on split halves with the batch calls; then, after the peer's
/// close, the sink (whose last `start_send` left it a shortcut past the
/// lock) still refuses to send.
fn split_halves<T: Rt>() {
    let (l, url) = listener();
    let server = serve::<T, _, _>(l, |ws| async move {
        let (mut tx, mut rx) = ws.split();
        let mut batch = Vec::new();
        let mut echoed = 0;
        while echoed < COUNT {
            rx.next_batch(&mut batch)
                .await
                .expect("open")
                .expect("batch");
            echoed += batch.len();
            tx.send_batch(&mut batch).await.expect("echo");
        }
        // `feed` leaves the shortcut set: the connection is open.
        tx.feed(Message::text("before the close"))
            .await
            .expect("feed");
        tx.flush().await.expect("flush");
        while let Some(m) = rx.next().await {
            m.expect("the peer's close");
        }
        // The peer closed: the shortcut must not let this through.
        tx.feed(Message::text("after the close")).await
    });
    T::block_on(async {
        let mut ws = T::connect(&url, ClientOptions::default()).await;
        for i in 0..COUNT {
            ws.feed(message(i)).await.expect("feed");
        }
        ws.flush().await.expect("flush");
        for i in 0..COUNT {
            assert_eq!(ws.next().await.expect("echo").expect("echo"), message(i));
        }
        assert_eq!(
            ws.next().await.expect("last").expect("last"),
            Message::text("before the close")
        );
        ws.close(CloseCode::NORMAL, "bye").await.expect("close");
    });
    let after = server.join().expect("server");
    assert!(
        matches!(after, Err(Error::WebSocket(tether::core::Error::Closed))),
        "{after:?}"
    );
}

macro_rules! on_runtimes {
    ($($name:ident),*) => {
        #[cfg(feature = "smol")]
        mod on_smol {
            $(#[test]
            fn $name() {
                super::$name::<super::runtimes::SmolRt>()
            })*
        }
        #[cfg(feature = "tokio")]
        mod on_tokio {
            $(#[test]
            fn $name() {
                super::$name::<super::runtimes::TokioRt>()
            })*
        }
    };
}

on_runtimes!(
    batches_keep_order,
    error_waits_behind_messages,
    send_batch_delivers,
    split_halves
);
