//! Validation of names and specs. Every error names the field (as a JSON path) it is about.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::spec::{AppSpec, Probe, ProbeKind, Template};

/// One bad field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON path of the field, e.g. `template.readiness.period_ms`.
    pub field: String,
    pub message: String,
}

/// All bad fields of one input; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub(crate) fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The first bad field (the one an error message leads with).
    pub fn first(&self) -> Option<&FieldError> {
        self.0.first()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}

/// Longest app name: it becomes part of container and DNS names.
pub const MAX_NAME_LEN: usize = 40;
/// Most instances one app may ask for.
pub const MAX_REPLICAS: u32 = 500;
/// Docker refuses memory limits below 6 MiB.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;
/// Prefix reserved for the labels and env vars Berth sets itself.
pub const RESERVED_LABEL_PREFIX: &str = "berth.";
pub const RESERVED_ENV_PREFIX: &str = "BERTH_";

/// Why a name is not a valid app/team name, or `None` when it is.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("may contain only lowercase letters, digits and '-'".into());
    }
    if !name.as_bytes()[0].is_ascii_lowercase() {
        return Some("must start with a lowercase letter".into());
    }
    if name.ends_with('-') {
        return Some("must not end with '-'".into());
    }
    None
}

/// Validates an app name (a DNS label of at most [`MAX_NAME_LEN`] characters).
pub fn validate_name(field: &str, name: &str) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if let Some(problem) = name_problem(name) {
        errors.push(field, problem);
    }
    errors.into_result()
}

/// Why an image reference is malformed, or `None`. Checks the shape only; whether the
/// image exists is found out when the rollout pulls it.
pub fn image_problem(image: &str) -> Option<String> {
    if image.is_empty() {
        return Some("must not be empty".into());
    }
    if image.len() > 512 {
        return Some("must be at most 512 characters".into());
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain whitespace".into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-/:@+".contains(c);
    if !image.chars().all(allowed) {
        return Some("may contain only letters, digits and . _ - / : @ +".into());
    }
    if image.starts_with(['/', ':', '@', '.', '-']) || image.ends_with(['/', ':', '@']) {
        return Some("is not a valid image reference".into());
    }
    if image.contains("//") || image.contains("..") {
        return Some("is not a valid image reference".into());
    }
    None
}

/// Shortest time between two probes.
pub const MIN_PROBE_PERIOD_MS: u64 = 100;
/// Longest time between two probes (an hour).
pub const MAX_PROBE_PERIOD_MS: u64 = 3_600_000;
/// Shortest probe timeout.
pub const MIN_PROBE_TIMEOUT_MS: u64 = 50;
/// Most consecutive successes or failures a probe may wait for.
pub const MAX_PROBE_THRESHOLD: u32 = 100;

fn validate_probe(errors: &mut ValidationErrors, field: &str, probe: &Probe) {
    // A TCP probe sends no request: its path is kept (switching back to HTTP finds it) but
    // not judged.
    if probe.kind == ProbeKind::Http {
        if !probe.path.starts_with('/') {
            errors.push(format!("{field}.path"), "must start with '/'");
        } else if probe
            .path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            errors.push(format!("{field}.path"), "must not contain whitespace");
        } else if probe.path.len() > 1024 {
            errors.push(format!("{field}.path"), "must be at most 1024 characters");
        }
    }
    if probe.port == Some(0) {
        errors.push(format!("{field}.port"), "must be between 1 and 65535");
    }
    let period_ok = (MIN_PROBE_PERIOD_MS..=MAX_PROBE_PERIOD_MS).contains(&probe.period_ms);
    if !period_ok {
        errors.push(
            format!("{field}.period_ms"),
            format!("must be between {MIN_PROBE_PERIOD_MS} and {MAX_PROBE_PERIOD_MS}"),
        );
    }
    if probe.timeout_ms < MIN_PROBE_TIMEOUT_MS {
        errors.push(
            format!("{field}.timeout_ms"),
            format!("must be at least {MIN_PROBE_TIMEOUT_MS}"),
        );
    } else if period_ok && probe.timeout_ms > probe.period_ms {
        // Probes of one kind never overlap: a timeout longer than the period would silently
        // stretch the period.
        errors.push(
            format!("{field}.timeout_ms"),
            format!(
                "must not exceed period_ms ({}): a probe ends before the next one starts",
                probe.period_ms
            ),
        );
    }
    if !(1..=MAX_PROBE_THRESHOLD).contains(&probe.failure_threshold) {
        errors.push(
            format!("{field}.failure_threshold"),
            format!("must be between 1 and {MAX_PROBE_THRESHOLD}"),
        );
    }
    if !(1..=MAX_PROBE_THRESHOLD).contains(&probe.success_threshold) {
        errors.push(
            format!("{field}.success_threshold"),
            format!("must be between 1 and {MAX_PROBE_THRESHOLD}"),
        );
    }
    if probe.initial_delay_ms > MAX_PROBE_PERIOD_MS {
        errors.push(
            format!("{field}.initial_delay_ms"),
            format!("must be at most {MAX_PROBE_PERIOD_MS}"),
        );
    }
}

