//! The registry's one error type and its mapping to the OCI wire format
//! (`{"errors":[{"code","message","detail"}]}` + status + the headers some errors need).
//! This module is the only place that decides statuses and error codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::reference::InvalidIdentifier;

/// The error codes of the OCI Distribution Specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`
    BlobUploadUnknown,
    /// `DIGEST_INVALID`
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`
    ManifestUnknown,
    /// `NAME_INVALID`
    NameInvalid,
    /// `NAME_UNKNOWN`
    NameUnknown,
    /// `SIZE_INVALID`
    SizeInvalid,
    /// `UNAUTHORIZED`
    Unauthorized,
    /// `DENIED`
    Denied,
    /// `UNSUPPORTED`
    Unsupported,
    /// `TOOMANYREQUESTS`
    TooManyRequests,
    /// `UNKNOWN` (internal failures; never for client mistakes)
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// Everything that can go wrong in the registry, for the HTTP protocol and for the
/// introspection API alike.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The blob is not in the repository.
    #[error("blob {0} is unknown to this repository")]
    BlobUnknown(String),
    /// The upload cannot proceed (bad request shape).
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    /// No upload session with this id in this repository.
    #[error("blob upload {0} is unknown (finished, cancelled, expired or never started)")]
    BlobUploadUnknown(String),
    /// A chunk whose `Content-Range` is malformed or does not start where the upload stands
    /// (416 with the upload's current `Range` and `Location`).
    #[error("{message}")]
    UploadRangeInvalid {
        /// Bytes received so far.
        size: u64,
        /// What was wrong.
        message: String,
        /// The upload's `Location`, repeated on the 416 answer.
        location: String,
        /// The upload id, repeated as `Docker-Upload-UUID`.
        upload_id: String,
    },
    /// A malformed digest, or content that does not hash to the digest given.
    #[error("{message}")]
    DigestInvalid {
        /// What was wrong.
        message: String,
        /// Expected/computed digests when known.
        detail: Option<Value>,
    },
    /// A manifest references a blob or manifest the repository does not hold.
    #[error("manifest references {0}, which is not in this repository")]
    ManifestBlobUnknown(String),
    /// The manifest is not valid JSON of a supported kind.
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    /// No manifest for this tag or digest.
    #[error("manifest {0} is unknown to this repository")]
    ManifestUnknown(String),
    /// A bad repository name.
    #[error(
        "invalid repository name {0:?}: names are lowercase path components [a-z0-9] separated by '.', '_', '__' or dashes, joined by '/'"
    )]
    NameInvalid(String),
    /// The repository does not exist.
    #[error("repository {0} is unknown")]
    NameUnknown(String),
    /// A length that does not match the content, or an unsatisfiable download range.
    #[error("{0}")]
    SizeInvalid(String),
    /// A `Range` that cannot be served from a blob of `size` bytes (416).
    #[error("requested range not satisfiable: the blob has {size} bytes")]
    RangeNotSatisfiable {
        /// The blob's size.
        size: u64,
    },
    /// No or wrong credentials (401 with a basic-auth challenge).
    #[error("authentication required")]
    Unauthorized {
        /// The realm of the `WWW-Authenticate` challenge.
        realm: String,
    },
    /// Known caller, access refused (403).
    #[error("access denied: {0}")]
    Denied(String),
    /// The push would grow its namespace beyond its storage limit (403 `DENIED`); the message
    /// comes from [`crate::NamespaceLimits::exceeded_message`].
    #[error("{0}")]
    QuotaExceeded(String),
    /// A valid request for something this registry does not do.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// No such endpoint under `/v2/`.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// The method is not allowed on this endpoint.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// A manifest larger than the configured limit (413).
    #[error("manifest exceeds the {0}-byte limit")]
    ManifestTooLarge(usize),
    /// Too many requests.
    #[error("too many requests")]
    TooManyRequests,
    /// Storage failed.
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
    /// An external registry failed or refused (unreachable, wrong credentials, deletes
    /// disabled, an answer that makes no sense): 502, the message says which and why.
    #[error("{0}")]
    Upstream(String),
    /// Stored metadata could not be decoded.
    #[error("corrupt metadata at {key}: {message}")]
    Corrupt {
        /// The metadata key.
        key: String,
        /// What was wrong.
        message: String,
    },
}

impl RegistryError {
    /// A digest that does not parse (malformed or wrong length).
    pub fn digest_invalid(message: impl Into<String>) -> Self {
        Self::DigestInvalid {
            message: message.into(),
            detail: None,
        }
    }

    /// The OCI error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BlobUnknown(_) => ErrorCode::BlobUnknown,
            Self::BlobUploadInvalid(_) | Self::UploadRangeInvalid { .. } => {
                ErrorCode::BlobUploadInvalid
            }
            Self::BlobUploadUnknown(_) => ErrorCode::BlobUploadUnknown,
            Self::DigestInvalid { .. } => ErrorCode::DigestInvalid,
            Self::ManifestBlobUnknown(_) => ErrorCode::ManifestBlobUnknown,
            Self::ManifestInvalid(_) | Self::ManifestTooLarge(_) => ErrorCode::ManifestInvalid,
            Self::ManifestUnknown(_) => ErrorCode::ManifestUnknown,
            Self::NameInvalid(_) => ErrorCode::NameInvalid,
            Self::NameUnknown(_) => ErrorCode::NameUnknown,
            Self::SizeInvalid(_) | Self::RangeNotSatisfiable { .. } => ErrorCode::SizeInvalid,
            Self::Unauthorized { .. } => ErrorCode::Unauthorized,
            Self::Denied(_) | Self::QuotaExceeded(_) => ErrorCode::Denied,
            Self::Unsupported(_) | Self::NotFound(_) | Self::MethodNotAllowed(_) => {
                ErrorCode::Unsupported
            }
            Self::TooManyRequests => ErrorCode::TooManyRequests,
            Self::Io(_) | Self::Corrupt { .. } | Self::Upstream(_) => ErrorCode::Unknown,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BlobUnknown(_)
            | Self::BlobUploadUnknown(_)
            | Self::ManifestUnknown(_)
            | Self::NameUnknown(_)
            | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::UploadRangeInvalid { .. } | Self::RangeNotSatisfiable { .. } => {
                StatusCode::RANGE_NOT_SATISFIABLE
            }
            Self::BlobUploadInvalid(_)
            | Self::DigestInvalid { .. }
            | Self::ManifestBlobUnknown(_)
            | Self::ManifestInvalid(_)
            | Self::NameInvalid(_)
            | Self::SizeInvalid(_)
            | Self::Unsupported(_) => StatusCode::BAD_REQUEST,
            Self::ManifestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Denied(_) | Self::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Io(_) | Self::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }

    fn detail(&self) -> Value {
        match self {
            Self::BlobUnknown(d) | Self::ManifestBlobUnknown(d) => json!({ "digest": d }),
            Self::DigestInvalid { detail, .. } => detail.clone().unwrap_or(Value::Null),
            Self::ManifestUnknown(r) => json!({ "reference": r }),
            Self::NameInvalid(n) | Self::NameUnknown(n) => json!({ "name": n }),
            Self::UploadRangeInvalid { size, .. } => json!({ "size": size }),
            Self::RangeNotSatisfiable { size } => json!({ "size": size }),
            // Never null: Docker turns an error without detail whose message is the code's
            // default into a bare code, which its push does not recognise as final, so a push
            // with a wrong password would retry for 50 s before failing.
            Self::Unauthorized { realm } => json!({ "realm": realm }),
            _ => Value::Null,
        }
    }
}

impl From<InvalidIdentifier> for RegistryError {
    fn from(e: InvalidIdentifier) -> Self {
        match e {
            InvalidIdentifier::Name(n) => Self::NameInvalid(n),
            InvalidIdentifier::Tag(t) => Self::ManifestInvalid(format!(
                "invalid tag {t:?}: tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"
            )),
            InvalidIdentifier::Digest(d) => Self::digest_invalid(format!(
                "invalid digest {d:?}: expected sha256:<64 lowercase hex>"
            )),
            InvalidIdentifier::UnsupportedDigest(d) => Self::Unsupported(format!(
                "digest algorithm of {d:?} is not supported: only sha256"
            )),
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "registry request failed");
        }
        let body = json!({
            "errors": [{
                "code": self.code().as_str(),
                "message": self.to_string(),
                "detail": self.detail(),
            }]
        });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized { realm } => {
                let challenge = format!("Basic realm=\"{}\"", realm.replace('"', ""));
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            Self::UploadRangeInvalid {
                size,
                location,
                upload_id,
                ..
            } => {
                if let Ok(v) = HeaderValue::from_str(location) {
                    headers.insert(header::LOCATION, v);
                }
                if let Ok(v) = HeaderValue::from_str(&upload_range(*size)) {
                    headers.insert(header::RANGE, v);
                }
                if let Ok(v) = HeaderValue::from_str(upload_id) {
                    headers.insert("docker-upload-uuid", v);
                }
            }
            Self::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            _ => {}
        }
        response
    }
}

/// The `Range` header of an upload holding `size` bytes: `0-<size-1>`, and `0-0` for an empty
/// upload (what Docker's distribution sends and every client accepts).
pub(crate) fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// Result alias.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
