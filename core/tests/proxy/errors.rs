//! ProxyError: which failures are worth another attempt, how they read,
//! and how they fit the core's Error and the retry policy.

use std::io::ErrorKind;

use tether_core::backoff::{Failure, RetryPolicy};
use tether_core::proxy::ProxyUrlError;
use tether_core::Error;

use super::*;

/// Every kind of failure, with whether a retry may help.
fn all() -> Vec<(ProxyError, bool)> {
    let mut v = vec![
        (ProxyError::InvalidUrl(ProxyUrlError::HttpsProxy), false),
        (
            ProxyError::InvalidEnv {
                var: "all_proxy",
                error: ProxyUrlError::MissingHost,
            },
            false,
        ),
        (ProxyError::InvalidTarget("port 0".into()), false),
        (ProxyError::InvalidCredentials("x"), false),
        (ProxyError::UnresolvedTarget("h".into()), false),
        (ProxyError::Malformed("x".into()), false),
        (ProxyError::HeadTooLarge, false),
        (ProxyError::TooManyHeaders, false),
        (
            ProxyError::AuthenticationRequired {
                challenge: None,
                credentials_sent: false,
            },
            false,
        ),
        (ProxyError::Forbidden, false),
        (
            ProxyError::Refused {
                status: 502,
                reason: "Bad Gateway".into(),
            },
            true,
        ),
        (
            ProxyError::Refused {
                status: 400,
                reason: String::new(),
            },
            false,
        ),
        (
            ProxyError::BadVersion {
                expected: 5,
                got: 4,
            },
            false,
        ),
        (ProxyError::NoAcceptableMethods, false),
        (ProxyError::UnexpectedMethod(1), false),
        (ProxyError::AuthFailed(1), false),
        (ProxyError::BadAddressType(9), false),
        (ProxyError::BadReply("reserved byte"), false),
        (ProxyError::UnexpectedData("method reply"), false),
        (ProxyError::TimedOut, true),
        (ProxyError::Eof, true),
        (ProxyError::Finished, false),
    ];
    for code in 1..=9 {
        let f = Socks5Failure::from_code(code).unwrap();
        v.push((ProxyError::Socks5(f), matches!(code, 1 | 3..=6)));
    }
    v
}

#[test]
fn retryable_or_not() {
    for (e, retryable) in all() {
        assert_eq!(e.is_retryable(), retryable, "{e:?}");
        // Every message is a readable sentence.
        let text = e.to_string();
        assert!(text.len() > 8 && !text.contains("{"), "{e:?}: {text}");
    }
}

#[test]
fn the_retry_policy_follows_is_retryable() {
    let policy = RetryPolicy::default();
    for (e, retryable) in all() {
        let failure = Failure::from_proxy(&e);
        assert_eq!(
            policy.should_retry(&failure),
            retryable,
            "{e:?} as {failure:?}"
        );
        assert_eq!(Failure::from_error(&Error::Proxy(e.clone())), failure);
    }
    assert_eq!(Failure::from_proxy(&ProxyError::TimedOut), Failure::Timeout);
    assert_eq!(
        Failure::from_proxy(&ProxyError::Socks5(Socks5Failure::TtlExpired)),
        Failure::Timeout
    );
    assert_eq!(
        Failure::from_proxy(&ProxyError::Eof),
        Failure::Connect(ErrorKind::UnexpectedEof)
    );
    assert_eq!(
        Failure::from_proxy(&ProxyError::Socks5(Socks5Failure::ConnectionRefused)),
        Failure::Connect(ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        Failure::from_proxy(&ProxyError::Forbidden),
        Failure::Handshake
    );
}

#[test]
fn a_proxy_error_in_the_cores_error() {
    let e: Error = ProxyError::Forbidden.into();
    assert_eq!(e, Error::Proxy(ProxyError::Forbidden));
    assert_eq!(e.to_string(), "proxy: proxy forbids the connection (403)");
    assert!(std::error::Error::source(&e).is_some());
    // Not the server's status, and no close code: nothing was opened.
    assert_eq!(e.http_status(), None);
    assert_eq!(e.close_code(), None);
    assert_eq!(ProxyError::Forbidden.http_status(), Some(403));
    assert_eq!(ProxyError::TimedOut.http_status(), None);
}