pub fn validate_env_key(key: &str) -> Option<&'static str> {
    let mut chars = key.chars();
    match chars.next() {
        None => return Some("environment variable names must not be empty"),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            return Some("environment variable names must start with a letter or '_'");
        }
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some("environment variable names may contain only letters, digits and '_'");
    }
    if key.starts_with(RESERVED_ENV_PREFIX) {
        return Some("environment variable names starting with BERTH_ are reserved");
    }
    None
}

/// Validates the revisioned template; `prefix` is the JSON path it sits at.
pub fn validate_template(errors: &mut ValidationErrors, prefix: &str, t: &Template) {
    if let Some(problem) = image_problem(&t.image) {
        errors.push(format!("{prefix}.image"), problem);
    }
    if t.port == 0 {
        errors.push(format!("{prefix}.port"), "must be between 1 and 65535");
    }
    for (key, value) in &t.env {
        if let Some(problem) = validate_env_key(key) {
            errors.push(format!("{prefix}.env.{key}"), problem);
        } else if value.contains('\0') {
            errors.push(format!("{prefix}.env.{key}"), "must not contain NUL bytes");
        }
    }
    for (i, part) in t.command.iter().chain(t.args.iter()).enumerate() {
        if part.contains('\0') {
            let (field, index) = if i < t.command.len() {
                ("command", i)
            } else {
                ("args", i - t.command.len())
            };
            errors.push(
                format!("{prefix}.{field}[{index}]"),
                "must not contain NUL bytes",
            );
        }
    }
    if let Some(cpu) = t.resources.cpu_millis
        && !(10..=256_000).contains(&cpu)
    {
        errors.push(
            format!("{prefix}.resources.cpu_millis"),
            "must be between 10 and 256000",
        );
    }
    if let Some(memory) = t.resources.memory_bytes
        && memory < MIN_MEMORY_BYTES
    {
        errors.push(
            format!("{prefix}.resources.memory_bytes"),
            "must be at least 6291456 (6 MiB)",
        );
    }
    if let Some(probe) = &t.readiness {
        validate_probe(errors, &format!("{prefix}.readiness"), probe);
    }
    if let Some(probe) = &t.liveness {
        validate_probe(errors, &format!("{prefix}.liveness"), probe);
    }
    if t.stop_grace_ms > 600_000 {
        errors.push(format!("{prefix}.stop_grace_ms"), "must be at most 600000");
    }
    crate::volume::validate_mounts(errors, &format!("{prefix}.volumes"), &t.volumes);
    crate::placement::validate_constraints(
        errors,
        &format!("{prefix}.node_constraints"),
        &t.node_constraints,
    );
    crate::team_secret::validate_refs(errors, &format!("{prefix}.secrets"), &t.secrets, &t.env);
    for key in &t.sensitive_env {
        if !t.env.contains_key(key) {
            errors.push(
                format!("{prefix}.sensitive_env"),
                format!("{key} is not an environment variable of the app"),
            );
        }
    }
    for key in t.labels.keys() {
        if key.is_empty() || key.len() > 128 || key.chars().any(|c| c.is_whitespace() || c == '=') {
            errors.push(
                format!("{prefix}.labels.{key}"),
                "label keys must be 1-128 characters without whitespace or '='",
            );
        } else if key.starts_with(RESERVED_LABEL_PREFIX) {
            errors.push(
                format!("{prefix}.labels.{key}"),
                "label keys starting with 'berth.' are reserved",
            );
        }
    }
}

