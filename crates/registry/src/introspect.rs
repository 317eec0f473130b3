//! Image management for the Berth server: search repositories, list tags with digest, size and
//! creation time, describe an image (manifest, platforms, layers, config), delete tags and
//! manifests, and report storage use per repository, per namespace (team) and in total.
//!
//! These are plain async methods without access checks: the caller (Berth's REST API) decides
//! who may see or delete what. Inputs are validated here and errors are [`RegistryError`]s.
//! [`ImageSource`] is the same view over any registry: the built-in one and an external one
//! ([`crate::RemoteRegistry`]) answer with the same shapes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::{RegistryError, Result};
use crate::manifest::{self, ImageConfig, ManifestKind, ParsedManifest};
use crate::reference::{Digest, Reference, RepoName, Tag};
use crate::registry::{ManifestRecord, Registry, TagRecord, from_ms, keys};

/// A repository in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySummary {
    /// `team/app`.
    pub name: String,
    /// Number of tags.
    pub tag_count: usize,
    /// Number of manifests (tagged or not).
    pub manifest_count: usize,
    /// Bytes of the distinct blobs the repository links (see [`Registry::repository_usage`]).
    pub size_bytes: u64,
    /// Last time a tag was pushed or moved.
    pub last_pushed: Option<SystemTime>,
}

/// A tag in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSummary {
    /// The tag.
    pub tag: String,
    /// The manifest it points at.
    pub digest: String,
    /// The manifest's media type.
    pub media_type: String,
    /// Config + layers for an image; for an index the sum over its platforms.
    pub size_bytes: u64,
    /// The image config's `created` (RFC 3339) when the tag is an image (for an index: the
    /// newest platform's).
    pub created: Option<String>,
    /// When the tag was last pushed (`None` where the registry does not tell: external ones).
    pub pushed_at: Option<SystemTime>,
}

/// A layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// Layer digest.
    pub digest: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: String,
}

