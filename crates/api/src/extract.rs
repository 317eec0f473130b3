//! Request extractors whose rejections speak the API's error format.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::Json`, but a malformed body becomes a 400 `invalid_json` naming the problem.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = match rejection {
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut error = ApiError::new(status, "invalid_json", rejection.body_text());
    // serde names the field in its message (`unknown field `imgae``, `missing field `image``).
    error.field = field_in_serde_message(&error.message);
    error
}

fn field_in_serde_message(message: &str) -> Option<String> {
    let start = message.find("field `")? + "field `".len();
    let end = message[start..].find('`')?;
    Some(message[start..start + end].to_string())
}

/// `axum::extract::Query` with the API's error format.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    let mut error = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        rejection.body_text(),
    );
    error.field = field_in_serde_message(&error.message);
    error
}

/// Parses an optional JSON body: empty (or whitespace) means the type's default.
pub fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        let mut error = ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string());
        error.field = field_in_serde_message(&error.message);
        error
    })
}

#[cfg(test)]
mod tests {
    use super::field_in_serde_message;

    #[test]
    fn fields_are_found_in_serde_messages() {
        let cases = [
            (
                "Failed to deserialize the JSON body into the target type: unknown field `imgae`, expected one of",
                Some("imgae"),
            ),
            ("missing field `image` at line 1 column 2", Some("image")),
            ("expected value at line 1 column 1", None),
        ];
        for (message, want) in cases {
            assert_eq!(
                field_in_serde_message(message).as_deref(),
                want,
                "{message}"
            );
        }
    }
}

/// The client's IP address as text (`unknown` when the server was not started with connection
/// info, e.g. in router unit tests). Proxies' forwarding headers are not trusted.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map_or_else(|| "unknown".to_string(), |info| info.0.ip().to_string()),
        ))
    }
}
