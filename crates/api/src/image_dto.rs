//! Wire types of the image-management API: the built-in registry and external registries seen
//! from the REST API (both answer with the same repository, tag and image shapes).

use std::collections::BTreeMap;
use std::time::SystemTime;

use berth_registry::{
    GcReport, ImageConfig, ImageDetail, RepositorySummary, RetentionReport, StorageUsage,
    TagSummary,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// One repository of the registry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RepositoryDto {
    /// `team/name`.
    pub name: String,
    pub tag_count: usize,
    pub manifest_count: usize,
    /// Bytes of the distinct blobs the repository references.
    pub size_bytes: u64,
    pub last_pushed: Option<String>,
}

impl From<&RepositorySummary> for RepositoryDto {
    fn from(r: &RepositorySummary) -> Self {
        RepositoryDto {
            name: r.name.clone(),
            tag_count: r.tag_count,
            manifest_count: r.manifest_count,
            size_bytes: r.size_bytes,
            last_pushed: r.last_pushed.map(rfc3339),
        }
    }
}

/// One tag of a repository.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TagDto {
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    pub size_bytes: u64,
    /// When the image was built (from its config), if known.
    pub created: Option<String>,
    /// When the tag was pushed; `null` for external registries (their API does not say).
    pub pushed_at: Option<String>,
}

impl From<&TagSummary> for TagDto {
    fn from(t: &TagSummary) -> Self {
        TagDto {
            tag: t.tag.clone(),
            digest: t.digest.clone(),
            media_type: t.media_type.clone(),
            size_bytes: t.size_bytes,
            created: t.created.clone(),
            pushed_at: t.pushed_at.map(rfc3339),
        }
    }
}

/// A repository with its tags.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RepositoryDetailDto {
    pub name: String,
    pub size_bytes: u64,
    pub tags: Vec<TagDto>,
}

/// One layer of an image.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LayerDto {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// One platform of a multi-platform image.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlatformDto {
    pub digest: String,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub size: u64,
}

/// One step of an image's build history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryDto {
    pub created: Option<String>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
    pub empty_layer: bool,
}

/// The image configuration: how a container of it starts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImageConfigDto {
    pub created: Option<String>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub history: Vec<HistoryDto>,
}

impl From<&ImageConfig> for ImageConfigDto {
    fn from(c: &ImageConfig) -> Self {
        ImageConfigDto {
            created: c.created.clone(),
            architecture: c.architecture.clone(),
            os: c.os.clone(),
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            env: c.env.clone(),
            exposed_ports: c.exposed_ports.clone(),
            labels: c.labels.clone(),
            working_dir: c.working_dir.clone(),
            user: c.user.clone(),
            history: c
                .history
                .iter()
                .map(|h| HistoryDto {
                    created: h.created.clone(),
                    created_by: h.created_by.clone(),
                    comment: h.comment.clone(),
                    empty_layer: h.empty_layer,
                })
                .collect(),
        }
    }
}

/// Everything about one image (a manifest, by tag or digest).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImageDto {
    pub repository: String,
    pub digest: String,
    pub media_type: String,
    pub tags: Vec<String>,
    pub size_bytes: u64,
    /// When the image was first pushed; `null` for external registries (their API does not
    /// say).
    pub pushed_at: Option<String>,
    /// The manifest as pushed.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
    pub platforms: Vec<PlatformDto>,
    pub layers: Vec<LayerDto>,
    pub config_digest: Option<String>,
    pub config: Option<ImageConfigDto>,
    pub subject: Option<String>,
    pub artifact_type: Option<String>,
}

impl From<&ImageDetail> for ImageDto {
    fn from(d: &ImageDetail) -> Self {
        ImageDto {
            repository: d.repository.clone(),
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            tags: d.tags.clone(),
            size_bytes: d.size_bytes,
            pushed_at: d.pushed_at.map(rfc3339),
            manifest: d.manifest.clone(),
            platforms: d
                .platforms
                .iter()
                .map(|p| PlatformDto {
                    digest: p.digest.clone(),
                    os: p.os.clone(),
                    architecture: p.architecture.clone(),
                    variant: p.variant.clone(),
                    size: p.size,
                })
                .collect(),
            layers: d
                .layers
                .iter()
                .map(|l| LayerDto {
                    digest: l.digest.clone(),
                    size: l.size,
                    media_type: l.media_type.clone(),
                })
                .collect(),
            config_digest: d.config_digest.clone(),
            config: d.config.as_ref().map(ImageConfigDto::from),
            subject: d.subject.clone(),
            artifact_type: d.artifact_type.clone(),
        }
    }
}

/// What `GET /api/v1/images/{reference}` (and its external-registry twin) answers: a
/// repository with its tags when the reference names neither tag nor digest (`team/app`), else
/// one image (`team/app:tag`, `team/app@sha256:…`). Untagged: the JSON is the inner shape's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RepositoryOrImageDto {
    Repository(RepositoryDetailDto),
    Image(Box<ImageDto>),
}

/// Storage used by one repository or one team.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageEntryDto {
    pub name: String,
    pub bytes: u64,
}

