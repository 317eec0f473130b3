//! Deployment template commands: list, show, save and delete templates, and create an app from
//! one with parameter values.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use berth_api::dto::AppDto;
use berth_api::team_dto::{DeploymentTemplateDto, TemplateAppRequest, TemplateRequest};
use clap::Subcommand;
use serde_json::{Map, Value};

use super::apps::wait_for_rollout;
use super::{TeamObject, or_dash, query, time_or_dash};
use crate::client::Client;
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// List the built-in templates and those of the teams you can read
    List {
        /// Only this team's (and the built-ins)
        #[arg(long)]
        team: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show a template: parameters and body
    Show {
        template: TeamObject,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Save a template from a JSON file `{"description"?, "params": [...], "body": {...}}`
    /// (what `templates show -o json` prints works too)
    Save {
        template: TeamObject,
        #[arg(long, value_name = "F.json")]
        file: PathBuf,
    },
    /// Delete a template
    Delete { template: TeamObject },
    /// Create an app in a team from a template
    Deploy {
        template: TeamObject,
        /// The team that owns the new app
        #[arg(long)]
        team: String,
        /// A parameter value KEY=VALUE (repeatable); numbers and true/false are typed
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Parameter values from a JSON object; --set wins over it
        #[arg(long, value_name = "F.json")]
        values_file: Option<PathBuf>,
        /// Why (recorded on the revision)
        #[arg(long)]
        reason: Option<String>,
        /// Wait until the first rollout finishes
        #[arg(long)]
        wait: bool,
    },
}

pub async fn run(client: &Client, command: TemplatesCommand) -> Result<ExitCode, String> {
    match command {
        TemplatesCommand::List { team, output } => {
            let templates: Vec<DeploymentTemplateDto> =
                client.get(&query("/templates", &[("team", team)])).await?;
            output::list(
                output,
                &templates,
                &["TEMPLATE", "PARAMETERS", "DESCRIPTION"],
                |t| {
                    let params: Vec<&str> = t.params.iter().map(|p| p.name.as_str()).collect();
                    vec![reference(t), params.join(", "), or_dash(&t.description)]
                },
            );
        }
        TemplatesCommand::Show { template, output } => {
            let template: DeploymentTemplateDto = client.get(&template.path("templates")).await?;
            output::one(output, &template, print_template);
        }
        TemplatesCommand::Save { template, file } => {
            let body = template_request(read_object(&file)?)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let saved: DeploymentTemplateDto =
                client.put(&template.path("templates"), &body).await?;
            println!(
                "template {} saved ({} parameters)",
                reference(&saved),
                saved.params.len()
            );
        }
        TemplatesCommand::Delete { template } => {
            client.delete(&template.path("templates")).await?;
            println!("template {template} deleted");
        }
        TemplatesCommand::Deploy {
            template,
            team,
            set,
            values_file,
            reason,
            wait,
        } => {
            let mut values = match &values_file {
                Some(file) => read_object(file)?,
                None => Map::new(),
            };
            for item in &set {
                let (key, value) = parse_set(item)?;
                values.insert(key, value);
            }
            let body = TemplateAppRequest {
                team,
                values,
                reason,
            };
            let app: AppDto = client
                .post(&format!("{}/apps", template.path("templates")), &body)
                .await?;
            println!(
                "app {} created in team {} from {template}: revision {} rolling out to {} \
                 instances",
                app.name, app.team, app.current_revision, app.replicas
            );
            if wait {
                return wait_for_rollout(client, &app.name, Duration::from_secs(600)).await;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a JSON object from a file.
fn read_object(file: &Path) -> Result<Map<String, Value>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(format!("{}: expected a JSON object", file.display())),
        Err(e) => Err(format!("{}: not JSON: {e}", file.display())),
    }
}

/// What a template file holds, as the server takes it: the fields that only describe a saved
/// template (as `templates show -o json` prints them) are dropped.
fn template_request(mut object: Map<String, Value>) -> Result<TemplateRequest, String> {
    for field in ["team", "name", "created_by", "created_at", "updated_at"] {
        object.remove(field);
    }
    serde_json::from_value(Value::Object(object)).map_err(|e| e.to_string())
}

/// `team/name` of a template.
fn reference(template: &DeploymentTemplateDto) -> String {
    format!("{}/{}", template.team, template.name)
}

/// `KEY=VALUE` of `--set`: the value is a JSON number or boolean when it reads as one, else
/// the text as it is.
fn parse_set(item: &str) -> Result<(String, Value), String> {
    let Some((key, text)) = item.split_once('=').filter(|(key, _)| !key.is_empty()) else {
        return Err(format!("--set {item:?}: expected KEY=VALUE"));
    };
    let value = match serde_json::from_str::<Value>(text) {
        Ok(value @ (Value::Number(_) | Value::Bool(_))) => value,
        _ => Value::String(text.to_string()),
    };
    Ok((key.to_string(), value))
}

fn print_template(template: &DeploymentTemplateDto) {
    let fields = [
        ("template", reference(template)),
        ("description", or_dash(&template.description)),
        ("created by", template.created_by.clone()),
        // Built-ins were never saved: no time.
        (
            "updated",
            time_or_dash(Some(template.updated_at).filter(|&t| t > 0)),
        ),
    ];
    println!("{}\n", output::fields(&fields));
    output::list(
        Format::Table,
        &template.params,
        &["PARAMETER", "KIND", "DEFAULT", "RANGE", "DESCRIPTION"],
        |p| {
            let range = match (p.min, p.max) {
                (None, None) => "-".to_string(),
                (min, max) => format!(
                    "{}..{}",
                    min.map_or(String::new(), |m| m.to_string()),
                    max.map_or(String::new(), |m| m.to_string())
                ),
            };
            vec![
                p.name.clone(),
                p.kind.clone(),
                p.default
                    .as_ref()
                    .map_or("(required)".to_string(), Value::to_string),
                range,
                or_dash(&p.description),
            ]
        },
    );
    println!(
        "\nbody:\n{}",
        serde_json::to_string_pretty(&template.body).unwrap_or_default()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_values_are_typed() {
        let cases = [
            ("replicas=3", Some(("replicas", json!(3)))),
            ("cpu=0.5", Some(("cpu", json!(0.5)))),
            ("public=true", Some(("public", json!(true)))),
            ("name=web", Some(("name", json!("web")))),
            ("path=/healthz", Some(("path", json!("/healthz")))),
            ("empty=", Some(("empty", json!("")))),
            ("nothing=null", Some(("nothing", json!("null")))),
            ("list=[1]", Some(("list", json!("[1]")))),
            ("quoted=\"3\"", Some(("quoted", json!("\"3\"")))),
            ("eq=a=b", Some(("eq", json!("a=b")))),
            ("=3", None),
            ("novalue", None),
        ];
        for (item, want) in cases {
            let got = parse_set(item).ok();
            let want = want.map(|(k, v)| (k.to_string(), v));
            assert_eq!(got, want, "{item}");
        }
    }

    #[test]
    fn template_files() {
        let shown = json!({
            "team": "web", "name": "api", "description": "d", "created_by": "alice",
            "created_at": 1, "updated_at": 2,
            "params": [{"name": "image", "kind": "image", "description": ""}],
            "body": {"image": "${image}"}
        });
        let request = template_request(shown.as_object().unwrap().clone()).unwrap();
        assert_eq!(request.description.as_deref(), Some("d"));
        assert_eq!(request.params.len(), 1);
        let unknown = json!({"params": [], "body": {}, "colour": "red"});
        let error = template_request(unknown.as_object().unwrap().clone()).unwrap_err();
        assert!(error.contains("colour"), "{error}");
    }
}
