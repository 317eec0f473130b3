//! The accounts-area suite ([`AccountStore`]), with the apps area for team deletion.

use super::*;

/// Runs every accounts-area check against `store`.
pub async fn run<S: AccountStore + AppStore + ?Sized>(store: Arc<S>) {
    let s = &*store;
    ensure_team_is_idempotent(s).await;
    users_round_trip(s).await;
    users_duplicate_username_or_email_is_conflict(s).await;
    users_update_and_password(s).await;
    memberships_round_trip(s).await;
    api_tokens_round_trip(s).await;
    api_tokens_revoke(s).await;
    delete_user_removes_memberships_and_tokens(s).await;
    sessions_round_trip(s).await;
    sessions_expire(s).await;
    delete_user_ends_sessions(s).await;
    teams_round_trip(s).await;
    delete_team_checks_apps_and_cascades(s).await;
    quota_requests_round_trip_and_filters(s).await;
    decide_quota_request_sets_limits_once(s).await;
    deployment_templates_round_trip(s).await;
    audit_round_trip_and_filters(s).await;
    settings_round_trip(s).await;
    init_setting_keeps_the_first_value(s).await;
    list_team_users_by_username(s).await;
}

/// `ensure_team` succeeds again for an existing team.
pub async fn ensure_team_is_idempotent<S: AccountStore + ?Sized>(store: &S) {
    let team = unique_name("team");
    store
        .ensure_team(&team, T0)
        .await
        .expect("ensure_team (new)");
    store
        .ensure_team(&team, T0 + 1)
        .await
        .expect("ensure_team (existing)");
    store
        .ensure_team(berth_core::DEFAULT_TEAM, T0)
        .await
        .expect("ensure_team (default)");
    store
        .ensure_team(berth_core::DEFAULT_TEAM, T0)
        .await
        .expect("ensure_team (default again)");
}

pub async fn users_round_trip<S: AccountStore + ?Sized>(store: &S) {
    let ada = new_user("users");
    let stored = store.create_user(&ada, "hash-ada").await.unwrap();
    assert!(stored.id > 0, "the store assigns an id");
    assert_eq!(
        stored,
        User {
            id: stored.id,
            ..ada.clone()
        }
    );
    let admin = User {
        is_admin: true,
        disabled: true,
        ..new_user("users")
    };
    let admin = store.create_user(&admin, "hash-admin").await.unwrap();
    assert_ne!(admin.id, stored.id);

    assert_eq!(
        store.get_user(stored.id).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.get_user(admin.id).await.unwrap(), Some(admin.clone()));
    assert_eq!(
        store.get_user_by_username(&ada.username).await.unwrap(),
        Some((stored.clone(), "hash-ada".to_string()))
    );
    assert_eq!(
        store
            .get_user_by_username(&ada.username.to_uppercase())
            .await
            .unwrap(),
        None,
        "usernames match exactly"
    );
    assert_eq!(store.get_user(i64::MAX).await.unwrap(), None);
    assert_eq!(
        store.get_user_by_username("nobody-at-all").await.unwrap(),
        None
    );

    let ids = [stored.id, admin.id];
    let mine: Vec<User> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| ids.contains(&u.id))
        .collect();
    let mut want = vec![stored, admin];
    want.sort_by(|a, b| a.username.cmp(&b.username));
    assert_eq!(mine, want, "listed by username");
}

pub async fn users_duplicate_username_or_email_is_conflict<S: AccountStore + ?Sized>(store: &S) {
    let ada = new_user("user-dup");
    store.create_user(&ada, "h").await.unwrap();
    let same_username = User {
        email: format!("other-{}", ada.email),
        ..ada.clone()
    };
    match store.create_user(&same_username, "h").await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("username"), "{message}"),
        other => panic!("same username: expected a conflict, got {other:?}"),
    }
    let same_email = User {
        username: format!("{}-2", ada.username),
        email: ada.email.to_uppercase(),
        ..ada.clone()
    };
    match store.create_user(&same_email, "h").await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("email"), "{message}"),
        other => panic!("same email in another case: expected a conflict, got {other:?}"),
    }
    let bob = store.create_user(&new_user("user-dup"), "h").await.unwrap();
    assert_conflict(
        store
            .update_user(&User {
                email: ada.email.clone(),
                ..bob.clone()
            })
            .await,
        "update to a taken email",
    );
    assert_eq!(store.get_user(bob.id).await.unwrap(), Some(bob));
}

