//! Storage limits per namespace (`team` of `team/app`): the [`NamespaceLimits`] seam the
//! embedding server supplies, and the check the registry makes before a blob becomes visible
//! in a repository (upload completion, cross-repository mount, manifest push).
//!
//! What counts is the namespace's stored bytes: the distinct blobs its repositories link
//! (layers, configs, manifests), each counted once however many of them link it, as
//! [`Registry::namespace_usage`] reports. A blob already linked somewhere in the namespace is
//! free; only growth is checked, so a namespace already over a lowered limit can still push
//! what it holds. Checks of one namespace are serialized so that two concurrent pushes cannot
//! both take the last free bytes.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{RegistryError, Result};
use crate::reference::{Digest, RepoName};
use crate::registry::Registry;

/// Answers how many bytes a namespace may store. Implemented by the embedding server (Berth:
/// the team's registry quota).
#[async_trait]
pub trait NamespaceLimits: Send + Sync + 'static {
    /// The most bytes `namespace` may store; `None`: unlimited. An error fails the push (500):
    /// a limit that cannot be read never lets a push through.
    async fn byte_limit(&self, namespace: &str) -> io::Result<Option<u64>>;

    /// The message of the 403 `DENIED` a push beyond the limit gets. The default names the
    /// namespace and plain byte counts.
    fn exceeded_message(&self, exceeded: &StorageQuotaExceeded) -> String {
        exceeded.to_string()
    }
}

/// Why a blob does not fit its namespace's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageQuotaExceeded {
    /// The namespace (`team`).
    pub namespace: String,
    /// Bytes the push adds.
    pub asked: u64,
    /// Bytes the namespace stores without it.
    pub in_use: u64,
    /// The namespace's limit.
    pub limit: u64,
}

impl std::fmt::Display for StorageQuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "namespace {} storage quota exceeded: asked for {} bytes, {} bytes in use, limit {} bytes",
            self.namespace, self.asked, self.in_use, self.limit
        )
    }
}

impl StorageQuotaExceeded {
    /// Whether `asked` more bytes fit `limit` with `in_use` stored; the refusal otherwise.
    fn check(namespace: &str, asked: u64, in_use: u64, limit: u64) -> Option<Self> {
        // An overflowing total exceeds any limit; adding nothing always fits.
        let fits = asked == 0 || in_use.checked_add(asked).is_some_and(|t| t <= limit);
        (!fits).then(|| Self {
            namespace: namespace.to_owned(),
            asked,
            in_use,
            limit,
        })
    }
}

/// Held while a blob is checked against its namespace's limit and linked: one per namespace.
pub(crate) type QuotaGuard = Option<tokio::sync::OwnedMutexGuard<()>>;

impl Registry {
    /// Serializes quota checks of `repo`'s namespace (nothing to hold without limits). Take it
    /// before the GC lock: the sweep waits for readers, and readers must not wait on each other
    /// while it queues.
    pub(crate) async fn quota_guard(&self, repo: &RepoName) -> QuotaGuard {
        self.limits.as_ref()?;
        let lock = {
            let mut locks = self.quota_locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(repo.namespace().to_owned()).or_default())
        };
        Some(lock.lock_owned().await)
    }

    /// Refuses (403 `DENIED`) linking `digest` of `size` bytes into `repo` when its namespace
    /// does not hold the blob yet and it would grow beyond the namespace's limit. Call it under
    /// [`Self::quota_guard`], right before the blob becomes visible.
    pub(crate) async fn ensure_fits(
        &self,
        _guard: &QuotaGuard,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let Some(limits) = &self.limits else {
            return Ok(());
        };
        let namespace = repo.namespace();
        let Some(limit) = limits.byte_limit(namespace).await? else {
            return Ok(());
        };
        let blobs = self.namespace_blobs(namespace).await?;
        if blobs.contains_key(digest) {
            return Ok(());
        }
        let in_use = blobs.values().sum();
        match StorageQuotaExceeded::check(namespace, size, in_use, limit) {
            None => Ok(()),
            Some(exceeded) => Err(RegistryError::QuotaExceeded(
                limits.exceeded_message(&exceeded),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_beyond_the_limit_is_refused() {
        let cases = [
            // (asked, in_use, limit, fits)
            (10, 0, 10, true),
            (11, 0, 10, false),
            (1, 10, 10, false),
            (0, 20, 10, true),
            (5, 4, 10, true),
            (u64::MAX, 1, u64::MAX, false),
        ];
        for (asked, in_use, limit, fits) in cases {
            let got = StorageQuotaExceeded::check("web", asked, in_use, limit);
            assert_eq!(got.is_none(), fits, "{asked} + {in_use} vs {limit}");
        }
        let refused = StorageQuotaExceeded::check("web", 120, 990, 1000).unwrap();
        assert_eq!(
            refused.to_string(),
            "namespace web storage quota exceeded: asked for 120 bytes, 990 bytes in use, limit 1000 bytes"
        );
    }
}
