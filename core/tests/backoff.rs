//! The backoff policy on a fake clock (instants built from one base) and a
//! seeded random source; and the retry classification the issue lists.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use quickcheck::{quickcheck, TestResult};
use tether_core::backoff::{Backoff, BackoffConfig, Failure, RetryPolicy};
use tether_core::handshake::HandshakeError;
use tether_core::{CloseCode, CloseFrame, Error, ProtocolError, Xoshiro256};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn no_jitter() -> BackoffConfig {
    BackoffConfig::default()
        .with_initial(ms(100))
        .with_factor(2.0)
        .with_max(ms(1_000))
        .with_jitter(0.0)
        .with_reset_after(Duration::from_secs(5))
        .with_max_attempts(None)
}

fn delays(b: &mut Backoff, rng: &mut Xoshiro256, n: usize) -> Vec<Option<Duration>> {
    (0..n).map(|_| b.next_delay(rng)).collect()
}

#[test]
fn delays_grow_by_the_factor_and_are_capped() {
    let mut rng = Xoshiro256::from_seed(1);
    let mut b = Backoff::new(no_jitter());
    let got = delays(&mut b, &mut rng, 7);
    let want = [100, 200, 400, 800, 1_000, 1_000, 1_000].map(|n| Some(ms(n)));
    assert_eq!(got, want);
    assert_eq!(b.attempts(), 7);

    let mut b = Backoff::new(
        no_jitter()
            .with_factor(1.5)
            .with_max(Duration::from_secs(60)),
    );
    let got = delays(&mut b, &mut rng, 4);
    let as_us: Vec<u128> = got.iter().map(|d| d.unwrap().as_micros()).collect();
    assert_eq!(as_us, [100_000, 150_000, 225_000, 337_500]);
}

#[test]
fn huge_attempt_counts_and_odd_factors_stay_at_the_cap() {
    let mut rng = Xoshiro256::from_seed(2);
    let mut b = Backoff::new(no_jitter().with_factor(1e300));
    assert_eq!(
        delays(&mut b, &mut rng, 4),
        [100, 1_000, 1_000, 1_000].map(|n| Some(ms(n)))
    );
    assert_eq!(b.base_delay(u32::MAX), ms(1_000));

    // A factor below 1 (or NaN) never shrinks the delay.
    for factor in [0.5, f64::NAN, f64::NEG_INFINITY] {
        let mut b = Backoff::new(no_jitter().with_factor(factor));
        assert_eq!(
            delays(&mut b, &mut rng, 3),
            [100, 100, 100].map(|n| Some(ms(n)))
        );
    }

    // An initial delay above the cap is cut to it.
    let mut b = Backoff::new(no_jitter().with_initial(Duration::from_secs(9)));
    assert_eq!(b.next_delay(&mut rng), Some(ms(1_000)));
}

#[test]
fn max_attempts_gives_none_and_a_reset_restores_them() {
    let mut rng = Xoshiro256::from_seed(3);
    let mut b = Backoff::new(no_jitter().with_max_attempts(Some(3)));
    assert_eq!(
        delays(&mut b, &mut rng, 5),
        [Some(ms(100)), Some(ms(200)), Some(ms(400)), None, None]
    );
    assert_eq!(b.attempts(), 3);

    let t0 = Instant::now();
    b.connected(t0);
    b.disconnected(t0 + Duration::from_secs(5));
    assert_eq!(b.attempts(), 0);
    assert_eq!(b.next_delay(&mut rng), Some(ms(100)));

    let mut never = Backoff::new(no_jitter().with_max_attempts(Some(0)));
    assert_eq!(never.next_delay(&mut rng), None);
}

#[test]
fn resets_after_a_long_session_but_not_after_a_short_one() {
    let mut rng = Xoshiro256::from_seed(4);
    let t0 = Instant::now();
    let mut b = Backoff::new(no_jitter());
    assert_eq!(
        delays(&mut b, &mut rng, 3),
        [100, 200, 400].map(|n| Some(ms(n)))
    );

    // Up for 4.999 s of the required 5: the series continues.
    b.connected(t0);
    b.disconnected(t0 + ms(4_999));
    assert_eq!(b.attempts(), 3);
    assert_eq!(b.next_delay(&mut rng), Some(ms(800)));

    // Up for exactly reset_after: starts over.
    let t1 = t0 + Duration::from_secs(10);
    b.connected(t1);
    b.disconnected(t1 + Duration::from_secs(5));
    assert_eq!(b.attempts(), 0);
    assert_eq!(b.next_delay(&mut rng), Some(ms(100)));

    // A disconnect without a connect does not reset; neither does a
    // second disconnect after a long session was already counted.
    b.disconnected(t1 + Duration::from_secs(100));
    assert_eq!(b.next_delay(&mut rng), Some(ms(200)));

    // A clock that went backwards counts as zero time up.
    let t2 = t1 + Duration::from_secs(200);
    b.connected(t2);
    b.disconnected(t1);
    assert_eq!(b.next_delay(&mut rng), Some(ms(400)));
}

