//! Reading an [`AppChanges`] request (create and deploy share it) as the domain's
//! [`AppChange`]: the API's shortcuts (`health_path`, `no_health_check`, a `0` limit) become
//! what they mean.

use berth_core::Probe;
use berth_core::change::AppChange;
use berth_core::placement::NodeConstraint;
use berth_core::routes::{parse_domains, parse_tcp_ports};

use crate::dto::{AppChanges, ProbeDto, StrategyDto};
use crate::error::{ApiError, ApiResult};

/// The change the request asks for; what it omits stays as it is. Fails on a domain that is
/// not one (400 naming `domains`) and on a TCP port spec that is not one (400 naming
/// `tcp_ports`).
pub fn to_change(request: &AppChanges) -> ApiResult<AppChange> {
    // Later settings win, as in the request's documented order: no probes, then the path
    // shortcut, then each probe in full.
    let mut readiness = None;
    let mut liveness = None;
    if request.no_health_check == Some(true) {
        readiness = Some(None);
        liveness = Some(None);
    }
    if let Some(path) = &request.health_path {
        readiness = Some(Some(Probe::http(path.clone())));
        liveness = Some(Some(Probe::http(path.clone())));
    }
    let probe = |p: &Option<ProbeDto>| p.clone().map(ProbeDto::into_probe);
    if let Some(setting) = &request.readiness {
        readiness = Some(probe(setting));
    }
    if let Some(setting) = &request.liveness {
        liveness = Some(probe(setting));
    }
    // A limit of 0 removes the limit.
    let limit = |value: Option<u64>| value.map(|v| (v != 0).then_some(v));
    let domains = request
        .domains
        .as_deref()
        .map(parse_domains)
        .transpose()
        .map_err(|e| ApiError::field("domains", e.to_string()))?;
    let node_constraints = request
        .node_constraints
        .as_ref()
        .map(|texts| {
            texts
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    NodeConstraint::parse(text)
                        .map_err(|e| ApiError::field(format!("node_constraints[{i}]"), e))
                })
                .collect::<ApiResult<Vec<_>>>()
        })
        .transpose()?;
    let tcp_ports = request
        .tcp_ports
        .as_deref()
        .map(parse_tcp_ports)
        .transpose()
        .map_err(|e| ApiError::field("tcp_ports", e))?;
    Ok(AppChange {
        image: request.image.clone(),
        command: request.command.clone(),
        args: request.args.clone(),
        env: request.env.clone(),
        labels: request.labels.clone(),
        port: request.port,
        cpu_millis: limit(request.cpu_millis),
        memory_bytes: limit(request.memory_bytes),
        readiness,
        liveness,
        stop_grace_ms: request.stop_grace_ms,
        replicas: request.replicas,
        strategy: request
            .strategy
            .as_ref()
            .map(StrategyDto::to_change)
            .unwrap_or_default(),
        dependencies: request.dependencies.clone(),
        internal: request.internal,
        domains,
        https_redirect: request.https_redirect,
        tcp_ports,
        // 0 removes the idle timeout.
        idle_timeout_secs: request
            .idle_timeout_seconds
            .map(|secs| (secs != 0).then_some(secs)),
        volumes: request
            .volumes
            .as_ref()
            .map(|mounts| mounts.iter().map(|m| m.to_mount()).collect()),
        secrets: request
            .secrets
            .as_ref()
            .map(|refs| refs.iter().map(|r| r.to_ref()).collect()),
        sensitive_env: request
            .sensitive_env
            .as_ref()
            .map(|keys| keys.iter().cloned().collect()),
        node_constraints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::change::StrategyChange;
    use std::collections::BTreeMap;

    #[test]
    fn shortcuts_mean_what_they_say() {
        let request = AppChanges {
            env: Some(BTreeMap::from([("DROP".to_string(), None)])),
            cpu_millis: Some(0),
            memory_bytes: Some(64),
            health_path: Some("/up".into()),
            replicas: Some(4),
            idle_timeout_seconds: Some(0),
            strategy: Some(crate::dto::StrategyDto {
                max_surge: Some(2),
                ..Default::default()
            }),
            ..AppChanges::default()
        };
        let want = AppChange {
            env: Some(BTreeMap::from([("DROP".to_string(), None)])),
            cpu_millis: Some(None),
            memory_bytes: Some(Some(64)),
            readiness: Some(Some(Probe::http("/up"))),
            liveness: Some(Some(Probe::http("/up"))),
            replicas: Some(4),
            idle_timeout_secs: Some(None),
            strategy: StrategyChange {
                max_surge: Some(2),
                ..StrategyChange::default()
            },
            ..AppChange::default()
        };
        assert_eq!(to_change(&request).unwrap(), want);
    }

    #[test]
    fn probe_settings_apply_in_order() {
        let probe = |path: &str| crate::dto::ProbeDto {
            path: Some(path.into()),
            ..Default::default()
        };
        // (no_health_check, health_path, readiness, want readiness, want liveness)
        let cases = [
            (Some(true), None, None, Some(None), Some(None)),
            (
                Some(true),
                Some("/a"),
                None,
                Some(Some("/a")),
                Some(Some("/a")),
            ),
            (
                None,
                Some("/a"),
                Some(Some(probe("/r"))),
                Some(Some("/r")),
                Some(Some("/a")),
            ),
            // `readiness: null` removes only the readiness probe.
            (None, Some("/a"), Some(None), Some(None), Some(Some("/a"))),
            (Some(false), None, None, None, None),
        ];
        for (off, path, readiness, want_ready, want_live) in cases {
            let change = to_change(&AppChanges {
                no_health_check: off,
                health_path: path.map(String::from),
                readiness,
                ..AppChanges::default()
            })
            .unwrap();
            let paths = |p: Option<Option<Probe>>| p.map(|p| p.map(|p| p.path));
            let owned = |p: Option<Option<&str>>| p.map(|p| p.map(String::from));
            assert_eq!(
                paths(change.readiness),
                owned(want_ready),
                "{off:?} {path:?}"
            );
            assert_eq!(paths(change.liveness), owned(want_live), "{off:?} {path:?}");
        }
    }

    #[test]
    fn domains_are_parsed_or_refused_naming_the_field() {
        let change = to_change(&AppChanges {
            domains: Some(vec![
                "Shop.Example.com".into(),
                "shop.example.com/api/".into(),
            ]),
            internal: Some(false),
            ..AppChanges::default()
        })
        .unwrap();
        let domains: Vec<String> = change
            .domains
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(domains, ["shop.example.com", "shop.example.com/api"]);
        assert_eq!(change.internal, Some(false));
        for bad in ["not a domain", "x.com/../y", "*.com", "x.com:80"] {
            let error = to_change(&AppChanges {
                domains: Some(vec![bad.into()]),
                ..AppChanges::default()
            })
            .expect_err(bad);
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(error.field.as_deref(), Some("domains"), "{bad}");
        }
    }

    #[test]
    fn tcp_ports_are_parsed_or_refused_naming_the_field() {
        let change = to_change(&AppChanges {
            tcp_ports: Some(vec!["5432".into(), "16379:6379".into()]),
            ..AppChanges::default()
        })
        .unwrap();
        let ports: Vec<String> = change
            .tcp_ports
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ports, ["5432", "16379:6379"]);
        for bad in [
            &["0"][..],
            &["65536"],
            &["a:b"],
            &["1:2:3"],
            &["5432", "5432"],
            &["1:5432", "1:6379"],
        ] {
            let error = to_change(&AppChanges {
                tcp_ports: Some(bad.iter().map(|s| s.to_string()).collect()),
                ..AppChanges::default()
            })
            .expect_err(&format!("{bad:?}"));
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(error.field.as_deref(), Some("tcp_ports"), "{bad:?}");
        }
    }
}
