//! The registry-area suite ([`RegistryStore`]), with the accounts area for teams.

use super::*;

/// Runs every registry-area check against `store`.
pub async fn run<S: AccountStore + RegistryStore + ?Sized>(store: Arc<S>) {
    let s = &*store;
    retention_rules_round_trip(s).await;
    external_registries_round_trip(s).await;
    delete_team_removes_its_external_registries(s).await;
    registry_metadata_is_a_map_of_keys_in_byte_order(s).await;
}

/// Registry metadata: put creates then replaces, get reads back exact bytes, delete reports
/// existence, and the keys under a prefix are exactly those starting with it, in byte order —
/// underscores and percent signs in keys are plain characters, not patterns.
pub async fn registry_metadata_is_a_map_of_keys_in_byte_order<S: RegistryStore + ?Sized>(
    store: &S,
) {
    let root = format!("repositories/{}", unique_name("meta"));
    let tag = format!("{root}/app/_tags/v1");
    assert_eq!(store.get_registry_metadata(&tag).await.unwrap(), None);
    store
        .put_registry_metadata(&tag, b"{\"digest\":1}")
        .await
        .unwrap();
    store
        .put_registry_metadata(&tag, &[0, 255, 7])
        .await
        .unwrap();
    assert_eq!(
        store.get_registry_metadata(&tag).await.unwrap(),
        Some(vec![0, 255, 7]),
        "the second put replaced the value, bytes exact"
    );
    let others = [
        format!("{root}/app/_tags/v10"),
        format!("{root}/app/_tags/V2"),
        format!("{root}/app/_layers/sha256/ab"),
        format!("{root}/app-b/_tags/x"),
        format!("{root}/app0/_tags/x"),
        format!("{root}/apx/_tags/x"),
        format!("{root}/a%p/_tags/x"),
    ];
    for key in &others {
        store.put_registry_metadata(key, b"").await.unwrap();
    }
    assert_eq!(
        store
            .registry_metadata_keys(&format!("{root}/app/"))
            .await
            .unwrap(),
        vec![
            format!("{root}/app/_layers/sha256/ab"),
            format!("{root}/app/_tags/V2"),
            tag.clone(),
            format!("{root}/app/_tags/v10"),
        ],
        "only the keys below app/, in byte order"
    );
    assert_eq!(
        store
            .registry_metadata_keys(&format!("{root}/app/_tags/v1"))
            .await
            .unwrap(),
        vec![tag.clone(), format!("{root}/app/_tags/v10")]
    );
    assert_eq!(
        store
            .registry_metadata_keys(&format!("{root}/a_p/"))
            .await
            .unwrap(),
        Vec::<String>::new(),
        "an underscore matches only itself"
    );
    assert_eq!(
        store
            .registry_metadata_keys(&format!("{root}/"))
            .await
            .unwrap()
            .len(),
        8
    );
    assert!(
        store
            .registry_metadata_keys("")
            .await
            .unwrap()
            .contains(&tag),
        "the empty prefix lists every key"
    );
    assert!(store.delete_registry_metadata(&tag).await.unwrap());
    assert!(!store.delete_registry_metadata(&tag).await.unwrap());
    assert_eq!(store.get_registry_metadata(&tag).await.unwrap(), None);
    for key in &others {
        assert!(store.delete_registry_metadata(key).await.unwrap());
    }
    assert!(
        store
            .registry_metadata_keys(&format!("{root}/"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Retention rules: put creates then replaces, list is ordered, delete reports existence.
pub async fn retention_rules_round_trip<S: RegistryStore + ?Sized>(store: &S) {
    let repository = format!("{}/app", unique_name("retention"));
    let other = format!("{repository}-b");
    let rule = berth_core::RetentionRule {
        repository: repository.clone(),
        keep_newest_tags: Some(5),
        delete_untagged_older_than_ms: None,
        updated_at: 1,
    };
    store.put_retention_rule(&rule).await.unwrap();
    let replaced = berth_core::RetentionRule {
        keep_newest_tags: None,
        delete_untagged_older_than_ms: Some(86_400_000),
        updated_at: 2,
        ..rule.clone()
    };
    store.put_retention_rule(&replaced).await.unwrap();
    store
        .put_retention_rule(&berth_core::RetentionRule {
            repository: other.clone(),
            ..rule.clone()
        })
        .await
        .unwrap();
    let mine: Vec<_> = store
        .list_retention_rules()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.repository == repository || r.repository == other)
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine[0], replaced, "put replaces, list orders by repository");
    assert_eq!(mine[1].repository, other);
    assert!(store.delete_retention_rule(&repository).await.unwrap());
    assert!(!store.delete_retention_rule(&repository).await.unwrap());
    assert!(store.delete_retention_rule(&other).await.unwrap());
}

pub async fn external_registries_round_trip<S: AccountStore + RegistryStore + ?Sized>(store: &S) {
    let team = new_team("ext-registries");
    let other = new_team("ext-registries-other");
    store.create_team(&team).await.unwrap();
    store.create_team(&other).await.unwrap();

    let hub = new_external_registry(&team.name, "ext-hub");
    store.put_external_registry(&hub).await.unwrap();
    assert_eq!(
        store.get_external_registry(&hub.name).await.unwrap(),
        Some(hub.clone())
    );
    assert_eq!(
        store
            .get_external_registry(&unique_name("ext-missing"))
            .await
            .unwrap(),
        None
    );

    // Replacing keeps the creation time; everything else (even the team) changes.
    let replaced = ExternalRegistry {
        team: other.name.clone(),
        url: "https://registry.example.com".into(),
        username: None,
        sealed_password: None,
        created_at: T0 + 40,
        updated_at: T0 + 50,
        ..hub.clone()
    };
    store.put_external_registry(&replaced).await.unwrap();
    let replaced = ExternalRegistry {
        created_at: hub.created_at,
        ..replaced
    };
    assert_eq!(
        store.get_external_registry(&hub.name).await.unwrap(),
        Some(replaced.clone()),
        "put replaces the registry but keeps its creation time"
    );

    assert_not_found(
        store
            .put_external_registry(&new_external_registry(
                &unique_name("no-team"),
                "ext-orphan",
            ))
            .await,
        "a registry of a missing team",
    );

    let second = new_external_registry(&team.name, "ext-a");
    store.put_external_registry(&second).await.unwrap();
    let mine: Vec<ExternalRegistry> = store
        .list_external_registries()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name == hub.name || r.name == second.name)
        .collect();
    let mut want = vec![replaced.clone(), second.clone()];
    want.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(mine, want, "listed by name");
    let names: Vec<String> = store
        .list_external_registries()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");

    assert!(store.delete_external_registry(&hub.name).await.unwrap());
    assert!(!store.delete_external_registry(&hub.name).await.unwrap());
    assert_eq!(store.get_external_registry(&hub.name).await.unwrap(), None);
    assert_eq!(
        store.get_external_registry(&second.name).await.unwrap(),
        Some(second)
    );
}

pub async fn delete_team_removes_its_external_registries<
    S: AccountStore + RegistryStore + ?Sized,
>(
    store: &S,
) {
    let team = new_team("ext-delete-team");
    let other = new_team("ext-delete-team-other");
    store.create_team(&team).await.unwrap();
    store.create_team(&other).await.unwrap();
    let gone = new_external_registry(&team.name, "ext-gone");
    let kept = new_external_registry(&other.name, "ext-kept");
    store.put_external_registry(&gone).await.unwrap();
    store.put_external_registry(&kept).await.unwrap();
    assert!(store.delete_team(&team.name).await.unwrap());
    assert_eq!(store.get_external_registry(&gone.name).await.unwrap(), None);
    assert_eq!(
        store.get_external_registry(&kept.name).await.unwrap(),
        Some(kept)
    );
}
