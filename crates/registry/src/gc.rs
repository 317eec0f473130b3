//! Reclaiming storage: mark-and-sweep garbage collection of blobs, retention policies that
//! prune tags and untagged manifests, and expiry of abandoned upload sessions.
//!
//! Safety while pushes run: the mark phase reads every repository without blocking anyone.
//! The sweep then takes the registry-wide `gc_lock` for writing, which waits for in-flight
//! commits, mounts and manifest pushes (they hold it for reading) and keeps new ones out
//! while blobs are deleted. A blob survives when it is marked, when anything touched it
//! since the mark began (a push that completed meanwhile), or when it was committed, linked
//! or checked within the grace period (a push whose manifest has not arrived yet).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::reference::{Digest, RepoName};
use crate::registry::{LinkRecord, ManifestRecord, Registry, TagRecord, from_ms, keys};

/// Options of one garbage collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcOptions {
    /// Also delete manifests that no tag reaches (directly, as a platform of a tagged index,
    /// or as a referrer of a kept manifest), once older than the grace period.
    pub delete_untagged_manifests: bool,
}

/// What a garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs removed from storage.
    pub blobs_deleted: usize,
    /// Bytes those blobs held.
    pub bytes_freed: u64,
    /// Untagged manifests deleted (with [`GcOptions::delete_untagged_manifests`]).
    pub manifests_deleted: usize,
    /// Unreferenced blobs kept because they are recent (grace period or touched meanwhile).
    pub blobs_spared: usize,
    /// Wall time taken.
    pub duration: Duration,
}

/// A repository's retention rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep only the N most recently pushed tags.
    pub keep_newest_tags: Option<usize>,
    /// Delete manifests no tag reaches once they are older than this.
    pub delete_untagged_older_than: Option<Duration>,
    /// Tags never deleted (images that deployments use); they do not count toward
    /// `keep_newest_tags`.
    pub protected_tags: BTreeSet<String>,
    /// Manifests never deleted, by digest (images that deployments use by digest).
    pub protected_digests: BTreeSet<String>,
}

/// What a retention run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Tags removed.
    pub tags_deleted: Vec<String>,
    /// Manifests removed.
    pub manifests_deleted: Vec<String>,
}

/// What an upload expiry did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireReport {
    /// Upload sessions (and orphaned upload files) removed.
    pub uploads_expired: usize,
    /// Bytes of staged data removed.
    pub bytes_freed: u64,
}

/// The manifests of a repository that stay: `roots`, the platforms of kept indexes and the
/// referrers of kept manifests, to a fixed point.
fn reachable(
    manifests: &BTreeMap<Digest, ManifestRecord>,
    roots: impl IntoIterator<Item = Digest>,
) -> HashSet<Digest> {
    let mut live: HashSet<Digest> = roots
        .into_iter()
        .filter(|d| manifests.contains_key(d))
        .collect();
    loop {
        let mut changed = false;
        for (d, record) in manifests {
            if live.contains(d) {
                for child in &record.manifests {
                    if let Ok(c) = Digest::parse(child)
                        && manifests.contains_key(&c)
                        && live.insert(c)
                    {
                        changed = true;
                    }
                }
            } else if record
                .subject
                .as_deref()
                .and_then(|s| Digest::parse(s).ok())
                .is_some_and(|s| live.contains(&s))
            {
                live.insert(d.clone());
                changed = true;
            }
        }
        if !changed {
            return live;
        }
    }
}

fn tagged(tags: &BTreeMap<String, TagRecord>) -> impl Iterator<Item = Digest> + '_ {
    tags.values().filter_map(|t| Digest::parse(&t.digest).ok())
}

