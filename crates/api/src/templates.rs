//! Handlers for deployment templates: the built-ins (shown under team `builtin`, read-only)
//! and the teams' own, saved after validation, and apps created from them.
//!
//! Rendering is the core's (`berth_core::deploy_template::render`); this module adds what only
//! the API knows: that a rendered body must be an app-creation request ([`AppChanges`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_core::accounts::TeamAction;
use berth_core::deploy_template::{
    DeploymentTemplate, ParamKind, TemplateParam, builtin_templates, render, validate_template,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;

use crate::ApiState;
use crate::auth::Principal;
use crate::dto::{AppChanges, AppDto};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::team_dto::{BUILTIN_TEAM, DeploymentTemplateDto, TemplateAppRequest, TemplateRequest};
use crate::teams::{invalid, load_team, require_readable};

/// Fields of an app-creation request whose map values must be strings.
const STRING_MAPS: [&str; 2] = ["env", "labels"];
/// Fields of an app-creation request whose array elements must be strings.
const STRING_LISTS: [&str; 2] = ["command", "args"];

/// Filters of the template list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TemplateParams {
    /// Only this team's templates (`builtin`: only the built-ins).
    pub team: Option<String>,
}

/// A value of `param`'s kind to try a template with when it is saved: its default, else a
/// valid sample.
fn sample_value(param: &TemplateParam) -> Value {
    if let Some(default) = &param.default {
        return default.clone();
    }
    match param.kind {
        ParamKind::String => Value::from("x"),
        ParamKind::Integer => {
            let n = match (param.min, param.max) {
                (Some(min), _) => min,
                (None, Some(max)) if max < 1 => max,
                _ => 1,
            };
            Value::from(n)
        }
        ParamKind::Boolean => Value::Bool(false),
        ParamKind::Image => Value::from("example/image:1"),
        ParamKind::Name => Value::from("example"),
        ParamKind::Path => Value::from("/"),
    }
}

/// A sample value for every parameter.
fn sample_values(params: &[TemplateParam]) -> Map<String, Value> {
    params
        .iter()
        .map(|param| (param.name.clone(), sample_value(param)))
        .collect()
}

/// Numbers and booleans as text.
fn scalar_to_text(value: &mut Value) {
    match value {
        Value::Number(n) => *value = Value::String(n.to_string()),
        Value::Bool(b) => *value = Value::String(b.to_string()),
        Value::Null | Value::String(_) | Value::Array(_) | Value::Object(_) => {}
    }
}

/// Turns the numbers and booleans a render put into `env`, `labels`, `command` and `args`
/// into text: `"PORT": "${port}"` renders as a number, which those fields do not accept.
fn stringify_text_fields(body: &mut Value) {
    let Some(fields) = body.as_object_mut() else {
        return;
    };
    for key in STRING_MAPS {
        if let Some(Value::Object(entries)) = fields.get_mut(key) {
            entries.values_mut().for_each(scalar_to_text);
        }
    }
    for key in STRING_LISTS {
        if let Some(Value::Array(items)) = fields.get_mut(key) {
            items.iter_mut().for_each(scalar_to_text);
        }
    }
}

/// A bad part of a rendered body: the top-level key at fault (`None`: the body as a whole)
/// and what is wrong.
#[derive(Debug, PartialEq, Eq)]
struct BodyProblem {
    key: Option<String>,
    message: String,
}

/// Reads a rendered body as an app-creation request. On failure, names the first top-level
/// key that fails on its own (serde's messages do not name the field of a type error).
fn app_changes(body: Value) -> Result<AppChanges, BodyProblem> {
    let error = match serde_json::from_value::<AppChanges>(body.clone()) {
        Ok(changes) => return Ok(changes),
        Err(error) => error,
    };
    let culprit = body.as_object().and_then(|fields| {
        fields.iter().find_map(|(key, value)| {
            let alone = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
            serde_json::from_value::<AppChanges>(alone)
                .err()
                .map(|e| (key.clone(), e.to_string()))
        })
    });
    Err(match culprit {
        Some((key, message)) => BodyProblem {
            key: Some(key),
            message,
        },
        None => BodyProblem {
            key: None,
            message: error.to_string(),
        },
    })
}

