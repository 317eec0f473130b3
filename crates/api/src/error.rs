//! The API's one error type and its mapping to the wire: status, stable code, message, field.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_core::ValidationErrors;
use berth_core::quota::QuotaExceeded;
use berth_engine::EngineError;
use berth_operations::OpError;
use berth_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_spec`, `not_found`.
    pub code: String,
    /// Human-readable message; names the bad field when there is one.
    pub message: String,
    /// JSON path of the bad field, when the error is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every bad field, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldProblem>,
}

/// One bad field.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub details: Vec<FieldProblem>,
    /// Seconds to send in `Retry-After` (rate limits).
    pub retry_after: Option<u64>,
}

/// The message of an error response, left on the response for the audit middleware.
#[derive(Debug, Clone)]
pub struct ErrorMessage(pub String);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// A 400 about one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field",
            message: format!("{field}: {message}"),
            details: vec![FieldProblem {
                field: field.clone(),
                message,
            }],
            field: Some(field),
            retry_after: None,
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", what.into()),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// The same error under another stable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// The same error, about `field`.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A 409 with its own stable code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        let field = errors.first().map(|e| e.field.clone());
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_spec",
            message: errors.to_string(),
            field,
            details: errors
                .0
                .into_iter()
                .map(|e| FieldProblem {
                    field: e.field,
                    message: e.message,
                })
                .collect(),
            retry_after: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            StoreError::Database(message) => {
                tracing::error!(%message, "store failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!("database error: {message}"),
                )
            }
        }
    }
}

/// The application layer's refusals on the wire: the one place they get a status and a code.
impl From<OpError> for ApiError {
    fn from(error: OpError) -> Self {
        match error {
            OpError::NotFound { what, field } => {
                let error = ApiError::not_found(what);
                match field {
                    Some(field) => error.with_field(&field),
                    None => error,
                }
            }
            OpError::Forbidden(message) => ApiError::forbidden(message),
            OpError::Field { field, message } => ApiError::field(field, message),
            OpError::Invalid(errors) => errors.into(),
            OpError::QuotaExceeded { team, exceeded } => quota_refusal(&team, &exceeded),
            OpError::Conflict { code, message } => ApiError::conflict(code, message),
            OpError::Upstream(message) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "upstream_failed", message)
            }
            OpError::Storage(message) => {
                tracing::error!(%message, "data directory failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", message)
            }
            OpError::Store(error) => error.into(),
            OpError::Engine(error) => error.into(),
            OpError::Registry(error) => error.into(),
        }
    }
}

/// The 403 for a change beyond a team's quota, naming each resource that would not fit.
pub fn quota_refusal(team: &str, exceeded: &[QuotaExceeded]) -> ApiError {
    let mut error = ApiError::new(
        StatusCode::FORBIDDEN,
        "quota_exceeded",
        OpError::quota_message(team, exceeded),
    );
    error.field = exceeded.first().map(|e| e.resource.field().to_string());
    error.details = exceeded
        .iter()
        .map(|e| FieldProblem {
            field: e.resource.field().to_string(),
            message: e.to_string(),
        })
        .collect();
    error
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Unsupported(message) => {
                ApiError::new(StatusCode::CONFLICT, "engine_unsupported", message)
            }
            error => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "engine_unavailable",
                error.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = ErrorMessage(self.message.clone());
        let retry_after = self.retry_after;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response.extensions_mut().insert(message);
        response
    }
}