pub async fn users_update_and_password<S: AccountStore + ?Sized>(store: &S) {
    let ada = store
        .create_user(&new_user("user-update"), "old-hash")
        .await
        .unwrap();
    let changed = User {
        username: format!("{}-renamed", ada.username),
        email: format!("new-{}", ada.email),
        display_name: "Ada L.".into(),
        is_admin: true,
        disabled: true,
        updated_at: T0 + 5,
        ..ada.clone()
    };
    store.update_user(&changed).await.unwrap();
    let want = User {
        username: ada.username.clone(),
        ..changed.clone()
    };
    assert_eq!(
        store.get_user(ada.id).await.unwrap(),
        Some(want.clone()),
        "everything but the username changes"
    );
    assert_not_found(
        store
            .update_user(&User {
                id: i64::MAX,
                ..changed.clone()
            })
            .await,
        "update of an unknown user",
    );

    store
        .set_password_hash(ada.id, "new-hash", T0 + 9)
        .await
        .unwrap();
    let (user, hash) = store
        .get_user_by_username(&ada.username)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash, "new-hash");
    assert_eq!(user.updated_at, T0 + 9);
    assert_not_found(
        store.set_password_hash(i64::MAX, "x", T0).await,
        "password of an unknown user",
    );
}

pub async fn memberships_round_trip<S: AccountStore + ?Sized>(store: &S) {
    let team_a = unique_name("members-a");
    let team_b = unique_name("members-b");
    store.ensure_team(&team_a, T0).await.unwrap();
    store.ensure_team(&team_b, T0).await.unwrap();
    let ada = store.create_user(&new_user("members"), "h").await.unwrap();
    let bob = store.create_user(&new_user("members"), "h").await.unwrap();
    let member = |team: &str, user_id, role| Membership {
        team: team.to_string(),
        user_id,
        role,
    };

    store
        .put_membership(&member(&team_a, ada.id, TeamRole::Viewer))
        .await
        .unwrap();
    // Put replaces the role.
    store
        .put_membership(&member(&team_a, ada.id, TeamRole::Owner))
        .await
        .unwrap();
    store
        .put_membership(&member(&team_b, ada.id, TeamRole::Member))
        .await
        .unwrap();
    store
        .put_membership(&member(&team_a, bob.id, TeamRole::Viewer))
        .await
        .unwrap();

    assert_eq!(
        store.list_memberships_of_user(ada.id).await.unwrap(),
        vec![
            member(&team_a, ada.id, TeamRole::Owner),
            member(&team_b, ada.id, TeamRole::Member),
        ],
        "ordered by team"
    );
    assert_eq!(
        store.list_team_members(&team_a).await.unwrap(),
        vec![
            member(&team_a, ada.id, TeamRole::Owner),
            member(&team_a, bob.id, TeamRole::Viewer),
        ],
        "ordered by user id"
    );

    assert_not_found(
        store
            .put_membership(&member(&unique_name("no-team"), ada.id, TeamRole::Owner))
            .await,
        "membership of an unknown team",
    );
    assert_not_found(
        store
            .put_membership(&member(&team_a, i64::MAX, TeamRole::Owner))
            .await,
        "membership of an unknown user",
    );

    assert!(store.delete_membership(&team_a, ada.id).await.unwrap());
    assert!(!store.delete_membership(&team_a, ada.id).await.unwrap());
    assert_eq!(
        store.list_team_members(&team_a).await.unwrap(),
        vec![member(&team_a, bob.id, TeamRole::Viewer)]
    );
    assert_eq!(
        store.list_memberships_of_user(ada.id).await.unwrap(),
        vec![member(&team_b, ada.id, TeamRole::Member)]
    );
}

pub async fn api_tokens_round_trip<S: AccountStore + ?Sized>(store: &S) {
    let ada = store.create_user(&new_user("tokens"), "h").await.unwrap();
    let hash = format!("hash-{}", unique_name("tokens"));
    let laptop = new_api_token(ada.id, "laptop");
    let stored = store.create_api_token(&laptop, &hash).await.unwrap();
    assert!(stored.id > 0, "the store assigns an id");
    assert_eq!(
        stored,
        ApiToken {
            id: stored.id,
            ..laptop.clone()
        }
    );
    assert_eq!(
        store.find_api_token(&hash).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        store
            .find_api_token(&format!("{hash}-unknown"))
            .await
            .unwrap(),
        None
    );

    assert_conflict(
        store
            .create_api_token(&new_api_token(ada.id, "again"), &hash)
            .await,
        "a second token with the same hash",
    );
    assert_not_found(
        store
            .create_api_token(&new_api_token(i64::MAX, "ghost"), &format!("{hash}-ghost"))
            .await,
        "a token of an unknown user",
    );

    // Also the scope's round trip: a metrics-only token stays one.
    let never_expires = ApiToken {
        expires_at: None,
        scope: berth_core::accounts::TokenScope::Metrics,
        ..new_api_token(ada.id, "ci")
    };
    let ci = store
        .create_api_token(&never_expires, &format!("{hash}-ci"))
        .await
        .unwrap();
    assert_eq!(
        store.list_api_tokens(ada.id).await.unwrap(),
        vec![stored.clone(), ci.clone()],
        "oldest first"
    );

    // last_used_at only moves forward; touching a missing token is fine.
    store.touch_api_token(stored.id, T0 + 10).await.unwrap();
    store.touch_api_token(stored.id, T0 + 5).await.unwrap();
    store.touch_api_token(i64::MAX, T0).await.unwrap();
    let found = store.find_api_token(&hash).await.unwrap().unwrap();
    assert_eq!(found.last_used_at, Some(T0 + 10));
    assert_eq!(
        store.find_api_token(&format!("{hash}-ci")).await.unwrap(),
        Some(ci),
        "touching one token leaves the others"
    );
}

