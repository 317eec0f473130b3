//! Applying an [`AppChanges`] request to an app's spec (create and deploy share this).

use berth_core::{AppSpec, Probe};

use crate::dto::AppChanges;

/// Applies every field the request sets to `spec`; what it omits stays as it is.
pub fn apply(changes: &AppChanges, spec: &mut AppSpec) {
    let t = &mut spec.template;
    if let Some(image) = &changes.image {
        t.image = image.clone();
    }
    if let Some(command) = &changes.command {
        t.command = command.clone();
    }
    if let Some(args) = &changes.args {
        t.args = args.clone();
    }
    if let Some(env) = &changes.env {
        merge(&mut t.env, env);
    }
    if let Some(labels) = &changes.labels {
        merge(&mut t.labels, labels);
    }
    if let Some(port) = changes.port {
        t.port = port;
    }
    if let Some(cpu) = changes.cpu_millis {
        t.resources.cpu_millis = (cpu != 0).then_some(cpu);
    }
    if let Some(memory) = changes.memory_bytes {
        t.resources.memory_bytes = (memory != 0).then_some(memory);
    }
    if changes.no_health_check == Some(true) {
        t.readiness = None;
        t.liveness = None;
    }
    if let Some(path) = &changes.health_path {
        t.readiness = Some(Probe::http(path.clone()));
        t.liveness = Some(Probe::http(path.clone()));
    }
    if let Some(probe) = &changes.readiness {
        t.readiness = Some(probe.clone().into_probe());
    }
    if let Some(probe) = &changes.liveness {
        t.liveness = Some(probe.clone().into_probe());
    }
    if let Some(grace) = changes.stop_grace_ms {
        t.stop_grace_ms = grace;
    }
    if let Some(replicas) = changes.replicas {
        spec.replicas = replicas;
    }
    if let Some(strategy) = &changes.strategy {
        strategy.apply(&mut spec.strategy);
    }
    if let Some(dependencies) = &changes.dependencies {
        spec.dependencies = dependencies.clone();
    }
}

fn merge(
    map: &mut std::collections::BTreeMap<String, String>,
    changes: &std::collections::BTreeMap<String, Option<String>>,
) {
    for (key, value) in changes {
        match value {
            Some(value) => map.insert(key.clone(), value.clone()),
            None => map.remove(key),
        };
    }
}

/// A short description of what a deploy changed, for the revision's reason.
pub fn describe(changes: &AppChanges) -> String {
    let mut parts = Vec::new();
    if let Some(image) = &changes.image {
        parts.push(format!("image {image}"));
    }
    if let Some(env) = &changes.env {
        let keys: Vec<&str> = env.keys().map(String::as_str).collect();
        parts.push(format!("env {}", keys.join(",")));
    }
    for (set, what) in [
        (changes.command.is_some(), "command"),
        (changes.args.is_some(), "args"),
        (changes.port.is_some(), "port"),
        (
            changes.cpu_millis.is_some() || changes.memory_bytes.is_some(),
            "resources",
        ),
        (
            changes.health_path.is_some()
                || changes.readiness.is_some()
                || changes.liveness.is_some()
                || changes.no_health_check.is_some(),
            "health check",
        ),
        (changes.stop_grace_ms.is_some(), "stop grace"),
        (changes.labels.is_some(), "labels"),
    ] {
        if set {
            parts.push(what.to_string());
        }
    }
    if parts.is_empty() {
        "deploy".to_string()
    } else {
        format!("deploy: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn omitted_fields_stay_and_nulls_remove() {
        let mut spec = AppSpec::default();
        spec.template.image = "a:1".into();
        spec.template.env.insert("KEEP".into(), "1".into());
        spec.template.env.insert("DROP".into(), "1".into());
        spec.template.resources.cpu_millis = Some(500);
        let changes = AppChanges {
            env: Some(BTreeMap::from([
                ("DROP".to_string(), None),
                ("NEW".to_string(), Some("x".to_string())),
            ])),
            cpu_millis: Some(0),
            health_path: Some("/up".into()),
            replicas: Some(4),
            ..AppChanges::default()
        };
        apply(&changes, &mut spec);
        assert_eq!(spec.template.image, "a:1");
        assert_eq!(
            spec.template.env,
            BTreeMap::from([("KEEP".into(), "1".into()), ("NEW".into(), "x".into())])
        );
        assert_eq!(spec.template.resources.cpu_millis, None);
        assert_eq!(spec.template.readiness, Some(Probe::http("/up")));
        assert_eq!(spec.replicas, 4);
        assert_eq!(
            describe(&changes),
            "deploy: env DROP,NEW, resources, health check"
        );
    }
}
