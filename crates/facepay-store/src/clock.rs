//! Where every service reads the time. Services hold an `Arc<dyn Clock>`
//! instead of reading the system clock, so that a test (or a demo) can run
//! them at a time of its choosing: the small hours in Seoul, a day after an
//! authorisation was made, a minute past a signature's window.

use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch, as some clock tells them.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock that stands still until it is set or moved: for tests and
/// scripted runs. Readers on other threads see a move at once.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        assert!(now_ms >= 0, "a clock before 1970 is a mistake");
        Self {
            now_ms: AtomicI64::new(now_ms),
        }
    }

    pub fn set(&self, now_ms: i64) {
        assert!(now_ms >= 0, "a clock before 1970 is a mistake");
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the clock on; never back.
    pub fn advance(&self, by_ms: i64) {
        assert!(by_ms >= 0, "a clock moves forward");
        self.now_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// The machine's clock in milliseconds since the Unix epoch: what
/// [`SystemClock`] reads, for code with no clock of its own to ask (a
/// client signing a request, the card vault's channel).
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_moved() {
        let clock = ManualClock::new(1_795_100_400_000);
        assert_eq!(clock.now_ms(), 1_795_100_400_000);
        assert_eq!(clock.now_ms(), 1_795_100_400_000, "it does not tick");
        clock.advance(90_000);
        assert_eq!(clock.now_ms(), 1_795_100_490_000);
        clock.set(0);
        assert_eq!(clock.now_ms(), 0);
    }

    #[test]
    fn the_system_clock_is_the_machine_clock() {
        let before = now_ms();
        let read = SystemClock.now_ms();
        assert!(before <= read && read <= now_ms());
        assert!(read > 1_700_000_000_000, "after 2023");
    }
}