/// Checks, when a template is saved, that it renders into an app-creation request that names
/// an app and an image (with defaults or sample values); problems are about `body`.
fn check_renders(template: &DeploymentTemplate) -> ApiResult<()> {
    let mut rendered = render(template, &sample_values(&template.params)).map_err(invalid)?;
    stringify_text_fields(&mut rendered);
    let changes = app_changes(rendered).map_err(|problem| {
        let message = match problem.key {
            Some(key) => format!("{key}: {}", problem.message),
            None => problem.message,
        };
        ApiError::field(
            "body",
            format!("does not render to an app-creation request: {message}"),
        )
    })?;
    for (field, given) in [
        ("name", changes.name.is_some()),
        ("image", changes.image.is_some()),
    ] {
        if !given {
            return Err(ApiError::field(
                "body",
                format!("must set {field} (e.g. \"{field}\": \"${{{field}}}\")"),
            ));
        }
    }
    Ok(())
}

/// The template `team/name` when the caller may read it (built-ins: anyone); 404 otherwise.
async fn visible_template(
    state: &ApiState,
    principal: &Principal,
    team: &str,
    name: &str,
) -> ApiResult<DeploymentTemplate> {
    let what = format!("template {team}/{name}");
    if team == BUILTIN_TEAM {
        return builtin_templates()
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ApiError::not_found(what));
    }
    principal.require(team, TeamAction::Read, &what)?;
    state
        .store
        .get_deployment_template(team, name)
        .await?
        .ok_or_else(|| ApiError::not_found(what))
}

/// Checks that the caller may change the templates of `team` (never the built-ins').
fn require_writable(principal: &Principal, team: &str, name: &str) -> ApiResult<()> {
    principal
        .audit
        .set_object(format!("templates/{team}/{name}"));
    if team == BUILTIN_TEAM {
        return Err(ApiError::forbidden(
            "built-in templates are read-only; save a copy under your team",
        ));
    }
    Ok(principal.require(
        team,
        TeamAction::ManageTemplates,
        &format!("template {team}/{name}"),
    )?)
}

/// Deployment templates: the built-ins (team `builtin`) and those of the teams the caller
/// can read, ordered by team and name.
#[utoipa::path(operation_id = "list_templates", get, path = "/api/v1/templates", tag = "templates", params(TemplateParams),
    responses((status = 200, body = [DeploymentTemplateDto]), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<TemplateParams>,
) -> ApiResult<Json<Vec<DeploymentTemplateDto>>> {
    let mut templates = Vec::new();
    if params
        .team
        .as_deref()
        .is_none_or(|team| team == BUILTIN_TEAM)
    {
        templates.extend(builtin_templates());
    }
    match params.team.as_deref() {
        Some(BUILTIN_TEAM) => {}
        Some(team) => {
            require_readable(&principal, team)?;
            templates.extend(state.store.list_deployment_templates(Some(team)).await?);
        }
        None => {
            let mut stored = state.store.list_deployment_templates(None).await?;
            stored.retain(|t| {
                t.team
                    .as_deref()
                    .is_some_and(|team| principal.can_read(team))
            });
            templates.extend(stored);
        }
    }
    Ok(Json(
        templates.iter().map(DeploymentTemplateDto::from).collect(),
    ))
}

/// One template (built-ins under team `builtin`).
#[utoipa::path(operation_id = "get_template", get, path = "/api/v1/templates/{team}/{name}", tag = "templates",
    params(("team" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = DeploymentTemplateDto), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
) -> ApiResult<Json<DeploymentTemplateDto>> {
    let template = visible_template(&state, &principal, &team, &name).await?;
    Ok(Json(DeploymentTemplateDto::from(&template)))
}

