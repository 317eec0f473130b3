//! A login rate limiter against password guessing: per key, at most `max_failures` failed
//! attempts per `window`; then the key is locked out, for twice as long at each further
//! lockout, up to `max_lockout`.
//!
//! Which keys: the API keeps one limiter per (username, client address) with the
//! [`LimiterConfig::default`] policy, so one person's typos lock out nobody else, and one per
//! client address with the much looser [`LimiterConfig::per_address`], against guessing across
//! many usernames. Never a per-username key alone: anyone could then lock any account out
//! from anywhere, indefinitely, by failing its logins on purpose.
//!
//! Pure: `now` is passed in (a monotonic [`Instant`], immune to wall-clock jumps), nothing
//! sleeps, and the caller holds the limiter (behind a mutex when shared). Memory stays bounded:
//! a key forgotten after `forget_after` without failures is dropped by [`LoginLimiter::prune`],
//! which runs by itself when the table grows past `max_keys`.
//!
//! Call [`LoginLimiter::record_success`] only for the account key, never for an IP key:
//! otherwise an attacker holding one valid account could reset the IP's counter at will.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The limiter's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Failures allowed within `window` before a lockout.
    pub max_failures: u32,
    /// How long failures count towards a lockout.
    pub window: Duration,
    /// The first lockout; each next one doubles.
    pub base_lockout: Duration,
    /// The longest lockout.
    pub max_lockout: Duration,
    /// A key without failures for this long starts over (lockouts back to `base_lockout`).
    pub forget_after: Duration,
    /// Keys tracked before an automatic prune.
    pub max_keys: usize,
}

impl Default for LimiterConfig {
    /// 5 failures per 15 minutes, then 1 minute locked, doubling up to 1 hour; a quiet day
    /// forgives.
    fn default() -> Self {
        LimiterConfig {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            base_lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(60 * 60),
            forget_after: Duration::from_secs(24 * 60 * 60),
            max_keys: 100_000,
        }
    }
}

impl LimiterConfig {
    /// The policy of a whole client address, across usernames: 100 failures per 15 minutes
    /// (an office behind one NAT stays usable), then the same backoff as the default.
    pub fn per_address() -> Self {
        LimiterConfig {
            max_failures: 100,
            ..LimiterConfig::default()
        }
    }

