//! `berth-registry`: the OCI Distribution registry built into Berth.
//!
//! * [`router`] serves the protocol under `/v2/` (docker and skopeo push and pull against
//!   it); merge it into the server's axum router.
//! * [`Registry`] owns storage, upload sessions and access control, and offers the image
//!   management the Berth API exposes: [`Registry::list_repositories`],
//!   [`Registry::list_tags`], [`Registry::image_detail`], [`Registry::delete_tag`],
//!   [`Registry::delete_manifest`], [`Registry::storage_usage`], plus reclaiming space with
//!   [`Registry::garbage_collect`], [`Registry::apply_retention`] and
//!   [`Registry::expire_uploads`].
//! * [`Authorizer`] is the access-control seam ([`StaticAuthorizer`]: one user); it may hide
//!   repositories (answered as missing) and filters the catalog.
//! * [`NamespaceLimits`] caps the bytes each namespace (`team`) stores
//!   ([`Registry::with_limits`]; [`Registry::namespace_usage`] reports what one stores).
//! * [`BlobStore`] and [`MetadataStore`] are the storage seam ([`FsStorage`]: a directory).
//! * [`ImageSource`] is image management over any registry: the built-in [`Registry`] and
//!   [`RemoteRegistry`], a client of an external Distribution-compatible registry (catalog,
//!   tags, manifests, configs, deletes; Basic auth and Docker's token flow).
//!
//! Invariants: identifiers are validated before they reach storage; a blob becomes visible
//! only complete and with a verified digest (atomic rename); metadata writes are atomic;
//! garbage collection never removes a blob referenced by a manifest or pushed within the
//! grace period; a blob that would take a namespace beyond its limit never becomes visible
//! there. Errors are [`RegistryError`], mapped to OCI error codes in `error.rs` only.

mod auth;
mod error;
mod fence;
mod gc;
mod http;
mod introspect;
pub mod manifest;
mod pagination;
mod quota;
mod ranges;
mod reference;
mod registry;
mod remote;
mod storage;

pub use auth::{Access, Action, AllowAll, AuthDecision, Authorizer, Credentials, StaticAuthorizer};
pub use error::{ErrorCode, RegistryError, Result};
pub use fence::{FenceHold, GcFence};
pub use gc::{ExpireReport, GcOptions, GcReport, RetentionPolicy, RetentionReport};
pub use http::router;
pub use introspect::{
    ImageDetail, ImageSource, LayerSummary, NamespaceUsage, PlatformSummary, RepositorySummary,
    RepositoryUsage, StorageUsage, TagSummary,
};
pub use manifest::{HistoryEntry, ImageConfig, Platform};
pub use pagination::{Page, paginate};
pub use quota::{NamespaceLimits, StorageQuotaExceeded};
pub use ranges::{ByteRange, RangeRequest, parse_content_range, parse_range};
pub use reference::{Digest, InvalidIdentifier, Reference, RepoName, Tag};
pub use registry::{BodyStream, Clock, Registry, RegistryConfig};
pub use remote::{RemoteCredentials, RemoteRegistry};
pub use storage::{
    BlobEntry, BlobReader, BlobStore, FsStorage, MetadataStore, UploadEntry, UploadWriter,
};