pub async fn api_tokens_revoke<S: AccountStore + ?Sized>(store: &S) {
    let ada = store.create_user(&new_user("revoke"), "h").await.unwrap();
    let eve = store.create_user(&new_user("revoke"), "h").await.unwrap();
    let hash = format!("hash-{}", unique_name("revoke"));
    let one = store
        .create_api_token(&new_api_token(ada.id, "one"), &format!("{hash}-1"))
        .await
        .unwrap();
    let two = store
        .create_api_token(&new_api_token(ada.id, "two"), &format!("{hash}-2"))
        .await
        .unwrap();
    let eves = store
        .create_api_token(&new_api_token(eve.id, "eve"), &format!("{hash}-3"))
        .await
        .unwrap();

    assert!(
        !store.revoke_api_token(eve.id, one.id).await.unwrap(),
        "nobody revokes another user's token"
    );
    assert!(store.revoke_api_token(ada.id, one.id).await.unwrap());
    assert!(
        store.revoke_api_token(ada.id, one.id).await.unwrap(),
        "revoking twice is fine"
    );
    assert!(!store.revoke_api_token(ada.id, i64::MAX).await.unwrap());

    // Revoked tokens are still found (callers check `is_usable`), and listed as revoked.
    let found = store
        .find_api_token(&format!("{hash}-1"))
        .await
        .unwrap()
        .unwrap();
    assert!(found.revoked);
    assert!(!found.is_usable(T0));
    let listed: Vec<(i64, bool)> = store
        .list_api_tokens(ada.id)
        .await
        .unwrap()
        .iter()
        .map(|t| (t.id, t.revoked))
        .collect();
    assert_eq!(listed, vec![(one.id, true), (two.id, false)]);

    assert_eq!(store.revoke_all_api_tokens(ada.id).await.unwrap(), 1);
    assert_eq!(store.revoke_all_api_tokens(ada.id).await.unwrap(), 0);
    assert!(
        store
            .list_api_tokens(ada.id)
            .await
            .unwrap()
            .iter()
            .all(|t| t.revoked)
    );
    assert_eq!(
        store.find_api_token(&format!("{hash}-3")).await.unwrap(),
        Some(eves),
        "another user's tokens stay valid"
    );
}

