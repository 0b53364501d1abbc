//! When a failed delivery is tried again: exponential backoff with
//! jitter, for a window (24 hours by default) after the event. With the
//! default first wait of one minute the attempts fall, before jitter, at
//! 0, 1 min, 5 min, 21 min, 1 h 25 min, 5 h 41 min, 13 h 41 min,
//! 21 h 41 min and 24 h; after the last the delivery is given up.

/// Each wait is this many times the one before.
pub const RETRY_FACTOR: i64 = 4;
/// No wait between two attempts is longer than this: eight hours.
pub const RETRY_DELAY_MAX_MS: i64 = 8 * 3_600_000;
/// Each wait is moved by up to this share either way, at random, so that
/// deliveries that failed together (a receiver down) do not all come
/// back at the same instant.
pub const RETRY_JITTER_PERCENT: i64 = 20;
/// Attempts of one delivery at most, whatever the configuration: the
/// schedule stops well before with any sensible first wait.
pub const ATTEMPTS_MAX: i64 = 32;

/// The wait after the `failed`-th failure in a row (1 for the first),
/// before jitter: `first_ms × 4^(failed − 1)`, at most eight hours.
pub fn nominal_delay_ms(failed: i64, first_ms: i64) -> i64 {
    let mut delay_ms = first_ms.max(1);
    for _ in 1..failed.max(1) {
        delay_ms = delay_ms.saturating_mul(RETRY_FACTOR);
        if delay_ms >= RETRY_DELAY_MAX_MS {
            return RETRY_DELAY_MAX_MS;
        }
    }
    delay_ms.min(RETRY_DELAY_MAX_MS)
}

/// [`nominal_delay_ms`] moved at random by up to
/// [`RETRY_JITTER_PERCENT`] either way.
pub fn retry_delay_ms(failed: i64, first_ms: i64) -> i64 {
    let delay_ms = nominal_delay_ms(failed, first_ms);
    let mut bytes = [0u8; 4];
    // Without randomness the wait is the nominal one: still correct.
    if getrandom::fill(&mut bytes).is_err() {
        return delay_ms;
    }
    let span = 2 * RETRY_JITTER_PERCENT + 1;
    let percent = i64::from(u32::from_le_bytes(bytes)) % span - RETRY_JITTER_PERCENT;
    delay_ms + delay_ms * percent / 100
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time.
    RetryAt(i64),
    /// The window is over: no more automatic attempts.
    GiveUp,
}

/// After the `failed`-th failure at `now_ms` of a delivery retried from
/// `retry_from_ms` for `window_ms`: the next attempt, the last one at the
/// window's end, or none.
pub fn after_failure(
    failed: i64,
    now_ms: i64,
    retry_from_ms: i64,
    window_ms: i64,
    first_ms: i64,
) -> Next {
    let window_end_ms = retry_from_ms.saturating_add(window_ms);
    if now_ms >= window_end_ms || failed >= ATTEMPTS_MAX {
        return Next::GiveUp;
    }
    let at_ms = now_ms.saturating_add(retry_delay_ms(failed, first_ms));
    Next::RetryAt(at_ms.min(window_end_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE_MS: i64 = 60_000;
    const DAY_MS: i64 = 24 * 3_600_000;

    #[test]
    fn waits_grow_fourfold_up_to_eight_hours() {
        let waits: Vec<i64> = (1..=8).map(|n| nominal_delay_ms(n, MINUTE_MS)).collect();
        assert_eq!(
            waits,
            [1, 4, 16, 64, 256, 480, 480, 480].map(|m| m * MINUTE_MS)
        );
        assert_eq!(nominal_delay_ms(1_000, MINUTE_MS), RETRY_DELAY_MAX_MS);
        for n in 1..=8 {
            for _ in 0..50 {
                let wait = retry_delay_ms(n, MINUTE_MS);
                let nominal = nominal_delay_ms(n, MINUTE_MS);
                assert!(
                    (nominal * 80 / 100..=nominal * 120 / 100).contains(&wait),
                    "{n}: {wait}"
                );
            }
        }
    }

    /// The documented schedule: nine attempts over the day, the last at
    /// its end, then none.
    #[test]
    fn a_delivery_that_always_fails_is_tried_for_a_day_then_given_up() {
        let mut now = 0;
        let mut times = vec![now];
        for failed in 1.. {
            match after_failure(failed, now, 0, DAY_MS, MINUTE_MS) {
                Next::RetryAt(at) => {
                    assert!(at > now && at <= DAY_MS);
                    now = at;
                    times.push(now);
                }
                Next::GiveUp => break,
            }
        }
        // Nine nominally; jitter may push the eighth past the day's end.
        assert!((8..=9).contains(&times.len()), "{times:?}");
        assert_eq!(*times.last().unwrap(), DAY_MS);
        assert!(
            times[5] > 4 * 3_600_000 && times[5] < 7 * 3_600_000,
            "{times:?}"
        );
        // A window restarted by hand (a redelivery) gives a new day.
        assert!(matches!(
            after_failure(9, DAY_MS + 1, DAY_MS, DAY_MS, MINUTE_MS),
            Next::RetryAt(_)
        ));
        assert_eq!(after_failure(ATTEMPTS_MAX, 0, 0, DAY_MS, 1), Next::GiveUp);
    }
}
