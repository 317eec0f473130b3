//! Deployment templates: reusable app shapes with typed parameters (name, image, replicas,
//! CPU, memory, health path, env…), rendered into an app definition from parameter values.
//!
//! The body is a JSON object in the shape of the API's app-creation request; a string value
//! `"${param}"` is replaced by the parameter's typed value, and `${param}` inside a longer
//! string is replaced by its text. `$${` stands for a literal `${`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Millis;
use crate::validate::{MIN_MEMORY_BYTES, ValidationErrors, image_problem, name_problem};

/// Most parameters one template may declare.
pub const MAX_PARAMS: usize = 50;
/// Longest parameter name.
pub const MAX_PARAM_NAME_LEN: usize = 40;
/// Longest template (or parameter) description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// Longest value of a `string` parameter, in characters.
pub const MAX_STRING_VALUE_LEN: usize = 4096;
/// Author of the built-in templates.
pub const BUILTIN_AUTHOR: &str = "berth";

/// The type of a template parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// Any text.
    String,
    /// A whole number (within `min`/`max` when given).
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An image reference.
    Image,
    /// An app or DNS-style name: lowercase letters, digits and '-'.
    Name,
    /// A URL path starting with '/'.
    Path,
}

/// One parameter of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateParam {
    /// Referenced as `${name}` in the body.
    pub name: String,
    pub kind: ParamKind,
    #[serde(default)]
    pub description: String,
    /// Used when no value is given; a parameter without a default is required.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// Bounds of an `integer` parameter.
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
}

/// A reusable app shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentTemplate {
    /// The owning team; `None` for a built-in template.
    pub team: Option<String>,
    /// Unique within its team.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub params: Vec<TemplateParam>,
    /// The app definition with `${param}` placeholders (a JSON object).
    pub body: serde_json::Value,
    /// Username of the author (`berth` for built-ins).
    pub created_by: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl ParamKind {
    /// The stable code (as serialized): `string`, `integer`, `boolean`, `image`, `name`, `path`.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::String => "string",
            ParamKind::Integer => "integer",
            ParamKind::Boolean => "boolean",
            ParamKind::Image => "image",
            ParamKind::Name => "name",
            ParamKind::Path => "path",
        }
    }

    /// The kind with code `s`, or `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => ParamKind::String,
            "integer" => ParamKind::Integer,
            "boolean" => ParamKind::Boolean,
            "image" => ParamKind::Image,
            "name" => ParamKind::Name,
            "path" => ParamKind::Path,
            _ => return None,
        })
    }
}

