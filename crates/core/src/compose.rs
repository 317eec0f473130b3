//! Compose import: a `docker-compose.yml` read into one app per service — image, command,
//! environment (and env files the caller read), the first port, named volumes, `depends_on`,
//! a healthcheck that calls an HTTP URL, `deploy.replicas`, resource limits and placement
//! constraints on node labels, secrets — with every key that does not map named in a note,
//! never dropped in silence. Bad input (an unsupported version, a build-only service, a
//! malformed value) is an error naming the field (`services.web.ports[0]`); no error, no plan.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

use crate::change::AppChange;
use crate::spec::Probe;
use crate::team_secret::SecretRef;
use crate::validate::{ValidationErrors, name_problem};
use crate::volume::{VolumeMount, VolumeScope};

/// Largest compose file read, in bytes.
pub const MAX_COMPOSE_BYTES: usize = 512 * 1024;

/// One service as an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedApp {
    /// The service's name.
    pub service: String,
    /// The app's name: the prefix and the service's name.
    pub name: String,
    /// What the app is made (or changed) with.
    pub change: AppChange,
}

/// What a compose file becomes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposePlan {
    /// In an order where every app comes after those it depends on.
    pub apps: Vec<PlannedApp>,
    /// Every key that does not map, and why (`services.web.networks: …`).
    pub notes: Vec<String>,
}

/// Reads `text` (a compose file) into a plan. `prefix` goes before every app's name;
/// `env_files` holds the contents of the env files the file names, by the path it gives.
pub fn plan(
    text: &str,
    prefix: &str,
    env_files: &BTreeMap<String, String>,
) -> Result<ComposePlan, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if text.len() > MAX_COMPOSE_BYTES {
        errors.push(
            "compose",
            format!("must be at most {MAX_COMPOSE_BYTES} bytes"),
        );
        return Err(errors);
    }
    let document: Value = match serde_norway::from_str(text) {
        Ok(document) => document,
        Err(e) => {
            errors.push("compose", format!("is not YAML: {e}"));
            return Err(errors);
        }
    };
    let Some(top) = document.as_mapping() else {
        errors.push("compose", "must be a mapping with `services`");
        return Err(errors);
    };
    let mut reader = Reader {
        errors,
        notes: Vec::new(),
        prefix: prefix.to_string(),
    };
    let mut services = None;
    for (key, value) in top {
        match key_str(key) {
            "version" => reader.version(value),
            "services" => services = value.as_mapping(),
            "volumes" => {}
            "secrets" => reader.note(
                "secrets",
                "secret values are not imported: create each with `berth secrets create TEAM/NAME < FILE`",
            ),
            "name" => reader.note("name", "the apps are named after their services (and --prefix)"),
            other if other.starts_with("x-") => {}
            other => reader.note(other, "not mapped"),
        }
    }
    let Some(services) = services else {
        reader
            .errors
            .push("services", "is required: a mapping of services");
        return Err(reader.errors);
    };
    let names: BTreeSet<String> = services.keys().map(|k| key_str(k).to_string()).collect();
    let mut apps = Vec::new();
    for (key, service) in services {
        let service_name = key_str(key);
        if let Some(app) = reader.service(service_name, service, &names, env_files) {
            apps.push(app);
        }
    }
    if reader.errors.first().is_some() {
        return Err(reader.errors);
    }
    match dependency_order(apps) {
        Ok(apps) => Ok(ComposePlan {
            apps,
            notes: reader.notes,
        }),
        Err(cycle) => {
            reader.errors.push(
                "services",
                format!("depends_on makes a cycle through {cycle}"),
            );
            Err(reader.errors)
        }
    }
}

