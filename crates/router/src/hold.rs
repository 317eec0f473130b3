//! Holding requests for an app that has no ready instance yet but is bringing one up: the
//! per-app bound on held requests, and the wait for the routing table to give the app a ready
//! instance (or to stop holding it) within the hold timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The requests an app holds now, bounded: one per app, shared by every table (it lives with
/// the app's counters).
#[derive(Debug, Default)]
pub(crate) struct HoldGate {
    held: AtomicUsize,
    /// Requests ever admitted.
    total: AtomicU64,
}

/// What [`HoldGate::enter`] decided for one request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The request waits; it is no longer held when the guard is dropped.
    Held(HeldGuard),
    /// `max` requests are held already: the request is refused at once.
    Full,
}

/// One held request; dropping it releases its place.
#[derive(Debug)]
pub(crate) struct HeldGuard {
    gate: Arc<HoldGate>,
}

impl PartialEq for HeldGuard {
    fn eq(&self, other: &HeldGuard) -> bool {
        Arc::ptr_eq(&self.gate, &other.gate)
    }
}

impl Eq for HeldGuard {}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.gate.held.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HoldGate {
    /// Takes a place among the app's held requests when fewer than `max` are held.
    pub(crate) fn enter(self: &Arc<HoldGate>, max: usize) -> Admission {
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < max).then_some(held + 1)
            });
        match taken {
            Ok(_) => {
                self.total.fetch_add(1, Ordering::Relaxed);
                Admission::Held(HeldGuard {
                    gate: Arc::clone(self),
                })
            }
            Err(_) => Admission::Full,
        }
    }

    /// How many requests are held now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// How many requests were ever held.
    pub(crate) fn held_total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// Where a held request stands after a look at the current table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldStep {
    /// The app has a ready instance: pass the request on.
    Release,
    /// Still nothing ready and the app is still being brought up: keep waiting.
    Wait,
    /// The app no longer holds (it crash-loops, was scaled to 0, its start was refused):
    /// answer its 503 page now.
    Refuse,
    /// The host or path routes nowhere any more (the app was deleted): answer 404.
    Gone,
}

/// The next step of a held request given its route in the current table: `None` when nothing
/// routes there, else whether the route has ready backends and still holds.
pub(crate) fn hold_step(route: Option<(bool, bool)>) -> HoldStep {
    match route {
        None => HoldStep::Gone,
        Some((true, _)) => HoldStep::Release,
        Some((false, true)) => HoldStep::Wait,
        Some((false, false)) => HoldStep::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_holds_at_most_max_and_frees_places_on_drop() {
        // (max, requests entering, places freed before a last one, last one held?)
        let cases = [
            (0, 0, 0, false),
            (1, 0, 0, true),
            (1, 1, 0, false),
            (1, 1, 1, true),
            (3, 2, 0, true),
            (3, 3, 0, false),
            (3, 3, 2, true),
        ];
        for (max, entering, freed, last_held) in cases {
            let gate = Arc::new(HoldGate::default());
            let mut guards: Vec<HeldGuard> = (0..entering)
                .map(|_| match gate.enter(max) {
                    Admission::Held(guard) => guard,
                    Admission::Full => panic!("max {max}: refused below the bound"),
                })
                .collect();
            guards.truncate(entering - freed);
            assert_eq!(gate.held(), entering - freed, "max {max}");
            let last = gate.enter(max);
            assert_eq!(
                matches!(last, Admission::Held(_)),
                last_held,
                "max {max}, {entering} entered, {freed} freed"
            );
            let admitted = entering + usize::from(last_held);
            drop(last);
            drop(guards);
            assert_eq!(gate.held(), 0, "every place comes back");
            assert_eq!(gate.held_total(), admitted as u64, "max {max}");
        }
    }

    #[test]
    fn held_requests_go_on_only_when_an_instance_is_ready() {
        let cases = [
            (None, HoldStep::Gone),
            (Some((true, true)), HoldStep::Release),
            (Some((true, false)), HoldStep::Release),
            (Some((false, true)), HoldStep::Wait),
            (Some((false, false)), HoldStep::Refuse),
        ];
        for (route, step) in cases {
            assert_eq!(hold_step(route), step, "{route:?}");
        }
    }
}
