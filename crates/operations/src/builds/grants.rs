//! Registry credentials of running builds: one secret per build, scoped to its team.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_core::secret::constant_time_eq;

/// The user name builds give Berth's registry (with their own secret as password).
pub const BUILDER_USER: &str = "berth-builder";

/// The registry credentials of the builds running now. Each build gets its own secret (the
/// password of [`BUILDER_USER`]) for as long as it runs, scoped to its pipeline's team: it
/// pulls only that team's repositories and pushes only to its target repository. A build of
/// one team can therefore never pull another team's image through Berth's registry, even with
/// builds of several teams running at once.
#[derive(Debug, Clone, Default)]
pub struct BuilderGrants(Arc<Mutex<HashMap<String, BuildScope>>>);

/// What one running build may do in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildScope {
    pub team: String,
    pub repository: String,
}

impl BuilderGrants {
    /// A credential for a build of `team` that pushes to `repository`, valid until dropped.
    pub fn grant(&self, team: &str, repository: &str) -> BuilderGrant {
        let secret = berth_auth::new_token().plaintext;
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(
            secret.clone(),
            BuildScope {
                team: team.to_owned(),
                repository: repository.to_owned(),
            },
        );
        BuilderGrant {
            grants: self.clone(),
            secret,
        }
    }

    /// The scope of the build whose credential is `secret`, compared in constant time.
    pub fn scope(&self, secret: &str) -> Option<BuildScope> {
        let grants = self.0.lock().unwrap_or_else(|p| p.into_inner());
        grants
            .iter()
            .find(|(known, _)| constant_time_eq(known.as_bytes(), secret.as_bytes()))
            .map(|(_, scope)| scope.clone())
    }
}

/// One build's registry credential; revoked when dropped.
#[derive(Debug)]
pub struct BuilderGrant {
    grants: BuilderGrants,
    secret: String,
}

impl BuilderGrant {
    /// The password to give the registry with [`BUILDER_USER`].
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl Drop for BuilderGrant {
    fn drop(&mut self) {
        self.grants
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.secret);
    }
}