/// Why `name` is not a valid parameter name (`[a-z_][a-z0-9_]*`, at most
/// [`MAX_PARAM_NAME_LEN`] characters), or `None`.
pub fn param_name_problem(name: &str) -> Option<String> {
    let Some(first) = name.bytes().next() else {
        return Some("must not be empty".into());
    };
    if name.len() > MAX_PARAM_NAME_LEN {
        return Some(format!("must be at most {MAX_PARAM_NAME_LEN} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Some("may contain only lowercase letters, digits and '_'".into());
    }
    if first.is_ascii_digit() {
        return Some("must start with a lowercase letter or '_'".into());
    }
    None
}

/// Why `value` is not a valid value of `param`, or `None`.
///
/// `string`: a string of at most [`MAX_STRING_VALUE_LEN`] characters; `integer`: a JSON
/// integer (not a float, not a string) within `min`/`max`; `boolean`: `true`/`false`;
/// `image`: an image reference ([`image_problem`]); `name`: an app name ([`name_problem`]);
/// `path`: a string starting with '/' without whitespace.
pub fn param_value_problem(param: &TemplateParam, value: &Value) -> Option<String> {
    let text = || value.as_str().ok_or_else(|| "must be a string".to_string());
    match param.kind {
        ParamKind::String => match text() {
            Ok(s) if s.chars().count() > MAX_STRING_VALUE_LEN => {
                Some(format!("must be at most {MAX_STRING_VALUE_LEN} characters"))
            }
            Ok(_) => None,
            Err(e) => Some(e),
        },
        ParamKind::Integer => integer_problem(param, value),
        ParamKind::Boolean => (!value.is_boolean()).then(|| "must be true or false".into()),
        ParamKind::Image => match text() {
            Ok(s) => image_problem(s),
            Err(e) => Some(e),
        },
        ParamKind::Name => match text() {
            Ok(s) => name_problem(s),
            Err(e) => Some(e),
        },
        ParamKind::Path => match text() {
            Ok(s) if !s.starts_with('/') => Some("must start with '/'".into()),
            Ok(s) if s.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                Some("must not contain whitespace".into())
            }
            Ok(_) => None,
            Err(e) => Some(e),
        },
    }
}

fn integer_problem(param: &TemplateParam, value: &Value) -> Option<String> {
    let Some(n) = value.as_i64() else {
        return Some(if value.is_u64() {
            format!("must be at most {}", i64::MAX)
        } else {
            "must be an integer".into()
        });
    };
    match (param.min, param.max) {
        (Some(min), Some(max)) if !(min..=max).contains(&n) => {
            Some(format!("must be between {min} and {max}"))
        }
        (Some(min), None) if n < min => Some(format!("must be at least {min}")),
        (None, Some(max)) if n > max => Some(format!("must be at most {max}")),
        _ => None,
    }
}

/// A piece of a body string.
#[derive(Debug, PartialEq, Eq)]
enum Segment<'a> {
    Text(&'a str),
    Param(&'a str),
}

/// Splits a body string into text and `${param}` placeholders (`$${` is a literal `${`).
fn parse_placeholders(s: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut segments = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        if let Some(unescaped) = after.strip_prefix("${") {
            // `$${`: the text up to and including the first '$', then a literal "{".
            segments.push(Segment::Text(&rest[..=at]));
            segments.push(Segment::Text("{"));
            rest = unescaped;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                return Err("has an unterminated placeholder ('${' without '}'; write '$${' for a literal '${')".into());
            };
            let name = &inner[..end];
            if let Some(problem) = param_name_problem(name) {
                return Err(format!(
                    "placeholder '${{{name}}}': parameter name {problem}"
                ));
            }
            segments.push(Segment::Text(&rest[..at]));
            segments.push(Segment::Param(name));
            rest = &inner[end + 1..];
        } else {
            segments.push(Segment::Text(&rest[..=at]));
            rest = after;
        }
    }
    segments.push(Segment::Text(rest));
    segments.retain(|seg| *seg != Segment::Text(""));
    Ok(segments)
}

