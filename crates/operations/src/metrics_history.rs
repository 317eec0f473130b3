//! The metrics recorder and the range queries: every round (5 s) it turns what the samplers
//! already know — instances' CPU and memory, readiness and restarts (the controller), nodes'
//! use (the node monitor), the router's counters — into samples of the metrics history
//! (`berth_core::metrics_history`) and writes them in one batch to the [`MetricsStore`];
//! once a minute it prunes what the tiers no longer keep. Reads are team-checked here.
//!
//! The turning into samples ([`RoundInputs::samples`]) is pure and tested; the job
//! ([`MetricsRecorder`]) only gathers, writes and prunes. An instance that is gone simply
//! gets no more points; its history stays until the retention drops it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_controller::InstanceStatus;
use berth_controller::nodes::NodeView;
use berth_core::accounts::TeamAction;
use berth_core::metrics_history::{
    CounterReading, Metric, RangePlan, RangeRequest, Sample, Scope, SeriesFilter, SeriesKey,
    SeriesPoints, Tiers, plan_range, roll_up, traffic_between,
};
use berth_core::validate::FieldError;
use berth_core::{App, Millis};
use berth_router::{AppCounters, LATENCY_BUCKETS_MS};
use berth_store::MetricsStore;

use crate::{Actor, OpError, OpResult, Platform};

/// The store of the metrics history and its tiers (the `--metrics-tiers` setting).
#[derive(Clone)]
pub struct MetricsHistory {
    pub store: Arc<dyn MetricsStore>,
    pub tiers: Tiers,
}

/// Usage read longer ago than this is stale (a stuck sampler): no point for it.
const STALE_USAGE_MS: Millis = 15_000;
/// How often the recorder prunes.
const PRUNE_EVERY_MS: Millis = 60_000;

/// What one round sees.
#[derive(Debug)]
pub struct RoundInputs<'a> {
    pub now: Millis,
    pub apps: &'a [App],
    /// Instances by app name.
    pub instances: &'a HashMap<String, Vec<InstanceStatus>>,
    pub nodes: &'a [NodeView],
    /// The router's counters of this round, and those of the round before (by team and app).
    pub counters: &'a [AppCounters],
    pub previous_counters: &'a HashMap<(String, String), CounterReading>,
}

/// One reading of an app's router counters, for [`traffic_between`].
pub fn reading(at: Millis, counters: &AppCounters) -> CounterReading {
    CounterReading {
        at,
        requests: counters.requests(),
        failed: crate::traffic::failed(counters),
        latency_buckets: counters.latency_buckets.to_vec(),
    }
}

/// Sums per team: CPU millicores, memory bytes, ready instances.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    cpu_millis: f64,
    memory_bytes: f64,
    ready: f64,
}

