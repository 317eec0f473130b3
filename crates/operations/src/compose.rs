//! Compose import: a compose file's plan ([`berth_core::compose`]) checked whole — every
//! service's app validated, its secrets found, an existing app of the same name in the same
//! team — before anything is made; then each app created or deployed (a new revision only
//! where something changed), in dependency order.

use std::collections::BTreeMap;

use berth_core::accounts::TeamAction;
use berth_core::compose::{ComposePlan, PlannedApp, plan};
use berth_core::validate::{validate_name, validate_spec};
use berth_core::{AppSpec, FieldError, ValidationErrors};

use crate::Platform;
use crate::actor::Actor;
use crate::apps::NewApp;
use crate::error::{OpError, OpResult};

/// What the import does (or did) to one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportAction {
    Create,
    Update,
    Unchanged,
}

impl ImportAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportAction::Create => "create",
            ImportAction::Update => "update",
            ImportAction::Unchanged => "unchanged",
        }
    }
}

/// One service's app in an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedApp {
    pub service: String,
    pub app: String,
    pub action: ImportAction,
    /// The app's current revision after the import (`None` in a dry run of a new app).
    pub revision: Option<u32>,
}

/// What an import did, or would do (`dry_run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeImport {
    pub dry_run: bool,
    pub apps: Vec<ImportedApp>,
    /// The keys that do not map, and why.
    pub notes: Vec<String>,
}

/// Each error of a service's app, named under `services.<service>.`.
fn under_service(service: &str, errors: ValidationErrors) -> impl Iterator<Item = FieldError> + '_ {
    errors.0.into_iter().map(move |e| FieldError {
        field: format!("services.{service}.{}", e.field),
        message: e.message,
    })
}

impl Platform {
    /// Imports `compose` (a compose file's text) into `team`: apps named `<prefix><service>`;
    /// `env_files` are the contents of the env files the file names. With `dry_run`, says
    /// what would happen and changes nothing.
    pub async fn import_compose(
        &self,
        actor: &Actor,
        team: &str,
        compose: &str,
        prefix: &str,
        env_files: &BTreeMap<String, String>,
        dry_run: bool,
    ) -> OpResult<ComposeImport> {
        validate_name("team", team)?;
        actor.require(team, TeamAction::Deploy, &format!("team {team}"))?;
        actor.audit.set_object(format!("teams/{team}/compose"));
        let ComposePlan { apps, notes } = plan(compose, prefix, env_files)?;
        let actions = self.check_import(team, &apps).await?;
        let mut imported = Vec::new();
        for (planned, action) in apps.iter().zip(actions) {
            let revision = if dry_run {
                match action {
                    ImportAction::Create => None,
                    _ => Some(self.current_app(&planned.name).await?.app.current_revision),
                }
            } else {
                let reason = Some("compose import".to_string());
                let done = match action {
                    ImportAction::Create => {
                        self.create_app(
                            actor,
                            NewApp {
                                name: planned.name.clone(),
                                team: Some(team.to_string()),
                                spec: planned.change.clone(),
                                reason,
                            },
                        )
                        .await?
                    }
                    ImportAction::Update | ImportAction::Unchanged => {
                        self.deploy_app(actor, &planned.name, &planned.change, reason.as_deref())
                            .await?
                    }
                };
                Some(done.app.current_revision)
            };
            imported.push(ImportedApp {
                service: planned.service.clone(),
                app: planned.name.clone(),
                action,
                revision,
            });
        }
        if !dry_run {
            let summary: Vec<String> = imported
                .iter()
                .map(|a| format!("{} {}", a.action.as_str(), a.app))
                .collect();
            actor.audit.set_detail(summary.join(", "));
        }
        Ok(ComposeImport {
            dry_run,
            apps: imported,
            notes,
        })
    }

    /// Checks every planned app before anything is made: each app's spec validates, its
    /// secrets exist in the team, an app of the same name is the team's; says whether each
    /// is created, updated or left as it is.
    async fn check_import(&self, team: &str, apps: &[PlannedApp]) -> OpResult<Vec<ImportAction>> {
        let mut errors = ValidationErrors::default();
        let mut actions = Vec::new();
        for planned in apps {
            let existing = self.store.get_app(&planned.name).await?;
            let (mut spec, action_if_changed, before) = match &existing {
                Some(app) if app.team != team => {
                    errors.0.push(FieldError {
                        field: format!("services.{}", planned.service),
                        message: format!(
                            "an app called {} exists in another team: import with another --prefix",
                            planned.name
                        ),
                    });
                    continue;
                }
                Some(app) => {
                    let current = self.current_app(&app.name).await?;
                    let spec = app.spec(&current.template);
                    (spec.clone(), ImportAction::Update, Some(spec))
                }
                None => (AppSpec::default(), ImportAction::Create, None),
            };
            planned.change.apply(&mut spec);
            if let Err(invalid) = validate_spec(&planned.name, &spec) {
                errors.0.extend(under_service(&planned.service, invalid));
            }
            if let Err(OpError::Invalid(missing)) = self
                .pin_secrets(team, "template.secrets", &mut spec.template.secrets)
                .await
            {
                errors.0.extend(under_service(&planned.service, missing));
            }
            actions.push(match before {
                Some(before) if before == spec => ImportAction::Unchanged,
                _ => action_if_changed,
            });
        }
        if errors.first().is_some() {
            return Err(errors.into());
        }
        Ok(actions)
    }
}
