//! Deadlines from durations the application configures.

use std::time::{Duration, Instant};

/// How far ahead a deadline lies when its duration is too large for the
/// platform's clock: a century is "never" for any connection.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + d`, saturating: a duration the clock cannot add (say
/// `Duration::MAX`, meaning "never") gives an instant a century ahead
/// instead of panicking, so no configured timeout can crash a connection.
pub fn deadline_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR))
        .or_else(|| now.checked_add(FAR / 100))
        .unwrap_or(now + Duration::from_secs(24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert!(deadline_after(now, Duration::MAX) >= now + Duration::from_secs(365 * 24 * 3600));
    }
}