impl RoundInputs<'_> {
    /// Every sample of the round, all at `now`.
    pub fn samples(&self) -> Vec<Sample> {
        let now = self.now;
        let mut samples = Vec::new();
        let mut push = |key: SeriesKey, value: f64| {
            samples.push(Sample {
                key,
                at: now,
                value,
            })
        };
        let mut teams: BTreeMap<&str, Totals> = BTreeMap::new();
        for app in self.apps {
            let (team, name) = (app.team.as_str(), app.name.as_str());
            let mut totals = Totals::default();
            let mut restarts = 0u64;
            for instance in self.instances.get(name).into_iter().flatten() {
                restarts += u64::from(instance.restarts);
                if instance.readiness.is_ready() {
                    totals.ready += 1.0;
                }
                let Some(usage) = instance
                    .usage
                    .as_ref()
                    .filter(|u| now - u.sampled_at <= STALE_USAGE_MS)
                else {
                    continue;
                };
                let key = |metric| SeriesKey::instance(team, name, &instance.name, metric);
                if let Some(cpu) = usage.cpu_millis {
                    totals.cpu_millis += cpu as f64;
                    push(key(Metric::CpuMillis), cpu as f64);
                }
                totals.memory_bytes += usage.memory_bytes as f64;
                push(key(Metric::MemoryBytes), usage.memory_bytes as f64);
            }
            let key = |metric| SeriesKey::app(team, name, metric);
            push(key(Metric::CpuMillis), totals.cpu_millis);
            push(key(Metric::MemoryBytes), totals.memory_bytes);
            push(key(Metric::ReadyInstances), totals.ready);
            push(key(Metric::Restarts), restarts as f64);
            let team_totals = teams.entry(team).or_default();
            team_totals.cpu_millis += totals.cpu_millis;
            team_totals.memory_bytes += totals.memory_bytes;
            team_totals.ready += totals.ready;
        }
        for (team, totals) in teams {
            push(SeriesKey::team(team, Metric::CpuMillis), totals.cpu_millis);
            push(
                SeriesKey::team(team, Metric::MemoryBytes),
                totals.memory_bytes,
            );
            push(SeriesKey::team(team, Metric::ReadyInstances), totals.ready);
        }
        for node in self.nodes {
            let Some(sample) = node
                .sample
                .as_ref()
                .filter(|s| now - s.at <= STALE_USAGE_MS)
            else {
                continue;
            };
            let key = |metric| SeriesKey::node(&node.info.name, metric);
            if let Some(cpu) = sample.cpu_percent {
                push(key(Metric::CpuPercent), cpu);
            }
            if let Some(memory) = sample.memory {
                push(
                    key(Metric::MemoryBytes),
                    memory.total_bytes.saturating_sub(memory.free_bytes) as f64,
                );
            }
            let fullest = sample
                .disks
                .iter()
                .filter_map(|d| d.space)
                .map(|s| 100.0 - s.free_percent())
                .reduce(f64::max);
            if let Some(used) = fullest {
                push(key(Metric::DiskUsedPercent), used);
            }
        }
        for counters in self.counters {
            let id = (counters.team.clone(), counters.app.clone());
            let Some(previous) = self.previous_counters.get(&id) else {
                continue;
            };
            let Some(delta) =
                traffic_between(previous, &reading(now, counters), &LATENCY_BUCKETS_MS)
            else {
                continue;
            };
            let key = |metric| SeriesKey::app(&counters.team, &counters.app, metric);
            push(key(Metric::RequestsPerSecond), delta.requests_per_second);
            if let Some(errors) = delta.error_percent {
                push(key(Metric::ErrorPercent), errors);
            }
            if let Some(p95) = delta.latency_p95_ms {
                push(key(Metric::LatencyP95Ms), p95);
            }
        }
        samples
    }
}

/// The recorder's memory between rounds.
#[derive(Debug, Default)]
struct RecorderState {
    counters: HashMap<(String, String), CounterReading>,
    last_prune: Option<Millis>,
}

/// The `metrics-recorder` job: one round of samples per run (see the module docs).
pub struct MetricsRecorder {
    platform: Platform,
    state: Mutex<RecorderState>,
}

impl MetricsRecorder {
    pub fn new(platform: Platform) -> Self {
        MetricsRecorder {
            platform,
            state: Default::default(),
        }
    }

    /// Every `period`, the first after one period (the samplers have numbers by then).
    pub fn schedule(period: Duration) -> berth_controller::workers::Schedule {
        berth_controller::workers::Schedule {
            period,
            first_run_after: period,
            retry_after: period,
        }
    }

    /// Gathers, writes one round and prunes when due; says how many samples it wrote.
    pub async fn record_round(&self) -> Result<String, String> {
        let platform = &self.platform;
        let history = &platform.metrics;
        let (listed, _) = crate::apps::list_apps(platform.store.as_ref(), None, None, None)
            .await
            .map_err(|e| format!("cannot list the apps: {e}"))?;
        let apps: Vec<App> = listed.into_iter().map(|l| l.app).collect();
        let instances = platform
            .controller
            .instances_of_all(&apps)
            .await
            .map_err(|e| format!("cannot list the instances: {e}"))?;
        let nodes = platform.nodes.view().nodes;
        let counters = platform
            .router
            .as_ref()
            .map(|r| r.app_counters())
            .unwrap_or_default();
        let now = platform.now();
        let (samples, prune) = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let samples = RoundInputs {
                now,
                apps: &apps,
                instances: &instances,
                nodes: &nodes,
                counters: &counters,
                previous_counters: &state.counters,
            }
            .samples();
            state.counters = counters
                .iter()
                .map(|c| ((c.team.clone(), c.app.clone()), reading(now, c)))
                .collect();
            let prune = state.last_prune.is_none_or(|at| now - at >= PRUNE_EVERY_MS);
            if prune {
                state.last_prune = Some(now);
            }
            (samples, prune)
        };
        history
            .store
            .record(&history.tiers, &samples)
            .await
            .map_err(|e| format!("cannot write the samples: {e}"))?;
        let mut said = format!("{} samples", samples.len());
        if prune {
            let dropped = history
                .store
                .prune(&history.tiers, now)
                .await
                .map_err(|e| format!("cannot prune: {e}"))?;
            said.push_str(&format!(", {dropped} old points pruned"));
        }
        Ok(said)
    }
}

