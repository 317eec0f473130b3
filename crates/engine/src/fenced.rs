//! A runtime that starts and stops instances only while its server leads: the fence of
//! several Berth servers on one database (`berth_core::leadership`).
//!
//! The server's leadership loop grants the [`Fence`] a term (its epoch) until a deadline and
//! moves the deadline on at every renewal of the lease; [`FencedRuntime`] refuses to start or
//! stop an instance once the deadline has passed or the term was revoked, so a server that
//! lost its lease — cut off from the database, paused, or deposed — changes nothing even
//! before it notices. Every instance it starts carries the term's epoch (label
//! [`labels::LEADER_EPOCH`]). Reads (listings, events, logs, samples) and what the API does
//! on a user's behalf (volumes, exec) pass through unfenced.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::time::Instant;

use crate::{
    EngineError, EngineEvent, EngineInfo, EngineNode, EngineResult, ExecSession, ExecSpec,
    InstanceSpec, LogLine, LogOptions, NodeAvailability, ObservedContainer, ObservedVolume,
    RegistryAuth, ResourceSample, Runtime,
};

/// Labels the fence adds.
pub mod labels {
    /// On an instance: the leadership term (lease epoch) of the server that started it.
    pub const LEADER_EPOCH: &str = "berth.leader-epoch";
}

/// The term a server may act in, if any.
#[derive(Debug, Default)]
pub struct Fence {
    term: Mutex<Option<Term>>,
}

#[derive(Debug, Clone, Copy)]
struct Term {
    epoch: i64,
    until: Instant,
}

impl Fence {
    /// A fence with no term: every start and stop is refused until [`grant`](Self::grant).
    pub fn new() -> Arc<Fence> {
        Arc::new(Fence::default())
    }

    /// Lets the runtime act in term `epoch` for `time_left` from now (a renewal calls it again
    /// with the new deadline).
    pub fn grant(&self, epoch: i64, time_left: Duration) {
        *self.lock() = Some(Term {
            epoch,
            until: Instant::now() + time_left,
        });
    }

    /// Ends the term at once.
    pub fn revoke(&self) {
        *self.lock() = None;
    }

