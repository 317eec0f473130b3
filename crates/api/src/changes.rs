//! Reading an [`AppChanges`] request (create and deploy share it) as the domain's
//! [`AppChange`]: the API's shortcuts (`health_path`, `no_health_check`, a `0` limit) become
//! what they mean.

use berth_core::Probe;
use berth_core::change::AppChange;

use crate::dto::{AppChanges, StrategyDto};

/// The change the request asks for; what it omits stays as it is.
pub fn to_change(request: &AppChanges) -> AppChange {
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
    if let Some(probe) = &request.readiness {
        readiness = Some(Some(probe.clone().into_probe()));
    }
    if let Some(probe) = &request.liveness {
        liveness = Some(Some(probe.clone().into_probe()));
    }
    // A limit of 0 removes the limit.
    let limit = |value: Option<u64>| value.map(|v| (v != 0).then_some(v));
    AppChange {
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
    }
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
            strategy: Some(crate::dto::StrategyDto {
                max_surge: Some(2),
                max_unavailable: None,
                min_ready_ms: None,
                progress_deadline_ms: None,
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
            strategy: StrategyChange {
                max_surge: Some(2),
                ..StrategyChange::default()
            },
            ..AppChange::default()
        };
        assert_eq!(to_change(&request), want);
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
                Some(probe("/r")),
                Some(Some("/r")),
                Some(Some("/a")),
            ),
            (Some(false), None, None, None, None),
        ];
        for (off, path, readiness, want_ready, want_live) in cases {
            let change = to_change(&AppChanges {
                no_health_check: off,
                health_path: path.map(String::from),
                readiness,
                ..AppChanges::default()
            });
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
}