/// Registry storage use.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StorageUsageDto {
    /// Bytes referenced by repositories (a blob shared by two repositories counts once).
    pub total_bytes: u64,
    /// Bytes of every blob on disk, referenced or not (what GC can bring down to the total).
    pub stored_bytes: u64,
    pub repositories: Vec<UsageEntryDto>,
    /// Per team (the first segment of repository names).
    pub teams: Vec<UsageEntryDto>,
}

impl From<&StorageUsage> for StorageUsageDto {
    fn from(u: &StorageUsage) -> Self {
        StorageUsageDto {
            total_bytes: u.total_bytes,
            stored_bytes: u.stored_bytes,
            repositories: u
                .repositories
                .iter()
                .map(|r| UsageEntryDto {
                    name: r.name.clone(),
                    bytes: r.bytes,
                })
                .collect(),
            teams: u
                .namespaces
                .iter()
                .map(|n| UsageEntryDto {
                    name: n.namespace.clone(),
                    bytes: n.bytes,
                })
                .collect(),
        }
    }
}

/// Garbage-collection request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Also delete manifests no tag reaches.
    pub delete_untagged_manifests: Option<bool>,
}

/// What a garbage collection freed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GcReportDto {
    pub blobs_deleted: usize,
    pub bytes_freed: u64,
    pub manifests_deleted: usize,
    /// Unreferenced blobs kept because they were pushed recently (pushes in flight).
    pub blobs_spared: usize,
    pub duration_ms: u64,
    /// What the stored retention rules deleted first.
    pub retention: Vec<RetentionRunDto>,
}

/// What one stored retention rule deleted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetentionRunDto {
    pub repository: String,
    pub report: RetentionReportDto,
}

impl From<&GcReport> for GcReportDto {
    fn from(r: &GcReport) -> Self {
        GcReportDto {
            blobs_deleted: r.blobs_deleted,
            bytes_freed: r.bytes_freed,
            manifests_deleted: r.manifests_deleted,
            blobs_spared: r.blobs_spared,
            duration_ms: r.duration.as_millis() as u64,
            retention: Vec::new(),
        }
    }
}

/// A retention run on one repository.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionRequest {
    pub repository: String,
    /// Keep only the N most recently pushed tags.
    pub keep_newest_tags: Option<usize>,
    /// Delete untagged manifests older than this many milliseconds.
    pub delete_untagged_older_than_ms: Option<u64>,
}

/// What a retention run deleted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetentionReportDto {
    pub tags_deleted: Vec<String>,
    pub manifests_deleted: Vec<String>,
}

impl From<&RetentionReport> for RetentionReportDto {
    fn from(r: &RetentionReport) -> Self {
        RetentionReportDto {
            tags_deleted: r.tags_deleted.clone(),
            manifests_deleted: r.manifests_deleted.clone(),
        }
    }
}

/// A stored retention rule: applied to its repository before every scheduled garbage collection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetentionRuleDto {
    pub repository: String,
    pub keep_newest_tags: Option<u32>,
    pub delete_untagged_older_than_ms: Option<u64>,
    pub updated_at: String,
}

impl From<&berth_core::RetentionRule> for RetentionRuleDto {
    fn from(r: &berth_core::RetentionRule) -> Self {
        RetentionRuleDto {
            repository: r.repository.clone(),
            keep_newest_tags: r.keep_newest_tags,
            delete_untagged_older_than_ms: r.delete_untagged_older_than_ms,
            updated_at: crate::dto::timestamp(r.updated_at),
        }
    }
}

/// The body of a retention-rule update.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionRuleRequest {
    pub keep_newest_tags: Option<u32>,
    pub delete_untagged_older_than_ms: Option<u64>,
}

/// An external registry as the API shows it: never its password.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExternalRegistryDto {
    pub name: String,
    /// The team whose members browse it (any role) and delete from it (`member`).
    pub team: String,
    /// `http://host[:port]`.
    pub url: String,
    /// The user name Berth presents; `null`: anonymous.
    pub username: Option<String>,
    /// Whether a password is stored (sealed with the server's key; never shown again).
    pub has_password: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&berth_core::ExternalRegistry> for ExternalRegistryDto {
    fn from(r: &berth_core::ExternalRegistry) -> Self {
        ExternalRegistryDto {
            name: r.name.clone(),
            team: r.team.clone(),
            url: r.url.clone(),
            username: r.username.clone(),
            has_password: r.sealed_password.is_some(),
            created_at: crate::dto::timestamp(r.created_at),
            updated_at: crate::dto::timestamp(r.updated_at),
        }
    }
}

/// Create or replace an external registry (platform admins).
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalRegistryRequest {
    /// The owning team.
    pub team: String,
    /// `http://host[:port]` (a Distribution-compatible registry; its API under `/v2/`).
    pub url: String,
    /// For Basic auth and Docker's token flow; absent: anonymous.
    pub username: Option<String>,
    /// Sealed with the server's key and never shown again. Absent when replacing with the same
    /// username: the stored one is kept.
    pub password: Option<String>,
}

impl std::fmt::Debug for ExternalRegistryRequest {
    // The password never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalRegistryRequest")
            .field("team", &self.team)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
