//! Team secrets: set (a new version, sealed with the server's key, then every app using the
//! secret rolled out with it), listed and deleted by name — the value never comes back out,
//! except to an instance starting ([`PlatformSecrets`], the controller's secret source).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use berth_auth::SecretBox;
use berth_core::ValidationErrors;
use berth_core::accounts::TeamAction;
use berth_core::change::AppChange;
use berth_core::team_secret::{KEPT_VERSIONS, SecretRef, TeamSecret, seal_context, value_problem};
use berth_core::validate::name_problem;
use berth_store::{Store, StoreError};

use crate::Platform;
use crate::actor::Actor;
use crate::apps::list_apps;
use crate::error::{OpError, OpResult};

/// Attempts at storing a new version when another change wins the race.
const PUT_ATTEMPTS: usize = 5;

/// A secret with the apps whose current revision uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretView {
    pub secret: TeamSecret,
    pub used_by: Vec<String>,
}

/// What setting a secret did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSet {
    pub secret: TeamSecret,
    /// Whether this made the secret (version 1).
    pub created: bool,
    /// The apps rolled out with the new version.
    pub rolled_out: Vec<String>,
}

impl Platform {
    /// The current secret references of every app of `team`, by app name.
    async fn team_secret_refs(&self, team: &str) -> OpResult<BTreeMap<String, Vec<SecretRef>>> {
        let (apps, _) = list_apps(
            self.store.as_ref(),
            Some(vec![team.to_string()]),
            None,
            None,
        )
        .await?;
        Ok(apps
            .into_iter()
            .filter_map(|listed| Some((listed.app.name, listed.template?.secrets)))
            .filter(|(_, refs)| !refs.is_empty())
            .collect())
    }

    /// The secrets of `team` (every team the actor may read when `None`): names, versions,
    /// who changed them, the apps using them.
    pub async fn list_secrets(
        &self,
        actor: &Actor,
        team: Option<&str>,
    ) -> OpResult<Vec<SecretView>> {
        if let Some(team) = team {
            actor.require(team, TeamAction::Read, &format!("team {team}"))?;
        }
        let mut views = Vec::new();
        let mut refs_of: BTreeMap<String, BTreeMap<String, Vec<SecretRef>>> = BTreeMap::new();
        for secret in self.store.list_secrets(team).await? {
            if !actor.can_read(&secret.team) {
                continue;
            }
            if !refs_of.contains_key(&secret.team) {
                let refs = self.team_secret_refs(&secret.team).await?;
                refs_of.insert(secret.team.clone(), refs);
            }
            let used_by = users_of(&secret.name, &refs_of[&secret.team]);
            views.push(SecretView { secret, used_by });
        }
        Ok(views)
    }

