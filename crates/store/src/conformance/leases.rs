//! The leases suite ([`LeaseStore`]): one holder at a time, renewals keep the term, an expired
//! or released lease passes to the next taker with a new epoch, and a racing crowd elects one.

use berth_core::leadership::{Lease, Published};

use super::*;
use crate::LeaseStore;

/// Runs every lease check against `store`.
pub async fn run<S: LeaseStore + ?Sized + 'static>(store: Arc<S>) {
    one_holder_until_expiry_then_a_new_term(&*store).await;
    a_release_hands_over_at_once(&*store).await;
    only_the_current_term_publishes(&*store).await;
    the_database_tells_its_time(&*store).await;
    a_crowd_elects_exactly_one(store).await;
}

const TTL: i64 = 6_000;

/// A lease is held by its taker; others get the lease as it stands; renewals keep the epoch
/// and the term's start; once expired it passes on with epoch + 1; the old holder coming back
/// late starts a term of its own.
pub async fn one_holder_until_expiry_then_a_new_term<S: LeaseStore + ?Sized>(store: &S) {
    let name = unique_name("lease");
    assert_eq!(store.get_lease(&name).await.expect("get"), None);
    let first = store
        .acquire_lease(&name, "a", T0, TTL)
        .await
        .expect("take");
    assert_eq!(
        first,
        Lease {
            name: name.clone(),
            holder: "a".into(),
            epoch: 1,
            acquired_at: T0,
            renewed_at: T0,
            expires_at: T0 + TTL,
        }
    );
    // Another server is told who holds it, and nothing changes.
    let refused = store
        .acquire_lease(&name, "b", T0 + 1_000, TTL)
        .await
        .expect("try");
    assert_eq!(refused, first, "b does not get a running lease");
    // A renewal keeps the term.
    let renewed = store
        .acquire_lease(&name, "a", T0 + 2_000, TTL)
        .await
        .expect("renew");
    assert_eq!(
        (
            renewed.epoch,
            renewed.acquired_at,
            renewed.renewed_at,
            renewed.expires_at
        ),
        (1, T0, T0 + 2_000, T0 + 2_000 + TTL)
    );
    assert_eq!(
        store.get_lease(&name).await.expect("get"),
        Some(renewed.clone())
    );
    // Still running one millisecond before it lapses; free at the expiry.
    let early = store
        .acquire_lease(&name, "b", renewed.expires_at - 1, TTL)
        .await
        .expect("try");
    assert_eq!(early.holder, "a");
    let taken = store
        .acquire_lease(&name, "b", renewed.expires_at, TTL)
        .await
        .expect("take over");
    assert_eq!(
        (taken.holder.as_str(), taken.epoch, taken.acquired_at),
        ("b", 2, renewed.expires_at)
    );
    // The old holder, back late, cannot renew: b holds it.
    let late = store
        .acquire_lease(&name, "a", renewed.expires_at + 10, TTL)
        .await
        .expect("try");
    assert_eq!(late.holder, "b");
    assert!(!late.held_by("a", renewed.expires_at + 10));
    // A holder that let its own lease lapse takes it back in a new term.
    let lapsed_at = taken.expires_at;
    let again = store
        .acquire_lease(&name, "b", lapsed_at + 1, TTL)
        .await
        .expect("take back");
    assert_eq!((again.holder.as_str(), again.epoch), ("b", 3));
}