pub async fn delete_user_removes_memberships_and_tokens<S: AccountStore + ?Sized>(store: &S) {
    let team = unique_name("delete-user");
    store.ensure_team(&team, T0).await.unwrap();
    let ada = store
        .create_user(&new_user("delete-user"), "h")
        .await
        .unwrap();
    let bob = store
        .create_user(&new_user("delete-user"), "h")
        .await
        .unwrap();
    for user in [&ada, &bob] {
        store
            .put_membership(&Membership {
                team: team.clone(),
                user_id: user.id,
                role: TeamRole::Member,
            })
            .await
            .unwrap();
    }
    let hash = format!("hash-{}", unique_name("delete-user"));
    store
        .create_api_token(&new_api_token(ada.id, "laptop"), &hash)
        .await
        .unwrap();

    assert!(store.delete_user(ada.id).await.unwrap());
    assert!(!store.delete_user(ada.id).await.unwrap());
    assert_eq!(store.get_user(ada.id).await.unwrap(), None);
    assert_eq!(
        store.get_user_by_username(&ada.username).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_api_token(&hash).await.unwrap(),
        None,
        "tokens go"
    );
    assert!(store.list_api_tokens(ada.id).await.unwrap().is_empty());
    assert!(
        store
            .list_memberships_of_user(ada.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.list_team_members(&team).await.unwrap(),
        vec![Membership {
            team: team.clone(),
            user_id: bob.id,
            role: TeamRole::Member,
        }],
        "other members stay"
    );

    // The username and email are free again, but the id is never reused.
    let again = store.create_user(&ada, "h").await.unwrap();
    assert_ne!(again.id, ada.id);
}

pub async fn sessions_round_trip<S: AccountStore + ?Sized>(store: &S) {
    let ada = store.create_user(&new_user("sessions"), "h").await.unwrap();
    let bob = store.create_user(&new_user("sessions"), "h").await.unwrap();
    let hash = format!("hash-{}", unique_name("sessions"));
    let day = T0 + 86_400_000;
    let session = new_session(ada.id, day);
    store.create_session(&hash, &session).await.unwrap();
    assert_eq!(
        store.find_session(&hash).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        store
            .find_session(&format!("{hash}-unknown"))
            .await
            .unwrap(),
        None
    );
    assert_conflict(
        store.create_session(&hash, &new_session(bob.id, day)).await,
        "a second session with the same hash",
    );
    assert_not_found(
        store
            .create_session(&format!("{hash}-ghost"), &new_session(i64::MAX, day))
            .await,
        "a session of an unknown user",
    );

    // last_seen_at only moves forward; touching a missing session is fine.
    store.touch_session(&hash, T0 + 10).await.unwrap();
    store.touch_session(&hash, T0 + 5).await.unwrap();
    store
        .touch_session(&format!("{hash}-unknown"), T0)
        .await
        .unwrap();
    assert_eq!(
        store.find_session(&hash).await.unwrap(),
        Some(Session {
            last_seen_at: T0 + 10,
            ..session.clone()
        })
    );

    let second = format!("{hash}-2");
    let bobs = format!("{hash}-bob");
    store
        .create_session(&second, &new_session(ada.id, day))
        .await
        .unwrap();
    store
        .create_session(&bobs, &new_session(bob.id, day))
        .await
        .unwrap();
    assert!(store.delete_session(&second).await.unwrap());
    assert!(!store.delete_session(&second).await.unwrap());
    store
        .create_session(&second, &new_session(ada.id, day))
        .await
        .unwrap();
    assert_eq!(store.delete_sessions_of_user(ada.id).await.unwrap(), 2);
    assert_eq!(store.delete_sessions_of_user(ada.id).await.unwrap(), 0);
    assert_eq!(store.find_session(&hash).await.unwrap(), None);
    assert!(
        store.find_session(&bobs).await.unwrap().is_some(),
        "another user's sessions stay"
    );
}

/// `delete_expired_sessions` removes exactly the sessions `Session::is_live` refuses at `now`.
pub async fn sessions_expire<S: AccountStore + ?Sized>(store: &S) {
    let ada = store
        .create_user(&new_user("sessions-expire"), "h")
        .await
        .unwrap();
    let hash = format!("hash-{}", unique_name("sessions-expire"));
    // Far before the other checks' sessions, which this one must not touch.
    let now = T0 - 1_000_000;
    let sessions = [
        (format!("{hash}-old"), now - 1),
        (format!("{hash}-ending"), now),
        (format!("{hash}-live"), now + 1),
    ];
    for (hash, expires_at) in &sessions {
        let session = Session {
            created_at: now - 100,
            last_seen_at: now - 100,
            ..new_session(ada.id, *expires_at)
        };
        store.create_session(hash, &session).await.unwrap();
    }
    let deleted = store.delete_expired_sessions(now).await.unwrap();
    assert!(deleted >= 2, "deleted {deleted}");
    for (hash, expires_at) in &sessions {
        let found = store.find_session(hash).await.unwrap();
        assert_eq!(
            found.is_some(),
            *expires_at > now,
            "session expiring at {expires_at}, now {now}"
        );
    }
    let live = &sessions[2].0;
    let found = store.find_session(live).await.unwrap().unwrap();
    assert!(found.is_live(now));
    assert!(!found.is_live(now + 1));
}

pub async fn delete_user_ends_sessions<S: AccountStore + ?Sized>(store: &S) {
    let ada = store
        .create_user(&new_user("delete-user-sessions"), "h")
        .await
        .unwrap();
    let bob = store
        .create_user(&new_user("delete-user-sessions"), "h")
        .await
        .unwrap();
    let hash = format!("hash-{}", unique_name("delete-user-sessions"));
    let day = T0 + 86_400_000;
    store
        .create_session(&hash, &new_session(ada.id, day))
        .await
        .unwrap();
    store
        .create_session(&format!("{hash}-bob"), &new_session(bob.id, day))
        .await
        .unwrap();
    assert!(store.delete_user(ada.id).await.unwrap());
    assert_eq!(store.find_session(&hash).await.unwrap(), None);
    assert!(
        store
            .find_session(&format!("{hash}-bob"))
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn teams_round_trip<S: AccountStore + ?Sized>(store: &S) {
    let team = new_team("teams");
    store.create_team(&team).await.unwrap();
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(team.clone())
    );
    assert_conflict(
        store
            .create_team(&Team {
                display_name: "other".into(),
                ..team.clone()
            })
            .await,
        "a second team with the same name",
    );
    store
        .ensure_team(&team.name, T0 + 50)
        .await
        .expect("ensure_team of a created team");
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(team.clone()),
        "ensure_team leaves an existing team alone"
    );
    assert_eq!(store.get_team(&unique_name("no-team")).await.unwrap(), None);

    let unlimited = Team {
        name: format!("{}-b", team.name),
        display_name: String::new(),
        quota: Quota::default(),
        ..team.clone()
    };
    store.create_team(&unlimited).await.unwrap();
    let mine: Vec<Team> = store
        .list_teams()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| [&team.name, &unlimited.name].contains(&&t.name))
        .collect();
    assert_eq!(mine, vec![team.clone(), unlimited], "ordered by name");

    let changed = Team {
        display_name: "Renamed".into(),
        quota: Quota {
            cpu_millis: None,
            memory_bytes: Some(1 << 30),
            instances: Some(0),
            registry_bytes: None,
            volume_bytes: None,
        },
        created_at: T0 + 99,
        updated_at: T0 + 100,
        ..team.clone()
    };
    store.update_team(&changed).await.unwrap();
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(Team {
            created_at: team.created_at,
            ..changed.clone()
        }),
        "update writes display name, quota and updated_at, not created_at"
    );
    assert_not_found(
        store
            .update_team(&Team {
                name: unique_name("no-team"),
                ..changed.clone()
            })
            .await,
        "update of an unknown team",
    );

    let too_large = Team {
        name: unique_name("teams-too-large"),
        quota: Quota {
            memory_bytes: Some(u64::MAX),
            ..Quota::default()
        },
        ..team.clone()
    };
    assert!(
        store.create_team(&too_large).await.is_err(),
        "a limit beyond i64 is refused, not wrapped"
    );
    assert_eq!(store.get_team(&too_large.name).await.unwrap(), None);
}

