//! Which Berth installation manages an engine namespace: the claim a server leaves on the
//! engine (labels of one volume) and the decision whether a starting server may manage the
//! namespace.
//!
//! Two installations on one namespace would each treat the other's containers as strays and
//! remove them. An installation is its state: every server on one store (one SQLite file, or
//! one PostgreSQL database later) shares its identity, so only a *different* installation is
//! refused.

use std::collections::BTreeMap;

use crate::Millis;

/// The store setting holding the installation's identity (made on first start).
pub const INSTALLATION_SETTING: &str = "installation_id";

/// Labels of the claim volume.
pub mod labels {
    /// The claiming installation's identity.
    pub const ID: &str = "berth.installation";
    /// Where the claiming server kept its data (shown to whoever is refused).
    pub const DATA_DIR: &str = "berth.installation.data-dir";
    /// The host name of the claiming server.
    pub const HOST: &str = "berth.installation.host";
    /// When the claim was made, unix milliseconds.
    pub const CLAIMED_AT: &str = "berth.installation.claimed-at";
}

/// The name of the engine volume that carries a namespace's claim. Team volumes are named
/// `<namespace>_<team>_<name>`, so no volume of an app can take this name.
pub fn claim_volume_name(namespace: &str) -> String {
    format!("{namespace}-installation")
}

/// A Berth installation as its claim describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// Random, made on the installation's first start and kept in its store.
    pub id: String,
    /// The data directory of the server that made the claim.
    pub data_dir: String,
    /// The host name of the server that made the claim.
    pub host: String,
    /// When the claim was made (0 when unknown).
    pub claimed_at: Millis,
}

impl Installation {
    /// The claim volume's labels (besides the namespace label the engine adds).
    pub fn claim_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::ID.to_string(), self.id.clone()),
            (labels::DATA_DIR.to_string(), self.data_dir.clone()),
            (labels::HOST.to_string(), self.host.clone()),
            (labels::CLAIMED_AT.to_string(), self.claimed_at.to_string()),
        ])
    }

    /// Reads a claim from a volume's labels; `None` when they carry no identity.
    pub fn from_claim_labels(labels: &BTreeMap<String, String>) -> Option<Installation> {
        let id = labels.get(labels::ID).filter(|id| !id.is_empty())?;
        let text = |key: &str| labels.get(key).cloned().unwrap_or_default();
        Some(Installation {
            id: id.clone(),
            data_dir: text(labels::DATA_DIR),
            host: text(labels::HOST),
            claimed_at: labels
                .get(labels::CLAIMED_AT)
                .and_then(|at| at.parse().ok())
                .unwrap_or(0),
        })
    }
}

/// What a starting server does about the claim it finds on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    /// The claim is this installation's: manage the namespace.
    Ours,
    /// Another installation (or a claim without an identity: `None`) holds the namespace;
    /// this server must not manage it.
    Refuse(Option<Installation>),
    /// Another installation holds it, and the operator asked to take the namespace over:
    /// replace the claim, then manage it.
    TakeOver(Option<Installation>),
}

/// Decides from the claim volume's labels (after this server made sure the volume exists:
/// an existing volume keeps the labels of whoever made it first).
pub fn decide(
    found: &BTreeMap<String, String>,
    ours: &Installation,
    take_over: bool,
) -> ClaimDecision {
    let holder = Installation::from_claim_labels(found);
    match holder {
        Some(holder) if holder.id == ours.id => ClaimDecision::Ours,
        other if take_over => ClaimDecision::TakeOver(other),
        other => ClaimDecision::Refuse(other),
    }
}

/// The refusal a server prints when another installation holds its namespace.
pub fn refusal_message(namespace: &str, holder: Option<&Installation>) -> String {
    let who = match holder {
        Some(holder) => format!(
            "another Berth installation (data directory {} on host {}, id {})",
            if holder.data_dir.is_empty() {
                "unknown"
            } else {
                &holder.data_dir
            },
            if holder.host.is_empty() {
                "unknown"
            } else {
                &holder.host
            },
            holder.id
        ),
        None => format!(
            "something else: the volume {} that marks the owner carries no installation id",
            claim_volume_name(namespace)
        ),
    };
    format!(
        "the engine namespace `{namespace}` is managed by {who}. Two installations on one \
         namespace would remove each other's containers. Start this server with another \
         --namespace, or use that installation's data directory or store; if that installation \
         is gone for good, start once with --take-over-namespace"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installation(id: &str) -> Installation {
        Installation {
            id: id.into(),
            data_dir: format!("/srv/{id}"),
            host: "node-1".into(),
            claimed_at: 1_700_000_000_000,
        }
    }

    #[test]
    fn labels_round_trip() {
        let ours = installation("a1");
        assert_eq!(
            Installation::from_claim_labels(&ours.claim_labels()),
            Some(ours)
        );
    }

    #[test]
    fn decisions() {
        let ours = installation("a1");
        let theirs = installation("b2");
        let blank = BTreeMap::from([(labels::ID.to_string(), String::new())]);
        let cases: [(&str, BTreeMap<String, String>, bool, ClaimDecision); 6] = [
            ("our claim", ours.claim_labels(), false, ClaimDecision::Ours),
            (
                "our claim, take-over asked",
                ours.claim_labels(),
                true,
                ClaimDecision::Ours,
            ),
            (
                "another installation",
                theirs.claim_labels(),
                false,
                ClaimDecision::Refuse(Some(theirs.clone())),
            ),
            (
                "another installation, take-over asked",
                theirs.claim_labels(),
                true,
                ClaimDecision::TakeOver(Some(theirs.clone())),
            ),
            (
                "a claim without an identity",
                blank.clone(),
                false,
                ClaimDecision::Refuse(None),
            ),
            (
                "a claim without an identity, take-over asked",
                blank,
                true,
                ClaimDecision::TakeOver(None),
            ),
        ];
        for (case, found, take_over, want) in cases {
            assert_eq!(decide(&found, &ours, take_over), want, "{case}");
        }
    }

    #[test]
    fn the_refusal_names_the_holder_and_the_ways_out() {
        let message = refusal_message("berth", Some(&installation("b2")));
        for part in [
            "`berth`",
            "/srv/b2",
            "node-1",
            "b2",
            "--namespace",
            "--take-over-namespace",
        ] {
            assert!(message.contains(part), "{part} in {message}");
        }
        assert!(refusal_message("berth", None).contains("berth-installation"));
    }
}
