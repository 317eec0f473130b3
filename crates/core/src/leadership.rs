//! Leadership among several Berth servers on one database: the lease one of them holds to run
//! the controllers and workers, and the pure rules of a term — when to renew, until when the
//! holder may act, when a follower may take over.
//!
//! A lease is a row (name, holder, epoch, expiry). The holder renews it well before it expires;
//! a follower takes it once it has expired, which bumps the epoch: each term has its own epoch,
//! and everything a leader does is tagged with it. The holder stops acting at its *deadline* —
//! the moment it started its last successful renewal, plus the time to live, minus a safety
//! margin — which comes before any follower may take over (the expiry counts from the same
//! moment, on the clocks of the servers, which must agree to well within the margin). So two
//! servers never act at once, even when the old leader is cut off from the database without
//! knowing it.

use std::time::Duration;

use crate::Millis;

/// The lease of the servers' controllers and workers.
pub const CONTROLLER_LEASE: &str = "controllers";

/// A lease as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    /// The server holding it (its `holder` id: host, process and a random part).
    pub holder: String,
    /// The term: 1 for the first holder, one more at every change of holder (or when a holder
    /// takes back a lease it let expire).
    pub epoch: i64,
    /// When this term began (unix ms, the holder's clock).
    pub acquired_at: Millis,
    /// The holder's last renewal (unix ms).
    pub renewed_at: Millis,
    /// When the lease lapses unless renewed; 0 once given up.
    pub expires_at: Millis,
}

impl Lease {
    /// Whether `holder` holds this lease at `now`.
    pub fn held_by(&self, holder: &str, now: Millis) -> bool {
        self.holder == holder && self.expires_at > now
    }
}

/// What the leader last published under a key for the other servers (see
/// `LeaseStore::publish_as_leader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The lease term it was written in.
    pub epoch: i64,
    pub body: String,
    /// When (unix ms, the leader's clock).
    pub published_at: Millis,
}

/// The timing of leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a lease lasts after a renewal.
    pub ttl: Duration,
    /// How often the holder renews it.
    pub renew_every: Duration,
    /// How often a follower asks whether the lease is free.
    pub poll_every: Duration,
    /// How long before the expiry the holder stops acting.
    pub margin: Duration,
    /// How often a server compares its clock with the database's (see [`ClockCheck`]).
    pub clock_check_every: Duration,
}

impl Default for LeaseTiming {
    /// A lease of 6 s renewed every second and checked every 250 ms by followers: a leader that
    /// dies is replaced within about 6.5 s; one that steps down (SIGTERM) gives the lease up at
    /// once and is replaced within about 250 ms. It stops acting 1.5 s before its lease lapses.
    fn default() -> Self {
        LeaseTiming {
            ttl: Duration::from_secs(6),
            renew_every: Duration::from_secs(1),
            poll_every: Duration::from_millis(250),
            margin: Duration::from_millis(1500),
            clock_check_every: Duration::from_secs(10),
        }
    }
}

impl LeaseTiming {
    /// Checks that a holder renews several times per lease and stops acting before it lapses.
    pub fn validate(&self) -> Result<(), String> {
        if self.margin >= self.ttl {
            return Err(format!(
                "the safety margin ({:?}) must be shorter than the lease ({:?})",
                self.margin, self.ttl
            ));
        }
        if self.renew_every.saturating_mul(2) > self.ttl.saturating_sub(self.margin) {
            return Err(format!(
                "renewing every {:?} leaves no second chance within a lease of {:?} less its \
                 margin {:?}",
                self.renew_every, self.ttl, self.margin
            ));
        }
        if self.poll_every.is_zero()
            || self.renew_every.is_zero()
            || self.clock_check_every.is_zero()
        {
            return Err("the renewal, poll and clock check periods must not be zero".into());
        }
        Ok(())
    }

    /// The largest difference between a server's clock and the database's with which it may
    /// lead: half the margin. Leases are stamped with their holder's clock and judged expired
    /// by the others' clocks; a follower whose clock runs ahead by more than the margin would
    /// take a lease its holder still acts under.
    pub fn max_clock_skew(&self) -> Duration {
        self.margin / 2
    }

    /// The time to live in milliseconds, as the store takes it.
    pub fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Until when a holder whose last successful renewal *started* `since_renewal_start` ago
    /// may still act: `ttl - margin` after that start. `None` once that moment has passed.
    pub fn time_left(&self, since_renewal_start: Duration) -> Option<Duration> {
        self.ttl
            .saturating_sub(self.margin)
            .checked_sub(since_renewal_start)
            .filter(|left| !left.is_zero())
    }
}

/// A reading of the database's clock between two readings of this server's (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockCheck {
    pub before: Millis,
    pub database: Millis,
    pub after: Millis,
}

impl ClockCheck {
    /// How far this server's clock is ahead of the database's (negative: behind), taking the
    /// database's reading as made halfway through the round trip.
    pub fn skew_ms(&self) -> i64 {
        self.before / 2 + self.after / 2 + (self.before % 2 + self.after % 2) / 2 - self.database
    }

    /// Whether the clocks agree within `max`, even at the worst moment of the round trip
    /// (a slow round trip cannot prove agreement).
    pub fn agrees(&self, max: Duration) -> bool {
        let half_trip = (self.after - self.before).max(0) / 2;
        let max = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
        self.skew_ms().abs() + half_trip <= max
    }
}