/// Calls `f(path, string)` for every string in `value` that is an object value or array
/// element (not object keys), `path` being its JSON path below `path`.
fn visit_strings<'a>(value: &'a Value, path: &str, f: &mut dyn FnMut(&str, &'a str)) {
    match value {
        Value::String(s) => f(path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                visit_strings(item, &format!("{path}[{i}]"), f);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                visit_strings(item, &format!("{path}.{key}"), f);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Validates a template when it is saved: its name (an app name), description, parameters
/// (valid unique names, at most [`MAX_PARAMS`], bounds only on integers with `min <= max`,
/// defaults of the right type) and body (a JSON object whose every `${param}` names a
/// declared parameter, and which uses every declared parameter). Fields are JSON paths:
/// `params[2].default`, `body.env.PORT`.
pub fn validate_template(template: &DeploymentTemplate) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if let Some(team) = &template.team
        && let Some(problem) = name_problem(team)
    {
        errors.push("team", problem);
    }
    if let Some(problem) = name_problem(&template.name) {
        errors.push("name", problem);
    }
    if template.description.chars().count() > MAX_DESCRIPTION_LEN {
        errors.push(
            "description",
            format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
        );
    }
    if template.params.len() > MAX_PARAMS {
        errors.push(
            "params",
            format!("must have at most {MAX_PARAMS} parameters"),
        );
    }
    let mut declared = BTreeSet::new();
    for (i, param) in template.params.iter().enumerate() {
        let field = format!("params[{i}]");
        if let Some(problem) = param_name_problem(&param.name) {
            errors.push(format!("{field}.name"), problem);
        } else if !declared.insert(param.name.as_str()) {
            errors.push(format!("{field}.name"), "is declared twice");
        }
        if param.description.chars().count() > MAX_DESCRIPTION_LEN {
            errors.push(
                format!("{field}.description"),
                format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
            );
        }
        let mut bounds_ok = true;
        if param.kind != ParamKind::Integer {
            for (bound, value) in [("min", param.min), ("max", param.max)] {
                if value.is_some() {
                    bounds_ok = false;
                    errors.push(
                        format!("{field}.{bound}"),
                        "only integer parameters have bounds",
                    );
                }
            }
        } else if let (Some(min), Some(max)) = (param.min, param.max)
            && min > max
        {
            bounds_ok = false;
            errors.push(
                format!("{field}.min"),
                format!("must not be larger than max ({max})"),
            );
        }
        if bounds_ok
            && let Some(default) = &param.default
            && let Some(problem) = param_value_problem(param, default)
        {
            errors.push(format!("{field}.default"), problem);
        }
    }
    if !template.body.is_object() {
        errors.push("body", "must be a JSON object");
    }
    let mut used = BTreeSet::new();
    visit_strings(
        &template.body,
        "body",
        &mut |path, s| match parse_placeholders(s) {
            Err(problem) => errors.push(path, problem),
            Ok(segments) => {
                for segment in segments {
                    if let Segment::Param(name) = segment {
                        if declared.contains(name) {
                            used.insert(name);
                        } else {
                            errors.push(path, format!("'${{{name}}}' names no parameter"));
                        }
                    }
                }
            }
        },
    );
    for (i, param) in template.params.iter().enumerate() {
        if declared.contains(param.name.as_str()) && !used.contains(param.name.as_str()) {
            errors.push(
                format!("params[{i}].name"),
                format!("is not used in the body (no '${{{}}}')", param.name),
            );
        }
    }
    errors.into_result()
}

/// The text a value takes inside a longer string: strings as they are, numbers as digits,
/// booleans as `true`/`false`.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn substitute(
    value: &Value,
    path: &str,
    values: &BTreeMap<&str, &Value>,
    errors: &mut ValidationErrors,
) -> Value {
    match value {
        Value::String(s) => {
            let segments = match parse_placeholders(s) {
                Ok(segments) => segments,
                Err(problem) => {
                    errors.push(path, problem);
                    return value.clone();
                }
            };
            let lookup = |name: &str, errors: &mut ValidationErrors| {
                let found = values.get(name).copied();
                if found.is_none() {
                    errors.push(path, format!("'${{{name}}}' names no parameter"));
                }
                found
            };
            if let [Segment::Param(name)] = segments.as_slice() {
                return lookup(name, errors).cloned().unwrap_or(Value::Null);
            }
            let mut out = String::with_capacity(s.len());
            for segment in segments {
                match segment {
                    Segment::Text(text) => out.push_str(text),
                    Segment::Param(name) => {
                        if let Some(v) = lookup(name, errors) {
                            out.push_str(&value_text(v));
                        }
                    }
                }
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| substitute(item, &format!("{path}[{i}]"), values, errors))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    let item = substitute(item, &format!("{path}.{key}"), values, errors);
                    (key.clone(), item)
                })
                .collect(),
        ),
        Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
    }
}

/// Renders `template` with parameter `values` into an app-creation request.
///
/// Values are checked first: a name that is no parameter is refused (`values.<x>: no such
/// parameter`), a missing value takes the default (a `null` value counts as missing) or is
/// refused when there is none (`values.<x>: is required`), a value of the wrong type or out
/// of bounds is refused (`values.<x>: …`). Then, in object values and array elements (not
/// keys), a string that is exactly `${p}` becomes p's typed value and `${p}` inside a
/// longer string becomes its text; `$${` becomes a literal `${`.
pub fn render(
    template: &DeploymentTemplate,
    values: &Map<String, Value>,
) -> Result<Value, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    for name in values.keys() {
        if !template.params.iter().any(|p| &p.name == name) {
            errors.push(format!("values.{name}"), "no such parameter");
        }
    }
    let mut resolved = BTreeMap::new();
    for param in &template.params {
        let given = values.get(&param.name).filter(|v| !v.is_null());
        match given.or(param.default.as_ref()) {
            None => errors.push(format!("values.{}", param.name), "is required"),
            Some(value) => {
                if let Some(problem) = param_value_problem(param, value) {
                    errors.push(format!("values.{}", param.name), problem);
                } else {
                    resolved.insert(param.name.as_str(), value);
                }
            }
        }
    }
    if !errors.0.is_empty() {
        return Err(errors);
    }
    if !template.body.is_object() {
        errors.push("body", "must be a JSON object");
    }
    let rendered = substitute(&template.body, "body", &resolved, &mut errors);
    errors.into_result().map(|()| rendered)
}

fn param(
    name: &str,
    kind: ParamKind,
    description: &str,
    default: Option<Value>,
    min: Option<i64>,
    max: Option<i64>,
) -> TemplateParam {
    TemplateParam {
        name: name.into(),
        kind,
        description: description.into(),
        default,
        min,
        max,
    }
}