#[async_trait::async_trait]
impl berth_controller::workers::Job for MetricsRecorder {
    fn name(&self) -> &'static str {
        "metrics-recorder"
    }

    fn description(&self) -> &'static str {
        "records the metrics history: instances, apps, teams, nodes and router traffic"
    }

    async fn run(&self) -> Result<String, String> {
        self.record_round().await
    }
}

/// The answer to a range query: the plan it followed and the series, rolled up to its step.
#[derive(Debug, Clone)]
pub struct MetricsRange {
    pub plan: RangePlan,
    pub series: Vec<SeriesPoints>,
}

/// Whose history a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsSubject {
    /// An app's own series and its instances' (readers of its team).
    App(String),
    /// A node's (any logged-in user, like the node itself).
    Node(String),
    /// A team's totals (its readers).
    Team(String),
}

impl Platform {
    /// The history of `subject` over the range asked, for those who may read the subject.
    pub async fn metrics(
        &self,
        actor: &Actor,
        subject: &MetricsSubject,
        request: RangeRequest,
    ) -> OpResult<MetricsRange> {
        let filter =
            |scope, team: Option<&str>, app: Option<&str>, name: Option<&str>| SeriesFilter {
                scope,
                team: team.map(Into::into),
                app: app.map(Into::into),
                name: name.map(Into::into),
            };
        let filters = match subject {
            MetricsSubject::App(name) => {
                let app = self.app(actor, name, TeamAction::Read).await?.app;
                let (team, name) = (Some(app.team.as_str()), Some(app.name.as_str()));
                vec![
                    filter(Scope::App, team, name, None),
                    filter(Scope::Instance, team, name, None),
                ]
            }
            MetricsSubject::Node(name) => {
                self.node(actor, name).await?;
                vec![filter(Scope::Node, None, None, Some(name))]
            }
            MetricsSubject::Team(team) => {
                actor.require(team, TeamAction::Read, &format!("team {team}"))?;
                vec![filter(Scope::Team, Some(team), None, None)]
            }
        };
        self.metrics_range(request, &filters).await
    }

    async fn metrics_range(
        &self,
        request: RangeRequest,
        filters: &[SeriesFilter],
    ) -> OpResult<MetricsRange> {
        let history = &self.metrics;
        let plan = plan_range(request, &history.tiers, self.now())
            .map_err(|FieldError { field, message }| OpError::field(field, message))?;
        let mut series = Vec::new();
        for filter in filters {
            for mut found in history
                .store
                .points(filter, plan.tier, plan.from, plan.to)
                .await?
            {
                if plan.step != plan.tier.step_ms {
                    found.points = roll_up(&found.points, plan.step);
                }
                series.push(found);
            }
        }
        Ok(MetricsRange { plan, series })
    }
}

#[cfg(test)]
mod tests {
    use berth_controller::InstanceUsage;
    use berth_controller::nodes::NodeInfo;
    use berth_core::AppSpec;
    use berth_core::health::{Liveness, Readiness};
    use berth_core::node::{DiskRole, DiskSample, NodeSample, Space};
    use berth_core::planner::InstancePhase;

    use super::*;

    const NOW: Millis = 1_700_000_000_000;

