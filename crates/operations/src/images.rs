//! Which images an actor may run: the policy every app image passes, whatever door names it.

use berth_core::accounts::TeamAction;
use berth_core::image_ref::{built_in_repository, names_an_image_id, team_of_repository};

use crate::actor::Actor;
use crate::error::{OpError, OpResult};

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