/// Create (201) or replace (200) a team's template (members and owners). It is validated
/// when saved: parameters, placeholders, and that it renders (with defaults or sample values)
/// into an app-creation request naming an app and an image.
#[utoipa::path(operation_id = "put_template", put, path = "/api/v1/templates/{team}/{name}", tag = "templates",
    params(("team" = String, Path), ("name" = String, Path)), request_body = TemplateRequest,
    responses((status = 200, body = DeploymentTemplateDto), (status = 201, body = DeploymentTemplateDto),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
    ApiJson(request): ApiJson<TemplateRequest>,
) -> ApiResult<Response> {
    require_writable(&principal, &team, &name)?;
    load_team(&state, &team).await?;
    let params = request
        .params
        .iter()
        .enumerate()
        .map(|(i, param)| {
            param
                .to_param()
                .map_err(|problem| ApiError::field(format!("params[{i}].kind"), problem))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let existing = state.store.get_deployment_template(&team, &name).await?;
    let now = (state.clock)();
    let template = DeploymentTemplate {
        team: Some(team.clone()),
        name: name.clone(),
        description: request.description.unwrap_or_default().trim().to_string(),
        params,
        body: request.body,
        created_by: principal.username().to_string(),
        created_at: existing.as_ref().map_or(now, |t| t.created_at),
        updated_at: now,
    };
    validate_template(&template).map_err(invalid)?;
    check_renders(&template)?;
    state.store.put_deployment_template(&template).await?;
    let status = crate::put_status(existing.is_some());
    Ok((status, Json(DeploymentTemplateDto::from(&template))).into_response())
}

/// Delete a team's template (members and owners; built-ins cannot be deleted).
#[utoipa::path(operation_id = "delete_template", delete, path = "/api/v1/templates/{team}/{name}", tag = "templates",
    params(("team" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    require_writable(&principal, &team, &name)?;
    if state.store.delete_deployment_template(&team, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("template {team}/{name}")))
    }
}

/// Create an app in `team` from a template and parameter values; the app is then validated,
/// role-checked and quota-checked like any new app. Values of the wrong type or out of bounds
/// are refused naming `values.<param>`.
#[utoipa::path(operation_id = "create_app_from_template", post, path = "/api/v1/templates/{team}/{name}/apps", tag = "templates",
    params(("team" = String, Path, description = "The template's team"), ("name" = String, Path)),
    request_body = TemplateAppRequest,
    responses((status = 201, body = AppDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_app(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
    ApiJson(request): ApiJson<TemplateAppRequest>,
) -> ApiResult<Response> {
    principal
        .audit
        .set_object(format!("templates/{team}/{name}"));
    principal.audit.set_team(&request.team);
    let template = visible_template(&state, &principal, &team, &name).await?;
    principal
        .audit
        .set_detail(format!("from template {team}/{name}"));
    let mut rendered = render(&template, &request.values).map_err(invalid)?;
    stringify_text_fields(&mut rendered);
    if let Some(fields) = rendered.as_object_mut() {
        match fields.get("team") {
            None | Some(Value::Null) => {
                fields.insert("team".into(), Value::String(request.team.clone()));
            }
            Some(Value::String(fixed)) if *fixed != request.team => {
                return Err(ApiError::field(
                    "team",
                    format!("template {team}/{name} creates apps in team {fixed}"),
                ));
            }
            Some(_) => {}
        }
        if let Some(reason) = &request.reason {
            fields.insert("reason".into(), Value::String(reason.clone()));
        } else if !fields.contains_key("reason") {
            let reason = format!("from template {team}/{name}");
            fields.insert("reason".into(), Value::String(reason));
        }
    }
    let changes = app_changes(rendered).map_err(|problem| {
        ApiError::field(problem.key.as_deref().unwrap_or("body"), problem.message)
    })?;
    let new = berth_operations::NewApp {
        name: changes
            .name
            .clone()
            .ok_or_else(|| ApiError::field("name", "is required"))?,
        team: changes.team.clone(),
        reason: changes.reason.clone(),
        spec: crate::changes::to_change(&changes)?,
    };
    crate::apps::created(&state, state.platform.create_app(&principal, new).await?).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn param(
        kind: ParamKind,
        default: Option<Value>,
        min: Option<i64>,
        max: Option<i64>,
    ) -> TemplateParam {
        TemplateParam {
            name: "p".into(),
            kind,
            description: String::new(),
            default,
            min,
            max,
        }
    }

    #[test]
    fn samples_are_defaults_or_valid_values_of_the_kind() {
        use ParamKind::*;
        // (param, sample)
        let cases = [
            (param(String, None, None, None), json!("x")),
            (param(String, Some(json!("hi")), None, None), json!("hi")),
            (param(Integer, None, None, None), json!(1)),
            (param(Integer, None, Some(80), Some(90)), json!(80)),
            (param(Integer, None, Some(-5), None), json!(-5)),
            (param(Integer, None, None, Some(0)), json!(0)),
            (param(Integer, None, None, Some(9)), json!(1)),
            (
                param(Integer, Some(json!(8080)), Some(1), None),
                json!(8080),
            ),
            (param(Boolean, None, None, None), json!(false)),
            (param(Image, None, None, None), json!("example/image:1")),
            (param(Name, None, None, None), json!("example")),
            (param(Path, None, None, None), json!("/")),
        ];
        for (p, want) in cases {
            assert_eq!(sample_value(&p), want, "{p:?}");
            // Every sample is a valid value of its parameter.
            assert_eq!(
                berth_core::deploy_template::param_value_problem(&p, &want),
                None,
                "{p:?}"
            );
        }
    }

    #[test]
    fn text_fields_are_stringified() {
        // (rendered body, after)
        let cases = [
            (
                json!({"env": {"PORT": 8080, "DEBUG": true, "NAME": "x", "GONE": null}}),
                json!({"env": {"PORT": "8080", "DEBUG": "true", "NAME": "x", "GONE": null}}),
            ),
            (
                json!({"labels": {"tier": 2}, "args": ["--port", 8080, false], "command": [1.5]}),
                json!({"labels": {"tier": "2"}, "args": ["--port", "8080", "false"], "command": ["1.5"]}),
            ),
            // Other fields keep their types; nested structures are left for serde to refuse.
            (
                json!({"port": 8080, "replicas": 2, "env": {"A": [1]}, "args": [{"a": 1}]}),
                json!({"port": 8080, "replicas": 2, "env": {"A": [1]}, "args": [{"a": 1}]}),
            ),
            (json!({"env": "PORT=1"}), json!({"env": "PORT=1"})),
            (
                json!(["not", "an", "object"]),
                json!(["not", "an", "object"]),
            ),
        ];
        for (mut body, want) in cases {
            let given = body.clone();
            stringify_text_fields(&mut body);
            assert_eq!(body, want, "{given}");
        }
    }

    #[test]
    fn rendered_bodies_are_read_as_app_changes() {
        // (body, Ok(()) or Err(key at fault))
        let cases: Vec<(Value, Result<(), Option<&str>>)> = vec![
            (
                json!({"name": "api", "image": "busybox", "port": 8080}),
                Ok(()),
            ),
            (json!({}), Ok(())),
            (
                json!({"name": "api", "imgae": "busybox"}),
                Err(Some("imgae")),
            ),
            (json!({"name": "api", "port": 70000}), Err(Some("port"))),
            (json!({"name": "api", "port": "80"}), Err(Some("port"))),
            (json!({"env": {"PORT": 8080}}), Err(Some("env"))),
            (json!({"readiness": {"pth": "/"}}), Err(Some("readiness"))),
            (json!(["api"]), Err(None)),
        ];
        for (body, want) in cases {
            let got = app_changes(body.clone()).map(|_| ()).map_err(|p| p.key);
            assert_eq!(got, want.map_err(|k| k.map(String::from)), "{body}");
        }
        let problem = app_changes(json!({"imgae": "x"})).unwrap_err();
        assert!(
            problem.message.contains("unknown field `imgae`"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn saved_templates_must_render_into_an_app() {
        let template = |body: Value, params: Vec<TemplateParam>| DeploymentTemplate {
            team: Some("web".into()),
            name: "api".into(),
            description: String::new(),
            params,
            body,
            created_by: "ada".into(),
            created_at: 0,
            updated_at: 0,
        };
        let named = |name: &str, kind, default| TemplateParam {
            name: name.into(),
            kind,
            description: String::new(),
            default,
            min: None,
            max: None,
        };
        let port = named("port", ParamKind::Integer, Some(json!(8080)));
        let image = named("image", ParamKind::Image, None);
        // (body, params, Ok or Err(message part))
        let cases = [
            (
                json!({"name": "api", "image": "${image}", "env": {"PORT": "${port}"}}),
                vec![image.clone(), port.clone()],
                Ok(()),
            ),
            (
                json!({"name": "api", "image": "${image}", "args": ["--port", "${port}"]}),
                vec![image.clone(), port.clone()],
                Ok(()),
            ),
            (
                json!({"name": "api", "imgae": "${image}"}),
                vec![image.clone()],
                Err("unknown field `imgae`"),
            ),
            (
                json!({"name": "api", "image": "${image}", "port": "${image}"}),
                vec![image.clone()],
                Err("port: invalid type"),
            ),
            (
                json!({"image": "${image}"}),
                vec![image.clone()],
                Err("must set name"),
            ),
            (json!({"name": "api"}), vec![], Err("must set image")),
        ];
        for (body, params, want) in cases {
            let got = check_renders(&template(body.clone(), params));
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(error), Err(part)) => {
                    assert_eq!(error.field.as_deref(), Some("body"), "{body}");
                    assert!(error.message.contains(part), "{body}: {}", error.message);
                }
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn builtins_pass_the_save_checks() {
        for template in builtin_templates() {
            check_renders(&template).unwrap_or_else(|e| panic!("{}: {e:?}", template.name));
        }
    }
}
