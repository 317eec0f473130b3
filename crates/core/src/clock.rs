//! The platform's one clock: every "now" in Berth comes from a [`Clock`] handed down from the
//! server, so tests can fix or move time and the core stays a function of its inputs.

use std::sync::Arc;

use crate::Millis;

/// Reads the current time as unix milliseconds.
pub type Clock = Arc<dyn Fn() -> Millis + Send + Sync>;

/// The system clock (the only place Berth reads the wall clock).
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| {
                Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
            })
    })
}

/// A clock that always reads `at` (tests).
pub fn fixed_clock(at: Millis) -> Clock {
    Arc::new(move || at)
}

/// Unix milliseconds as a [`std::time::SystemTime`] (for code that keeps file times).
pub fn to_system_time(at: Millis) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(at).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_read_what_they_are_given() {
        assert_eq!(fixed_clock(42)(), 42);
        assert!(system_clock()() > 1_700_000_000_000);
        assert_eq!(
            to_system_time(1_500),
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_500)
        );
        assert_eq!(to_system_time(-5), std::time::UNIX_EPOCH);
    }
}