    /// Sets `team`'s secret `name` to `value`: version 1 when new, else the next version;
    /// then every app using it rolls out a revision with that version.
    pub async fn put_secret(
        &self,
        actor: &Actor,
        team: &str,
        name: &str,
        value: &[u8],
    ) -> OpResult<SecretSet> {
        actor.require(team, TeamAction::Deploy, &format!("team {team}"))?;
        actor.audit.set_object(format!("secrets/{team}/{name}"));
        if let Some(problem) = name_problem(name) {
            return Err(OpError::field("name", format!("{name:?} {problem}")));
        }
        if let Some(problem) = value_problem(value) {
            return Err(OpError::field("value", problem));
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        let mut stored = None;
        for _ in 0..PUT_ATTEMPTS {
            let now = self.now();
            let user = actor.username().to_string();
            let secret = match self.store.get_secret(team, name).await? {
                Some(current) => TeamSecret {
                    version: current.version + 1,
                    updated_at: now,
                    updated_by: user,
                    ..current
                },
                None => TeamSecret {
                    team: team.to_string(),
                    name: name.to_string(),
                    version: 1,
                    created_at: now,
                    created_by: user.clone(),
                    updated_at: now,
                    updated_by: user,
                },
            };
            let sealed = self
                .certificates
                .secrets
                .seal(&encoded, &seal_context(team, name, secret.version));
            match self
                .store
                .add_secret_version(&secret, &sealed, KEPT_VERSIONS)
                .await
            {
                Ok(()) => {
                    stored = Some(secret);
                    break;
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let secret = stored.ok_or_else(|| {
            OpError::conflict(
                "conflict",
                format!("secret {team}/{name} is changing too fast; try again"),
            )
        })?;
        tracing::info!(team, secret = name, version = secret.version, "secret set");
        let rolled_out = self.roll_out_secret(actor, team, &secret).await?;
        actor.audit.set_detail(if rolled_out.is_empty() {
            format!("version {}", secret.version)
        } else {
            format!(
                "version {}; rolled out app {}",
                secret.version,
                rolled_out.join(", app ")
            )
        });
        Ok(SecretSet {
            created: secret.version == 1,
            secret,
            rolled_out,
        })
    }

    /// Rolls out every app of `team` that uses `secret` with its new version.
    async fn roll_out_secret(
        &self,
        actor: &Actor,
        team: &str,
        secret: &TeamSecret,
    ) -> OpResult<Vec<String>> {
        let mut rolled = Vec::new();
        for (app, refs) in self.team_secret_refs(team).await? {
            if !refs.iter().any(|r| r.name == secret.name) {
                continue;
            }
            let change = AppChange {
                secrets: Some(
                    refs.into_iter()
                        .map(|r| SecretRef {
                            version: if r.name == secret.name {
                                secret.version
                            } else {
                                r.version
                            },
                            ..r
                        })
                        .collect(),
                ),
                ..AppChange::default()
            };
            let reason = format!(
                "secret {} changed (version {})",
                secret.name, secret.version
            );
            self.deploy_app(actor, &app, &change, Some(&reason)).await?;
            rolled.push(app);
        }
        Ok(rolled)
    }

    /// Deletes a secret and every version of it; refused while an app uses it.
    pub async fn delete_secret(&self, actor: &Actor, team: &str, name: &str) -> OpResult<()> {
        actor.require(team, TeamAction::Deploy, &format!("team {team}"))?;
        actor.audit.set_object(format!("secrets/{team}/{name}"));
        if self.store.get_secret(team, name).await?.is_none() {
            return Err(OpError::not_found(format!("secret {team}/{name}")));
        }
        let users = users_of(name, &self.team_secret_refs(team).await?);
        if !users.is_empty() {
            return Err(OpError::conflict(
                "secret_in_use",
                format!(
                    "secret {team}/{name} is used by app {}: deploy it without the secret first",
                    users.join(", app ")
                ),
            ));
        }
        self.store.delete_secret(team, name).await?;
        tracing::info!(team, secret = name, "secret deleted");
        Ok(())
    }

    /// Pins the secret references of a template being made for an app of `team`: a
    /// reference without a version gets the secret's current one; a secret the team does not
    /// have is refused naming the field under `prefix`.
    pub(crate) async fn pin_secrets(
        &self,
        team: &str,
        prefix: &str,
        refs: &mut [SecretRef],
    ) -> OpResult<()> {
        let mut errors = ValidationErrors::default();
        for (i, secret) in refs.iter_mut().enumerate() {
            // A malformed name is the validation's to refuse.
            if name_problem(&secret.name).is_some() {
                continue;
            }
            match self.store.get_secret(team, &secret.name).await? {
                Some(current) => {
                    if secret.version == 0 {
                        secret.version = current.version;
                    }
                }
                None => errors.0.push(berth_core::FieldError {
                    field: format!("{prefix}[{i}].name"),
                    message: format!(
                        "team {team} has no secret {}: create it first (berth secrets create {team}/{} < FILE)",
                        secret.name, secret.name
                    ),
                }),
            }
        }
        if errors.first().is_some() {
            return Err(errors.into());
        }
        Ok(())
    }
}

/// The apps among `refs` that use secret `name`.
fn users_of(name: &str, refs: &BTreeMap<String, Vec<SecretRef>>) -> Vec<String> {
    refs.iter()
        .filter(|(_, r)| r.iter().any(|r| r.name == name))
        .map(|(app, _)| app.clone())
        .collect()
}

/// The controller's secret source: opens a version's sealed value from the store.
pub struct PlatformSecrets {
    pub store: Arc<dyn Store>,
    pub key: Arc<SecretBox>,
}

#[async_trait]
impl berth_controller::SecretSource for PlatformSecrets {
    async fn secret_value(&self, team: &str, name: &str, version: u32) -> Result<Vec<u8>, String> {
        let sealed = self
            .store
            .sealed_secret(team, name, version)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!("that version is no longer kept (secrets keep their last {KEPT_VERSIONS})")
            })?;
        let encoded = self
            .key
            .open(&sealed, &seal_context(team, name, version))
            .map_err(|e| format!("the server's key does not open it: {e}"))?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("the stored value is damaged: {e}"))
    }
}