/// `delete_team` refuses while apps are left, then takes memberships, requests and templates.
pub async fn delete_team_checks_apps_and_cascades<S: AccountStore + AppStore + ?Sized>(store: &S) {
    let team = new_team("delete-team");
    let other = new_team("delete-team-other");
    store.create_team(&team).await.unwrap();
    store.create_team(&other).await.unwrap();
    let ada = store
        .create_user(&new_user("delete-team"), "h")
        .await
        .unwrap();
    for t in [&team, &other] {
        store
            .put_membership(&Membership {
                team: t.name.clone(),
                user_id: ada.id,
                role: TeamRole::Owner,
            })
            .await
            .unwrap();
        store
            .put_deployment_template(&new_template(&t.name, "web"))
            .await
            .unwrap();
    }
    let request = store
        .create_quota_request(&new_quota_request(&team.name, &ada.username, T0))
        .await
        .unwrap();
    let others = store
        .create_quota_request(&new_quota_request(&other.name, &ada.username, T0))
        .await
        .unwrap();
    let app_name = unique_name("delete-team-app");
    let app = App {
        team: team.name.clone(),
        ..new_app(&app_name)
    };
    store
        .create_app(&app, &revision(&app_name, 1))
        .await
        .unwrap();

    assert_conflict(store.delete_team(&team.name).await, "team with an app");
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(team.clone()),
        "a refused delete changes nothing"
    );
    assert_eq!(store.list_team_members(&team.name).await.unwrap().len(), 1);

    assert!(store.delete_app(&app_name).await.unwrap());
    assert!(store.delete_team(&team.name).await.unwrap());
    assert!(!store.delete_team(&team.name).await.unwrap());
    assert_eq!(store.get_team(&team.name).await.unwrap(), None);
    assert!(
        store
            .list_team_members(&team.name)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get_quota_request(request.id).await.unwrap(), None);
    assert_eq!(
        store
            .get_deployment_template(&team.name, "web")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.list_memberships_of_user(ada.id).await.unwrap(),
        vec![Membership {
            team: other.name.clone(),
            user_id: ada.id,
            role: TeamRole::Owner,
        }],
        "other teams keep their members"
    );
    assert_eq!(
        store.get_quota_request(others.id).await.unwrap(),
        Some(others)
    );
    assert!(
        store
            .get_deployment_template(&other.name, "web")
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn quota_requests_round_trip_and_filters<S: AccountStore + ?Sized>(store: &S) {
    let team = new_team("quota-requests");
    let other = new_team("quota-requests-other");
    store.create_team(&team).await.unwrap();
    store.create_team(&other).await.unwrap();
    let ada = unique_name("quota-ada");
    let bob = unique_name("quota-bob");

    let first = new_quota_request(&team.name, &ada, T0);
    let stored = store.create_quota_request(&first).await.unwrap();
    assert!(stored.id > 0, "the store assigns an id");
    assert_eq!(
        stored,
        QuotaRequest {
            id: stored.id,
            ..first.clone()
        }
    );
    assert_eq!(
        store.get_quota_request(stored.id).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.get_quota_request(i64::MAX).await.unwrap(), None);
    assert_not_found(
        store
            .create_quota_request(&new_quota_request(&unique_name("no-team"), &ada, T0))
            .await,
        "a request of an unknown team",
    );

    let unlimited_ask = QuotaRequest {
        requested: Quota {
            cpu_millis: None,
            memory_bytes: Some(16 << 30),
            instances: None,
            registry_bytes: Some(1 << 40),
            volume_bytes: None,
        },
        ..new_quota_request(&team.name, &bob, T0 + 1)
    };
    let second = store.create_quota_request(&unlimited_ask).await.unwrap();
    let third = store
        .create_quota_request(&new_quota_request(&other.name, &ada, T0 + 2))
        .await
        .unwrap();
    assert!(
        stored.id < second.id && second.id < third.id,
        "ids increase"
    );
    let rejected = store
        .decide_quota_request(&QuotaDecision {
            id: second.id,
            approve: false,
            decided_by: "root".into(),
            comment: Some("not now".into()),
            now: T0 + 3,
        })
        .await
        .unwrap();

    let ids = |requests: Vec<QuotaRequest>| -> Vec<i64> {
        let mine = [stored.id, second.id, third.id];
        requests
            .into_iter()
            .map(|r| r.id)
            .filter(|id| mine.contains(id))
            .collect()
    };
    let list = |team: Option<&str>, status, requested_by: Option<&str>| {
        let query = QuotaRequestQuery {
            team: team.map(str::to_string),
            status,
            requested_by: requested_by.map(str::to_string),
        };
        async move { store.list_quota_requests(&query).await.unwrap() }
    };
    assert_eq!(
        list(Some(&team.name), None, None).await,
        vec![rejected.clone(), stored.clone()],
        "a team's requests, newest first"
    );
    assert_eq!(
        ids(list(None, None, None).await),
        vec![third.id, second.id, stored.id]
    );
    assert_eq!(
        list(None, None, Some(&ada)).await,
        vec![third.clone(), stored.clone()]
    );
    assert_eq!(
        list(Some(&team.name), Some(QuotaRequestStatus::Pending), None).await,
        vec![stored.clone()]
    );
    assert_eq!(
        list(Some(&team.name), None, Some(&bob)).await,
        vec![rejected.clone()]
    );
    assert!(
        list(Some(&other.name), None, Some(&bob)).await.is_empty(),
        "every filter must match"
    );
    let pending = list(None, Some(QuotaRequestStatus::Pending), None).await;
    assert!(
        pending
            .iter()
            .all(|r| r.status == QuotaRequestStatus::Pending)
    );
    assert_eq!(ids(pending), vec![third.id, stored.id]);
    assert_eq!(
        ids(list(None, Some(QuotaRequestStatus::Rejected), None).await),
        vec![second.id]
    );
    assert!(ids(list(None, Some(QuotaRequestStatus::Approved), None).await).is_empty());
}

pub async fn decide_quota_request_sets_limits_once<S: AccountStore + ?Sized>(store: &S) {
    let team = new_team("decide");
    store.create_team(&team).await.unwrap();
    let request = store
        .create_quota_request(&new_quota_request(&team.name, "ada", T0))
        .await
        .unwrap();
    let decision = QuotaDecision {
        id: request.id,
        approve: true,
        decided_by: "root".into(),
        comment: None,
        now: T0 + 500,
    };
    let approved = store.decide_quota_request(&decision).await.unwrap();
    let want = QuotaRequest {
        status: QuotaRequestStatus::Approved,
        decided_by: Some("root".into()),
        decided_at: Some(T0 + 500),
        ..request.clone()
    };
    assert_eq!(approved, want);
    assert_eq!(
        store.get_quota_request(request.id).await.unwrap(),
        Some(want.clone())
    );
    let raised = Team {
        quota: Quota {
            cpu_millis: Some(8_000),
            instances: Some(12),
            volume_bytes: Some(50 << 30),
            ..team.quota
        },
        updated_at: T0 + 500,
        ..team.clone()
    };
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(raised.clone()),
        "the requested limits are set, the others kept"
    );

    // A decided request cannot be decided again, either way.
    for approve in [true, false] {
        assert_conflict(
            store
                .decide_quota_request(&QuotaDecision {
                    approve,
                    now: T0 + 600,
                    ..decision.clone()
                })
                .await,
            "deciding a decided request",
        );
    }
    assert_eq!(
        store.get_quota_request(request.id).await.unwrap(),
        Some(want)
    );

    let asked_again = store
        .create_quota_request(&QuotaRequest {
            requested: Quota {
                cpu_millis: Some(64_000),
                memory_bytes: Some(64 << 30),
                instances: Some(100),
                registry_bytes: Some(1 << 40),
                volume_bytes: None,
            },
            ..new_quota_request(&team.name, "ada", T0 + 700)
        })
        .await
        .unwrap();
    let rejected = store
        .decide_quota_request(&QuotaDecision {
            id: asked_again.id,
            approve: false,
            decided_by: "root".into(),
            comment: Some("too much".into()),
            now: T0 + 800,
        })
        .await
        .unwrap();
    assert_eq!(
        rejected,
        QuotaRequest {
            status: QuotaRequestStatus::Rejected,
            decided_by: Some("root".into()),
            decided_at: Some(T0 + 800),
            comment: Some("too much".into()),
            ..asked_again
        }
    );
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(raised),
        "a rejection leaves the team alone"
    );
    assert_not_found(
        store
            .decide_quota_request(&QuotaDecision {
                id: i64::MAX,
                ..decision
            })
            .await,
        "deciding an unknown request",
    );
}

