//! The secrets-area suite ([`SecretStore`]): versions follow one another, older ones are
//! dropped past the number kept, and deleting forgets every version.

use berth_core::team_secret::TeamSecret;

use super::*;
use crate::SecretStore;

/// Runs every secrets-area check against `store`.
pub async fn run<S: SecretStore + ?Sized>(store: Arc<S>) {
    versions_follow_one_another_and_old_ones_go(&*store).await;
}

/// Version 1 creates, each next version follows by one (a skipped or repeated one is a
/// conflict), only the newest `keep` sealed values stay, and a delete forgets them all.
pub async fn versions_follow_one_another_and_old_ones_go<S: SecretStore + ?Sized>(store: &S) {
    let team = unique_name("secret-team");
    let at = |version: u32| TeamSecret {
        team: team.clone(),
        name: "db".into(),
        version,
        created_at: T0,
        created_by: "ann".into(),
        updated_at: T0 + i64::from(version),
        updated_by: if version == 1 { "ann" } else { "bob" }.into(),
    };
    store
        .add_secret_version(&at(1), "sealed-1", 2)
        .await
        .unwrap();
    assert!(matches!(
        store.add_secret_version(&at(1), "again", 2).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.add_secret_version(&at(3), "skipped", 2).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .add_secret_version(&at(2), "sealed-2", 2)
        .await
        .unwrap();
    store
        .add_secret_version(&at(3), "sealed-3", 2)
        .await
        .unwrap();
    assert_eq!(store.get_secret(&team, "db").await.unwrap(), Some(at(3)));
    assert_eq!(store.list_secrets(Some(&team)).await.unwrap(), vec![at(3)]);
    let sealed = |version| store.sealed_secret(&team, "db", version);
    assert_eq!(sealed(3).await.unwrap().as_deref(), Some("sealed-3"));
    assert_eq!(sealed(2).await.unwrap().as_deref(), Some("sealed-2"));
    assert_eq!(sealed(1).await.unwrap(), None, "only the newest 2 are kept");
    assert!(store.delete_secret(&team, "db").await.unwrap());
    assert!(!store.delete_secret(&team, "db").await.unwrap());
    assert_eq!(sealed(3).await.unwrap(), None);
    assert_eq!(store.get_secret(&team, "db").await.unwrap(), None);
    // Deleted, the name starts again at version 1.
    store.add_secret_version(&at(1), "new", 2).await.unwrap();
}
