//! Responses the OpenAPI document declares once for every operation they can come from: those
//! of the layers in front of the handlers, which no handler's annotation mentions.
//!
//! * 401 `unauthorized` — the authentication middleware, on every operation that needs a
//!   principal (all but those declared `security(())`).
//! * 400 `invalid_path` / `invalid_query` / `invalid_json` — the extractors (`extract.rs`), on
//!   every operation with parameters or a body: a segment that does not parse, an unknown or
//!   malformed query parameter, a body that is not the declared JSON.
//! * 415 `invalid_json` — a JSON body sent without `Content-Type: application/json`.
//!
//! It also states what a `text/event-stream` response carries: handlers annotate the DTO each
//! message holds (`body = EventDto`), and before OpenAPI 3.2's `itemSchema` the `schema` of an
//! event stream describes one message — `{id, event, data, retry}` — so the DTO becomes the
//! `contentSchema` of its JSON `data`.
//!
//! Found by `scripts/fuzz-api.sh`: schemathesis checks every status code it receives against
//! the document.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

pub(crate) struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_common_responses(operation);
                describe_event_streams(operation);
            }
        }
    }
}

fn add_common_responses(operation: &mut Operation) {
    let public = operation.security.as_ref().is_some_and(|requirements| {
        requirements
            .iter()
            .all(|r| *r == SecurityRequirement::default())
    });
    if !public {
        add(
            operation,
            "401",
            "No valid credentials: a missing, unknown, expired or revoked token, or a disabled user (`unauthorized`).",
        );
    }
    let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if has_parameters || operation.request_body.is_some() {
        add(
            operation,
            "400",
            "A bad request: a path segment or query parameter that does not parse (`invalid_path`, `invalid_query`), a body that is not the declared JSON (`invalid_json`), or an invalid field; `field` names it.",
        );
    }
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|body| match body {
            RefOr::T(body) => body.content.contains_key("application/json"),
            RefOr::Ref(_) => true,
        });
    if json_body {
        add(
            operation,
            "415",
            "The body was sent without `Content-Type: application/json` (`invalid_json`).",
        );
    }
}

/// Every `text/event-stream` response: its schema becomes one SSE message whose `data` is the
/// annotated DTO as JSON.
fn describe_event_streams(operation: &mut Operation) {
    for response in operation.responses.responses.values_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let Some(RefOr::T(content)) = response.content.get_mut("text/event-stream") else {
            continue;
        };
        let Some(payload) = content.schema.take() else {
            continue;
        };
        content.schema = Some(sse_message(payload));
    }
}

fn sse_message(payload: RefOr<Schema>) -> RefOr<Schema> {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "One Server-Sent Events message: `data` holds the payload as JSON.",
        ))
        .property("id", string())
        .property("event", string())
        .property(
            "data",
            string()
                .content_media_type("application/json")
                .content_schema(Some(payload)),
        )
        .property("retry", ObjectBuilder::new().schema_type(Type::Integer))
        .required("data")
        .into()
}

/// Declares `status` with an `ErrorBody`, unless the operation already declares it.
fn add(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        });
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    /// Every operation that needs credentials declares its 401, every one with input its 400.
    #[test]
    fn common_responses_are_declared() {
        let doc: serde_json::Value =
            serde_json::from_str(&crate::ApiDoc::openapi().to_json().unwrap()).unwrap();
        let mut problems = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = &operation["responses"];
                let public = operation["security"] == serde_json::json!([{}]);
                if !public && responses.get("401").is_none() {
                    problems.push(format!("{method} {path}: no 401"));
                }
                let has_input = operation["parameters"]
                    .as_array()
                    .is_some_and(|p| !p.is_empty())
                    || operation.get("requestBody").is_some();
                if has_input && responses.get("400").is_none() {
                    problems.push(format!("{method} {path}: no 400"));
                }
                if operation["requestBody"]["content"]
                    .get("application/json")
                    .is_some()
                    && responses.get("415").is_none()
                {
                    problems.push(format!("{method} {path}: no 415"));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        // An event stream's schema is one message, its payload the JSON `data`.
        let stream = &doc["paths"]["/api/v1/apps/{name}/events/stream"]["get"]["responses"]["200"]
            ["content"]["text/event-stream"]["schema"];
        assert_eq!(stream["required"], serde_json::json!(["data"]), "{stream}");
        assert_eq!(
            stream["properties"]["data"]["contentSchema"]["$ref"], "#/components/schemas/EventDto",
            "{stream}"
        );
        // Public operations do not pretend to need a token.
        assert!(
            doc["paths"]["/healthz"]["get"]["responses"]
                .get("401")
                .is_none()
        );
        assert!(
            doc["paths"]["/api/v1/auth/login"]["post"]["responses"]
                .get("401")
                .is_some()
        );
    }
}
