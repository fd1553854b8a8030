//! Per-object exponential backoff with jitter, so one failing resource never hot-loops and many
//! failing resources do not retry in lockstep.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

/// Failure counts per object key (namespace/name).
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records one more failure of `key` and returns how long to wait before the next try:
    /// `base * 2^(n-1)` capped at `max`, drawn uniformly from its upper half, and never less
    /// than `retry_after`.
    pub fn next_delay(&self, key: &str, retry_after: Option<Duration>) -> Duration {
        let attempt = {
            let mut failures = self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = failures.entry(key.to_owned()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        };
        let exponent = attempt.saturating_sub(1).min(20);
        let ceiling = self
            .base
            .saturating_mul(1u32 << exponent)
            .min(self.max)
            .max(Duration::from_millis(1));
        let floor = ceiling / 2;
        let jittered = rand::rng().random_range(floor..=ceiling);
        retry_after.map_or(jittered, |wait| jittered.max(wait))
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Number of consecutive failures recorded for `key`.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_within_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut ceilings = Vec::new();
        for attempt in 0..10u32 {
            let delay = backoff.next_delay("ns/a", None);
            let ceiling = Duration::from_secs(1u64 << attempt).min(Duration::from_secs(60));
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{delay:?} vs {ceiling:?}"
            );
            ceilings.push(ceiling);
        }
        assert_eq!(backoff.failures("ns/a"), 10);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        let delay = backoff.next_delay("ns/a", Some(Duration::from_secs(30)));
        assert_eq!(delay, Duration::from_secs(30));
    }

    #[test]
    fn reset_starts_over_and_objects_are_independent() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..5 {
            backoff.next_delay("ns/a", None);
        }
        backoff.next_delay("ns/b", None);
        backoff.reset("ns/a");
        assert_eq!(backoff.failures("ns/a"), 0);
        assert_eq!(backoff.failures("ns/b"), 1);
        assert!(backoff.next_delay("ns/a", None) <= Duration::from_secs(1));
    }
}