/// The env files a compose file's services name (as written), for the caller to read and pass
/// to [`plan`]; none when the text is not a compose file.
pub fn env_file_paths(text: &str) -> Vec<String> {
    let Ok(document) = serde_norway::from_str::<Value>(text) else {
        return Vec::new();
    };
    let mut paths = BTreeSet::new();
    let services = document.get("services").and_then(Value::as_mapping);
    for service in services.into_iter().flat_map(|s| s.values()) {
        match service.get("env_file") {
            Some(Value::String(path)) => {
                paths.insert(path.clone());
            }
            Some(Value::Sequence(items)) => {
                for item in items {
                    let path = item
                        .as_str()
                        .or_else(|| item.get("path").and_then(Value::as_str));
                    if let Some(path) = path {
                        paths.insert(path.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    paths.into_iter().collect()
}

fn key_str(key: &Value) -> &str {
    key.as_str().unwrap_or("")
}

struct Reader {
    errors: ValidationErrors,
    notes: Vec<String>,
    prefix: String,
}

impl Reader {
    fn note(&mut self, field: &str, why: &str) {
        self.notes.push(format!("{field}: {why}"));
    }

    fn version(&mut self, value: &Value) {
        let version = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let major = version.split('.').next().unwrap_or("");
        if !["2", "3"].contains(&major) {
            self.errors.push(
                "version",
                format!(
                    "{version:?} is not supported: Compose files of version 2 or 3 (or none) are"
                ),
            );
        }
    }

    fn service(
        &mut self,
        service: &str,
        value: &Value,
        services: &BTreeSet<String>,
        env_files: &BTreeMap<String, String>,
    ) -> Option<PlannedApp> {
        let at = format!("services.{service}");
        let name = format!("{}{service}", self.prefix);
        if let Some(problem) = name_problem(&name) {
            self.errors
                .push(&at, format!("the app name {name:?} {problem}"));
            return None;
        }
        let Some(fields) = value.as_mapping() else {
            self.errors.push(&at, "must be a mapping");
            return None;
        };
        let mut change = AppChange::default();
        let mut env: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut has_image = false;
        let mut has_build = false;
        let mut ports = None;
        let mut expose = None;
        for (key, value) in fields {
            let key = key_str(key);
            let field = format!("{at}.{key}");
            match key {
                "image" => match value.as_str() {
                    Some(image) => {
                        has_image = true;
                        change.image = Some(image.to_string());
                    }
                    None => self.errors.push(field, "must be an image reference"),
                },
                "build" => has_build = true,
                "command" => change.args = self.words(&field, value),
                "entrypoint" => change.command = self.words(&field, value),
                "environment" => self.environment(&field, value, &mut env),
                "env_file" => self.env_files(&field, value, env_files, &mut env),
                "ports" => ports = Some((field, value)),
                "expose" => expose = Some((field, value)),
                "volumes" => change.volumes = Some(self.volumes(&field, value)),
                "depends_on" => {
                    change.dependencies = Some(self.depends_on(&field, value, services));
                }
                "healthcheck" => self.healthcheck(&field, value, &mut change),
                "deploy" => self.deploy(&field, value, &mut change),
                "scale" => change.replicas = self.count(&field, value),
                "secrets" => change.secrets = Some(self.secrets(&field, value)),
                "labels" => change.labels = Some(self.string_map(&field, value)),
                "stop_grace_period" => {
                    change.stop_grace_ms = self.duration_ms(&field, value);
                }
                "restart" => self.note(
                    &field,
                    "Berth replaces instances that exit or fail their health checks itself",
                ),
                "container_name" | "hostname" => {
                    self.note(
                        &field,
                        "Berth names instances; apps reach each other by app name",
                    );
                }
                "networks" | "network_mode" | "links" => self.note(
                    &field,
                    "not mapped: the apps of a team share one network and reach each other by name",
                ),
                _ => self.note(&field, "not mapped"),
            }
        }
        if !has_image {
            if has_build {
                self.errors.push(
                    format!("{at}.build"),
                    "a build-only service cannot be imported: build its image with a pipeline (or push it to the registry) and give `image`",
                );
            } else {
                self.errors.push(format!("{at}.image"), "is required");
            }
            return None;
        }
        if has_build {
            self.note(
                &format!("{at}.build"),
                "not used: the service's `image` is deployed",
            );
        }
        let port = match (ports, expose) {
            (Some((field, value)), _) => self.first_port(&field, value, true),
            (None, Some((field, value))) => self.first_port(&field, value, false),
            (None, None) => None,
        };
        change.port = port;
        if !env.is_empty() {
            change.env = Some(env);
        }
        Some(PlannedApp {
            service: service.to_string(),
            name,
            change,
        })
    }

    fn words(&mut self, field: &str, value: &Value) -> Option<Vec<String>> {
        match value {
            Value::String(line) => match shlex::split(line) {
                Some(words) => Some(words),
                None => {
                    self.errors.push(field, "has unbalanced quotes");
                    None
                }
            },
            Value::Sequence(items) => items
                .iter()
                .map(scalar)
                .collect::<Option<Vec<String>>>()
                .or_else(|| {
                    self.errors
                        .push(field, "must be a string or a list of strings");
                    None
                }),
            Value::Null => None,
            _ => {
                self.errors
                    .push(field, "must be a string or a list of strings");
                None
            }
        }
    }

    fn environment(
        &mut self,
        field: &str,
        value: &Value,
        env: &mut BTreeMap<String, Option<String>>,
    ) {
        match value {
            Value::Mapping(map) => {
                for (key, value) in map {
                    let key = key_str(key).to_string();
                    match value {
                        Value::Null => self.note(
                            &format!("{field}.{key}"),
                            "no value given (compose would take it from the shell): not set",
                        ),
                        other => match scalar(other) {
                            Some(value) => {
                                env.insert(key, Some(value));
                            }
                            None => self
                                .errors
                                .push(format!("{field}.{key}"), "must be a scalar"),
                        },
                    }
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str().map(|s| s.split_once('=')) {
                        Some(Some((key, value))) => {
                            env.insert(key.to_string(), Some(value.to_string()));
                        }
                        Some(None) => self.note(
                            &format!("{field}[{i}]"),
                            "no value given (compose would take it from the shell): not set",
                        ),
                        None => self
                            .errors
                            .push(format!("{field}[{i}]"), "must be KEY=VALUE"),
                    }
                }
            }
            _ => self
                .errors
                .push(field, "must be a mapping or a list of KEY=VALUE"),
        }
    }

    fn env_files(
        &mut self,
        field: &str,
        value: &Value,
        files: &BTreeMap<String, String>,
        env: &mut BTreeMap<String, Option<String>>,
    ) {
        let paths: Vec<String> = match value {
            Value::String(path) => vec![path.clone()],
            Value::Sequence(items) => items
                .iter()
                .filter_map(|item| match item {
                    Value::String(path) => Some(path.clone()),
                    Value::Mapping(map) => map
                        .get(Value::String("path".into()))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    _ => None,
                })
                .collect(),
            _ => {
                self.errors.push(field, "must be a path or a list of paths");
                return;
            }
        };
        for path in paths {
            let Some(contents) = files.get(&path) else {
                self.note(
                    &format!("{field} {path}"),
                    "not read (only files next to the compose file are, by the CLI): its variables are not set",
                );
                continue;
            };
            for line in contents.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if let Some((key, value)) = line.split_once('=') {
                    let value = value.trim();
                    let unquoted = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                        .unwrap_or(value);
                    // Variables written in the service win over the file's.
                    env.entry(key.trim().to_string())
                        .or_insert_with(|| Some(unquoted.to_string()));
                }
            }
        }
    }

    /// The container port of the first entry: `8080`, `80:8080`, `127.0.0.1:80:8080/tcp`, or
    /// the long form's `target`.
    fn first_port(&mut self, field: &str, value: &Value, published: bool) -> Option<u16> {
        let Some(items) = value.as_sequence() else {
            self.errors.push(field, "must be a list");
            return None;
        };
        let first = items.first()?;
        let target = match first {
            Value::Mapping(map) => map.get(Value::String("target".into())).and_then(scalar),
            other => scalar(other).map(|spec| {
                let spec = spec.split('/').next().unwrap_or("").to_string();
                spec.rsplit(':').next().unwrap_or("").to_string()
            }),
        };
        let port = target
            .as_deref()
            .and_then(|t| t.parse::<u16>().ok())
            .filter(|p| *p > 0);
        if port.is_none() {
            self.errors.push(
                format!("{field}[0]"),
                "is not a port: give CONTAINER or HOST:CONTAINER, e.g. 8080:80",
            );
            return None;
        }
        if items.len() > 1 {
            self.note(
                field,
                "only the first port becomes the app's port (published with its HTTP route); publish others with --tcp-port",
            );
        }
        if published {
            self.note(
                &format!("{field}[0]"),
                "the host port is not kept: the app is reached through its route",
            );
        }
        port
    }

    fn volumes(&mut self, field: &str, value: &Value) -> Vec<VolumeMount> {
        let Some(items) = value.as_sequence() else {
            self.errors.push(field, "must be a list");
            return Vec::new();
        };
        let mut mounts = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let (source, target, read_only) = match item {
                Value::String(spec) => {
                    let mut parts = spec.splitn(3, ':');
                    let first = parts.next().unwrap_or("");
                    match parts.next() {
                        Some(target) => (
                            first.to_string(),
                            target.to_string(),
                            parts
                                .next()
                                .is_some_and(|o| o.split(',').any(|o| o == "ro")),
                        ),
                        None => {
                            self.note(
                                &at,
                                "an anonymous volume is not kept: name it to keep its data",
                            );
                            continue;
                        }
                    }
                }
                Value::Mapping(map) => {
                    let get = |k: &str| map.get(Value::String(k.into())).and_then(scalar);
                    if get("type").is_some_and(|t| t != "volume") {
                        self.note(
                            &at,
                            "only named volumes are mapped (no bind mounts or tmpfs)",
                        );
                        continue;
                    }
                    (
                        get("source").unwrap_or_default(),
                        get("target").unwrap_or_default(),
                        get("read_only").is_some_and(|v| v == "true"),
                    )
                }
                _ => {
                    self.errors.push(at, "must be SOURCE:TARGET or a mapping");
                    continue;
                }
            };
            if source.starts_with(['.', '/', '~']) {
                self.note(
                    &at,
                    "a bind mount of a host path is not mapped (Berth never mounts host paths): use a named volume",
                );
                continue;
            }
            mounts.push(VolumeMount {
                name: source,
                path: target,
                scope: VolumeScope::Shared,
                read_only,
            });
        }
        mounts
    }

    fn depends_on(
        &mut self,
        field: &str,
        value: &Value,
        services: &BTreeSet<String>,
    ) -> Vec<String> {
        let named: Vec<String> = match value {
            Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
            Value::Mapping(map) => map.keys().map(|k| key_str(k).to_string()).collect(),
            _ => {
                self.errors
                    .push(field, "must be a list or a mapping of services");
                return Vec::new();
            }
        };
        let mut dependencies = Vec::new();
        for service in named {
            if services.contains(&service) {
                dependencies.push(format!("{}{service}", self.prefix));
            } else {
                self.errors
                    .push(field, format!("{service} is not a service of this file"));
            }
        }
        if matches!(value, Value::Mapping(_)) {
            self.note(
                field,
                "conditions are not kept: every app starts at once and reaches the others by name when they are ready",
            );
        }
        dependencies
    }

    /// A healthcheck whose test calls `http://…:PORT/PATH` (curl, wget) becomes an HTTP probe
    /// for readiness and liveness, its timings kept; any other test is noted.
    fn healthcheck(&mut self, field: &str, value: &Value, change: &mut AppChange) {
        let Some(map) = value.as_mapping() else {
            self.errors.push(field, "must be a mapping");
            return;
        };
        let get = |k: &str| map.get(Value::String(k.into()));
        if get("disable").and_then(Value::as_bool) == Some(true) {
            change.readiness = Some(None);
            change.liveness = Some(None);
            return;
        }
        let test = match get("test") {
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(scalar)
                .collect::<Vec<_>>()
                .join(" "),
            Some(other) => scalar(other).unwrap_or_default(),
            None => String::new(),
        };
        let Some((port, path)) = http_target(&test) else {
            self.note(
                &format!("{field}.test"),
                "not mapped: only a test calling an http:// URL becomes an HTTP probe",
            );
            return;
        };
        let mut probe = Probe::http(path);
        probe.port = port;
        if let Some(ms) =
            get("interval").and_then(|v| self.duration_ms(&format!("{field}.interval"), v))
        {
            probe.period_ms = ms;
        }
        if let Some(ms) =
            get("timeout").and_then(|v| self.duration_ms(&format!("{field}.timeout"), v))
        {
            probe.timeout_ms = ms;
        }
        if let Some(ms) =
            get("start_period").and_then(|v| self.duration_ms(&format!("{field}.start_period"), v))
        {
            probe.initial_delay_ms = ms;
        }
        if let Some(retries) =
            get("retries").and_then(|v| self.count(&format!("{field}.retries"), v))
        {
            probe.failure_threshold = retries;
        }
        change.readiness = Some(Some(probe.clone()));
        change.liveness = Some(Some(probe));
    }

    fn deploy(&mut self, field: &str, value: &Value, change: &mut AppChange) {
        let Some(map) = value.as_mapping() else {
            self.errors.push(field, "must be a mapping");
            return;
        };
        for (key, value) in map {
            let key = key_str(key);
            let at = format!("{field}.{key}");
            match key {
                "replicas" => change.replicas = self.count(&at, value),
                "resources" => {
                    let limits = value
                        .as_mapping()
                        .and_then(|m| m.get(Value::String("limits".into())))
                        .and_then(Value::as_mapping);
                    for (key, value) in limits.into_iter().flatten() {
                        let at = format!("{at}.limits.{}", key_str(key));
                        match key_str(key) {
                            "cpus" => match scalar(value).and_then(|v| v.parse::<f64>().ok()) {
                                Some(cores) if cores > 0.0 && cores.is_finite() => {
                                    change.cpu_millis = Some(Some((cores * 1000.0).round() as u64));
                                }
                                _ => self.errors.push(at, "must be a number of cores, e.g. 0.5"),
                            },
                            "memory" => match scalar(value).as_deref().and_then(parse_bytes) {
                                Some(bytes) => change.memory_bytes = Some(Some(bytes)),
                                None => self.errors.push(at, "must be a size such as 512M or 1G"),
                            },
                            _ => self.note(&at, "not mapped"),
                        }
                    }
                    if value
                        .as_mapping()
                        .is_some_and(|m| m.contains_key(Value::String("reservations".into())))
                    {
                        self.note(
                            &format!("{at}.reservations"),
                            "not mapped: Berth's quota counts limits",
                        );
                    }
                }
                "placement" => self.placement(&at, value, change),
                _ => self.note(&at, "not mapped"),
            }
        }
    }

    /// `deploy.placement.constraints` on node labels (`node.labels.disk == ssd`) become node
    /// constraints; others (`node.role`, `node.hostname`…) and preferences are named as not
    /// mapped.
    fn placement(&mut self, field: &str, value: &Value, change: &mut AppChange) {
        let Some(map) = value.as_mapping() else {
            self.errors.push(field, "must be a mapping");
            return;
        };
        for (key, value) in map {
            let at = format!("{field}.{}", key_str(key));
            if key_str(key) != "constraints" {
                self.note(&at, "not mapped");
                continue;
            }
            let Some(items) = value.as_sequence() else {
                self.errors.push(at, "must be a list");
                continue;
            };
            let mut constraints = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{at}[{i}]");
                let text = scalar(item).unwrap_or_default();
                match text.trim().strip_prefix("node.labels.") {
                    Some(on_label) => match crate::placement::NodeConstraint::parse(on_label) {
                        Ok(constraint) => constraints.push(constraint),
                        Err(problem) => self.errors.push(at, problem),
                    },
                    None => self.note(&at, "not mapped: Berth places by node labels only"),
                }
            }
            if !constraints.is_empty() {
                change.node_constraints = Some(constraints);
            }
        }
    }

    fn secrets(&mut self, field: &str, value: &Value) -> Vec<SecretRef> {
        let Some(items) = value.as_sequence() else {
            self.errors.push(field, "must be a list");
            return Vec::new();
        };
        let mut refs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let (name, target) = match item {
                Value::Mapping(map) => {
                    let get = |k: &str| map.get(Value::String(k.into())).and_then(scalar);
                    (get("source").unwrap_or_default(), get("target"))
                }
                other => (scalar(other).unwrap_or_default(), None),
            };
            if name.is_empty() {
                self.errors
                    .push(format!("{field}[{i}]"), "must name a secret");
                continue;
            }
            let path = match target {
                Some(target) if target.starts_with('/') => target,
                Some(target) => format!("/run/secrets/{target}"),
                None => format!("/run/secrets/{name}"),
            };
            refs.push(SecretRef {
                name,
                env: None,
                path: Some(path),
                version: 0,
            });
        }
        refs
    }

    fn string_map(&mut self, field: &str, value: &Value) -> BTreeMap<String, Option<String>> {
        match value {
            Value::Mapping(map) => map
                .iter()
                .map(|(k, v)| (key_str(k).to_string(), scalar(v)))
                .collect(),
            Value::Sequence(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|item| match item.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (item.to_string(), Some(String::new())),
                })
                .collect(),
            _ => {
                self.errors.push(field, "must be a mapping or a list");
                BTreeMap::new()
            }
        }
    }

    fn count(&mut self, field: &str, value: &Value) -> Option<u32> {
        match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                self.errors.push(field, "must be a whole number");
                None
            }
        }
    }

    fn duration_ms(&mut self, field: &str, value: &Value) -> Option<u64> {
        match scalar(value).as_deref().and_then(parse_duration_ms) {
            Some(ms) => Some(ms),
            None => {
                self.errors
                    .push(field, "must be a duration such as 30s or 1m30s");
                None
            }
        }
    }
}

