//! A change to an app's spec, as every door asks for it (API, templates, the build worker):
//! the fields it sets, applied onto the current spec; what it omits stays as it is.

use std::collections::BTreeMap;

use crate::routes::{Domain, TcpPort, keep_assigned};
use crate::spec::{AppSpec, Probe, RolloutStrategy};

/// What a create or deploy changes. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppChange {
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    /// Variables to set (`Some`) or remove (`None`).
    pub env: Option<BTreeMap<String, Option<String>>>,
    /// Container labels to set (`Some`) or remove (`None`).
    pub labels: Option<BTreeMap<String, Option<String>>>,
    pub port: Option<u16>,
    /// A new CPU limit in millicores; `Some(None)` removes the limit.
    pub cpu_millis: Option<Option<u64>>,
    /// A new memory limit in bytes; `Some(None)` removes the limit.
    pub memory_bytes: Option<Option<u64>>,
    /// A new readiness probe; `Some(None)` removes it.
    pub readiness: Option<Option<Probe>>,
    /// A new liveness probe; `Some(None)` removes it.
    pub liveness: Option<Option<Probe>>,
    pub stop_grace_ms: Option<u64>,
    pub replicas: Option<u32>,
    pub strategy: StrategyChange,
    pub dependencies: Option<Vec<String>>,
    /// Whether the app is internal (no external route).
    pub internal: Option<bool>,
    /// The app's custom domains, replacing the ones it has.
    pub domains: Option<Vec<Domain>>,
    /// Whether plain HTTP to hosts with a certificate is redirected to HTTPS.
    pub https_redirect: Option<bool>,
    /// The app's published TCP ports, replacing the ones it has; a host port of 0 is Berth's
    /// to choose (the one the app has for that container port, if any).
    pub tcp_ports: Option<Vec<TcpPort>>,
    /// A new idle timeout in seconds; `Some(None)` removes it.
    pub idle_timeout_secs: Option<Option<u32>>,
    /// The app's volume mounts, replacing the ones it has.
    pub volumes: Option<Vec<crate::volume::VolumeMount>>,
    /// The secrets the app uses, replacing the ones it has (their versions are set when the
    /// revision is made).
    pub secrets: Option<Vec<crate::team_secret::SecretRef>>,
    /// The environment variables whose values viewers see redacted, replacing the set.
    pub sensitive_env: Option<std::collections::BTreeSet<String>>,
    /// The node constraints, replacing the app's.
    pub node_constraints: Option<Vec<crate::placement::NodeConstraint>>,
}

/// What a change sets of the rollout strategy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrategyChange {
    pub kind: Option<crate::spec::RolloutKind>,
    pub max_surge: Option<u32>,
    pub max_unavailable: Option<u32>,
    pub min_ready_ms: Option<u64>,
    pub progress_deadline_ms: Option<u64>,
    /// `Some(None)` turns canary rollouts off.
    pub canary: Option<Option<crate::canary::Canary>>,
}

impl StrategyChange {
    /// Sets the fields this change names.
    pub fn apply(&self, strategy: &mut RolloutStrategy) {
        if let Some(kind) = self.kind {
            strategy.kind = kind;
        }
        if let Some(v) = self.max_surge {
            strategy.max_surge = v;
        }
        if let Some(v) = self.max_unavailable {
            strategy.max_unavailable = v;
        }
        if let Some(v) = self.min_ready_ms {
            strategy.min_ready_ms = v;
        }
        if let Some(v) = self.progress_deadline_ms {
            strategy.progress_deadline_ms = v;
        }
        if let Some(canary) = &self.canary {
            strategy.canary = canary.clone();
        }
    }
}

impl AppChange {
    /// Applies every field the change sets to `spec`.
    pub fn apply(&self, spec: &mut AppSpec) {
        let t = &mut spec.template;
        if let Some(image) = &self.image {
            t.image = image.clone();
        }
        if let Some(command) = &self.command {
            t.command = command.clone();
        }
        if let Some(args) = &self.args {
            t.args = args.clone();
        }
        if let Some(env) = &self.env {
            merge(&mut t.env, env);
        }
        match &self.sensitive_env {
            Some(keys) => t.sensitive_env = keys.clone(),
            None => {
                // A variable removed is no longer sensitive.
                let env = &t.env;
                t.sensitive_env.retain(|key| env.contains_key(key));
            }
        }
        if let Some(labels) = &self.labels {
            merge(&mut t.labels, labels);
        }
        if let Some(port) = self.port {
            t.port = port;
        }
        if let Some(cpu) = self.cpu_millis {
            t.resources.cpu_millis = cpu;
        }
        if let Some(memory) = self.memory_bytes {
            t.resources.memory_bytes = memory;
        }
        if let Some(probe) = &self.readiness {
            t.readiness = probe.clone();
        }
        if let Some(probe) = &self.liveness {
            t.liveness = probe.clone();
        }
        if let Some(grace) = self.stop_grace_ms {
            t.stop_grace_ms = grace;
        }
        if let Some(volumes) = &self.volumes {
            t.volumes = volumes
                .iter()
                .map(|m| crate::volume::VolumeMount {
                    path: crate::volume::clean_path(&m.path),
                    ..m.clone()
                })
                .collect();
        }
        if let Some(secrets) = &self.secrets {
            t.secrets = secrets
                .iter()
                .map(|s| crate::team_secret::SecretRef {
                    path: s.path.as_deref().map(crate::volume::clean_path),
                    // A version given stays; otherwise a reference kept as it was keeps
                    // its version, and Berth pins the rest.
                    version: if s.version != 0 {
                        s.version
                    } else {
                        t.secrets
                            .iter()
                            .find(|old| {
                                old.name == s.name && old.env == s.env && old.path == s.path
                            })
                            .map_or(0, |old| old.version)
                    },
                    ..s.clone()
                })
                .collect();
        }
        if let Some(constraints) = &self.node_constraints {
            t.node_constraints = constraints.clone();
        }
        if let Some(replicas) = self.replicas {
            spec.replicas = replicas;
        }
        self.strategy.apply(&mut spec.strategy);
        if let Some(dependencies) = &self.dependencies {
            spec.dependencies = dependencies.clone();
        }
        if let Some(internal) = self.internal {
            spec.routes.internal = internal;
        }
        if let Some(domains) = &self.domains {
            spec.routes.domains = domains.clone();
        }
        if let Some(redirect) = self.https_redirect {
            spec.routes.https_redirect = redirect;
        }
        if let Some(ports) = &self.tcp_ports {
            spec.routes.tcp_ports = keep_assigned(ports, &spec.routes.tcp_ports);
        }
        if let Some(timeout) = self.idle_timeout_secs {
            spec.idle_timeout_secs = timeout;
        }
    }