/// A platform entry of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSummary {
    /// The platform's manifest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Size of the platform's manifest.
    pub size: u64,
    /// `linux`, ...
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v8`, ...
    pub variant: Option<String>,
}

/// Everything about one manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDetail {
    /// Repository.
    pub repository: String,
    /// Manifest digest.
    pub digest: String,
    /// Manifest media type.
    pub media_type: String,
    /// The manifest document.
    pub manifest: serde_json::Value,
    /// Tags pointing at this manifest.
    pub tags: Vec<String>,
    /// Config + layers (images) or the sum over platforms (indexes).
    pub size_bytes: u64,
    /// First push of this manifest (`None` where the registry does not tell: external ones).
    pub pushed_at: Option<SystemTime>,
    /// Platforms, for an index.
    pub platforms: Vec<PlatformSummary>,
    /// Layers, for an image.
    pub layers: Vec<LayerSummary>,
    /// Config digest, for an image.
    pub config_digest: Option<String>,
    /// Parsed image config, for container images.
    pub config: Option<ImageConfig>,
    /// `subject` digest (signatures, SBOMs).
    pub subject: Option<String>,
    /// Artifact type.
    pub artifact_type: Option<String>,
}

/// Storage used by one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryUsage {
    /// Repository.
    pub name: String,
    /// Bytes of the distinct blobs it links (layers, configs, manifests).
    pub bytes: u64,
    /// Number of those blobs.
    pub blobs: usize,
}

/// Storage used by one namespace (`team` of `team/app`), blobs shared between its
/// repositories counted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceUsage {
    /// Namespace.
    pub namespace: String,
    /// Bytes.
    pub bytes: u64,
}

/// Storage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUsage {
    /// Bytes of the distinct blobs linked by any repository.
    pub total_bytes: u64,
    /// Bytes of every blob on storage, including garbage the next collection frees.
    pub stored_bytes: u64,
    /// Per repository, sorted by name.
    pub repositories: Vec<RepositoryUsage>,
    /// Per namespace, sorted by name.
    pub namespaces: Vec<NamespaceUsage>,
}

fn repo_name(repo: &str) -> Result<RepoName> {
    Ok(RepoName::parse(repo)?)
}

/// The platforms of an index (empty for an image).
pub(crate) fn platforms(parsed: &ParsedManifest) -> Vec<PlatformSummary> {
    parsed
        .manifests
        .iter()
        .map(|m| {
            let p = m.platform.clone().unwrap_or(manifest::Platform {
                architecture: String::new(),
                os: String::new(),
                variant: None,
                os_version: None,
            });
            PlatformSummary {
                digest: m.digest.to_string(),
                media_type: m.media_type.clone(),
                size: m.size,
                os: p.os,
                architecture: p.architecture,
                variant: p.variant,
            }
        })
        .collect()
}

/// The layers of an image (empty for an index).
pub(crate) fn layers(parsed: &ParsedManifest) -> Vec<LayerSummary> {
    parsed
        .layers
        .iter()
        .map(|l| LayerSummary {
            digest: l.digest.to_string(),
            size: l.size,
            media_type: l.media_type.clone(),
        })
        .collect()
}

/// Image management over one registry, whichever it is: the built-in [`Registry`] or an
/// external one ([`crate::RemoteRegistry`]). Same shapes, same errors, same meaning; what a
/// registry cannot tell (push times of an external one) is `None`.
#[async_trait]
pub trait ImageSource: Send + Sync {
    /// Repositories whose name contains `search` (all when `None`), sorted by name.
    async fn list_repositories(&self, search: Option<&str>) -> Result<Vec<RepositorySummary>>;

    /// Tags of a repository with digest, size and creation time, sorted by tag.
    async fn list_tags(&self, repo: &str) -> Result<Vec<TagSummary>>;

    /// Bytes of the distinct blobs the repository's manifests reference.
    async fn repository_usage(&self, repo: &str) -> Result<u64>;

    /// Describes the manifest a tag or digest points at.
    async fn image_detail(&self, repo: &str, reference: &str) -> Result<ImageDetail>;

    /// Deletes a tag.
    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<()>;

    /// Deletes a manifest (an image) and the tags pointing at it; returns those tags.
    async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<Vec<String>>;
}

#[async_trait]
impl ImageSource for Registry {
    async fn list_repositories(&self, search: Option<&str>) -> Result<Vec<RepositorySummary>> {
        Registry::list_repositories(self, search).await
    }

    async fn list_tags(&self, repo: &str) -> Result<Vec<TagSummary>> {
        Registry::list_tags(self, repo).await
    }

    async fn repository_usage(&self, repo: &str) -> Result<u64> {
        Registry::repository_usage(self, repo).await
    }

    async fn image_detail(&self, repo: &str, reference: &str) -> Result<ImageDetail> {
        Registry::image_detail(self, repo, reference).await
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<()> {
        Registry::delete_tag(self, repo, tag).await
    }

    async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<Vec<String>> {
        Registry::delete_manifest(self, repo, digest).await
    }
}

impl Registry {
    /// Repositories whose name contains `search` (all when `None`), sorted by name.
    pub async fn list_repositories(&self, search: Option<&str>) -> Result<Vec<RepositorySummary>> {
        let mut out = Vec::new();
        for repo in self.all_repositories().await? {
            if search.is_some_and(|s| !repo.as_str().contains(s)) {
                continue;
            }
            let tags = self.tag_records(&repo).await?;
            let manifest_count = self.meta.list(&keys::manifests_dir(&repo)).await?.len();
            let (size_bytes, _) = self.linked_blob_sizes(&repo, &mut HashMap::new()).await?;
            out.push(RepositorySummary {
                name: repo.to_string(),
                tag_count: tags.len(),
                manifest_count,
                size_bytes,
                last_pushed: tags.values().map(|t| from_ms(t.updated_at_ms)).max(),
            });
        }
        Ok(out)
    }

    pub(crate) async fn tag_records(&self, repo: &RepoName) -> Result<BTreeMap<String, TagRecord>> {
        let mut out = BTreeMap::new();
        for tag in self.meta.list(&keys::tags_dir(repo)).await? {
            if let Some(record) = self.read_json::<TagRecord>(&keys::tag(repo, &tag)).await? {
                out.insert(tag, record);
            }
        }
        Ok(out)
    }

    pub(crate) async fn manifest_records(
        &self,
        repo: &RepoName,
    ) -> Result<BTreeMap<Digest, ManifestRecord>> {
        let mut out = BTreeMap::new();
        for d in self.list_digests(&keys::manifests_dir(repo)).await? {
            if let Some(record) = self.read_json(&keys::manifest(repo, &d)).await? {
                out.insert(d, record);
            }
        }
        Ok(out)
    }

    /// Tags of a repository with digest, size, creation and push time, sorted by tag.
    pub async fn list_tags(&self, repo: &str) -> Result<Vec<TagSummary>> {
        let repo = repo_name(repo)?;
        if !self.repo_exists(&repo).await? {
            return Err(RegistryError::NameUnknown(repo.to_string()));
        }
        let mut out = Vec::new();
        for (tag, t) in self.tag_records(&repo).await? {
            let Ok(digest) = Digest::parse(&t.digest) else {
                continue;
            };
            let record: Option<ManifestRecord> =
                self.read_json(&keys::manifest(&repo, &digest)).await?;
            let Some(record) = record else { continue };
            out.push(TagSummary {
                tag,
                digest: t.digest,
                media_type: record.media_type,
                size_bytes: record.content_size,
                created: record.created,
                pushed_at: Some(from_ms(t.updated_at_ms)),
            });
        }
        Ok(out)
    }

    /// Describes the manifest a tag or digest points at.
    pub async fn image_detail(&self, repo: &str, reference: &str) -> Result<ImageDetail> {
        let repo = repo_name(repo)?;
        let reference = Reference::parse(reference)?;
        let (digest, record) = self.resolve(&repo, &reference).await?;
        let body = self
            .read_blob_bytes(&digest, u64::MAX)
            .await?
            .ok_or_else(|| RegistryError::ManifestUnknown(reference.to_string()))?;
        let parsed = manifest::parse_manifest(&body, Some(&record.media_type))?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::ManifestInvalid(e.to_string()))?;
        let tags = self
            .tag_records(&repo)
            .await?
            .into_iter()
            .filter(|(_, t)| t.digest == digest.as_str())
            .map(|(tag, _)| tag)
            .collect();
        let mut config = None;
        if parsed.kind == ManifestKind::Image
            && let Some(c) = parsed.image_config()
            && let Some(bytes) = self.read_blob_bytes(&c.digest, 16 << 20).await?
        {
            config = manifest::parse_image_config(&bytes);
        }
        Ok(ImageDetail {
            repository: repo.to_string(),
            digest: digest.to_string(),
            media_type: record.media_type.clone(),
            manifest: value,
            tags,
            size_bytes: record.content_size,
            pushed_at: Some(from_ms(record.pushed_at_ms)),
            platforms: platforms(&parsed),
            layers: layers(&parsed),
            config_digest: parsed.config.as_ref().map(|c| c.digest.to_string()),
            config,
            subject: record.subject.clone(),
            artifact_type: record.artifact_type.clone(),
        })
    }

    /// Deletes a tag; the manifest stays until deleted or collected as untagged.
    pub async fn delete_tag(&self, repo: &str, tag: &str) -> Result<()> {
        let repo = repo_name(repo)?;
        let tag = Tag::parse(tag)?;
        self.remove_tag(&repo, &tag).await
    }

    /// Deletes a manifest (an image) and the tags pointing at it; returns those tags. Its blobs
    /// are freed by the next garbage collection.
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<Vec<String>> {
        let repo = repo_name(repo)?;
        let digest = Digest::parse(digest)?;
        self.remove_manifest(&repo, &digest).await
    }

    /// Deletes every repository of a namespace (`namespace` and `namespace/...`): their tags,
    /// manifests, referrers and layer links, so nothing of them is served or counted any more
    /// and nothing is left for whoever pushes under the same names later. Returns the deleted
    /// repositories, sorted. The blobs are freed by the next garbage collection (unless
    /// another repository links them).
    pub async fn delete_namespace(&self, namespace: &str) -> Result<Vec<String>> {
        let mut deleted = Vec::new();
        for repo in self.namespace_repositories(namespace).await? {
            for tag in self.meta.list(&keys::tags_dir(&repo)).await? {
                self.meta.delete(&keys::tag(&repo, &tag)).await?;
            }
            for digest in self.list_digests(&keys::manifests_dir(&repo)).await? {
                match self
                    .read_json::<ManifestRecord>(&keys::manifest(&repo, &digest))
                    .await?
                {
                    Some(record) => self.drop_manifest_record(&repo, &digest, &record).await?,
                    None => {
                        self.meta.delete(&keys::manifest(&repo, &digest)).await?;
                    }
                }
            }
            for digest in self.list_digests(&keys::layers_dir(&repo)).await? {
                self.meta.delete(&keys::layer(&repo, &digest)).await?;
            }
            deleted.push(repo.to_string());
        }
        Ok(deleted)
    }

    /// Bytes of the distinct blobs linked by a repository (layers, configs, manifests).
    pub async fn repository_usage(&self, repo: &str) -> Result<u64> {
        let repo = repo_name(repo)?;
        Ok(self.linked_blob_sizes(&repo, &mut HashMap::new()).await?.0)
    }

    /// Bytes of the distinct blobs linked by a namespace's repositories (`namespace` and
    /// `namespace/...`), blobs shared between them counted once. Reads only that namespace.
    pub async fn namespace_usage(&self, namespace: &str) -> Result<u64> {
        Ok(self.namespace_blobs(namespace).await?.values().sum())
    }

    /// The distinct blobs a namespace's repositories link, with their sizes.
    pub(crate) async fn namespace_blobs(&self, namespace: &str) -> Result<HashMap<Digest, u64>> {
        // The size cache ends up holding exactly the linked digests.
        let mut sizes = HashMap::new();
        for repo in self.namespace_repositories(namespace).await? {
            self.linked_blob_sizes(&repo, &mut sizes).await?;
        }
        Ok(sizes)
    }

    /// The digests a repository links with their sizes (blobs missing from storage count 0);
    /// `sizes` caches sizes across calls.
    async fn linked_blob_sizes(
        &self,
        repo: &RepoName,
        sizes: &mut HashMap<Digest, u64>,
    ) -> Result<(u64, HashSet<Digest>)> {
        let mut digests: HashSet<Digest> = self
            .list_digests(&keys::layers_dir(repo))
            .await?
            .into_iter()
            .collect();
        digests.extend(self.list_digests(&keys::manifests_dir(repo)).await?);
        let mut total = 0;
        for d in &digests {
            let size = match sizes.get(d) {
                Some(s) => *s,
                None => {
                    let s = self.blobs.stat_blob(d).await?.map_or(0, |e| e.size);
                    sizes.insert(d.clone(), s);
                    s
                }
            };
            total += size;
        }
        Ok((total, digests))
    }

    /// Storage used per repository, per namespace and in total.
    pub async fn storage_usage(&self) -> Result<StorageUsage> {
        let mut sizes = HashMap::new();
        let mut all = HashSet::new();
        let mut per_namespace: BTreeMap<String, HashSet<Digest>> = BTreeMap::new();
        let mut repositories = Vec::new();
        for repo in self.all_repositories().await? {
            let (bytes, digests) = self.linked_blob_sizes(&repo, &mut sizes).await?;
            repositories.push(RepositoryUsage {
                name: repo.to_string(),
                bytes,
                blobs: digests.len(),
            });
            per_namespace
                .entry(repo.namespace().to_owned())
                .or_default()
                .extend(digests.iter().cloned());
            all.extend(digests);
        }
        let sum =
            |set: &HashSet<Digest>| set.iter().map(|d| sizes.get(d).copied().unwrap_or(0)).sum();
        let stored_bytes = self.blobs.list_blobs().await?.iter().map(|b| b.size).sum();
        Ok(StorageUsage {
            total_bytes: sum(&all),
            stored_bytes,
            namespaces: per_namespace
                .iter()
                .map(|(namespace, set)| NamespaceUsage {
                    namespace: namespace.clone(),
                    bytes: sum(set),
                })
                .collect(),
            repositories,
        })
    }
}