fn builtin(
    name: &str,
    description: &str,
    params: Vec<TemplateParam>,
    body: Value,
) -> DeploymentTemplate {
    DeploymentTemplate {
        team: None,
        name: name.into(),
        description: description.into(),
        params,
        body,
        created_by: BUILTIN_AUTHOR.into(),
        created_at: 0,
        updated_at: 0,
    }
}

/// The templates every team can use: `http-service` (a web app with a health check) and
/// `worker` (a background process without one).
pub fn builtin_templates() -> Vec<DeploymentTemplate> {
    let name = || {
        param(
            "name",
            ParamKind::Name,
            "App name: lowercase letters, digits and '-'.",
            None,
            None,
            None,
        )
    };
    let image = || {
        param(
            "image",
            ParamKind::Image,
            "Image to run, e.g. registry.example.com/team/app:v1.",
            None,
            None,
            None,
        )
    };
    let replicas = |default: i64| {
        param(
            "replicas",
            ParamKind::Integer,
            "Number of instances.",
            Some(json!(default)),
            Some(1),
            Some(50),
        )
    };
    let cpu = |default: i64| {
        param(
            "cpu_millis",
            ParamKind::Integer,
            "CPU limit per instance in millicores (1000 = one core).",
            Some(json!(default)),
            Some(10),
            Some(256_000),
        )
    };
    let memory = |default: i64| {
        param(
            "memory_bytes",
            ParamKind::Integer,
            "Memory limit per instance in bytes.",
            Some(json!(default)),
            Some(MIN_MEMORY_BYTES as i64),
            None,
        )
    };
    vec![
        builtin(
            "http-service",
            "A web service: instances listening on a port, receiving traffic once their \
             health check passes.",
            vec![
                name(),
                image(),
                replicas(2),
                param(
                    "port",
                    ParamKind::Integer,
                    "Port the app listens on inside the container.",
                    Some(json!(8080)),
                    Some(1),
                    Some(65535),
                ),
                param(
                    "health_path",
                    ParamKind::Path,
                    "HTTP path answering 2xx when an instance is healthy.",
                    Some(json!("/healthz")),
                    None,
                    None,
                ),
                cpu(500),
                memory(256 * 1024 * 1024),
            ],
            json!({
                "name": "${name}",
                "image": "${image}",
                "replicas": "${replicas}",
                "port": "${port}",
                "health_path": "${health_path}",
                "cpu_millis": "${cpu_millis}",
                "memory_bytes": "${memory_bytes}",
            }),
        ),
        builtin(
            "worker",
            "A background worker: instances without a port or health check.",
            vec![
                name(),
                image(),
                replicas(1),
                cpu(250),
                memory(128 * 1024 * 1024),
            ],
            json!({
                "name": "${name}",
                "image": "${image}",
                "replicas": "${replicas}",
                "cpu_millis": "${cpu_millis}",
                "memory_bytes": "${memory_bytes}",
                "no_health_check": true,
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, kind: ParamKind) -> TemplateParam {
        param(name, kind, "", None, None, None)
    }

    fn with_default(mut param: TemplateParam, default: Value) -> TemplateParam {
        param.default = Some(default);
        param
    }

    fn bounded(mut param: TemplateParam, min: Option<i64>, max: Option<i64>) -> TemplateParam {
        param.min = min;
        param.max = max;
        param
    }

    /// A valid template: name, image and replicas, all used.
    fn sample() -> DeploymentTemplate {
        DeploymentTemplate {
            team: Some("web".into()),
            name: "api".into(),
            description: "an api".into(),
            params: vec![
                p("name", ParamKind::Name),
                p("image", ParamKind::Image),
                with_default(
                    bounded(p("replicas", ParamKind::Integer), Some(1), Some(10)),
                    json!(2),
                ),
            ],
            body: json!({"name": "${name}", "image": "${image}", "replicas": "${replicas}"}),
            created_by: "ada".into(),
            created_at: 1,
            updated_at: 1,
        }
    }

    fn fields(result: Result<(), ValidationErrors>) -> Vec<String> {
        match result {
            Ok(()) => vec![],
            Err(e) => e.0.into_iter().map(|e| e.field).collect(),
        }
    }

    fn values(v: Value) -> Map<String, Value> {
        v.as_object().expect("values are an object").clone()
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [
            ParamKind::String,
            ParamKind::Integer,
            ParamKind::Boolean,
            ParamKind::Image,
            ParamKind::Name,
            ParamKind::Path,
        ] {
            assert_eq!(ParamKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(ParamKind::parse("int"), None);
        assert_eq!(ParamKind::parse("String"), None);
    }

    #[test]
    fn param_names() {
        let cases = [
            ("name", None),
            ("_private", None),
            ("cpu_millis2", None),
            ("a", None),
            (&*"a".repeat(40), None),
            ("", Some("must not be empty")),
            (&*"a".repeat(41), Some("must be at most 40 characters")),
            (
                "Port",
                Some("may contain only lowercase letters, digits and '_'"),
            ),
            (
                "health-path",
                Some("may contain only lowercase letters, digits and '_'"),
            ),
            (
                "a b",
                Some("may contain only lowercase letters, digits and '_'"),
            ),
            (
                "é",
                Some("may contain only lowercase letters, digits and '_'"),
            ),
            ("2x", Some("must start with a lowercase letter or '_'")),
        ];
        for (name, want) in cases {
            assert_eq!(param_name_problem(name).as_deref(), want, "{name:?}");
        }
    }

    #[test]
    fn param_values() {
        use ParamKind::*;
        let long = Value::String("x".repeat(MAX_STRING_VALUE_LEN + 1));
        let longest = Value::String("é".repeat(MAX_STRING_VALUE_LEN));
        // (kind, min, max, value, problem)
        let cases: Vec<(ParamKind, Option<i64>, Option<i64>, Value, Option<&str>)> = vec![
            (String, None, None, json!("hello"), None),
            (String, None, None, json!(""), None),
            (String, None, None, longest, None),
            (
                String,
                None,
                None,
                long,
                Some("must be at most 4096 characters"),
            ),
            (String, None, None, json!(5), Some("must be a string")),
            (String, None, None, json!(null), Some("must be a string")),
            (Integer, None, None, json!(-5), None),
            (Integer, Some(1), Some(50), json!(1), None),
            (Integer, Some(1), Some(50), json!(50), None),
            (
                Integer,
                Some(1),
                Some(50),
                json!(0),
                Some("must be between 1 and 50"),
            ),
            (
                Integer,
                Some(1),
                Some(50),
                json!(51),
                Some("must be between 1 and 50"),
            ),
            (
                Integer,
                Some(10),
                None,
                json!(9),
                Some("must be at least 10"),
            ),
            (
                Integer,
                None,
                Some(10),
                json!(11),
                Some("must be at most 10"),
            ),
            (Integer, None, None, json!(2.0), Some("must be an integer")),
            (Integer, None, None, json!(2.5), Some("must be an integer")),
            (Integer, None, None, json!("2"), Some("must be an integer")),
            (Integer, None, None, json!(true), Some("must be an integer")),
            (
                Integer,
                None,
                None,
                json!(u64::MAX),
                Some("must be at most 9223372036854775807"),
            ),
            (Boolean, None, None, json!(true), None),
            (Boolean, None, None, json!(false), None),
            (
                Boolean,
                None,
                None,
                json!("true"),
                Some("must be true or false"),
            ),
            (Boolean, None, None, json!(1), Some("must be true or false")),
            (
                Image,
                None,
                None,
                json!("registry.local:7700/web/api:v1"),
                None,
            ),
            (Image, None, None, json!(""), Some("must not be empty")),
            (
                Image,
                None,
                None,
                json!("my image"),
                Some("must not contain whitespace"),
            ),
            (
                Image,
                None,
                None,
                json!(["busybox"]),
                Some("must be a string"),
            ),
            (Name, None, None, json!("web-2"), None),
            (
                Name,
                None,
                None,
                json!("Web"),
                Some("may contain only lowercase letters, digits and '-'"),
            ),
            (Name, None, None, json!(""), Some("must not be empty")),
            (Name, None, None, json!(7), Some("must be a string")),
            (Path, None, None, json!("/healthz"), None),
            (Path, None, None, json!("/"), None),
            (
                Path,
                None,
                None,
                json!("healthz"),
                Some("must start with '/'"),
            ),
            (Path, None, None, json!(""), Some("must start with '/'")),
            (
                Path,
                None,
                None,
                json!("/a b"),
                Some("must not contain whitespace"),
            ),
            (
                Path,
                None,
                None,
                json!("/a\tb"),
                Some("must not contain whitespace"),
            ),
            (Path, None, None, json!(null), Some("must be a string")),
        ];
        for (kind, min, max, value, want) in cases {
            let param = bounded(p("x", kind), min, max);
            assert_eq!(
                param_value_problem(&param, &value).as_deref(),
                want,
                "{kind:?} {min:?}..{max:?} {value}"
            );
        }
    }

    #[test]
    fn placeholders_parse() {
        use Segment::{Param, Text};
        let cases: Vec<(&str, Result<Vec<Segment<'_>>, &str>)> = vec![
            ("plain", Ok(vec![Text("plain")])),
            ("", Ok(vec![])),
            ("${a}", Ok(vec![Param("a")])),
            (
                "x${a}y${b_2}",
                Ok(vec![Text("x"), Param("a"), Text("y"), Param("b_2")]),
            ),
            ("${a}${a}", Ok(vec![Param("a"), Param("a")])),
            ("$${a}", Ok(vec![Text("$"), Text("{"), Text("a}")])),
            ("cost $5", Ok(vec![Text("cost $"), Text("5")])),
            ("$$", Ok(vec![Text("$"), Text("$")])),
            ("end$", Ok(vec![Text("end$")])),
            ("{a}", Ok(vec![Text("{a}")])),
            ("${a", Err("unterminated")),
            ("x ${", Err("unterminated")),
            (
                "${}",
                Err("placeholder '${}': parameter name must not be empty"),
            ),
            ("${Bad}", Err("placeholder '${Bad}'")),
            ("${a b}", Err("placeholder '${a b}'")),
        ];
        for (input, want) in cases {
            match (parse_placeholders(input), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{input:?}: {got}"),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn template_validation_names_fields() {
        let edit = |f: &dyn Fn(&mut DeploymentTemplate)| {
            let mut t = sample();
            f(&mut t);
            t
        };
        let cases: Vec<(DeploymentTemplate, Vec<&str>)> = vec![
            (sample(), vec![]),
            (edit(&|t| t.team = None), vec![]),
            (edit(&|t| t.team = Some("Web".into())), vec!["team"]),
            (edit(&|t| t.name = "Api".into()), vec!["name"]),
            (edit(&|t| t.name = String::new()), vec!["name"]),
            (edit(&|t| t.name = "a".repeat(41)), vec!["name"]),
            (edit(&|t| t.description = "é".repeat(500)), vec![]),
            (
                edit(&|t| t.description = "x".repeat(501)),
                vec!["description"],
            ),
            (
                edit(&|t| t.params[1].description = "x".repeat(501)),
                vec!["params[1].description"],
            ),
            // Bad and duplicate parameter names; the bad one is then unknown in the body.
            (
                edit(&|t| t.params[0].name = "Name".into()),
                vec!["params[0].name", "body.name"],
            ),
            (
                edit(&|t| t.params.push(p("image", ParamKind::String))),
                vec!["params[3].name"],
            ),
            // Bounds.
            (edit(&|t| t.params[2].min = Some(11)), vec!["params[2].min"]),
            (edit(&|t| t.params[2].min = Some(2)), vec![]),
            (
                edit(&|t| t.params[2].min = Some(10)),
                vec!["params[2].default"],
            ),
            (edit(&|t| t.params[1].max = Some(3)), vec!["params[1].max"]),
            (
                edit(&|t| {
                    t.params[0].min = Some(1);
                    t.params[0].max = Some(3)
                }),
                vec!["params[0].min", "params[0].max"],
            ),
            // Defaults must fit.
            (
                edit(&|t| t.params[2].default = Some(json!(11))),
                vec!["params[2].default"],
            ),
            (
                edit(&|t| t.params[2].default = Some(json!("2"))),
                vec!["params[2].default"],
            ),
            (edit(&|t| t.params[0].default = Some(json!("web"))), vec![]),
            (
                edit(&|t| t.params[0].default = Some(json!("-web"))),
                vec!["params[0].default"],
            ),
            // Body.
            (
                edit(&|t| t.body = json!(["${name}"])),
                vec!["body", "params[1].name", "params[2].name"],
            ),
            (
                edit(&|t| t.body["env"] = json!({"PORT": "${port}"})),
                vec!["body.env.PORT"],
            ),
            (
                edit(&|t| t.body["command"] = json!(["run", "--name=${nmae}"])),
                vec!["body.command[1]"],
            ),
            (
                edit(&|t| t.body["command"] = json!(["run", "${name"])),
                vec!["body.command[1]"],
            ),
            // Escaped and key placeholders are not uses.
            (
                edit(&|t| t.body["replicas"] = json!("$${replicas}")),
                vec!["params[2].name"],
            ),
            (
                edit(&|t| {
                    t.body["replicas"] = json!(1);
                    t.body["labels"] = json!({"${replicas}": "x"})
                }),
                vec!["params[2].name"],
            ),
            // A use deep inside counts.
            (
                edit(&|t| {
                    t.body["replicas"] = json!(1);
                    t.body["labels"] = json!({"a": [{"b": "n=${replicas}"}]})
                }),
                vec![],
            ),
            (
                edit(&|t| {
                    for i in 0..48 {
                        let name = format!("p{i}");
                        t.body[&name] = json!(format!("${{{name}}}"));
                        t.params.push(p(&name, ParamKind::String));
                    }
                }),
                vec!["params"],
            ),
        ];
        for (template, want) in cases {
            assert_eq!(
                fields(validate_template(&template)),
                want,
                "{:?} / {}",
                template.params,
                template.body
            );
        }
    }

    #[test]
    fn template_validation_messages() {
        let mut t = sample();
        t.params.push(p("port", ParamKind::Integer));
        t.body["env"] = json!({"X": "${prot}"});
        let err = validate_template(&t).unwrap_err();
        assert_eq!(
            err.to_string(),
            "body.env.X: '${prot}' names no parameter; \
             params[3].name: is not used in the body (no '${port}')"
        );
    }

    #[test]
    fn render_checks_values() {
        let t = sample();
        // (values, Ok(body) or Err([(field, message)]))
        let cases: Vec<(Value, Result<Value, Vec<(&str, &str)>>)> = vec![
            (
                json!({"name": "api", "image": "busybox"}),
                Ok(json!({"name": "api", "image": "busybox", "replicas": 2})),
            ),
            (
                json!({"name": "api", "image": "busybox", "replicas": 7}),
                Ok(json!({"name": "api", "image": "busybox", "replicas": 7})),
            ),
            // null takes the default.
            (
                json!({"name": "api", "image": "busybox", "replicas": null}),
                Ok(json!({"name": "api", "image": "busybox", "replicas": 2})),
            ),
            (
                json!({"image": "busybox"}),
                Err(vec![("values.name", "is required")]),
            ),
            (
                json!({"name": null, "image": "busybox"}),
                Err(vec![("values.name", "is required")]),
            ),
            (
                json!({"name": "api", "image": "busybox", "replica": 3}),
                Err(vec![("values.replica", "no such parameter")]),
            ),
            (
                json!({"name": "api", "image": "busybox", "replicas": 11}),
                Err(vec![("values.replicas", "must be between 1 and 10")]),
            ),
            (
                json!({"name": "api", "image": "busybox", "replicas": "3"}),
                Err(vec![("values.replicas", "must be an integer")]),
            ),
            (
                json!({"name": "API", "extra": 1}),
                Err(vec![
                    ("values.extra", "no such parameter"),
                    (
                        "values.name",
                        "may contain only lowercase letters, digits and '-'",
                    ),
                    ("values.image", "is required"),
                ]),
            ),
        ];
        for (given, want) in cases {
            let got = render(&t, &values(given.clone())).map_err(|e| {
                e.0.into_iter()
                    .map(|e| (e.field, e.message))
                    .collect::<Vec<_>>()
            });
            let want = want.map_err(|errs| {
                errs.into_iter()
                    .map(|(f, m)| (f.to_string(), m.to_string()))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want, "values {given}");
        }
    }

    #[test]
    fn render_substitutes() {
        let mut t = sample();
        t.params = vec![
            p("s", ParamKind::String),
            p("n", ParamKind::Integer),
            p("b", ParamKind::Boolean),
            p("path", ParamKind::Path),
        ];
        let given = values(json!({"s": "hi", "n": 8080, "b": false, "path": "/up"}));
        // (body, rendered)
        let cases = [
            // Exact placeholders keep the type.
            (
                json!({"s": "${s}", "n": "${n}", "b": "${b}", "path": "${path}"}),
                json!({"s": "hi", "n": 8080, "b": false, "path": "/up"}),
            ),
            // Inside longer strings: the text.
            (
                json!({"x": "${s}:${n}/${b}${path}", "y": " ${n}"}),
                json!({"x": "hi:8080/false/up", "y": " 8080"}),
            ),
            // Array elements, nested objects; other values untouched; keys untouched.
            (
                json!({"args": ["--port", "${n}", "--port=${n}", 3, null],
                       "env": {"PORT": "p${n}", "${s}": "${s}"},
                       "k": {"deep": [{"v": "${b}"}]},
                       "t": true}),
                json!({"args": ["--port", 8080, "--port=8080", 3, null],
                       "env": {"PORT": "p8080", "${s}": "hi"},
                       "k": {"deep": [{"v": false}]},
                       "t": true}),
            ),
            // Escapes.
            (
                json!({"a": "$${s}", "b": "cost: $${n} is ${n}$", "c": "$$${s}", "d": "$5"}),
                json!({"a": "${s}", "b": "cost: ${n} is 8080$", "c": "$${s}", "d": "$5"}),
            ),
        ];
        for (body, want) in cases {
            t.body = body.clone();
            assert_eq!(render(&t, &given), Ok(want), "body {body}");
        }
    }

    #[test]
    fn render_reports_a_broken_body() {
        let mut t = sample();
        t.body["env"] = json!({"A": "${nope}", "B": "${open"});
        let err = render(&t, &values(json!({"name": "api", "image": "busybox"}))).unwrap_err();
        let got: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(got, ["body.env.A", "body.env.B"]);
        t.body = json!("${name}");
        let err = render(&t, &values(json!({"name": "api", "image": "busybox"}))).unwrap_err();
        assert_eq!(err.first().unwrap().field, "body");
    }

    #[test]
    fn builtins_are_valid_and_render_with_name_and_image() {
        let builtins = builtin_templates();
        let names: Vec<&str> = builtins.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["http-service", "worker"]);
        for t in &builtins {
            assert_eq!(validate_template(t), Ok(()), "{}", t.name);
            assert_eq!(t.team, None);
            assert_eq!(t.created_by, "berth");
            assert_eq!((t.created_at, t.updated_at), (0, 0));
            let body = render(t, &values(json!({"name": "api", "image": "busybox:1"})))
                .unwrap_or_else(|e| panic!("{}: {e}", t.name));
            assert_eq!(body["name"], "api", "{}", t.name);
            assert_eq!(body["image"], "busybox:1", "{}", t.name);
            // Rendering without the required parameters names both.
            let err = render(t, &Map::new()).unwrap_err();
            let got: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(got, ["values.name", "values.image"], "{}", t.name);
        }
    }

    #[test]
    fn builtin_bodies() {
        let builtins = builtin_templates();
        let given = values(json!({"name": "api", "image": "busybox"}));
        let http = render(&builtins[0], &given).unwrap();
        assert_eq!(
            http,
            json!({
                "name": "api",
                "image": "busybox",
                "replicas": 2,
                "port": 8080,
                "health_path": "/healthz",
                "cpu_millis": 500,
                "memory_bytes": 268_435_456,
            })
        );
        let worker = render(&builtins[1], &given).unwrap();
        assert_eq!(
            worker,
            json!({
                "name": "api",
                "image": "busybox",
                "replicas": 1,
                "cpu_millis": 250,
                "memory_bytes": 134_217_728,
                "no_health_check": true,
            })
        );
        // Overrides are checked against the built-in bounds.
        let too_small = values(json!({"name": "api", "image": "busybox", "memory_bytes": 1024}));
        let err = render(&builtins[0], &too_small).unwrap_err();
        assert_eq!(
            err.to_string(),
            "values.memory_bytes: must be at least 6291456"
        );
        let port = values(json!({"name": "api", "image": "busybox", "port": 65536}));
        let err = render(&builtins[0], &port).unwrap_err();
        assert_eq!(err.to_string(), "values.port: must be between 1 and 65535");
    }

    #[test]
    fn templates_deserialize_with_defaults() {
        let t: DeploymentTemplate = serde_json::from_value(json!({
            "team": "web", "name": "api",
            "params": [{"name": "image", "kind": "image"}],
            "body": {"image": "${image}"},
            "created_by": "ada", "created_at": 1, "updated_at": 2,
        }))
        .unwrap();
        assert_eq!(t.description, "");
        assert_eq!(t.params[0], p("image", ParamKind::Image));
        assert_eq!(validate_template(&t), Ok(()));
    }
}
