//! Nodes: what every logged-in user may see of the machines (names, labels, capacity, use,
//! status — no app or team data), the labels admins set, and the platform events admins read.

use berth_controller::nodes::{NodeView, NodesView, labels_with};
use berth_core::node::{self, CLUSTER_SUBJECT, NodeLabels, PlatformEvent, node_subject};
use berth_core::placement::{NodeConstraint, meets_all};
use berth_engine::NodeAvailability;
use berth_store::EventQuery;

use crate::{Actor, OpError, OpResult, Platform};

/// One node with its labels.
#[derive(Debug, Clone)]
pub struct NodeOverview {
    pub view: NodeView,
    pub labels: NodeLabels,
}

/// Every node, and whether the cluster needs another one.
#[derive(Debug, Clone)]
pub struct NodesOverview {
    pub nodes: Vec<NodeOverview>,
    pub needs_another_node: bool,
}

impl Platform {
    /// Every node (any logged-in user: nodes carry no team's data).
    pub async fn list_nodes(&self, _actor: &Actor) -> OpResult<NodesOverview> {
        let NodesView {
            nodes,
            needs_another_node,
        } = self.nodes.view();
        let mut labels = self.store.node_labels().await?;
        Ok(NodesOverview {
            nodes: nodes
                .into_iter()
                .map(|view| NodeOverview {
                    labels: labels_with(
                        &view.info,
                        labels.remove(&view.info.name).unwrap_or_default(),
                    ),
                    view,
                })
                .collect(),
            needs_another_node,
        })
    }

    /// Refuses node constraints that no node meets (400 naming `node_constraints`, with the
    /// nodes' labels). Nothing is refused before the node monitor has seen the nodes.
    pub(crate) async fn require_placeable(
        &self,
        actor: &Actor,
        constraints: &[NodeConstraint],
    ) -> OpResult<()> {
        if constraints.is_empty() {
            return Ok(());
        }
        let nodes = self.list_nodes(actor).await?.nodes;
        if nodes.is_empty() || nodes.iter().any(|n| meets_all(constraints, &n.labels)) {
            return Ok(());
        }
        let wanted: Vec<String> = constraints.iter().map(ToString::to_string).collect();
        let seen: Vec<String> = nodes
            .iter()
            .map(|n| {
                let labels: Vec<String> =
                    n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "{} ({})",
                    n.view.info.name,
                    if labels.is_empty() {
                        "no labels".to_string()
                    } else {
                        labels.join(", ")
                    }
                )
            })
            .collect();
        Err(OpError::field(
            "node_constraints",
            format!(
                "no node meets {}: the nodes are {} (an admin labels one with berth nodes label)",
                wanted.join(" and "),
                seen.join("; ")
            ),
        ))
    }

    /// One node (any logged-in user); not found when the monitor does not know it.
    pub async fn node(&self, actor: &Actor, name: &str) -> OpResult<NodeOverview> {
        self.list_nodes(actor)
            .await?
            .nodes
            .into_iter()
            .find(|n| n.view.info.name == name)
            .ok_or_else(|| OpError::not_found(format!("node {name}")))
    }

    /// Replaces a node's labels (platform admins): each key and value is checked first, a bad
    /// one names its field (`labels.<key>`). On a Swarm they become the node's Swarm labels
    /// (what placement constraints read); on one engine Berth keeps them, beside the labels
    /// the engine gives the node (one set to the engine's value is not stored).
    pub async fn set_node_labels(
        &self,
        actor: &Actor,
        name: &str,
        labels: NodeLabels,
    ) -> OpResult<NodeOverview> {
        actor.require_admin()?;
        if let Err(errors) = node::validate_labels(&labels) {
            let first = errors.first().cloned();
            let field = first.map(|f| f.field).unwrap_or_else(|| "labels".into());
            return Err(OpError::field(
                field,
                errors
                    .0
                    .iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        // Only nodes the monitor knows: a typo must not store labels for a node that is not.
        let known = self.node(actor, name).await?;
        actor.audit.set_detail(
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        );
        // An engine that places instances by node labels (a Swarm) keeps them all, so its
        // placement constraints see what Berth shows; otherwise Berth keeps them.
        let kept_by_engine = self
            .controller
            .shared()
            .runtime
            .set_node_labels(name, &labels)
            .await?;
        let mut labels = labels;
        if kept_by_engine {
            labels.clear();
        } else {
            // The engine's labels show anyway: only what differs from them is Berth's to keep
            // (an editor that sends every label back does not copy the engine's into Berth's).
            let engine = &known.view.info.labels;
            labels.retain(|key, value| engine.get(key) != Some(value));
        }
        self.store
            .set_node_labels(name, &labels, self.now())
            .await?;
        if kept_by_engine && let Err(error) = self.nodes.run_once().await {
            tracing::warn!(%error, "could not read the nodes again");
        }
        self.node(actor, name).await
    }

    /// Sets whether a node takes instances (platform admins): `active`, `pause` or `drain`
    /// (nothing new lands there, and Berth moves its instances away: each one's replacement
    /// elsewhere is ready before it stops). The view is read again at once, so the answer
    /// shows the new availability.
    pub async fn set_node_availability(
        &self,
        actor: &Actor,
        name: &str,
        availability: &str,
    ) -> OpResult<NodeOverview> {
        actor.require_admin()?;
        let parsed = NodeAvailability::parse(availability).ok_or_else(|| {
            OpError::field(
                "availability",
                format!("{availability:?} is not active, pause or drain"),
            )
        })?;
        self.node(actor, name).await?;
        actor
            .audit
            .set_detail(format!("availability={}", parsed.as_str()));
        self.controller
            .shared()
            .runtime
            .set_node_availability(name, parsed)
            .await?;
        if let Err(error) = self.nodes.run_once().await {
            tracing::warn!(%error, "could not read the nodes again");
        }
        // Every app looks again: a drain moves the node's instances (health-gated), an
        // activation lets new ones land there.
        for app in self.store.list_apps().await? {
            self.controller.wake(&app.name);
        }
        self.node(actor, name).await
    }

    /// A node's events (platform admins), oldest first.
    pub async fn node_events(
        &self,
        actor: &Actor,
        name: &str,
        query: EventQuery,
    ) -> OpResult<Vec<PlatformEvent>> {
        actor.require_admin()?;
        let events = self
            .store
            .list_platform_events(&node_subject(name), query)
            .await?;
        if events.is_empty() && query.after_id.is_none() {
            // An unknown node is not found; a known one may have no events yet.
            self.node(actor, name).await?;
        }
        Ok(events)
    }

    /// The cluster's events (platform admins): when every node ran low, and when not any more.
    pub async fn cluster_events(
        &self,
        actor: &Actor,
        query: EventQuery,
    ) -> OpResult<Vec<PlatformEvent>> {
        actor.require_admin()?;
        Ok(self
            .store
            .list_platform_events(CLUSTER_SUBJECT, query)
            .await?)
    }
}