    /// The epoch of the running term; refused when there is none or its deadline has passed.
    pub fn check(&self) -> EngineResult<i64> {
        match *self.lock() {
            Some(term) if Instant::now() < term.until => Ok(term.epoch),
            _ => Err(EngineError::Conflict(
                "this Berth server does not lead (its lease expired or another server leads): \
                 it starts and stops no instance"
                    .into(),
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Term>> {
        self.term.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `inner`, starting and stopping instances only within the [`Fence`]'s term.
pub struct FencedRuntime {
    inner: Arc<dyn Runtime>,
    fence: Arc<Fence>,
}

impl FencedRuntime {
    pub fn new(inner: Arc<dyn Runtime>, fence: Arc<Fence>) -> FencedRuntime {
        FencedRuntime { inner, fence }
    }
}

#[async_trait]
impl Runtime for FencedRuntime {
    async fn info(&self) -> EngineResult<EngineInfo> {
        self.inner.info().await
    }

    async fn nodes(&self) -> EngineResult<Vec<EngineNode>> {
        self.inner.nodes().await
    }

    /// A reading changes nothing of the apps: no term needed.
    async fn read_node(&self, node: &str) -> EngineResult<Option<Vec<u8>>> {
        self.inner.read_node(node).await
    }

    async fn set_node_availability(
        &self,
        node: &str,
        availability: NodeAvailability,
    ) -> EngineResult<()> {
        self.inner.set_node_availability(node, availability).await
    }

    async fn set_node_labels(
        &self,
        node: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<bool> {
        self.inner.set_node_labels(node, labels).await
    }

    async fn ensure_network(&self, name: &str) -> EngineResult<()> {
        self.inner.ensure_network(name).await
    }

    async fn ensure_image(&self, image: &str, auth: Option<&RegistryAuth>) -> EngineResult<()> {
        self.inner.ensure_image(image, auth).await
    }

    async fn start_instance(&self, spec: &InstanceSpec) -> EngineResult<String> {
        let epoch = self.fence.check()?;
        let mut spec = spec.clone();
        spec.labels
            .insert(labels::LEADER_EPOCH.to_owned(), epoch.to_string());
        self.inner.start_instance(&spec).await
    }

    async fn stop_instance(&self, id: &str, grace: Duration) -> EngineResult<()> {
        self.fence.check()?;
        self.inner.stop_instance(id, grace).await
    }

    async fn list_containers(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> EngineResult<Vec<ObservedContainer>> {
        self.inner.list_containers(label_filter).await
    }

    fn events(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> BoxStream<'static, EngineResult<EngineEvent>> {
        self.inner.events(label_filter)
    }

    fn logs(&self, id: &str, options: LogOptions) -> BoxStream<'static, EngineResult<LogLine>> {
        self.inner.logs(id, options)
    }

    async fn resource_sample(&self, id: &str) -> EngineResult<ResourceSample> {
        self.inner.resource_sample(id).await
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        self.inner.ensure_volume(name, labels).await
    }

    async fn list_volumes(
        &self,
        label_filter: &BTreeMap<String, String>,
        measure: bool,
    ) -> EngineResult<Vec<ObservedVolume>> {
        self.inner.list_volumes(label_filter, measure).await
    }

    async fn remove_volume(&self, name: &str) -> EngineResult<()> {
        self.inner.remove_volume(name).await
    }

    async fn empty_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        self.inner.empty_volume(name, labels).await
    }

    fn export_volume(&self, name: &str) -> BoxStream<'static, EngineResult<Bytes>> {
        self.inner.export_volume(name)
    }

    async fn import_volume(
        &self,
        name: &str,
        archive: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> EngineResult<()> {
        self.inner.import_volume(name, archive).await
    }

    async fn exec(&self, id: &str, spec: &ExecSpec) -> EngineResult<ExecSession> {
        self.inner.exec(id, spec).await
    }

    async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> EngineResult<()> {
        self.inner.resize_exec(exec_id, cols, rows).await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> EngineResult<Option<i64>> {
        self.inner.exec_exit_code(exec_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeRuntime;

    #[tokio::test(start_paused = true)]
    async fn starts_and_stops_only_within_the_term_and_tags_the_epoch() {
        let spec = crate::docker::tests::example_spec();
        let fake = Arc::new(FakeRuntime::new().with_image(&spec.image));
        let fence = Fence::new();
        let runtime = FencedRuntime::new(fake.clone(), Arc::clone(&fence));
        runtime.ensure_network(&spec.network).await.unwrap();
        // No term yet: refused, and the engine never asked.
        let refused = runtime.start_instance(&spec).await.unwrap_err();
        assert!(refused.to_string().contains("does not lead"), "{refused}");
        assert!(
            fake.list_containers(&BTreeMap::new())
                .await
                .unwrap()
                .is_empty()
        );

        fence.grant(7, Duration::from_secs(4));
        let id = runtime.start_instance(&spec).await.expect("start in term");
        let started = fake.list_containers(&BTreeMap::new()).await.unwrap();
        assert_eq!(started.len(), 1);
        assert_eq!(
            started[0]
                .labels
                .get(labels::LEADER_EPOCH)
                .map(String::as_str),
            Some("7")
        );
        // Past the deadline (no renewal): refused, though the term was never revoked.
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(runtime.stop_instance(&id, Duration::ZERO).await.is_err());
        // A renewal moves the deadline on; a revocation ends it at once.
        fence.grant(7, Duration::from_secs(4));
        runtime
            .stop_instance(&id, Duration::ZERO)
            .await
            .expect("stop in term");
        fence.revoke();
        assert!(runtime.start_instance(&spec).await.is_err());
        // Reads pass unfenced.
        assert!(runtime.list_containers(&BTreeMap::new()).await.is_ok());
    }
}