/// A released lease is free at once; a release by another holder or for another term is
/// refused and changes nothing.
pub async fn a_release_hands_over_at_once<S: LeaseStore + ?Sized>(store: &S) {
    let name = unique_name("lease-release");
    let held = store
        .acquire_lease(&name, "a", T0, TTL)
        .await
        .expect("take");
    assert!(
        !store
            .release_lease(&name, "b", held.epoch)
            .await
            .expect("release")
    );
    assert!(
        !store
            .release_lease(&name, "a", held.epoch + 1)
            .await
            .expect("release")
    );
    assert_eq!(
        store
            .acquire_lease(&name, "b", T0 + 1, TTL)
            .await
            .unwrap()
            .holder,
        "a",
        "refused releases left it running"
    );
    assert!(
        store
            .release_lease(&name, "a", held.epoch)
            .await
            .expect("release")
    );
    let next = store
        .acquire_lease(&name, "b", T0 + 2, TTL)
        .await
        .expect("take");
    assert_eq!((next.holder.as_str(), next.epoch), ("b", 2));
    assert!(
        !store
            .release_lease(&name, "missing-lease-holder", 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .release_lease(&unique_name("no-such-lease"), "a", 1)
            .await
            .unwrap()
    );
}

/// Twenty servers asking at the same moment: exactly one holds the lease, and every one of
/// them is told the same holder and epoch.
pub async fn a_crowd_elects_exactly_one<S: LeaseStore + ?Sized + 'static>(store: Arc<S>) {
    let name = unique_name("lease-crowd");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let holder = format!("server-{i}");
            let lease = store
                .acquire_lease(&name, &holder, T0, TTL)
                .await
                .expect("acquire");
            (holder, lease)
        }));
    }
    let mut winners = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for task in tasks {
        let (holder, lease) = task.await.expect("task");
        if lease.holder == holder {
            winners.push(holder);
        }
        seen.insert((lease.holder, lease.epoch));
    }
    assert_eq!(winners.len(), 1, "exactly one holder: {winners:?}");
    assert_eq!(seen.len(), 1, "everyone sees the same term: {seen:?}");
}

/// What the holder of the current term publishes is kept (the latest per key); a server that
/// does not hold the lease, or holds an older term of it, writes nothing.
pub async fn only_the_current_term_publishes<S: LeaseStore + ?Sized>(store: &S) {
    let lease = unique_name("lease");
    let key = unique_name("endpoints");
    assert_eq!(store.published(&key).await.expect("read"), None);
    // Nobody holds the lease yet.
    let written = store
        .publish_as_leader(&lease, "a", 1, &key, "{}", T0)
        .await
        .expect("publish");
    assert!(!written, "published without a lease");
    assert_eq!(store.published(&key).await.expect("read"), None);

    let first = store
        .acquire_lease(&lease, "a", T0, TTL)
        .await
        .expect("take");
    // (holder, epoch, body, written)
    let steps = [
        ("a", first.epoch, "one", true),
        ("a", first.epoch, "two", true),
        ("b", first.epoch, "not b's", false),
        ("a", first.epoch + 1, "not yet a's term", false),
    ];
    for (at, (holder, epoch, body, expected)) in (T0 + 1..).zip(steps) {
        let written = store
            .publish_as_leader(&lease, holder, epoch, &key, body, at)
            .await
            .expect("publish");
        assert_eq!(
            written, expected,
            "{holder} in term {epoch} publishing {body:?}"
        );
    }
    assert_eq!(
        store.published(&key).await.expect("read"),
        Some(Published {
            epoch: first.epoch,
            body: "two".into(),
            published_at: T0 + 2,
        })
    );

    // The lease expires and b takes it: a, deposed, writes nothing any more; b does.
    let later = T0 + TTL + 1;
    let second = store
        .acquire_lease(&lease, "b", later, TTL)
        .await
        .expect("take");
    assert_eq!(second.holder, "b");
    let late = store
        .publish_as_leader(&lease, "a", first.epoch, &key, "late", later)
        .await
        .expect("publish");
    assert!(!late, "a deposed leader published");
    assert!(
        store
            .publish_as_leader(&lease, "b", second.epoch, &key, "b's", later + 1)
            .await
            .expect("publish")
    );
    let now = store
        .published(&key)
        .await
        .expect("read")
        .expect("published");
    assert_eq!((now.epoch, now.body.as_str()), (second.epoch, "b's"));
    // Keys are apart.
    assert_eq!(
        store.published(&unique_name("other")).await.expect("read"),
        None
    );
}

/// The database's clock reads like this machine's (the tests run beside the database).
pub async fn the_database_tells_its_time<S: LeaseStore + ?Sized>(store: &S) {
    let now = || berth_core::clock::system_clock()();
    let before = now();
    let database = store.database_time().await.expect("the database's time");
    let after = now();
    assert!(
        (before - 1_000..=after + 1_000).contains(&database),
        "{before} ≤ {database} ≤ {after}, within a second"
    );
}