pub async fn deployment_templates_round_trip<S: AccountStore + ?Sized>(store: &S) {
    let team = new_team("templates");
    let other = new_team("templates-other");
    store.create_team(&team).await.unwrap();
    store.create_team(&other).await.unwrap();

    let web = new_template(&team.name, "web");
    store.put_deployment_template(&web).await.unwrap();
    assert_eq!(
        store
            .get_deployment_template(&team.name, "web")
            .await
            .unwrap(),
        Some(web.clone())
    );
    assert_eq!(
        store
            .get_deployment_template(&other.name, "web")
            .await
            .unwrap(),
        None
    );

    let replaced = DeploymentTemplate {
        description: "A worker".into(),
        params: vec![web.params[0].clone()],
        body: serde_json::json!({ "replicas": "${replicas}" }),
        created_by: "bob".into(),
        created_at: T0 + 40,
        updated_at: T0 + 50,
        ..web.clone()
    };
    store.put_deployment_template(&replaced).await.unwrap();
    assert_eq!(
        store
            .get_deployment_template(&team.name, "web")
            .await
            .unwrap(),
        Some(DeploymentTemplate {
            created_at: web.created_at,
            ..replaced.clone()
        }),
        "put replaces the template but keeps its creation time"
    );
    let replaced = DeploymentTemplate {
        created_at: web.created_at,
        ..replaced
    };

    let api = new_template(&team.name, "api");
    let others = new_template(&other.name, "a-first");
    store.put_deployment_template(&api).await.unwrap();
    store.put_deployment_template(&others).await.unwrap();
    assert_eq!(
        store
            .list_deployment_templates(Some(&team.name))
            .await
            .unwrap(),
        vec![api.clone(), replaced.clone()],
        "a team's templates, by name"
    );
    let mine: Vec<DeploymentTemplate> = store
        .list_deployment_templates(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| [&team.name, &other.name].contains(&t.team.as_ref().unwrap()))
        .collect();
    assert_eq!(
        mine,
        vec![api.clone(), replaced.clone(), others.clone()],
        "by team, then name"
    );

    assert_not_found(
        store
            .put_deployment_template(&new_template(&unique_name("no-team"), "web"))
            .await,
        "a template of an unknown team",
    );
    assert_conflict(
        store
            .put_deployment_template(&DeploymentTemplate {
                team: None,
                ..new_template(&team.name, "builtin")
            })
            .await,
        "a template without a team",
    );

    assert!(
        store
            .delete_deployment_template(&team.name, "web")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_deployment_template(&team.name, "web")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .list_deployment_templates(Some(&team.name))
            .await
            .unwrap(),
        vec![api]
    );
}