    /// A short description of what a deploy changes, for the revision's reason.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(image) = &self.image {
            parts.push(format!("image {image}"));
        }
        if let Some(env) = &self.env {
            let keys: Vec<&str> = env.keys().map(String::as_str).collect();
            parts.push(format!("env {}", keys.join(",")));
        }
        for (set, what) in [
            (self.command.is_some(), "command"),
            (self.args.is_some(), "args"),
            (self.port.is_some(), "port"),
            (
                self.cpu_millis.is_some() || self.memory_bytes.is_some(),
                "resources",
            ),
            (
                self.readiness.is_some() || self.liveness.is_some(),
                "health check",
            ),
            (self.stop_grace_ms.is_some(), "stop grace"),
            (self.labels.is_some(), "labels"),
            (self.volumes.is_some(), "volumes"),
            (self.secrets.is_some(), "secrets"),
            (self.sensitive_env.is_some(), "sensitive variables"),
            (self.node_constraints.is_some(), "node constraints"),
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
}

fn merge(map: &mut BTreeMap<String, String>, changes: &BTreeMap<String, Option<String>>) {
    for (key, value) in changes {
        match value {
            Some(value) => map.insert(key.clone(), value.clone()),
            None => map.remove(key),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_fields_stay_and_removals_remove() {
        let mut spec = AppSpec::default();
        spec.template.image = "a:1".into();
        spec.template.env.insert("KEEP".into(), "1".into());
        spec.template.env.insert("DROP".into(), "1".into());
        spec.template.resources.cpu_millis = Some(500);
        spec.template.resources.memory_bytes = Some(64);
        spec.template.liveness = Some(Probe::http("/live"));
        spec.template.sensitive_env = ["KEEP".to_string(), "DROP".to_string()].into();
        let change = AppChange {
            env: Some(BTreeMap::from([
                ("DROP".to_string(), None),
                ("NEW".to_string(), Some("x".to_string())),
            ])),
            cpu_millis: Some(None),
            readiness: Some(Some(Probe::http("/up"))),
            replicas: Some(4),
            strategy: StrategyChange {
                max_surge: Some(3),
                ..StrategyChange::default()
            },
            ..AppChange::default()
        };
        change.apply(&mut spec);
        assert_eq!(spec.template.image, "a:1");
        assert_eq!(
            spec.template.env,
            BTreeMap::from([("KEEP".into(), "1".into()), ("NEW".into(), "x".into())])
        );
        assert_eq!(
            spec.template.sensitive_env,
            ["KEEP".to_string()].into(),
            "a removed variable is no longer sensitive"
        );
        let shown = spec.template.redacted();
        assert_eq!(shown.env["KEEP"], crate::spec::REDACTED);
        assert_eq!(shown.env["NEW"], "x");
        assert_eq!(spec.template.env["KEEP"], "1", "redacting changes a copy");
        assert_eq!(spec.template.resources.cpu_millis, None);
        assert_eq!(spec.template.resources.memory_bytes, Some(64));
        assert_eq!(spec.template.readiness, Some(Probe::http("/up")));
        assert_eq!(spec.template.liveness, Some(Probe::http("/live")));
        assert_eq!(spec.replicas, 4);
        assert_eq!(spec.strategy.max_surge, 3);
        assert_eq!(
            spec.strategy.max_unavailable,
            RolloutStrategy::default().max_unavailable
        );
    }

    #[test]
    fn descriptions_name_what_changes() {
        let cases = [
            (AppChange::default(), "deploy"),
            (
                AppChange {
                    image: Some("a:2".into()),
                    ..AppChange::default()
                },
                "deploy: image a:2",
            ),
            (
                AppChange {
                    env: Some(BTreeMap::from([
                        ("B".to_string(), None),
                        ("A".to_string(), Some("1".into())),
                    ])),
                    memory_bytes: Some(None),
                    liveness: Some(None),
                    ..AppChange::default()
                },
                "deploy: env A,B, resources, health check",
            ),
            (
                AppChange {
                    port: Some(80),
                    stop_grace_ms: Some(1),
                    labels: Some(BTreeMap::new()),
                    command: Some(vec![]),
                    args: Some(vec![]),
                    ..AppChange::default()
                },
                "deploy: command, args, port, stop grace, labels",
            ),
        ];
        for (change, want) in cases {
            assert_eq!(change.describe(), want, "{change:?}");
        }
    }
}
