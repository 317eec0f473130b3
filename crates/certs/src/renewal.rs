//! When a certificate is renewed: a pure function of its validity, the renewal setting and
//! `now`.

use std::time::{Duration, SystemTime};

/// Whether a certificate valid from `not_before` to `not_after` should be renewed at `now`:
/// when less than `renew_before` is left, or without that setting, less than a third of its
/// lifetime (30 days of Let's Encrypt's 90); always when it has expired or when its validity
/// makes no sense (ends before it starts).
pub fn needs_renewal(
    not_before: SystemTime,
    not_after: SystemTime,
    now: SystemTime,
    renew_before: Option<Duration>,
) -> bool {
    let lifetime = match not_after.duration_since(not_before) {
        Ok(lifetime) if !lifetime.is_zero() => lifetime,
        _ => return true,
    };
    let Ok(left) = not_after.duration_since(now) else {
        return true;
    };
    left < renew_before.unwrap_or(lifetime / 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const DAY: u64 = 24 * 60 * 60;

    fn day(n: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(n * DAY)
    }

    #[test]
    fn renews_when_less_than_a_third_of_the_lifetime_is_left() {
        let second = Duration::from_secs(1);
        // (not_before, not_after, now, renew)
        let cases: &[(SystemTime, SystemTime, SystemTime, bool)] = &[
            // 90 days: renew in the last 30.
            (day(100), day(190), day(100), false),
            (day(100), day(190), day(159), false),
            (day(100), day(190), day(160), false),
            (day(100), day(190), day(160) + second, true),
            (day(100), day(190), day(189), true),
            (day(100), day(190), day(190), true),
            (day(100), day(190), day(400), true),
            // Not valid yet (clock skew): nothing to renew.
            (day(100), day(190), day(50), false),
            // A one-year certificate: renew in the last 121 2/3 days.
            (day(0), day(365), day(243), false),
            (day(0), day(365), day(244), true),
            // Six-hour certificates: renew in the last two hours.
            (
                day(1),
                day(1) + Duration::from_secs(6 * 3600),
                day(1) + Duration::from_secs(4 * 3600),
                false,
            ),
            (
                day(1),
                day(1) + Duration::from_secs(6 * 3600),
                day(1) + Duration::from_secs(4 * 3600 + 1),
                true,
            ),
            // Nonsense validity: renew.
            (day(190), day(100), day(150), true),
            (day(100), day(100), day(100), true),
        ];
        for (not_before, not_after, now, want) in cases {
            assert_eq!(
                needs_renewal(*not_before, *not_after, *now, None),
                *want,
                "{not_before:?}..{not_after:?} at {now:?}"
            );
        }
    }

    #[test]
    fn a_set_margin_replaces_the_third_of_the_lifetime() {
        let hours = |n: u64| Duration::from_secs(n * 3600);
        // (not_before, not_after, now, renew_before, renew)
        let cases: &[(SystemTime, SystemTime, SystemTime, Duration, bool)] = &[
            // 90 days, renewed 7 days before the end instead of 30.
            (day(100), day(190), day(160), hours(7 * 24), false),
            (day(100), day(190), day(183), hours(7 * 24), false),
            (day(100), day(190), day(183) + hours(1), hours(7 * 24), true),
            // A margin longer than the lifetime: due as soon as issued (tests use this).
            (day(1), day(1) + hours(1), day(1), hours(2), true),
            // Expired or nonsense: renewed whatever the margin.
            (day(100), day(190), day(191), Duration::ZERO, true),
            (day(190), day(100), day(150), hours(1), true),
            // A zero margin renews only what has expired.
            (day(100), day(190), day(189), Duration::ZERO, false),
        ];
        for (not_before, not_after, now, margin, want) in cases {
            assert_eq!(
                needs_renewal(*not_before, *not_after, *now, Some(*margin)),
                *want,
                "{not_before:?}..{not_after:?} at {now:?}, {margin:?} before"
            );
        }
    }
}