#[test]
fn same_seed_same_jittered_delays() {
    let config = BackoffConfig::default();
    let run = |seed| {
        let mut rng = Xoshiro256::from_seed(seed);
        let mut b = Backoff::new(config.clone());
        delays(&mut b, &mut rng, 20)
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}

#[test]
fn default_config_is_as_documented() {
    let c = BackoffConfig::default();
    assert_eq!(c.initial, ms(100));
    assert_eq!(c.factor, 2.0);
    assert_eq!(c.max, Duration::from_secs(30));
    assert_eq!(c.jitter, 0.5);
    assert_eq!(c.reset_after, Duration::from_secs(30));
    assert_eq!(c.max_attempts, None);
}

/// Jitter keeps every delay in `[base * (1 - jitter), base]`, where base is
/// the unjittered delay, for any seed and configuration; and over many
/// draws it actually uses its range (it is not stuck at one end).
#[test]
fn jitter_stays_in_its_bounds() {
    fn prop(seed: u64, initial_ms: u16, factor_x10: u8, max_ms: u16, jitter_pct: u8) -> TestResult {
        let jitter = f64::from(jitter_pct % 101) / 100.0;
        let config = BackoffConfig::default()
            .with_initial(ms(u64::from(initial_ms)))
            .with_factor(f64::from(factor_x10) / 10.0)
            .with_max(ms(u64::from(max_ms)))
            .with_jitter(jitter)
            .with_reset_after(Duration::from_secs(1))
            .with_max_attempts(None);
        let mut rng = Xoshiro256::from_seed(seed);
        let mut jittered = Backoff::new(config.clone());
        let mut plain = Backoff::new(config.clone().with_jitter(0.0));
        for n in 0..40u32 {
            let base = plain.next_delay(&mut rng).unwrap();
            assert_eq!(base, jittered.base_delay(n));
            assert!(base <= config.max);
            let d = jittered.next_delay(&mut rng).unwrap();
            let low = base.mul_f64(1.0 - jitter);
            // One microsecond of slack for float rounding at the low end.
            if d > base || d + Duration::from_micros(1) < low {
                return TestResult::error(format!(
                    "attempt {n}: {d:?} outside [{low:?}, {base:?}] (jitter {jitter})"
                ));
            }
        }
        TestResult::passed()
    }
    quickcheck(prop as fn(u64, u16, u8, u16, u8) -> TestResult);
}

#[test]
fn jitter_spreads_over_its_range() {
    let mut rng = Xoshiro256::from_seed(5);
    let config = BackoffConfig::default()
        .with_initial(Duration::from_secs(1))
        .with_factor(1.0)
        .with_max(Duration::from_secs(1))
        .with_jitter(0.5);
    let mut b = Backoff::new(config);
    let draws: Vec<Duration> = (0..1_000)
        .map(|_| b.next_delay(&mut rng).unwrap())
        .collect();
    let (lo, hi) = (ms(500), ms(1_000));
    assert!(draws.iter().all(|d| (lo..=hi).contains(d)));
    // Each tenth of the window gets some draws (expected 100 each).
    for tenth in 0..10u64 {
        let a = lo + ms(50 * tenth);
        let n = draws
            .iter()
            .filter(|d| **d >= a && **d < a + ms(50))
            .count();
        assert!(n > 50, "tenth {tenth} got {n} of 1000 draws");
    }
}

#[test]
fn full_jitter_may_reach_zero_and_none_is_exact() {
    let mut rng = Xoshiro256::from_seed(6);
    let mut full = Backoff::new(no_jitter().with_jitter(1.0).with_factor(1.0));
    let min = (0..1_000)
        .map(|_| full.next_delay(&mut rng).unwrap())
        .min()
        .unwrap();
    assert!(min < ms(5), "{min:?}");
    // Out-of-range jitter is clamped.
    let mut over = Backoff::new(no_jitter().with_jitter(7.0));
    assert!(over.next_delay(&mut rng).unwrap() <= ms(100));
    let mut nan = Backoff::new(no_jitter().with_jitter(f64::NAN));
    assert_eq!(nan.next_delay(&mut rng), Some(ms(100)));
}

#[test]
fn default_retry_classification_is_the_issues() {
    let p = RetryPolicy::default();
    for code in [1001, 1006, 1011, 1012, 1013, 1014] {
        assert!(p.should_retry(&Failure::Close(code)), "close {code}");
        assert!(p.should_retry(&Failure::Protocol(code)), "our close {code}");
    }
    for code in [1002, 1003, 1007, 1008, 1009, 1010] {
        assert!(!p.should_retry(&Failure::Close(code)), "close {code}");
        assert!(
            !p.should_retry(&Failure::Protocol(code)),
            "our close {code}"
        );
    }
    // Not in the issue's lists: a normal close, no code, application codes.
    for code in [1000, 1005, 3000, 4000, 4999] {
        assert!(!p.should_retry(&Failure::Close(code)), "close {code}");
    }
    for status in 500..=599 {
        assert!(p.should_retry(&Failure::HttpStatus(status)), "{status}");
    }
    for status in (400..=499).chain([200, 204, 301, 302, 101, 600]) {
        assert!(!p.should_retry(&Failure::HttpStatus(status)), "{status}");
    }
    for kind in [
        ErrorKind::ConnectionRefused,
        ErrorKind::ConnectionReset,
        ErrorKind::AddrNotAvailable,
        ErrorKind::UnexpectedEof,
    ] {
        assert!(p.should_retry(&Failure::Connect(kind)));
        assert!(p.should_retry(&Failure::Io(kind)));
    }
    assert!(p.should_retry(&Failure::Timeout));
    assert!(!p.should_retry(&Failure::Handshake));
    assert!(!p.should_retry(&Failure::Tls));
    assert!(!p.should_retry(&Failure::Other));
}

#[test]
fn retry_policy_builders_change_single_entries() {
    let p = RetryPolicy::default()
        .retry_status(429)
        .no_retry_status(501)
        .retry_close(4000)
        .no_retry_close(1013)
        .retry_connect(false)
        .retry_timeout(false)
        .retry_handshake(true)
        .retry_tls(true)
        .retry_io(false)
        .retry_other(true);
    assert!(p.should_retry(&Failure::HttpStatus(429)));
    assert!(!p.should_retry(&Failure::HttpStatus(428)));
    assert!(!p.should_retry(&Failure::HttpStatus(501)));
    assert!(p.should_retry(&Failure::HttpStatus(502)));
    assert!(p.should_retry(&Failure::Close(4000)));
    assert!(!p.should_retry(&Failure::Close(1013)));
    assert!(p.should_retry(&Failure::Close(1012)));
    assert!(!p.should_retry(&Failure::Connect(ErrorKind::ConnectionRefused)));
    assert!(!p.should_retry(&Failure::Timeout));
    assert!(p.should_retry(&Failure::Handshake));
    assert!(p.should_retry(&Failure::Tls));
    assert!(!p.should_retry(&Failure::Io(ErrorKind::BrokenPipe)));
    assert!(p.should_retry(&Failure::Other));

    let none = RetryPolicy::none();
    for f in [
        Failure::Connect(ErrorKind::ConnectionRefused),
        Failure::Timeout,
        Failure::HttpStatus(503),
        Failure::Close(1012),
        Failure::Io(ErrorKind::ConnectionReset),
    ] {
        assert!(!none.should_retry(&f), "{f}");
    }
}

#[test]
fn errors_and_close_frames_are_classified() {
    let frame = |code| CloseFrame {
        code: CloseCode(code),
        reason: String::new(),
    };
    assert_eq!(
        Failure::from_close(Some(&frame(1012))),
        Failure::Close(1012)
    );
    assert_eq!(Failure::from_close(None), Failure::Close(1005));
    assert_eq!(Failure::from(Some(&frame(1008))), Failure::Close(1008));

    let cases = [
        (Error::AbnormalClosure, Failure::Close(1006)),
        (Error::KeepaliveTimeout, Failure::Timeout),
        (
            Error::Protocol(ProtocolError::MessageTooLarge { size: 9, limit: 1 }),
            Failure::Protocol(1009),
        ),
        (
            Error::Protocol(ProtocolError::InvalidUtf8),
            Failure::Protocol(1007),
        ),
        (
            Error::Protocol(ProtocolError::MaskedFrame),
            Failure::Protocol(1002),
        ),
        (
            Error::Handshake(HandshakeError::Rejected(503)),
            Failure::HttpStatus(503),
        ),
        (
            Error::Handshake(HandshakeError::Rejected(401)),
            Failure::HttpStatus(401),
        ),
        (Error::Handshake(HandshakeError::TimedOut), Failure::Timeout),
        (
            Error::Handshake(HandshakeError::Eof),
            Failure::Connect(ErrorKind::UnexpectedEof),
        ),
        (
            Error::Handshake(HandshakeError::AcceptMismatch),
            Failure::Handshake,
        ),
        (Error::Closed, Failure::Other),
    ];
    let p = RetryPolicy::default();
    for (error, want) in cases {
        assert_eq!(Failure::from(&error), want, "{error}");
    }
    // The ones a reconnecting client meets most, end to end.
    assert!(p.should_retry(&Failure::from(&Error::AbnormalClosure)));
    assert!(p.should_retry(&Failure::from(&Error::KeepaliveTimeout)));
    assert!(!p.should_retry(&Failure::from(&Error::Protocol(ProtocolError::InvalidUtf8))));
}

#[test]
fn a_session_that_progressed_resets_however_short() {
    let mut rng = Xoshiro256::from_seed(5);
    let t0 = Instant::now();
    let mut b = Backoff::new(no_jitter());
    assert_eq!(delays(&mut b, &mut rng, 2), [100, 200].map(|n| Some(ms(n))));

    // Up for 1 ms, but it did work: starts over.
    b.connected(t0);
    b.progressed();
    b.disconnected(t0 + ms(1));
    assert_eq!(b.attempts(), 0);
    assert_eq!(b.next_delay(&mut rng), Some(ms(100)));

    // The next short session did none: the series goes on (the mark
    // belonged to the session before).
    b.connected(t0 + ms(10));
    b.disconnected(t0 + ms(11));
    assert_eq!(b.next_delay(&mut rng), Some(ms(200)));

    // Progress reported while no connection is up counts for nothing,
    // neither now nor for the session after.
    b.progressed();
    b.disconnected(t0 + ms(20));
    assert_eq!(b.next_delay(&mut rng), Some(ms(400)));
    b.connected(t0 + ms(30));
    b.disconnected(t0 + ms(31));
    assert_eq!(b.next_delay(&mut rng), Some(ms(800)));
}

#[test]
fn a_server_going_away_is_not_a_failure_but_only_once_in_a_row() {
    let mut rng = Xoshiro256::from_seed(6);
    let t0 = Instant::now();
    let mut b = Backoff::new(no_jitter());
    let away = Failure::from_close(Some(&CloseFrame {
        code: CloseCode::GOING_AWAY,
        reason: "going away".into(),
    }));
    assert!(away.is_going_away() && Failure::Close(1012).is_going_away());
    for not in [
        Failure::Close(1000),
        Failure::Close(1006),
        Failure::Close(1011),
    ] {
        assert!(!not.is_going_away(), "{not}");
    }
    // Two failed attempts, then a 1 ms session the server drained: the
    // series starts over, as after a session that lasted.
    assert_eq!(delays(&mut b, &mut rng, 2), [100, 200].map(|n| Some(ms(n))));
    b.connected(t0);
    b.ended(t0 + ms(1), &away);
    assert_eq!(b.attempts(), 0);
    assert_eq!(b.next_delay(&mut rng), Some(ms(100)));

    // The same short session lost to a crash (1006) goes on growing.
    let mut crashed = Backoff::new(no_jitter());
    let _ = delays(&mut crashed, &mut rng, 2);
    crashed.connected(t0);
    crashed.ended(t0 + ms(1), &Failure::Close(1006));
    assert_eq!(crashed.next_delay(&mut rng), Some(ms(400)));

    // A server that says "going away" on every connection at once: the
    // second in a row, with nothing done between, counts like any short
    // session, and so does the third.
    b.connected(t0 + ms(10));
    b.ended(t0 + ms(11), &away);
    assert_eq!(b.next_delay(&mut rng), Some(ms(200)));
    b.connected(t0 + ms(20));
    b.ended(t0 + ms(21), &away);
    assert_eq!(b.next_delay(&mut rng), Some(ms(400)));

    // A session that did work in between restores the free pass: the
    // drain after it starts over.
    b.connected(t0 + ms(30));
    b.progressed();
    b.ended(t0 + ms(31), &Failure::Close(1006));
    assert_eq!(b.next_delay(&mut rng), Some(ms(100)));
    b.connected(t0 + ms(40));
    b.ended(t0 + ms(41), &away);
    assert_eq!(b.next_delay(&mut rng), Some(ms(100)));

    // A drain that ends a productive session earns its reset by the
    // progress, so the drain right after it still gets the free pass
    // (a rolling deploy moving the client twice).
    b.connected(t0 + ms(50));
    b.progressed();
    b.ended(t0 + ms(51), &away);
    assert_eq!(b.next_delay(&mut rng), Some(ms(100)));
    b.connected(t0 + ms(60));
    b.ended(t0 + ms(61), &away);
    assert_eq!(b.next_delay(&mut rng), Some(ms(100)));

    // `disconnected` knows nothing of how it ended: a short session is
    // a failure.
    b.connected(t0 + ms(70));
    b.disconnected(t0 + ms(71));
    assert_eq!(b.next_delay(&mut rng), Some(ms(200)));
}
