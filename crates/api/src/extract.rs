//! Request extractors whose rejections speak the API's error format.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
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
    field_named_in_serde_message(message).or_else(|| field_path_of_json_error(message))
}

fn field_named_in_serde_message(message: &str) -> Option<String> {
    let start = message.find("field `")? + "field `".len();
    let end = message[start..].find('`')?;
    Some(message[start..start + end].to_string())
}

/// axum puts the path of a bad value before serde's message:
/// `Failed to deserialize the JSON body into the target type: readiness.kind: unknown
/// variant ...`.
fn field_path_of_json_error(message: &str) -> Option<String> {
    let rest =
        message.strip_prefix("Failed to deserialize the JSON body into the target type: ")?;
    let (path, _) = rest.split_once(": ")?;
    (!path.is_empty() && path != "." && path.len() <= 128 && !path.contains(char::is_whitespace))
        .then(|| path.to_string())
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
    error.field =
        field_in_serde_message(&error.message).or_else(|| field_in_query_message(&error.message));
    error
}

/// serde_urlencoded prefixes a bad value's error with its parameter:
/// `Failed to deserialize query string: after: invalid digit found in string`.
fn field_in_query_message(message: &str) -> Option<String> {
    let rest = message.strip_prefix("Failed to deserialize query string: ")?;
    let (name, _) = rest.split_once(": ")?;
    (!name.is_empty() && name.len() <= 64 && !name.contains(char::is_whitespace))
        .then(|| name.to_string())
}

/// `axum::extract::Path` with the API's error format: a segment that does not parse (a build id
/// that is not a number, bytes that are not UTF-8) is a 400 `invalid_path` naming the parameter,
/// not axum's plain-text rejection. Handlers import it as `Path`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                // The parameters' names, in order, for errors that only give a position.
                let names: Vec<String> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|params| params.iter().map(|(name, _)| name.to_string()).collect())
                    .unwrap_or_default();
                Err(path_rejection(rejection, &names))
            }
        }
    }
}

fn path_rejection(rejection: PathRejection, names: &[String]) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(error) = rejection else {
        // A route whose handler asks for parameters it does not have: a bug, not bad input.
        return ApiError::new(rejection.status(), "internal", rejection.body_text());
    };
    let only = || (names.len() == 1).then(|| names[0].clone());
    let (field, message) = match error.kind() {
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => (Some(key.clone()), not_a(value, expected_type)),
        ErrorKind::ParseErrorAtIndex {
            index,
            value,
            expected_type,
        } => (names.get(*index).cloned(), not_a(value, expected_type)),
        ErrorKind::ParseError {
            value,
            expected_type,
        } => (only(), not_a(value, expected_type)),
        ErrorKind::InvalidUtf8InPathParam { key } => {
            (Some(key.clone()), "is not valid UTF-8".to_string())
        }
        ErrorKind::DeserializeError { key, message, .. } => (Some(key.clone()), message.clone()),
        other => (only(), other.to_string()),
    };
    match field {
        Some(field) => ApiError::field(field, message).with_code("invalid_path"),
        None => ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", message),
    }
}

fn not_a(value: &str, expected_type: &str) -> String {
    let what = match expected_type {
        "i64" | "i32" => "an integer",
        "u64" | "u32" | "u16" | "usize" => "a non-negative integer",
        other => other,
    };
    let value: String = value.chars().take(64).collect();
    format!("`{value}` is not {what}")
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
    use super::{ApiPath, field_in_query_message, field_in_serde_message};

    #[test]
    fn fields_are_found_in_serde_messages() {
        let cases = [
            (
                "Failed to deserialize the JSON body into the target type: unknown field `imgae`, expected one of",
                Some("imgae"),
            ),
            ("missing field `image` at line 1 column 2", Some("image")),
            ("expected value at line 1 column 1", None),
            (
                "Failed to deserialize the JSON body into the target type: readiness.kind: unknown variant `udp`, expected `http` or `tcp` at line 1 column 29",
                Some("readiness.kind"),
            ),
            (
                "Failed to deserialize the JSON body into the target type: liveness.port: invalid value: integer `70000`, expected u16 at line 1 column 30",
                Some("liveness.port"),
            ),
            (
                "Failed to deserialize the JSON body into the target type: invalid type: string \"x\", expected a map at line 1 column 3",
                None,
            ),
        ];
        for (message, want) in cases {
            assert_eq!(
                field_in_serde_message(message).as_deref(),
                want,
                "{message}"
            );
        }
    }

    #[test]
    fn fields_are_found_in_query_messages() {
        let cases = [
            (
                "Failed to deserialize query string: after: invalid digit found in string",
                Some("after"),
            ),
            (
                "Failed to deserialize query string: since: number too small to fit in target type",
                Some("since"),
            ),
            ("Failed to deserialize query string: invalid type", None),
            ("something else: entirely", None),
        ];
        for (message, want) in cases {
            assert_eq!(
                field_in_query_message(message).as_deref(),
                want,
                "{message}"
            );
        }
    }

    /// Path segments that do not parse answer the API's error format, naming the parameter.
    #[tokio::test]
    async fn path_rejections_name_the_parameter() {
        use axum::routing::get;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        async fn one(ApiPath(id): ApiPath<i64>) -> String {
            id.to_string()
        }
        async fn two(ApiPath((name, number)): ApiPath<(String, u32)>) -> String {
            format!("{name}{number}")
        }
        let app = axum::Router::new()
            .route("/builds/{id}", get(one))
            .route("/apps/{name}/revisions/{number}", get(two));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let cases = [
            ("/builds/1.5", 400, Some("id")),
            ("/builds/99999999999999999999", 400, Some("id")),
            ("/apps/web/revisions/-1", 400, Some("number")),
            ("/apps/%FF/revisions/1", 400, Some("name")),
            ("/builds/7", 200, None),
        ];
        for (uri, status, field) in cases {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {uri} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            let (head, body) = response.split_once("\r\n\r\n").unwrap();
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status} ")),
                "{uri}: {head}"
            );
            if status == 400 {
                assert!(
                    head.to_ascii_lowercase()
                        .contains("content-type: application/json"),
                    "{uri}: {head}"
                );
                let body: serde_json::Value = serde_json::from_str(body).unwrap();
                assert_eq!(body["error"]["code"], "invalid_path", "{uri}: {body}");
                assert_eq!(body["error"]["field"].as_str(), field, "{uri}: {body}");
            }
        }
    }
}

/// The client's IP address as text (`unknown` when the server was not started with connection
/// info, e.g. in router unit tests). Forwarding headers count only from trusted proxies (see
/// [`crate::proxies`], which resolves the address before any handler runs).
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