pub async fn audit_round_trip_and_filters<S: AccountStore + ?Sized>(store: &S) {
    let team = unique_name("audit-team");
    let ada = unique_name("audit-ada");
    let bob = unique_name("audit-bob");
    let entries = [
        new_audit(&ada, "app.create", Some(&team), T0),
        AuditEntry {
            object: "app/api".into(),
            outcome: AuditOutcome::Denied,
            status: 403,
            ..new_audit(&bob, "app.delete", Some(&team), T0 + 10)
        },
        AuditEntry {
            team: None,
            object: format!("user/{ada}"),
            outcome: AuditOutcome::Failed,
            status: 422,
            detail: String::new(),
            ..new_audit(&ada, "user.disable", None, T0 + 20)
        },
        new_audit(&ada, "apps.list", Some(&team), T0 + 30),
        AuditEntry {
            status: u16::MAX,
            ..new_audit(&bob, "app_x.run", Some(&team), T0 + 40)
        },
    ];
    let mut stored = Vec::new();
    for entry in &entries {
        let id = store.append_audit(entry).await.unwrap();
        stored.push(AuditEntry {
            id,
            ..entry.clone()
        });
    }
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    let newest_first = |picks: &[usize]| -> Vec<AuditEntry> {
        let mut want: Vec<AuditEntry> = picks.iter().map(|&i| stored[i].clone()).collect();
        want.sort_by_key(|e| std::cmp::Reverse(e.id));
        want
    };

    let of_team = AuditQuery {
        team: Some(team.clone()),
        limit: 100,
        ..AuditQuery::default()
    };
    let of_ada = AuditQuery {
        actor: Some(ada.clone()),
        limit: 100,
        ..AuditQuery::default()
    };
    let list = |query: AuditQuery| async move { store.list_audit(&query).await.unwrap() };
    assert_eq!(list(of_team.clone()).await, newest_first(&[0, 1, 3, 4]));
    assert_eq!(list(of_ada.clone()).await, newest_first(&[0, 2, 3]));
    let cases: Vec<(&str, AuditQuery, Vec<usize>)> = vec![
        (
            "team and actor",
            AuditQuery {
                actor: Some(bob.clone()),
                ..of_team.clone()
            },
            vec![1, 4],
        ),
        (
            "action prefix",
            AuditQuery {
                action_prefix: Some("app.".into()),
                ..of_team.clone()
            },
            vec![0, 1],
        ),
        (
            "action prefix with LIKE wildcards is literal",
            AuditQuery {
                action_prefix: Some("app_".into()),
                ..of_team.clone()
            },
            vec![4],
        ),
        (
            "action prefix %",
            AuditQuery {
                action_prefix: Some("%".into()),
                ..of_team.clone()
            },
            vec![],
        ),
        (
            "whole action as prefix",
            AuditQuery {
                action_prefix: Some("user.disable".into()),
                ..of_ada.clone()
            },
            vec![2],
        ),
        (
            "object",
            AuditQuery {
                object: Some("app/api".into()),
                ..of_team.clone()
            },
            vec![1],
        ),
        (
            "outcome",
            AuditQuery {
                outcome: Some(AuditOutcome::Success),
                ..of_team.clone()
            },
            vec![0, 3, 4],
        ),
        (
            "since is inclusive",
            AuditQuery {
                since: Some(T0 + 20),
                ..of_ada.clone()
            },
            vec![2, 3],
        ),
        (
            "until is exclusive",
            AuditQuery {
                until: Some(T0 + 20),
                ..of_ada.clone()
            },
            vec![0],
        ),
        (
            "before id",
            AuditQuery {
                before_id: Some(stored[3].id),
                ..of_team.clone()
            },
            vec![0, 1],
        ),
        (
            "limit keeps the newest",
            AuditQuery {
                limit: 2,
                ..of_team.clone()
            },
            vec![3, 4],
        ),
        (
            "limit 0",
            AuditQuery {
                limit: 0,
                ..of_team.clone()
            },
            vec![],
        ),
        (
            "no match",
            AuditQuery {
                team: Some(unique_name("audit-none")),
                ..AuditQuery::default()
            },
            vec![],
        ),
    ];
    for (what, query, picks) in cases {
        assert_eq!(list(query).await, newest_first(&picks), "{what}");
    }

    // Paging backwards through a team's records, two at a time.
    let mut paged = Vec::new();
    let mut before_id = None;
    loop {
        let page = list(AuditQuery {
            before_id,
            limit: 2,
            ..of_team.clone()
        })
        .await;
        let Some(last) = page.last() else { break };
        before_id = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, newest_first(&[0, 1, 3, 4]));

    let unfiltered = list(AuditQuery {
        limit: 1_000_000,
        ..AuditQuery::default()
    })
    .await;
    assert!(
        unfiltered.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );
    for entry in &stored {
        assert!(unfiltered.contains(entry), "unfiltered lists {entry:?}");
    }
}