/// What the servers tell each other over the database's notifications: a follower tells the
/// leader of work for the controllers or the build worker that its API made; the leader tells
/// the followers that it published the endpoint table.
/// controllers or the build worker that the follower's API made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Reconcile this app soon.
    Wake(String),
    /// A build was queued: run the queued builds.
    BuildsQueued,
    /// Cancel this build.
    CancelBuild(i64),
    /// (From the leader, to the followers.) The endpoint table was published anew.
    EndpointsPublished,
}

impl Signal {
    /// The notification's text: `wake APP`, `builds`, `cancel ID`, `endpoints`.
    pub fn to_payload(&self) -> String {
        match self {
            Signal::Wake(app) => format!("wake {app}"),
            Signal::BuildsQueued => "builds".into(),
            Signal::CancelBuild(id) => format!("cancel {id}"),
            Signal::EndpointsPublished => "endpoints".into(),
        }
    }

    /// The signal a notification's text carries; `None` for anything else (a notification on
    /// the channel from another source, or a newer server's signal this one does not know).
    pub fn parse(payload: &str) -> Option<Signal> {
        match payload.split_once(' ') {
            Some(("wake", app)) if !app.is_empty() && !app.contains(char::is_whitespace) => {
                Some(Signal::Wake(app.to_string()))
            }
            Some(("cancel", id)) => id.parse().ok().map(Signal::CancelBuild),
            None if payload == "builds" => Some(Signal::BuildsQueued),
            None if payload == "endpoints" => Some(Signal::EndpointsPublished),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_and_anything_else_is_ignored() {
        for signal in [
            Signal::Wake("web".into()),
            Signal::Wake("a-b-c".into()),
            Signal::BuildsQueued,
            Signal::CancelBuild(42),
            Signal::EndpointsPublished,
        ] {
            assert_eq!(Signal::parse(&signal.to_payload()), Some(signal.clone()));
        }
        for payload in [
            "",
            "wake",
            "wake ",
            "wake a b",
            "cancel",
            "cancel x",
            "cancel 1.5",
            "builds 3",
            "endpoints web",
            "restart web",
            "WAKE web",
        ] {
            assert_eq!(Signal::parse(payload), None, "{payload:?}");
        }
    }

    #[test]
    fn clocks_agree_within_the_skew_allowed_even_at_the_worst_moment_of_the_round_trip() {
        let max = LeaseTiming::default().max_clock_skew();
        assert_eq!(max, Duration::from_millis(750));
        // (before, database, after, skew, agrees)
        let cases = [
            (1_000, 1_005, 1_010, 0, true),
            (1_000, 300, 1_010, 705, true),
            (1_000, 1_705, 1_010, -700, true),
            (1_000, 245, 1_010, 760, false),
            (1_000, 1_800, 1_010, -795, false),
            // A slow round trip cannot prove agreement.
            (1_000, 1_500, 2_000, 0, true),
            (1_000, 2_000, 3_000, 0, false),
            (1_001, 1_001, 1_002, 0, true),
            (i64::MAX - 1, i64::MAX - 1, i64::MAX - 1, 0, true),
        ];
        for (before, database, after, skew, agrees) in cases {
            let check = ClockCheck {
                before,
                database,
                after,
            };
            assert_eq!(check.skew_ms(), skew, "{check:?}");
            assert_eq!(check.agrees(max), agrees, "{check:?}");
        }
    }

    #[test]
    fn the_default_timing_is_valid_and_bad_ones_are_refused() {
        let ms = Duration::from_millis;
        let timing = |ttl, renew, poll, margin| LeaseTiming {
            ttl: ms(ttl),
            renew_every: ms(renew),
            poll_every: ms(poll),
            margin: ms(margin),
            clock_check_every: ms(10_000),
        };
        // (timing, Ok or a word of the error)
        let cases = [
            (LeaseTiming::default(), Ok(())),
            (timing(6000, 1000, 250, 1500), Ok(())),
            (timing(2000, 500, 100, 500), Ok(())),
            (timing(6000, 1000, 250, 6000), Err("margin")),
            (timing(6000, 3000, 250, 1500), Err("second chance")),
            (timing(6000, 1000, 0, 1500), Err("zero")),
        ];
        for (timing, want) in cases {
            match (timing.validate(), want) {
                (Ok(()), Ok(())) => {}
                (Err(error), Err(word)) => assert!(error.contains(word), "{timing:?}: {error}"),
                (got, want) => panic!("{timing:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_holder_may_act_until_its_deadline_only() {
        let timing = LeaseTiming::default();
        let s = Duration::from_secs;
        // (time since the start of the last successful renewal, time left to act)
        let cases = [
            (s(0), Some(Duration::from_millis(4500))),
            (s(1), Some(Duration::from_millis(3500))),
            (Duration::from_millis(4499), Some(Duration::from_millis(1))),
            (Duration::from_millis(4500), None),
            (s(60), None),
        ];
        for (since, want) in cases {
            assert_eq!(timing.time_left(since), want, "{since:?}");
        }
        assert_eq!(timing.ttl_ms(), 6000);
    }

    #[test]
    fn a_lease_is_held_by_its_holder_until_it_expires() {
        let lease = Lease {
            name: CONTROLLER_LEASE.into(),
            holder: "a".into(),
            epoch: 3,
            acquired_at: 100,
            renewed_at: 500,
            expires_at: 1000,
        };
        // (holder, now, held)
        let cases = [
            ("a", 999, true),
            ("a", 1000, false),
            ("b", 999, false),
            ("a", 0, true),
        ];
        for (holder, now, want) in cases {
            assert_eq!(lease.held_by(holder, now), want, "{holder} at {now}");
        }
    }
}
