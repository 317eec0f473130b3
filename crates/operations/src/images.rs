//! Images and apps: which images an actor may run (the policy every app image passes,
//! whatever door names it), and which images the registry must keep because kept revisions
//! use them (retention and garbage collection, for the API and the scheduled job alike).

use berth_core::accounts::TeamAction;
use berth_core::image_ref::{built_in_repository, names_an_image_id, team_of_repository};

use berth_registry::{
    GcOptions, GcReport, Registry, RegistryError, RetentionPolicy, RetentionReport,
};
use berth_store::{Store, StoreResult};

use crate::actor::Actor;
use crate::error::{OpError, OpResult};

impl crate::Platform {
    /// The built-in registry's hosts, with any other server of the installation recorded
    /// in the store since this server last looked: a permission check sees every host a
    /// later pull may use the system credential at.
    pub(crate) async fn current_registry_hosts(&self) -> OpResult<std::sync::Arc<[String]>> {
        if let Some(listed) = self
            .store
            .get_setting(berth_core::image_ref::REGISTRY_HOSTS_SETTING)
            .await?
        {
            self.registry_hosts.learn(&listed);
        }
        Ok(self.registry_hosts.get())
    }
}

/// Refuses an app image from the built-in registry whose team the actor cannot read: the
/// engine pulls with Berth's own credential, so without this check anyone could run another
/// team's private image. Images from elsewhere are the engine's business.
///
/// An image must be named, never given by its ID: the engine's image cache is shared by every
/// team, and Docker reads `sha256:…` and a bare hex string as an ID (or an ID prefix) of any
/// image there — another team's build or pull included.
pub fn require_pull(actor: &Actor, registry_hosts: &[String], image: &str) -> OpResult<()> {
    if names_an_image_id(image) {
        return Err(OpError::field(
            "template.image",
            format!(
                "{image:?} reads as an image ID; name the image (repository with a tag or \
                 digest, e.g. registry/team/app:v1 or app@sha256:…)"
            ),
        ));
    }
    let Some(repository) = built_in_repository(image, registry_hosts) else {
        return Ok(());
    };
    if actor.can(team_of_repository(repository), TeamAction::Read) {
        Ok(())
    } else {
        Err(OpError::NotFound {
            what: format!("image: repository {repository}"),
            field: Some("image".to_string()),
        })
    }
}

/// The registry path of an image reference (`host:port/team/app:tag` → `team/app:tag`), by
/// Docker's rule: a first segment with a '.' or ':' or equal to `localhost` is a host.
fn without_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => image,
    }
}

/// Images that kept revisions of apps run or may roll back to, with who uses them, as paths
/// in a registry (`team/app:tag`): with `host`, only the images pulled from that host (an
/// external registry); without, those of any host (the built-in registry answers to several
/// names, and an image without a host may be meant for it).
pub async fn images_in_use(
    store: &dyn Store,
    host: Option<&str>,
) -> StoreResult<Vec<(String, String)>> {
    let mut in_use = Vec::new();
    for used in store.revision_images().await? {
        let image = used.image.as_str();
        let path = match host {
            Some(host) => match image.strip_prefix(host).and_then(|p| p.strip_prefix('/')) {
                Some(path) => path,
                None => continue,
            },
            None => without_host(image),
        };
        let user = format!("app {} revision {}", used.app, used.revision);
        in_use.push((path.to_string(), user));
    }
    Ok(in_use)
}

/// The policy with the repository's in-use tags and digests protected: retention never
/// deletes an image a kept revision uses.
pub fn protect(
    mut policy: RetentionPolicy,
    repo: &str,
    in_use: &[(String, String)],
) -> RetentionPolicy {
    for (image, _) in in_use {
        if let Some(tag) = image
            .strip_prefix(repo)
            .and_then(|rest| rest.strip_prefix(':'))
        {
            policy.protected_tags.insert(tag.to_string());
        } else if let Some(digest) = image
            .strip_prefix(repo)
            .and_then(|rest| rest.strip_prefix('@'))
        {
            policy.protected_digests.insert(digest.to_string());
        }
    }
    policy
}

/// Applies every stored retention rule, then garbage-collects; says what each rule deleted.
/// The scheduled job and `POST /api/v1/registry/gc` both run this.
pub async fn retention_then_gc(
    store: &dyn Store,
    registry: &Registry,
    options: GcOptions,
) -> OpResult<(Vec<(String, RetentionReport)>, GcReport)> {
    let mut runs = Vec::new();
    let in_use = images_in_use(store, None).await?;
    for rule in store.list_retention_rules().await? {
        let policy = RetentionPolicy {
            keep_newest_tags: rule.keep_newest_tags.map(|n| n as usize),
            delete_untagged_older_than: rule
                .delete_untagged_older_than_ms
                .map(std::time::Duration::from_millis),
            ..RetentionPolicy::default()
        };
        let policy = protect(policy, &rule.repository, &in_use);
        match registry
            .apply_retention(&rule.repository, &policy, registry.now())
            .await
        {
            Ok(report) => runs.push((rule.repository, report)),
            // A rule for a repository that does not exist (yet, or any more) has nothing to do.
            Err(RegistryError::NameUnknown(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let report = registry.garbage_collect(registry.now(), options).await?;
    tracing::info!(
        bytes_freed = report.bytes_freed,
        blobs = report.blobs_deleted,
        "registry garbage collection"
    );
    Ok((runs, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_images_are_protected() {
        let in_use = vec![
            ("team/app:v1".to_string(), "app a revision 1".to_string()),
            (
                "team/app@sha256:aa".to_string(),
                "app b revision 2".to_string(),
            ),
            (
                "team/app-other:v9".to_string(),
                "app c revision 1".to_string(),
            ),
            ("other/app:v2".to_string(), "app d revision 1".to_string()),
        ];
        let policy = protect(RetentionPolicy::default(), "team/app", &in_use);
        assert_eq!(
            policy.protected_tags.into_iter().collect::<Vec<_>>(),
            vec!["v1"]
        );
        assert_eq!(
            policy.protected_digests.into_iter().collect::<Vec<_>>(),
            vec!["sha256:aa"]
        );
    }

    #[test]
    fn hosts_are_stripped() {
        let cases = [
            ("127.0.0.1:7700/default/web:v1", "default/web:v1"),
            ("localhost/default/web:v1", "default/web:v1"),
            ("registry.example.com/a/b@sha256:00", "a/b@sha256:00"),
            ("default/web:v1", "default/web:v1"),
            ("busybox", "busybox"),
        ];
        for (image, want) in cases {
            assert_eq!(without_host(image), want, "{image}");
        }
    }
}