/// A scalar's text (strings, numbers, booleans).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The port (when not 80) and path of the first `http://` URL in a healthcheck's test.
fn http_target(test: &str) -> Option<(Option<u16>, String)> {
    let start = test.find("http://")?;
    let url = test[start + "http://".len()..]
        .split(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '|' || c == ';')
        .next()?;
    let (authority, path) = match url.find('/') {
        Some(i) => (&url[..i], url[i..].to_string()),
        None => (url, "/".to_string()),
    };
    let port = match authority.rsplit_once(':') {
        Some((_, port)) => Some(port.parse().ok()?),
        None => Some(80),
    };
    Some((port, path))
}

/// Compose's byte values: a number with `b`, `k`, `m` or `g` (binary units, `kb`/`mb`/`gb`
/// alike, any case).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    let number: f64 = number.parse().ok()?;
    (number >= 0.0 && number.is_finite()).then(|| (number * multiplier as f64).round() as u64)
}

/// Compose's durations: `1h2m3s`, `30s`, `500ms`, `1.5s`, or a bare number of seconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return seconds.checked_mul(1000);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (number, tail) = rest.split_at(split);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let number: f64 = number.parse().ok()?;
        let ms = match unit {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            _ => return None,
        };
        total += number * ms;
        rest = next;
    }
    (total.is_finite() && total >= 0.0).then_some(total.round() as u64)
}

