//! `pong_latency` tells the pong of a keepalive ping (with its round
//! trip) from any other pong, on the whole connection and its split
//! receiving half: what a client showing keepalive round trips reads.

#![cfg(feature = "smol")]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether::{ClientOptions, Config, Message, ServerOptions};

/// A server that sends one unsolicited pong, then answers pings (the core
/// does) until the client closes.
async fn server(mut listener: tether::smol::Listener) {
    let (stream, _) = listener.accept().await.unwrap();
    let options = ServerOptions::default().with_config(Config::without_keepalive());
    let mut ws = tether::smol::accept_with(stream, &options, |_| Ok(Default::default()))
        .await
        .unwrap();
    ws.send(Message::Pong("unsolicited".into())).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
}

fn client_options() -> ClientOptions {
    ClientOptions::default().with_config(
        Config::default()
            .with_ping_interval(Some(Duration::from_millis(50)))
            .with_ping_timeout(Some(Duration::from_secs(30))),
    )
}

#[test]
fn keepalive_pong_has_a_latency_and_others_none() {
    smol::block_on(async {
        let listener = tether::smol::Listener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let task = smol::spawn(server(listener));
        let mut ws = tether::smol::connect_with(&url, client_options())
            .await
            .unwrap();
        // The unsolicited pong comes first (sent before any ping could be
        // answered) and answers no keepalive ping.
        match ws.next().await {
            Some(Ok(Message::Pong(p))) => assert_eq!(&p[..], b"unsolicited"),
            other => panic!("expected the unsolicited pong, got {other:?}"),
        }
        assert_eq!(ws.pong_latency(), None);
        // An application ping's pong answers no keepalive ping either.
        ws.send(Message::Ping("mine".into())).await.unwrap();
        let mut keepalive_samples = 0;
        let mut own_pong_seen = false;
        while keepalive_samples < 2 || !own_pong_seen {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) if &p[..] == b"mine" => {
                    assert_eq!(ws.pong_latency(), None, "own ping's pong");
                    own_pong_seen = true;
                }
                Some(Ok(Message::Pong(_))) => {
                    assert!(ws.pong_latency().is_some(), "keepalive pong");
                    assert_eq!(ws.pong_latency(), ws.latency());
                    keepalive_samples += 1;
                }
                other => panic!("expected pongs, got {other:?}"),
            }
        }
        // The split receiving half reports the same.
        let (mut tx, mut rx) = ws.split();
        match rx.next().await {
            Some(Ok(Message::Pong(_))) => assert!(rx.pong_latency().is_some()),
            other => panic!("expected a keepalive pong, got {other:?}"),
        }
        tx.close(tether::CloseCode::NORMAL, "").await.unwrap();
        while rx.next().await.is_some() {}
        task.await;
    });
}