pub async fn settings_round_trip<S: AccountStore + ?Sized>(store: &S) {
    let key = unique_name("setting");
    assert_eq!(store.get_setting(&key).await.unwrap(), None);
    store.put_setting(&key, "true", T0).await.unwrap();
    assert_eq!(
        store.get_setting(&key).await.unwrap().as_deref(),
        Some("true")
    );
    store.put_setting(&key, "", T0 + 1).await.unwrap();
    assert_eq!(store.get_setting(&key).await.unwrap().as_deref(), Some(""));
    assert_eq!(
        store.get_setting(&format!("{key}-other")).await.unwrap(),
        None
    );
}

pub async fn init_setting_keeps_the_first_value<S: AccountStore + ?Sized>(store: &S) {
    let key = unique_name("init-setting");
    assert_eq!(
        store.init_setting(&key, "first", T0).await.unwrap(),
        "first"
    );
    assert_eq!(
        store.init_setting(&key, "second", T0 + 1).await.unwrap(),
        "first"
    );
    assert_eq!(
        store.get_setting(&key).await.unwrap().as_deref(),
        Some("first")
    );
    store.put_setting(&key, "third", T0 + 2).await.unwrap();
    assert_eq!(
        store.init_setting(&key, "fourth", T0 + 3).await.unwrap(),
        "third"
    );
}

pub async fn list_team_users_by_username<S: AccountStore + ?Sized>(store: &S) {
    let team = new_team("team-users");
    store.create_team(&team).await.unwrap();
    let base = unique_name("team-users");
    let user = |suffix: &str| User {
        username: format!("{base}-{suffix}"),
        email: format!("{base}-{suffix}@example.test"),
        ..new_user("team-users")
    };
    // Created in reverse order, so user ids and usernames sort differently.
    let zed = store.create_user(&user("zed"), "h").await.unwrap();
    let amy = store.create_user(&user("amy"), "h").await.unwrap();
    let outsider = store.create_user(&user("bob"), "h").await.unwrap();
    let member = |user: &User, role| Membership {
        team: team.name.clone(),
        user_id: user.id,
        role,
    };
    for (user, role) in [(&zed, TeamRole::Viewer), (&amy, TeamRole::Owner)] {
        store.put_membership(&member(user, role)).await.unwrap();
    }
    let other = new_team("team-users-other");
    store.create_team(&other).await.unwrap();
    store
        .put_membership(&Membership {
            team: other.name.clone(),
            ..member(&outsider, TeamRole::Member)
        })
        .await
        .unwrap();

    assert_eq!(
        store.list_team_users(&team.name).await.unwrap(),
        vec![
            (amy.clone(), member(&amy, TeamRole::Owner)),
            (zed.clone(), member(&zed, TeamRole::Viewer)),
        ]
    );
    assert!(
        store
            .list_team_users(&unique_name("no-team"))
            .await
            .unwrap()
            .is_empty()
    );
}
