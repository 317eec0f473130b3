//! The server's periodic background jobs, each a [`Job`] run by the one worker shape
//! (`berth_controller::workers`): registry upload expiry and scheduled garbage collection,
//! the hourly cleanup of sessions and webhook deliveries, the pruning of old build images, and
//! the renewal of ACME certificates.

use std::sync::Arc;

use async_trait::async_trait;
use berth_controller::workers::Job;
use berth_core::clock::Clock;
use berth_engine::ImageBuilder;
use berth_registry::Registry;
use berth_store::Store;

/// Removes uploads abandoned halfway (their chunks take disk and nobody finishes them).
pub struct RegistryUploadExpiry {
    pub registry: Arc<Registry>,
}

#[async_trait]
impl Job for RegistryUploadExpiry {
    fn name(&self) -> &'static str {
        "registry-upload-expiry"
    }

    fn description(&self) -> &'static str {
        "removes registry uploads abandoned halfway"
    }

    async fn run(&self) -> Result<String, String> {
        let report = self
            .registry
            .expire_uploads(self.registry.now())
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "{} uploads expired, {} bytes freed",
            report.uploads_expired, report.bytes_freed
        ))
    }
}

/// Applies the retention rules, then garbage-collects the registry's unreferenced blobs.
pub struct RegistryGc {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
}

#[async_trait]
impl Job for RegistryGc {
    fn name(&self) -> &'static str {
        "registry-gc"
    }

    fn description(&self) -> &'static str {
        "applies image retention rules, then frees the blobs no manifest references"
    }

    async fn run(&self) -> Result<String, String> {
        let options = berth_registry::GcOptions::default();
        let (retention, report) =
            berth_operations::images::retention_then_gc(&*self.store, &self.registry, options)
                .await
                .map_err(|e| e.to_string())?;
        Ok(format!(
            "{} retention rules applied; {} blobs deleted, {} bytes freed",
            retention.len(),
            report.blobs_deleted,
            report.bytes_freed
        ))
    }
}

/// How long webhook delivery ids are remembered (forges redeliver within hours).
const DELIVERY_MEMORY_MS: i64 = 7 * 24 * 3600 * 1000;

/// Deletes expired browser sessions (they already admit nobody; this frees rows) and forgets
/// webhook delivery ids older than a week.
pub struct Cleanup {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
}

#[async_trait]
impl Job for Cleanup {
    fn name(&self) -> &'static str {
        "cleanup"
    }

    fn description(&self) -> &'static str {
        "deletes expired sessions and forgets webhook deliveries older than a week"
    }

    async fn run(&self) -> Result<String, String> {
        let now = (self.clock)();
        let sessions = self
            .store
            .delete_expired_sessions(now)
            .await
            .map_err(|e| format!("deleting expired sessions: {e}"))?;
        let deliveries = self
            .store
            .prune_webhook_deliveries(now - DELIVERY_MEMORY_MS)
            .await
            .map_err(|e| format!("forgetting webhook deliveries: {e}"))?;
        Ok(format!(
            "{sessions} expired sessions deleted, {deliveries} old webhook deliveries forgotten"
        ))
    }
}

/// Removes old build images from the engine (each pipeline keeps its newest few), so the
/// engine's disk does not fill with dead builds.
pub struct BuildImagePrune {
    pub builder: Arc<dyn ImageBuilder>,
    pub namespace: String,
}

#[async_trait]
impl Job for BuildImagePrune {
    fn name(&self) -> &'static str {
        "build-image-prune"
    }

    fn description(&self) -> &'static str {
        "removes old build images from the engine, keeping each pipeline's newest"
    }

    async fn run(&self) -> Result<String, String> {
        let report = berth_pipeline::prune::prune_build_images(
            &*self.builder,
            &self.namespace,
            berth_pipeline::prune::KEPT_PER_PIPELINE,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(format!(
            "{} build images removed, {} kept in use",
            report.removed, report.in_use
        ))
    }
}

/// Renews the ACME certificates that are due (less than `--acme-renew-before` left, else less
/// than a third of their lifetime), recording an event on each app; a failed renewal keeps the
/// old certificate and is retried on the next run.
pub struct CertificateRenewal {
    pub platform: berth_operations::Platform,
}

#[async_trait]
impl Job for CertificateRenewal {
    fn name(&self) -> &'static str {
        "certificate-renewal"
    }

    fn description(&self) -> &'static str {
        "renews ACME certificates before they expire"
    }

    async fn run(&self) -> Result<String, String> {
        let report = self
            .platform
            .renew_certificates()
            .await
            .map_err(|e| e.to_string())?;
        let summary = format!(
            "{} ACME certificates checked, {} renewed, {} failed",
            report.checked,
            report.renewed.len(),
            report.failed.len()
        );
        if report.failed.is_empty() {
            Ok(summary)
        } else {
            let failed: Vec<String> = report
                .failed
                .iter()
                .map(|(host, why)| format!("{host}: {why}"))
                .collect();
            Err(format!("{summary}: {}", failed.join("; ")))
        }
    }
}
