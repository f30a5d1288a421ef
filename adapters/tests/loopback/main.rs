//! Loopback integration tests of the adapters: real sockets on 127.0.0.1
//! (ephemeral ports), every scenario written once in `scenarios/` and
//! run on every runtime through the [`harness::Rt`] trait.
//!
//! Adding a runtime: implement `Rt` for it in `harness.rs` and add one
//! `runtime_suite!` line at the bottom of this file. A runtime whose
//! connections are not tether's async `WebSocket` also implements
//! `harness::Socket` for them: the mio event loop does so in `mio_rt.rs`
//! with a thin proxy, and runs every scenario. Adding a scenario:
//! write `pub async fn name<R: Rt>()` in the `scenarios/` file of its concern and add its name
//! to the list in `runtime_suite!`.
//!
//! Run with `cargo test -p tether --all-features --test loopback`.

#![cfg(any(feature = "smol", feature = "tokio", feature = "mio"))]

mod harness;
#[cfg(feature = "mio")]
mod mio_rt;
#[cfg(feature = "tokio")]
#[path = "../paused/mod.rs"]
mod paused;
mod raw;
mod scenarios;

/// One `#[test]` per scenario for runtime `$rt`, in module `$module`; the
/// timer scenarios run on `$timers` (the same runtime, or tokio on its
/// paused clock).
macro_rules! runtime_suite {
    ($module:ident, $rt:ty) => {
        runtime_suite!($module, $rt, $rt);
    };
    ($module:ident, $rt:ty, $timers:ty) => {
        mod $module {
            scenario_tests! { $module, $timers;
                keepalive_measures_latency,
                keepalive_timeout_closes_1011,
                close_timeout_without_answer,
                handshake_timeouts,
            }
            scenario_tests! { $module, $rt;
                echo_text_sizes,
                echo_binary_sizes,
                echo_sizes_uncompressed,
                pipelined_feed_flush,
                pipelined_send_all,
                ping_pong,
                close_from_client,
                close_from_server,
                close_invalid_code,
                peer_vanishes_mid_message,
                unmasked_frame_closes_1002,
                hook_rejects_with_401,
                hook_checks_authorization,
                subprotocol_negotiation,
                subprotocol_not_offered,
                split_reunite,
                split_under_pressure,
                slow_reader_backpressure,
                frames_glued_to_handshake,
                reset_reaches_both_halves,
                reset_while_reading,
            }
        }
    };
}

macro_rules! scenario_tests {
    ($module:ident, $rt:ty; $($scenario:ident),+ $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                crate::harness::run::<$rt, _, _>(
                    concat!(stringify!($module), "::", stringify!($scenario)),
                    crate::scenarios::$scenario::<$rt>,
                );
            }
        )+
    };
}

#[cfg(feature = "smol")]
runtime_suite!(on_smol, crate::harness::SmolRt);
#[cfg(feature = "tokio")]
runtime_suite!(
    on_tokio,
    crate::harness::TokioRt,
    crate::harness::TokioPausedRt
);
#[cfg(feature = "mio")]
runtime_suite!(on_mio, crate::mio_rt::MioRt);