    fn instance(
        name: &str,
        ready: bool,
        restarts: u32,
        usage: Option<(Option<u64>, u64, Millis)>,
    ) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            container_id: format!("c-{name}"),
            revision: 1,
            phase: InstancePhase::Running,
            address: None,
            port: None,
            readiness: if ready {
                Readiness::Ready { since: 0 }
            } else {
                Readiness::Unknown
            },
            liveness: Liveness::Healthy,
            restarts,
            created_at: 0,
            started_at: None,
            last_failure: None,
            node: "n1".into(),
            backoff: None,
            usage: usage.map(|(cpu, memory, at)| InstanceUsage {
                app: "web".into(),
                instance: name.into(),
                cpu_millis: cpu,
                cpu_millis_avg: cpu,
                avg_span_ms: 0,
                memory_bytes: memory,
                memory_limit_bytes: None,
                sampled_at: at,
                history: Default::default(),
            }),
        }
    }

    fn value(samples: &[Sample], key: &SeriesKey) -> Option<f64> {
        samples.iter().find(|s| s.key == *key).map(|s| s.value)
    }

    #[test]
    fn a_round_samples_instances_apps_teams_nodes_and_traffic() {
        let apps = vec![
            App::created("web", "shop", &AppSpec::default(), 0),
            App::created("api", "shop", &AppSpec::default(), 0),
            App::created("docs", "blog", &AppSpec::default(), 0),
        ];
        let instances = HashMap::from([(
            "web".to_string(),
            vec![
                instance("web-1", true, 2, Some((Some(250), 1_000, NOW - 1_000))),
                // No CPU rate yet: memory only.
                instance("web-2", false, 1, Some((None, 500, NOW))),
                // Stale usage (a stuck sampler): no point.
                instance("web-3", true, 0, Some((Some(900), 9_000, NOW - 60_000))),
            ],
        )]);
        let nodes = vec![NodeView {
            info: NodeInfo {
                name: "n1".into(),
                engine: "docker".into(),
                cpus: 2,
                memory_bytes: 1_000,
                data_root: None,
                address: None,
                role: "standalone".into(),
                state: "ready".into(),
                availability: berth_engine::NodeAvailability::Active,
                labels: Default::default(),
                local: true,
            },
            sample: Some(NodeSample {
                at: NOW - 2_000,
                cpus: 2,
                cpu_percent: Some(37.5),
                memory: Some(Space {
                    total_bytes: 1_000,
                    free_bytes: 250,
                }),
                disks: vec![
                    DiskSample {
                        role: DiskRole::EngineDataRoot,
                        path: "/a".into(),
                        space: Some(Space {
                            total_bytes: 100,
                            free_bytes: 40,
                        }),
                    },
                    DiskSample {
                        role: DiskRole::BerthDataDir,
                        path: "/b".into(),
                        space: Some(Space {
                            total_bytes: 100,
                            free_bytes: 90,
                        }),
                    },
                ],
            }),
            watch: Default::default(),
        }];
        let mut web = AppCounters {
            team: "shop".into(),
            app: "web".into(),
            ..Default::default()
        };
        let previous = HashMap::from([(
            ("shop".to_string(), "web".to_string()),
            reading(NOW - 5_000, &web),
        )]);
        web.responses[1] = 45;
        web.responses[4] = 5;
        web.latency_buckets[0] = 50;
        let docs = AppCounters {
            team: "blog".into(),
            app: "docs".into(),
            ..Default::default()
        };
        let samples = RoundInputs {
            now: NOW,
            apps: &apps,
            instances: &instances,
            nodes: &nodes,
            counters: &[web, docs],
            previous_counters: &previous,
        }
        .samples();
        assert!(samples.iter().all(|s| s.at == NOW));
        let inst = |name: &str, m| SeriesKey::instance("shop", "web", name, m);
        let app = |name: &str, m| SeriesKey::app("shop", name, m);
        let cases: Vec<(SeriesKey, Option<f64>)> = vec![
            (inst("web-1", Metric::CpuMillis), Some(250.0)),
            (inst("web-1", Metric::MemoryBytes), Some(1_000.0)),
            (inst("web-2", Metric::CpuMillis), None),
            (inst("web-2", Metric::MemoryBytes), Some(500.0)),
            (inst("web-3", Metric::MemoryBytes), None),
            (app("web", Metric::CpuMillis), Some(250.0)),
            (app("web", Metric::MemoryBytes), Some(1_500.0)),
            (app("web", Metric::ReadyInstances), Some(2.0)),
            (app("web", Metric::Restarts), Some(3.0)),
            // An app without instances reports zeros.
            (app("api", Metric::ReadyInstances), Some(0.0)),
            (SeriesKey::team("shop", Metric::MemoryBytes), Some(1_500.0)),
            (SeriesKey::team("shop", Metric::ReadyInstances), Some(2.0)),
            (SeriesKey::team("blog", Metric::CpuMillis), Some(0.0)),
            (SeriesKey::node("n1", Metric::CpuPercent), Some(37.5)),
            (SeriesKey::node("n1", Metric::MemoryBytes), Some(750.0)),
            (SeriesKey::node("n1", Metric::DiskUsedPercent), Some(60.0)),
            // 50 requests in 5 s, 5 failed, all within the first bucket (≤ 5 ms).
            (app("web", Metric::RequestsPerSecond), Some(10.0)),
            (app("web", Metric::ErrorPercent), Some(10.0)),
            (app("web", Metric::LatencyP95Ms), Some(4.75)),
            // The first reading of an app's counters gives no rate yet.
            (
                SeriesKey::app("blog", "docs", Metric::RequestsPerSecond),
                None,
            ),
        ];
        for (key, want) in cases {
            assert_eq!(value(&samples, &key), want, "{key:?}");
        }
    }
}
