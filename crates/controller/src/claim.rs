//! Claiming the engine namespace for this installation before any control loop acts on it:
//! a server refuses to manage a namespace another Berth installation holds.

use std::collections::BTreeMap;

use berth_core::installation::{ClaimDecision, Installation, claim_volume_name, decide};
use berth_engine::{EngineError, Runtime, labels};

/// How the claim went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The namespace was free or already this installation's.
    Ours,
    /// Another installation held it; the operator asked to take it over, and the claim is now
    /// this installation's.
    TookOver(Option<Installation>),
}

/// Why the namespace cannot be claimed.
#[derive(Debug)]
pub enum ClaimError {
    /// Another installation holds it (`None`: a claim without an identity).
    Held(Option<Installation>),
    /// The engine did not answer, or refused.
    Engine(EngineError),
}

impl From<EngineError> for ClaimError {
    fn from(error: EngineError) -> Self {
        ClaimError::Engine(error)
    }
}

/// Claims `namespace` for `ours`: makes the claim volume when there is none (an existing one
/// keeps the labels of whoever made it first, so of two servers starting at once exactly one
/// wins), then reads who holds it. With `take_over`, another installation's claim is replaced.
pub async fn claim_namespace(
    runtime: &dyn Runtime,
    namespace: &str,
    ours: &Installation,
    take_over: bool,
) -> Result<Claimed, ClaimError> {
    let name = claim_volume_name(namespace);
    let namespace_label = BTreeMap::from([(labels::NAMESPACE.to_string(), namespace.to_string())]);
    let mut claim_labels = ours.claim_labels();
    claim_labels.extend(namespace_label.clone());
    let mut took_over = None;
    // At most twice: once more after replacing another installation's claim.
    for _ in 0..2 {
        runtime.ensure_volume(&name, &claim_labels).await?;
        let found = runtime
            .list_volumes(&namespace_label, false)
            .await?
            .into_iter()
            .find(|volume| volume.name == name)
            .map(|volume| volume.labels)
            .unwrap_or_default();
        match decide(&found, ours, take_over && took_over.is_none()) {
            ClaimDecision::Ours => {
                return Ok(match took_over {
                    Some(previous) => Claimed::TookOver(previous),
                    None => Claimed::Ours,
                });
            }
            ClaimDecision::Refuse(holder) => return Err(ClaimError::Held(holder)),
            ClaimDecision::TakeOver(holder) => {
                runtime.remove_volume(&name).await?;
                took_over = Some(holder);
            }
        }
    }
    Err(ClaimError::Held(None))
}