impl Registry {
    /// The blobs any server touched since `since` (from the metadata they share); older
    /// touch records are removed (the grace period has passed for them).
    async fn shared_touches_since(&self, since: SystemTime) -> Result<HashSet<Digest>> {
        let mut recent = HashSet::new();
        for digest in self.list_digests(keys::touches_dir()).await? {
            let key = keys::touch(&digest);
            let at = self
                .meta
                .get(&key)
                .await?
                .and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok())
                .map_or(UNIX_EPOCH, from_ms);
            if at >= since {
                recent.insert(digest);
            } else {
                self.meta.delete(&key).await?;
            }
        }
        Ok(recent)
    }

    /// Mark-and-sweep garbage collection: deletes every blob that no manifest of any
    /// repository references and that is not recent. With
    /// [`GcOptions::delete_untagged_manifests`], untagged manifests older than the grace
    /// period go first. Safe to run while clients push.
    pub async fn garbage_collect(&self, now: SystemTime, options: GcOptions) -> Result<GcReport> {
        let started = Instant::now();
        let start_seq = self.touch_seq.load(Ordering::SeqCst);
        let grace_start = now
            .checked_sub(self.config.gc_grace_period)
            .unwrap_or(UNIX_EPOCH);

        // Mark.
        let mut marked: HashSet<Digest> = HashSet::new();
        let mut doomed: Vec<(RepoName, Digest, ManifestRecord)> = Vec::new();
        let mut links: HashMap<Digest, Vec<(RepoName, SystemTime)>> = HashMap::new();
        for repo in self.all_repositories().await? {
            let manifests = self.manifest_records(&repo).await?;
            let live = if options.delete_untagged_manifests {
                let tags = self.tag_records(&repo).await?;
                let recent = manifests
                    .iter()
                    .filter(|(_, r)| from_ms(r.pushed_at_ms) >= grace_start)
                    .map(|(d, _)| d.clone());
                reachable(&manifests, tagged(&tags).chain(recent).collect::<Vec<_>>())
            } else {
                manifests.keys().cloned().collect()
            };
            for (digest, record) in manifests {
                if live.contains(&digest) {
                    marked.insert(digest.clone());
                    marked.extend(record.references().filter_map(|r| Digest::parse(r).ok()));
                } else {
                    doomed.push((repo.clone(), digest, record));
                }
            }
            for d in self.list_digests(&keys::layers_dir(&repo)).await? {
                let link: Option<LinkRecord> = self.read_json(&keys::layer(&repo, &d)).await?;
                let at = link.map_or(UNIX_EPOCH, |l| from_ms(l.linked_at_ms));
                links.entry(d).or_default().push((repo.clone(), at));
            }
        }
        let blobs = self.blobs.list_blobs().await?;

        // Sweep, with pushes held off (the other servers' too, when they share the registry).
        let _gc = self.gc_lock.write().await;
        let _fence = match &self.fence {
            Some(fence) => Some(fence.exclusive().await?),
            None => None,
        };
        let mut recent: HashSet<Digest> = {
            let mut touches = self.touches.lock().unwrap_or_else(|p| p.into_inner());
            let recent = touches
                .iter()
                .filter(|(_, t)| t.seq > start_seq || t.at >= grace_start)
                .map(|(d, _)| d.clone())
                .collect();
            touches.retain(|_, t| t.seq > start_seq || t.at >= grace_start);
            recent
        };
        if self.fence.is_some() {
            recent.extend(self.shared_touches_since(grace_start).await?);
        }
        let mut report = GcReport::default();
        // Tags as they are now (only manifest pushes add tags, and they are held off).
        let mut tagged_now: HashMap<RepoName, HashSet<String>> = HashMap::new();
        for repo in doomed.iter().map(|(r, _, _)| r) {
            if !tagged_now.contains_key(repo) {
                let tags = self.tag_records(repo).await?;
                let digests = tags.into_values().map(|t| t.digest).collect();
                tagged_now.insert(repo.clone(), digests);
            }
        }
        // A doomed manifest pushed, tagged or checked again while we were marking is kept,
        // with the platforms and referrers it keeps alive.
        let mut keep: Vec<(RepoName, Digest)> = doomed
            .iter()
            .filter(|(repo, d, _)| recent.contains(d) || tagged_now[repo].contains(d.as_str()))
            .map(|(repo, d, _)| (repo.clone(), d.clone()))
            .collect();
        let mut doomed: HashMap<(RepoName, Digest), ManifestRecord> = doomed
            .into_iter()
            .map(|(repo, d, record)| ((repo, d), record))
            .collect();
        while let Some(key) = keep.pop() {
            let Some(record) = doomed.remove(&key) else {
                continue;
            };
            let (repo, digest) = key;
            marked.extend(record.references().filter_map(|r| Digest::parse(r).ok()));
            keep.extend(
                record
                    .manifests
                    .iter()
                    .filter_map(|c| Digest::parse(c).ok())
                    .map(|c| (repo.clone(), c)),
            );
            keep.extend(
                doomed
                    .iter()
                    .filter(|((r, _), rec)| {
                        *r == repo && rec.subject.as_deref() == Some(digest.as_str())
                    })
                    .map(|(k, _)| k.clone()),
            );
            marked.insert(digest);
        }
        for ((repo, digest), record) in doomed {
            self.drop_manifest_record(&repo, &digest, &record).await?;
            report.manifests_deleted += 1;
        }
        for blob in blobs {
            if marked.contains(&blob.digest) {
                continue;
            }
            let linked_recently = links
                .get(&blob.digest)
                .is_some_and(|l| l.iter().any(|(_, at)| *at >= grace_start));
            if recent.contains(&blob.digest) || blob.modified >= grace_start || linked_recently {
                report.blobs_spared += 1;
                continue;
            }
            if let Some(size) = self.blobs.delete_blob(&blob.digest).await? {
                report.blobs_deleted += 1;
                report.bytes_freed += size;
            }
            for (repo, _) in links.remove(&blob.digest).unwrap_or_default() {
                self.meta.delete(&keys::layer(&repo, &blob.digest)).await?;
            }
        }
        report.duration = started.elapsed();
        tracing::info!(
            blobs_deleted = report.blobs_deleted,
            bytes_freed = report.bytes_freed,
            manifests_deleted = report.manifests_deleted,
            blobs_spared = report.blobs_spared,
            duration_ms = report.duration.as_millis() as u64,
            "registry garbage collection finished"
        );
        Ok(report)
    }

    /// Applies a retention policy to one repository: drops all but the newest tags and then
    /// untagged manifests older than the limit. Frees no disk by itself: the next garbage
    /// collection does.
    pub async fn apply_retention(
        &self,
        repo: &str,
        policy: &RetentionPolicy,
        now: SystemTime,
    ) -> Result<RetentionReport> {
        let repo = RepoName::parse(repo)?;
        let mut report = RetentionReport::default();
        let mut tags = self.tag_records(&repo).await?;
        if let Some(keep) = policy.keep_newest_tags {
            let mut order: Vec<(String, u64)> = tags
                .iter()
                .map(|(t, r)| (t.clone(), r.updated_at_ms))
                .collect();
            // Newest first; ties broken by name so runs are deterministic.
            order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            order.retain(|(tag, _)| !policy.protected_tags.contains(tag));
            for (tag, _) in order.into_iter().skip(keep) {
                if self.meta.delete(&keys::tag(&repo, &tag)).await? {
                    report.tags_deleted.push(tag.clone());
                }
                tags.remove(&tag);
            }
            report.tags_deleted.sort();
        }
        if let Some(age) = policy.delete_untagged_older_than {
            let cutoff = now.checked_sub(age).unwrap_or(UNIX_EPOCH);
            let manifests = self.manifest_records(&repo).await?;
            let young = manifests
                .iter()
                .filter(|(d, r)| {
                    from_ms(r.pushed_at_ms) >= cutoff
                        || policy.protected_digests.contains(&d.to_string())
                })
                .map(|(d, _)| d.clone());
            let live = reachable(&manifests, tagged(&tags).chain(young).collect::<Vec<_>>());
            for (digest, record) in &manifests {
                if !live.contains(digest) {
                    self.drop_manifest_record(&repo, digest, record).await?;
                    report.manifests_deleted.push(digest.to_string());
                }
            }
        }
        Ok(report)
    }

    /// Removes upload sessions idle for longer than the configured expiry, and upload files
    /// without a session (left by a crash or restart) that old. Returns what was removed.
    pub async fn expire_uploads(&self, now: SystemTime) -> Result<ExpireReport> {
        let expiry = self.config.upload_expiry;
        let is_expired = |t: SystemTime| t.checked_add(expiry).is_some_and(|end| end <= now);
        let mut report = ExpireReport::default();
        // Another server of the installation may be writing to a session this one last saw
        // long ago: a session is idle only when its file is too.
        let files = self.blobs.list_uploads().await?;
        let written: HashMap<&str, SystemTime> = files
            .iter()
            .map(|upload| (upload.id.as_str(), upload.modified))
            .collect();
        let sessions: Vec<(String, _)> = self
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        let mut expired: HashSet<String> = HashSet::new();
        for (id, session) in sessions {
            // A session busy with a chunk is alive.
            let Ok(mut s) = session.try_lock() else {
                continue;
            };
            let last = written
                .get(id.as_str())
                .map_or(s.last_activity, |&file| file.max(s.last_activity));
            if s.closed || !is_expired(last) {
                continue;
            }
            s.closed = true;
            self.uploads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            expired.insert(id);
        }
        let live: HashSet<String> = self
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for upload in &files {
            // Files without a session here (another server's, or left by a crash or restart)
            // are judged by their last write.
            let remove = expired.contains(&upload.id)
                || (!live.contains(&upload.id) && is_expired(upload.modified));
            if remove {
                self.blobs.delete_upload(&upload.id).await?;
                self.meta.delete(&keys::upload(&upload.id)).await?;
                report.uploads_expired += 1;
                report.bytes_freed += upload.size;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn record(children: &[u8], subject: Option<u8>) -> ManifestRecord {
        ManifestRecord {
            media_type: String::new(),
            size: 0,
            pushed_at_ms: 0,
            config: None,
            layers: Vec::new(),
            manifests: children.iter().map(|c| d(*c).to_string()).collect(),
            subject: subject.map(|s| d(s).to_string()),
            artifact_type: None,
            annotations: BTreeMap::new(),
            content_size: 0,
            created: None,
        }
    }

    #[test]
    fn reachable_follows_platforms_and_referrers() {
        // 1: index of 2 and 3; 4: signature of 1; 5: signature of 4; 6: loose image;
        // 7: signature of 6; 8: index of 6.
        let manifests: BTreeMap<Digest, ManifestRecord> = [
            (1, record(&[2, 3], None)),
            (2, record(&[], None)),
            (3, record(&[], None)),
            (4, record(&[], Some(1))),
            (5, record(&[], Some(4))),
            (6, record(&[], None)),
            (7, record(&[], Some(6))),
            (8, record(&[6], None)),
        ]
        .into_iter()
        .map(|(n, r)| (d(n), r))
        .collect();
        let cases: &[(&[u8], &[u8])] = &[
            (&[], &[]),
            (&[1], &[1, 2, 3, 4, 5]),
            (&[2], &[2]),
            (&[6], &[6, 7]),
            (&[8], &[6, 7, 8]),
            (&[4], &[4, 5]),
            // Roots that are not manifests of the repository are ignored.
            (&[9], &[]),
        ];
        for (roots, want) in cases {
            let live = reachable(&manifests, roots.iter().map(|r| d(*r)));
            let want: HashSet<Digest> = want.iter().map(|w| d(*w)).collect();
            assert_eq!(live, want, "roots {roots:?}");
        }
    }
}
