use std::time::Duration;

/// Per-key exponential back-off: the n-th consecutive failure (from 0) waits
/// `base * 2^n`, at most `max` — client-go's `ItemExponentialFailureRateLimiter`, whose
/// controller default is 5 ms to 1000 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }
    }
}

impl Backoff {
    /// The delay after `failures` earlier consecutive failures.
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures).unwrap_or(0);
        if factor == 0 {
            return self.max;
        }
        self.base
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_up_to_max() {
        let b = Backoff::default();
        assert_eq!(b.delay(0), Duration::from_millis(5));
        assert_eq!(b.delay(1), Duration::from_millis(10));
        assert_eq!(b.delay(10), Duration::from_millis(5 * 1024));
        assert_eq!(b.delay(30), Duration::from_secs(1000));
        assert_eq!(b.delay(31), Duration::from_secs(1000));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1000));
    }

    proptest::proptest! {
        #[test]
        fn never_decreases_and_never_exceeds_max(n in 0u32..200, base_ms in 1u64..10_000, max_s in 1u64..100_000) {
            let b = Backoff { base: Duration::from_millis(base_ms), max: Duration::from_secs(max_s) };
            proptest::prop_assert!(b.delay(n) <= b.max);
            proptest::prop_assert!(b.delay(n) <= b.delay(n + 1));
        }
    }
}
