//! Capped exponential backoff, used for crash loops and failed starts.
//!
//! Like Kubernetes' CrashLoopBackOff, the first restart after a crash is immediate (a killed
//! instance comes back within a second) and repeated quick crashes wait longer each time.

use serde::{Deserialize, Serialize};

/// `delay(n) = 0` for `n <= 1`, else `min(base * 2^(n-2), cap)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    pub base_ms: u64,
    pub cap_ms: u64,
    /// An instance that ran at least this long before it exited resets its crash count.
    pub reset_after_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 1_000,
            cap_ms: 120_000,
            reset_after_ms: 30_000,
        }
    }
}

impl Backoff {
    /// How long to wait before the `attempt`-th consecutive restart.
    pub fn delay_ms(&self, attempt: u32) -> u64 {
        if attempt <= 1 {
            return 0;
        }
        let shift = (attempt - 2).min(32);
        self.base_ms.saturating_mul(1u64 << shift).min(self.cap_ms)
    }

    /// The crash count a replacement carries, given its predecessor's count and run time.
    pub fn next_restarts(&self, previous_restarts: u32, ran_for_ms: i64) -> u32 {
        if ran_for_ms >= 0 && ran_for_ms as u64 >= self.reset_after_ms {
            0
        } else {
            previous_restarts.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_cap() {
        let b = Backoff {
            base_ms: 1_000,
            cap_ms: 10_000,
            reset_after_ms: 30_000,
        };
        let cases = [
            (0, 0),
            (1, 0),
            (2, 1_000),
            (3, 2_000),
            (4, 4_000),
            (5, 8_000),
            (6, 10_000),
            (40, 10_000),
            (u32::MAX, 10_000),
        ];
        for (attempt, want) in cases {
            assert_eq!(b.delay_ms(attempt), want, "attempt {attempt}");
        }
    }

    #[test]
    fn long_runs_reset_the_count() {
        let b = Backoff::default();
        let cases = [
            (0, 100, 1),
            (3, 100, 4),
            (3, 30_000, 0),
            (3, 29_999, 4),
            (7, -5, 8),
            (u32::MAX, 0, u32::MAX),
        ];
        for (previous, ran, want) in cases {
            assert_eq!(
                b.next_restarts(previous, ran),
                want,
                "previous {previous} ran {ran}"
            );
        }
    }
}