/// `apps` ordered so each comes after the apps it depends on, or the name of one app on a
/// cycle.
fn dependency_order(apps: Vec<PlannedApp>) -> Result<Vec<PlannedApp>, String> {
    let mut pending = apps;
    let mut ordered: Vec<PlannedApp> = Vec::new();
    while !pending.is_empty() {
        let placed: BTreeSet<String> = ordered.iter().map(|a| a.name.clone()).collect();
        let ready = pending.iter().position(|app| {
            app.change
                .dependencies
                .iter()
                .flatten()
                .all(|d| placed.contains(d))
        });
        match ready {
            Some(i) => ordered.push(pending.remove(i)),
            None => return Err(pending[0].service.clone()),
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL_SYSTEM: &str = r#"
version: "3.8"
services:
  web:
    image: registry.local/shop/web:1.2
    command: ["serve", "--port", "8080"]
    ports: ["80:8080"]
    environment:
      CACHE_URL: redis://cache:6379
      MODE: production
    env_file: web.env
    depends_on: [cache, worker]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:8080/healthz"]
      interval: 10s
      timeout: 2s
      retries: 5
      start_period: 1m30s
    deploy:
      replicas: 3
      resources:
        limits: {cpus: "0.5", memory: 256M}
      placement:
        constraints: ["node.labels.disk == ssd", "node.role == worker"]
    volumes: ["uploads:/srv/uploads", "./static:/srv/static:ro"]
    secrets: [db-password]
    restart: always
    networks: [front]
  worker:
    image: registry.local/shop/worker:1.2
    command: worker --queue jobs
    depends_on:
      cache: {condition: service_healthy}
    environment: ["QUEUE=jobs", "FROM_SHELL"]
  cache:
    image: redis:7
    expose: ["6379"]
volumes:
  uploads: {}
networks:
  front: {}
x-shared: {a: 1}
"#;

    #[test]
    fn a_small_system_becomes_three_apps_in_dependency_order() {
        let files = BTreeMap::from([(
            "web.env".to_string(),
            "# comment\nFROM_FILE=\"yes\"\nMODE=overridden\n".to_string(),
        )]);
        let plan = plan(SMALL_SYSTEM, "shop-", &files).unwrap();
        let names: Vec<&str> = plan.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["shop-cache", "shop-worker", "shop-web"]);
        let web = &plan.apps[2].change;
        assert_eq!(web.image.as_deref(), Some("registry.local/shop/web:1.2"));
        assert_eq!(
            web.args,
            Some(vec!["serve".into(), "--port".into(), "8080".into()])
        );
        assert_eq!(web.port, Some(8080));
        let env = web.env.clone().unwrap();
        assert_eq!(
            env["MODE"],
            Some("production".into()),
            "the service's own value wins"
        );
        assert_eq!(env["FROM_FILE"], Some("yes".into()));
        assert_eq!(
            web.dependencies,
            Some(vec!["shop-cache".into(), "shop-worker".into()])
        );
        let probe = web.readiness.clone().unwrap().unwrap();
        assert_eq!(
            (
                probe.path.as_str(),
                probe.port,
                probe.period_ms,
                probe.timeout_ms
            ),
            ("/healthz", Some(8080), 10_000, 2_000)
        );
        assert_eq!(
            (probe.failure_threshold, probe.initial_delay_ms),
            (5, 90_000)
        );
        assert_eq!(web.replicas, Some(3));
        assert_eq!(
            web.node_constraints,
            Some(vec![
                crate::placement::NodeConstraint::parse("disk==ssd").unwrap()
            ])
        );
        assert_eq!(web.cpu_millis, Some(Some(500)));
        assert_eq!(web.memory_bytes, Some(Some(256 << 20)));
        assert_eq!(
            web.volumes,
            Some(vec![VolumeMount::shared("uploads", "/srv/uploads")])
        );
        let secret = &web.secrets.as_ref().unwrap()[0];
        assert_eq!(
            (secret.name.as_str(), secret.path.as_deref()),
            ("db-password", Some("/run/secrets/db-password"))
        );
        let worker = &plan.apps[1].change;
        assert_eq!(
            worker.args,
            Some(vec!["worker".into(), "--queue".into(), "jobs".into()])
        );
        assert_eq!(worker.env.clone().unwrap()["QUEUE"], Some("jobs".into()));
        assert_eq!(plan.apps[0].change.port, Some(6379));
        // Every key that does not map is named.
        for noted in [
            "services.web.volumes[1]: a bind mount",
            "services.web.restart:",
            "services.web.networks:",
            "services.web.ports[0]: the host port",
            "services.web.deploy.placement.constraints[1]: not mapped",
            "services.worker.depends_on: conditions",
            "services.worker.environment[1]: no value",
            "networks: not mapped",
        ] {
            assert!(
                plan.notes.iter().any(|n| n.starts_with(noted)),
                "{noted}: {:#?}",
                plan.notes
            );
        }
        assert!(!plan.notes.iter().any(|n| n.starts_with("x-shared")));
        assert_eq!(env_file_paths(SMALL_SYSTEM), ["web.env"]);
        assert!(env_file_paths("not: [yaml").is_empty());
    }

    #[test]
    fn bad_files_are_refused_naming_the_field() {
        let cases = [
            ("version: '1'\nservices: {a: {image: x}}", "version"),
            ("services: {a: {build: .}}", "services.a.build"),
            ("services: {a: {command: x}}", "services.a.image"),
            (
                "services: {a: {image: x, ports: [abc]}}",
                "services.a.ports[0]",
            ),
            (
                "services: {a: {image: x, depends_on: [b]}}",
                "services.a.depends_on",
            ),
            (
                "services: {a: {image: x, deploy: {replicas: many}}}",
                "services.a.deploy.replicas",
            ),
            (
                "services: {a: {image: x, healthcheck: {test: 'curl http://x/', interval: soon}}}",
                "services.a.healthcheck.interval",
            ),
            ("services: {A_B: {image: x}}", "services.A_B"),
            (
                "services: {a: {image: x, depends_on: [b]}, b: {image: y, depends_on: [a]}}",
                "services",
            ),
            ("just text", "compose"),
            ("image: x", "services"),
            ("services: [", "compose"),
        ];
        for (text, field) in cases {
            let errors = plan(text, "", &BTreeMap::new()).expect_err(text);
            assert_eq!(errors.first().unwrap().field, field, "{text}: {errors}");
        }
    }

    #[test]
    fn units_read_like_compose() {
        for (text, want) in [
            ("512M", Some(512 << 20)),
            ("1g", Some(1 << 30)),
            ("100kb", Some(102_400)),
            ("42", Some(42)),
            ("1x", None),
        ] {
            assert_eq!(parse_bytes(text), want, "{text}");
        }
        for (text, want) in [
            ("30s", Some(30_000)),
            ("1m30s", Some(90_000)),
            ("500ms", Some(500)),
            ("1.5s", Some(1500)),
            ("2h", Some(7_200_000)),
            ("10", Some(10_000)),
            ("soon", None),
            ("5x", None),
        ] {
            assert_eq!(parse_duration_ms(text), want, "{text}");
        }
        assert_eq!(
            http_target("curl -f http://localhost:8080/healthz || exit 1"),
            Some((Some(8080), "/healthz".into()))
        );
        assert_eq!(
            http_target("wget -q -O- http://127.0.0.1/"),
            Some((Some(80), "/".into()))
        );
        assert_eq!(http_target("pg_isready"), None);
    }
}
