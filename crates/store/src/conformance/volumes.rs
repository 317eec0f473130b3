//! The volumes-area suite ([`VolumeStore`]): a team's volume records, their scope, their
//! measured sizes and the team's total.

use berth_core::volume::{Volume, VolumeScope};

use super::*;
use crate::{VolumeSize, VolumeStore};

/// Runs every volumes-area check against `store`.
pub async fn run<S: VolumeStore + ?Sized>(store: Arc<S>) {
    let s = &*store;
    volumes_are_recorded_once_per_team_and_name(s).await;
    sizes_are_recorded_and_summed_per_team(s).await;
}

fn volume(team: &str, name: &str, scope: VolumeScope) -> Volume {
    Volume {
        team: team.into(),
        name: name.into(),
        scope,
        created_at: T0,
        created_by: "ann".into(),
        size_bytes: None,
        measured_at: None,
    }
}

/// A volume is recorded once (a second create keeps the first, scope and all), read back
/// whole, listed by team and name, and forgotten.
pub async fn volumes_are_recorded_once_per_team_and_name<S: VolumeStore + ?Sized>(store: &S) {
    let team = unique_name("vol-team");
    let other = unique_name("vol-other");
    let data = volume(&team, "data", VolumeScope::Shared);
    assert!(store.create_volume(&data).await.unwrap(), "a new volume");
    let again = volume(&team, "data", VolumeScope::PerInstance);
    assert!(
        !store.create_volume(&again).await.unwrap(),
        "the name is taken"
    );
    assert_eq!(
        store.get_volume(&team, "data").await.unwrap(),
        Some(data.clone())
    );
    let cache = volume(&team, "cache", VolumeScope::PerInstance);
    store.create_volume(&cache).await.unwrap();
    // The same name in another team is another volume.
    store
        .create_volume(&volume(&other, "data", VolumeScope::Shared))
        .await
        .unwrap();
    assert_eq!(
        store.list_volumes(Some(&team)).await.unwrap(),
        vec![cache.clone(), data.clone()]
    );
    let all = store.list_volumes(None).await.unwrap();
    assert!(all.contains(&data) && all.iter().any(|v| v.team == other));
    assert!(store.delete_volume(&team, "data").await.unwrap());
    assert!(!store.delete_volume(&team, "data").await.unwrap());
    assert_eq!(store.get_volume(&team, "data").await.unwrap(), None);
    assert_eq!(
        store
            .get_volume(&other, "data")
            .await
            .unwrap()
            .map(|v| v.team),
        Some(other)
    );
}

/// Sizes land on the volumes measured (unknown ones are skipped) and sum per team.
pub async fn sizes_are_recorded_and_summed_per_team<S: VolumeStore + ?Sized>(store: &S) {
    let team = unique_name("vol-sizes");
    for name in ["a", "b", "c"] {
        store
            .create_volume(&volume(&team, name, VolumeScope::Shared))
            .await
            .unwrap();
    }
    assert_eq!(
        store.team_volume_bytes(&team).await.unwrap(),
        0,
        "unmeasured"
    );
    let size = |name: &str, bytes| VolumeSize {
        team: team.clone(),
        name: name.into(),
        bytes,
    };
    store
        .record_volume_sizes(&[size("a", 1000), size("b", 24), size("gone", 7)], T0 + 5)
        .await
        .unwrap();
    let a = store.get_volume(&team, "a").await.unwrap().unwrap();
    assert_eq!((a.size_bytes, a.measured_at), (Some(1000), Some(T0 + 5)));
    let c = store.get_volume(&team, "c").await.unwrap().unwrap();
    assert_eq!((c.size_bytes, c.measured_at), (None, None));
    assert_eq!(store.team_volume_bytes(&team).await.unwrap(), 1024);
    assert_eq!(store.get_volume(&team, "gone").await.unwrap(), None);
    // The largest size is kept.
    store
        .record_volume_sizes(&[size("a", i64::MAX as u64)], T0 + 6)
        .await
        .unwrap();
    let a = store.get_volume(&team, "a").await.unwrap().unwrap();
    assert_eq!(a.size_bytes, Some(i64::MAX as u64));
}