/// Validates a whole app spec for the app called `app_name`.
pub fn validate_spec(app_name: &str, spec: &AppSpec) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    validate_template(&mut errors, "template", &spec.template);
    if spec.replicas > MAX_REPLICAS {
        errors.push("replicas", format!("must be at most {MAX_REPLICAS}"));
    }
    let strategy = &spec.strategy;
    let recreate = strategy.kind == crate::spec::RolloutKind::Recreate;
    if recreate && strategy.canary.is_some() {
        errors.push(
            "strategy.canary",
            "a canary runs beside the old revision, which a recreate rollout stops first: use one or the other",
        );
    }
    if !recreate && strategy.max_surge == 0 && strategy.max_unavailable == 0 {
        errors.push(
            "strategy.max_surge",
            "max_surge and max_unavailable must not both be 0",
        );
    }
    if strategy.max_surge > MAX_REPLICAS {
        errors.push(
            "strategy.max_surge",
            format!("must be at most {MAX_REPLICAS}"),
        );
    }
    if strategy.max_unavailable > MAX_REPLICAS {
        errors.push(
            "strategy.max_unavailable",
            format!("must be at most {MAX_REPLICAS}"),
        );
    }
    if strategy.min_ready_ms > 3_600_000 {
        errors.push("strategy.min_ready_ms", "must be at most 3600000");
    }
    if !(1_000..=86_400_000).contains(&strategy.progress_deadline_ms) {
        errors.push(
            "strategy.progress_deadline_ms",
            "must be between 1000 and 86400000",
        );
    }
    if let Some(canary) = &strategy.canary {
        if let Err((field, problem)) = canary.validate() {
            errors.push(field, problem);
        } else if strategy.max_surge == 0 {
            errors.push(
                "strategy.canary",
                "a canary runs on one extra instance: it needs max_surge of at least 1",
            );
        }
    }
    if let Some(problem) = spec
        .idle_timeout_secs
        .and_then(crate::idle::timeout_problem)
    {
        errors.push("idle_timeout_seconds", problem);
    }
    for (i, dep) in spec.dependencies.iter().enumerate() {
        if let Some(problem) = name_problem(dep) {
            errors.push(format!("dependencies[{i}]"), problem);
        } else if dep == app_name {
            errors.push(
                format!("dependencies[{i}]"),
                "an app cannot depend on itself",
            );
        } else if spec.dependencies[..i].contains(dep) {
            errors.push(format!("dependencies[{i}]"), "is listed twice");
        }
    }
    errors.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases = [
            ("web", None),
            ("web-2", None),
            ("a", None),
            ("", Some("must not be empty")),
            (
                "Web",
                Some("may contain only lowercase letters, digits and '-'"),
            ),
            (
                "web_1",
                Some("may contain only lowercase letters, digits and '-'"),
            ),
            ("1web", Some("must start with a lowercase letter")),
            ("-web", Some("must start with a lowercase letter")),
            ("web-", Some("must not end with '-'")),
            (
                "../etc",
                Some("may contain only lowercase letters, digits and '-'"),
            ),
            (&"a".repeat(41), Some("must be at most 40 characters")),
        ];
        for (name, want) in cases {
            assert_eq!(name_problem(name).as_deref(), want, "name {name:?}");
        }
    }

    #[test]
    fn images() {
        let ok = [
            "busybox",
            "berth-testapp:latest",
            "127.0.0.1:7700/team/app:v1",
            "repo@sha256:abc",
            "a/b/c:1.0-rc+1",
        ];
        for image in ok {
            assert_eq!(image_problem(image), None, "image {image:?}");
        }
        let bad = [
            "", " busybox", "bus box", "img:", "/abs", "a//b", "a/../b", "a\nb", "ré", "a;rm",
        ];
        for image in bad {
            assert!(
                image_problem(image).is_some(),
                "image {image:?} should be refused"
            );
        }
    }

    fn spec_with(edit: impl FnOnce(&mut AppSpec)) -> AppSpec {
        let mut spec = AppSpec::default();
        spec.template.image = "berth-testapp:latest".into();
        edit(&mut spec);
        spec
    }

    #[test]
    fn spec_fields_are_named() {
        let cases: Vec<(AppSpec, Option<&str>)> = vec![
            (spec_with(|_| {}), None),
            (
                spec_with(|s| s.template.image.clear()),
                Some("template.image"),
            ),
            (spec_with(|s| s.template.port = 0), Some("template.port")),
            (spec_with(|s| s.replicas = 501), Some("replicas")),
            (
                spec_with(|s| s.idle_timeout_secs = Some(5)),
                Some("idle_timeout_seconds"),
            ),
            (spec_with(|s| s.idle_timeout_secs = Some(900)), None),
            (
                spec_with(|s| {
                    s.template
                        .env
                        .insert("1X".into(), "v".into())
                        .map(|_| ())
                        .unwrap_or(())
                }),
                Some("template.env.1X"),
            ),
            (
                spec_with(|s| {
                    s.template
                        .env
                        .insert("BERTH_APP".into(), "v".into())
                        .map(|_| ())
                        .unwrap_or(())
                }),
                Some("template.env.BERTH_APP"),
            ),
            (
                spec_with(|s| s.template.readiness = Some(Probe::http("healthz"))),
                Some("template.readiness.path"),
            ),
            (
                spec_with(|s| {
                    s.template.liveness = Some(Probe {
                        period_ms: 10,
                        ..Probe::default()
                    })
                }),
                Some("template.liveness.period_ms"),
            ),
            (
                spec_with(|s| {
                    s.template.readiness = Some(Probe {
                        failure_threshold: 0,
                        ..Probe::default()
                    })
                }),
                Some("template.readiness.failure_threshold"),
            ),
            (
                spec_with(|s| s.template.resources.cpu_millis = Some(1)),
                Some("template.resources.cpu_millis"),
            ),
            (
                spec_with(|s| s.template.resources.memory_bytes = Some(1024)),
                Some("template.resources.memory_bytes"),
            ),
            (
                spec_with(|s| {
                    s.strategy.max_surge = 0;
                    s.strategy.max_unavailable = 0
                }),
                Some("strategy.max_surge"),
            ),
            (
                spec_with(|s| s.strategy.progress_deadline_ms = 10),
                Some("strategy.progress_deadline_ms"),
            ),
            (
                // Recreate needs no budget: everything old stops first.
                spec_with(|s| {
                    s.strategy.kind = crate::spec::RolloutKind::Recreate;
                    s.strategy.max_surge = 0;
                    s.strategy.max_unavailable = 0
                }),
                None,
            ),
            (
                spec_with(|s| {
                    s.strategy.kind = crate::spec::RolloutKind::Recreate;
                    s.strategy.canary = Some(crate::canary::Canary {
                        weight_percent: 10,
                        header: None,
                        duration_ms: 60_000,
                    })
                }),
                Some("strategy.canary"),
            ),
            (
                spec_with(|s| {
                    s.strategy.canary = Some(crate::canary::Canary {
                        weight_percent: 0,
                        header: None,
                        duration_ms: 60_000,
                    })
                }),
                Some("strategy.canary.weight_percent"),
            ),
            (
                spec_with(|s| {
                    s.strategy.max_surge = 0;
                    s.strategy.max_unavailable = 1;
                    s.strategy.canary = Some(crate::canary::Canary {
                        weight_percent: 10,
                        header: None,
                        duration_ms: 60_000,
                    })
                }),
                Some("strategy.canary"),
            ),
            (
                spec_with(|s| s.dependencies = vec!["web".into()]),
                Some("dependencies[0]"),
            ),
            (
                spec_with(|s| s.dependencies = vec!["db".into(), "db".into()]),
                Some("dependencies[1]"),
            ),
            (
                spec_with(|s| s.dependencies = vec!["DB".into()]),
                Some("dependencies[0]"),
            ),
            (
                spec_with(|s| {
                    s.template.labels.insert("berth.app".into(), "x".into());
                }),
                Some("template.labels.berth.app"),
            ),
            (
                spec_with(|s| s.template.command = vec!["a\0b".into()]),
                Some("template.command[0]"),
            ),
            (
                spec_with(|s| {
                    s.template.command = vec!["ok".into()];
                    s.template.args = vec!["x".into(), "\0".into()]
                }),
                Some("template.args[1]"),
            ),
        ];
        for (spec, want) in cases {
            let got = validate_spec("web", &spec)
                .err()
                .map(|e| e.first().unwrap().field.clone());
            assert_eq!(got.as_deref(), want, "spec {spec:?}");
        }
    }

    #[test]
    fn probe_settings_are_checked() {
        let probe = |edit: fn(&mut Probe)| {
            let mut probe = Probe::default();
            edit(&mut probe);
            probe
        };
        // (probe, the first bad field under `template.readiness`)
        let cases: Vec<(Probe, Option<&str>)> = vec![
            (Probe::default(), None),
            (Probe::tcp(), None),
            (probe(|p| p.path = "healthz".into()), Some("path")),
            (probe(|p| p.path = "/a b".into()), Some("path")),
            (
                probe(|p| p.path = format!("/{}", "a".repeat(1024))),
                Some("path"),
            ),
            // A TCP probe sends no request: its path does not matter.
            (
                probe(|p| {
                    p.kind = ProbeKind::Tcp;
                    p.path = "not-a-path".into()
                }),
                None,
            ),
            (probe(|p| p.port = Some(0)), Some("port")),
            (probe(|p| p.port = Some(65535)), None),
            (probe(|p| p.period_ms = 99), Some("period_ms")),
            (probe(|p| p.period_ms = 3_600_001), Some("period_ms")),
            (
                probe(|p| {
                    p.period_ms = 100;
                    p.timeout_ms = 100
                }),
                None,
            ),
            (probe(|p| p.timeout_ms = 49), Some("timeout_ms")),
            (probe(|p| p.timeout_ms = 1_001), Some("timeout_ms")),
            (
                probe(|p| {
                    p.period_ms = 10_000;
                    p.timeout_ms = 5_000
                }),
                None,
            ),
            (
                probe(|p| p.failure_threshold = 0),
                Some("failure_threshold"),
            ),
            (
                probe(|p| p.failure_threshold = 101),
                Some("failure_threshold"),
            ),
            (
                probe(|p| p.success_threshold = 0),
                Some("success_threshold"),
            ),
            (probe(|p| p.success_threshold = 100), None),
            (probe(|p| p.initial_delay_ms = 3_600_000), None),
            (
                probe(|p| p.initial_delay_ms = 3_600_001),
                Some("initial_delay_ms"),
            ),
        ];
        for (probe, want) in cases {
            for kind in ["readiness", "liveness"] {
                let spec = spec_with(|s| {
                    if kind == "readiness" {
                        s.template.readiness = Some(probe.clone());
                    } else {
                        s.template.liveness = Some(probe.clone());
                    }
                });
                let got = validate_spec("web", &spec)
                    .err()
                    .map(|e| e.first().unwrap().field.clone());
                let want = want.map(|field| format!("template.{kind}.{field}"));
                assert_eq!(got, want, "{probe:?}");
            }
        }
    }
}
