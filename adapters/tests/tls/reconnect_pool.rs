//! The reconnecting client and the pool open `wss://` like `connect`
//! does, and a certificate error ends the reconnector at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether::pool::{Pool, PoolOptions};
use tether::reconnect::{BackoffConfig, Failure, ReconnectEvent, ReconnectOptions, Reconnector};
use tether::tls::TlsErrorKind;
use tether::{ClientOptions, CloseCode, Connector, Message, ServerOptions};

use crate::certs::Ca;
use crate::support::{on, tls_kind, Rt, TlsServer, BOTH};

fn tls_server(rt: Rt, ca: &Ca) -> TlsServer {
    let id = ca.server();
    let tls = tether::tls::server_config(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    TlsServer::start(rt, tls, ServerOptions::default())
}

fn trusting(ca: &Ca) -> ClientOptions {
    ClientOptions::default().with_tls(tether::tls::client_config(ca.cert_pem.as_bytes()).unwrap())
}

async fn reconnector_over_tls<R: Connector>(url: &str, options: ClientOptions) {
    let mut rc = Reconnector::<R>::new(url, options, ReconnectOptions::default());
    let mut ws = rc.connect().await.expect("connect");
    ws.send(Message::text("over tls")).await.unwrap();
    assert_eq!(
        ws.next().await.transpose().unwrap(),
        Some(Message::text("over tls"))
    );
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
}

async fn pool_over_tls<R: Connector>(url: &str, options: ClientOptions) {
    let pool = Pool::<R>::new(options, PoolOptions::default());
    for i in 0..3 {
        let mut ws = pool.checkout(url).await.expect("checkout");
        let m = Message::text(format!("pooled {i}"));
        ws.send(m.clone()).await.unwrap();
        assert_eq!(ws.next().await.transpose().unwrap(), Some(m));
    }
    assert_eq!(pool.open_count(url), 1, "the one connection is reused");
    pool.checkout(url)
        .await
        .unwrap()
        .into_inner()
        .close(CloseCode::NORMAL, "done")
        .await
        .unwrap();
}

#[test]
fn reconnector_and_pool_connect_over_tls() {
    let ca = Ca::new("tether test CA");
    for rt in BOTH {
        let server = tls_server(rt, &ca);
        on(rt, async {
            match rt {
                Rt::Smol => {
                    reconnector_over_tls::<tether::smol::Smol>(&server.url(), trusting(&ca)).await;
                    pool_over_tls::<tether::smol::Smol>(&server.url(), trusting(&ca)).await;
                }
                Rt::Tokio => {
                    reconnector_over_tls::<tether::tokio::Tokio>(&server.url(), trusting(&ca))
                        .await;
                    pool_over_tls::<tether::tokio::Tokio>(&server.url(), trusting(&ca)).await;
                }
            }
        });
        for _ in 0..2 {
            let served = server.next().expect("served");
            assert_eq!(served.end, "closed", "{rt:?}");
            assert_eq!(served.alpn.as_deref(), Some(&b"http/1.1"[..]));
        }
    }
}

async fn gives_up<R: Connector>(url: &str, options: ClientOptions) -> Vec<ReconnectEvent> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    // Room for two retries, quickly, so a policy that did retry shows in
    // the events instead of hanging the test.
    let retries = ReconnectOptions::default().with_backoff(
        BackoffConfig::default()
            .with_initial(Duration::from_millis(1))
            .with_max_attempts(Some(2)),
    );
    let mut rc = Reconnector::<R>::new(url, options, retries)
        .on_event(move |ev| seen.lock().unwrap().push(ev.clone()));
    let e = rc.connect().await.map(drop).expect_err("connected");
    assert_eq!(tls_kind(&e), TlsErrorKind::UnknownIssuer, "{e}");
    let events = events.lock().unwrap().clone();
    events
}

/// Not retried: the next attempt would meet the same certificate.
#[test]
fn the_reconnector_gives_up_at_once_on_a_certificate_error() {
    let ca = Ca::new("the server's CA");
    let other = Ca::new("another CA");
    for rt in BOTH {
        let server = tls_server(rt, &ca);
        let events = on(rt, async {
            match rt {
                Rt::Smol => gives_up::<tether::smol::Smol>(&server.url(), trusting(&other)).await,
                Rt::Tokio => {
                    gives_up::<tether::tokio::Tokio>(&server.url(), trusting(&other)).await
                }
            }
        });
        assert_eq!(
            events,
            vec![
                ReconnectEvent::Attempt { attempt: 1 },
                ReconnectEvent::Failed {
                    attempt: 1,
                    failure: Failure::Tls,
                    retry: false
                },
                ReconnectEvent::GaveUp {
                    attempts: 1,
                    failure: Failure::Tls
                },
            ],
            "{rt:?}"
        );
        assert!(server.next().is_err());
    }
}