    /// Actions allowed `count` times per `window`, each counted with
    /// [`LoginLimiter::record_failure`]; past that, locked until the window has passed.
    pub fn per_window(count: u32, window: Duration) -> Self {
        LimiterConfig {
            max_failures: count,
            window,
            base_lockout: window,
            max_lockout: window,
            ..LimiterConfig::default()
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// Failures in the current window.
    failures: u32,
    window_start: Instant,
    /// Lockouts so far (the backoff exponent).
    lockouts: u32,
    locked_until: Option<Instant>,
    last_failure: Instant,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct LoginLimiter {
    config: LimiterConfig,
    entries: HashMap<String, Entry>,
}

impl LoginLimiter {
    pub fn new(config: LimiterConfig) -> Self {
        LoginLimiter {
            config,
            entries: HashMap::new(),
        }
    }

    /// `Ok` when `key` may attempt a login at `now`, else how long until it may.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        match self.entries.get(key).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// [`LoginLimiter::check`] for several keys (e.g. the username and the client IP): the
    /// longest wait among them.
    pub fn check_all(&self, keys: &[&str], now: Instant) -> Result<(), Duration> {
        let wait = keys
            .iter()
            .filter_map(|key| self.check(key, now).err())
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failed attempt of `key` at `now`. A failure while locked out (the caller did
    /// not check) changes nothing: a lockout is not extended by hammering.
    pub fn record_failure(&mut self, key: &str, now: Instant) {
        if self.entries.len() >= self.config.max_keys && !self.entries.contains_key(key) {
            self.prune(now);
        }
        let config = self.config;
        let entry = self.entries.entry(key.to_string()).or_insert(Entry {
            failures: 0,
            window_start: now,
            lockouts: 0,
            locked_until: None,
            last_failure: now,
        });
        if entry.locked_until.is_some_and(|until| until > now) {
            return;
        }
        if now.saturating_duration_since(entry.last_failure) >= config.forget_after {
            entry.lockouts = 0;
        }
        if now.saturating_duration_since(entry.window_start) >= config.window {
            entry.failures = 0;
            entry.window_start = now;
        }
        entry.failures += 1;
        entry.last_failure = now;
        if entry.failures >= config.max_failures {
            let lockout = config
                .base_lockout
                .saturating_mul(1u32.checked_shl(entry.lockouts).unwrap_or(u32::MAX))
                .min(config.max_lockout);
            entry.lockouts = entry.lockouts.saturating_add(1);
            entry.locked_until = Some(now + lockout);
            entry.failures = 0;
            entry.window_start = now + lockout;
        }
    }

    /// Forgets `key`'s failures and lockouts (after a successful login of that account).
    pub fn record_success(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Drops every key that is not locked and has had no failure for `forget_after`.
    pub fn prune(&mut self, now: Instant) {
        let forget_after = self.config.forget_after;
        self.entries.retain(|_, e| {
            e.locked_until.is_some_and(|until| until > now)
                || now.saturating_duration_since(e.last_failure) < forget_after
        });
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(LimiterConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn config() -> LimiterConfig {
        LimiterConfig {
            max_failures: 3,
            window: secs(60),
            base_lockout: secs(10),
            max_lockout: secs(35),
            forget_after: secs(1000),
            max_keys: 4,
        }
    }

    /// One step of a scenario: at second `t`, do `op` on key "k", then expect `check`.
    #[derive(Debug, Clone, Copy)]
    enum Op {
        Fail,
        Succeed,
        Nothing,
    }

    fn run(steps: &[(u64, Op, Result<(), u64>)]) {
        let t0 = Instant::now();
        let mut limiter = LoginLimiter::new(config());
        for (i, &(t, op, want)) in steps.iter().enumerate() {
            let now = t0 + secs(t);
            match op {
                Op::Fail => limiter.record_failure("k", now),
                Op::Succeed => limiter.record_success("k"),
                Op::Nothing => {}
            }
            assert_eq!(
                limiter.check("k", now),
                want.map_err(secs),
                "step {i} at {t}s"
            );
        }
    }

    #[test]
    fn lockout_after_max_failures_then_released() {
        use Op::*;
        run(&[
            (0, Nothing, Ok(())),
            (0, Fail, Ok(())),
            (1, Fail, Ok(())),
            (2, Fail, Err(10)),
            (7, Nothing, Err(5)),
            (12, Nothing, Ok(())),
        ]);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        use Op::*;
        run(&[
            (0, Fail, Ok(())),
            (1, Fail, Ok(())),
            (61, Fail, Ok(())),
            (62, Fail, Ok(())),
            (63, Fail, Err(10)),
        ]);
    }

    #[test]
    fn lockouts_double_up_to_the_cap() {
        use Op::*;
        run(&[
            (0, Fail, Ok(())),
            (0, Fail, Ok(())),
            (0, Fail, Err(10)),
            (10, Fail, Ok(())),
            (10, Fail, Ok(())),
            (10, Fail, Err(20)),
            (30, Fail, Ok(())),
            (30, Fail, Ok(())),
            (30, Fail, Err(35)),
            (65, Fail, Ok(())),
            (65, Fail, Ok(())),
            (65, Fail, Err(35)),
        ]);
    }

    #[test]
    fn failures_while_locked_do_not_extend() {
        use Op::*;
        run(&[
            (0, Fail, Ok(())),
            (0, Fail, Ok(())),
            (0, Fail, Err(10)),
            (5, Fail, Err(5)),
            (9, Fail, Err(1)),
            (10, Nothing, Ok(())),
            (10, Fail, Ok(())),
        ]);
    }

    #[test]
    fn success_resets_and_quiet_forgives() {
        use Op::*;
        run(&[
            (0, Fail, Ok(())),
            (0, Fail, Ok(())),
            (1, Succeed, Ok(())),
            (1, Fail, Ok(())),
            (1, Fail, Ok(())),
            (1, Fail, Err(10)),
            // After the lockout and a long quiet spell, the next lockout is the base one again.
            (2000, Fail, Ok(())),
            (2000, Fail, Ok(())),
            (2000, Fail, Err(10)),
        ]);
    }

    #[test]
    fn keys_are_independent_and_check_all_takes_the_longest() {
        let t0 = Instant::now();
        let mut limiter = LoginLimiter::new(config());
        for _ in 0..3 {
            limiter.record_failure("user:ada", t0);
        }
        for _ in 0..6 {
            limiter.record_failure("ip:10.0.0.1", t0 + secs(10));
        }
        let now = t0 + secs(12);
        assert_eq!(limiter.check("user:bob", now), Ok(()));
        assert_eq!(limiter.check("user:ada", now), Ok(()));
        // ip: locked at 10 for 10s; the 4th–6th failures were ignored.
        assert_eq!(limiter.check("ip:10.0.0.1", now), Err(secs(8)));
        assert_eq!(
            limiter.check_all(&["user:ada", "ip:10.0.0.1"], now),
            Err(secs(8))
        );
        assert_eq!(limiter.check_all(&["user:ada", "user:bob"], now), Ok(()));
        assert_eq!(limiter.check_all(&[], now), Ok(()));
    }

    #[test]
    fn per_window_allows_count_then_waits_a_window() {
        let t0 = Instant::now();
        let mut limiter = LoginLimiter::new(LimiterConfig::per_window(3, secs(3600)));
        for i in 0..3 {
            assert_eq!(limiter.check("a", t0 + secs(i)), Ok(()), "attempt {i}");
            limiter.record_failure("a", t0 + secs(i));
        }
        assert_eq!(limiter.check("a", t0 + secs(2)), Err(secs(3600)));
        assert_eq!(limiter.check("b", t0 + secs(2)), Ok(()));
        assert_eq!(limiter.check("a", t0 + secs(3602)), Ok(()));
        assert_eq!(LimiterConfig::per_address().max_failures, 100);
    }

    #[test]
    fn table_stays_bounded() {
        let t0 = Instant::now();
        let mut limiter = LoginLimiter::new(config());
        for i in 0..4 {
            limiter.record_failure(&format!("old{i}"), t0);
        }
        assert_eq!(limiter.len(), 4);
        // A new key past the bound prunes the forgotten ones first.
        limiter.record_failure("new", t0 + secs(1000));
        assert_eq!(limiter.len(), 1);
        limiter.prune(t0 + secs(2000));
        assert!(limiter.is_empty());
    }
}
