//! Autoscaling on CPU or on requests: turning it on, changing and off
//! ([`Platform::set_autoscale`]), and the loop ([`Platform::keep_autoscaling`]) that every
//! usage interval evaluates each autoscaled app with the pure [`decide`] — its loads from the
//! usage sampler (CPU) or the router's counters (requests in flight, requests per second) —
//! and changes its count through [`Platform::modify`] — the path
//! of every other change, so the team's quota admits each scale up and the controller is
//! woken. Every decision that changes the count, or would but is held back, is recorded as an
//! event with all its inputs; the latest evaluation of each app is kept for `explain`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use berth_controller::endpoints::EndpointMap;
use berth_controller::usage::InstanceUsage;
use berth_core::autoscale::{
    Autoscale, Decision, FULL_CPU_LOAD, Inputs, InstanceLoad, Metric, Verdict, cpu_load, decide,
};
use berth_core::idle::describe_timeout;
use berth_core::quota::app_usage;
use berth_core::{App, Event, EventKind, Millis};
use serde::Serialize;

use crate::Platform;
use crate::actor::Actor;
use crate::apps::{CurrentApp, Modification, scaled_event};
use crate::error::{OpError, OpResult};
use crate::quota::{Budget, steady};

/// Evaluations kept per app for `explain`.
const KEPT_EVALUATIONS: usize = 20;

/// One evaluation of an app: the decision, and what the quota made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    pub at: Millis,
    /// What the loads measure.
    pub metric: Metric,
    pub decision: Decision,
    /// The instance count the app was given (the decision's, or less when the quota refused
    /// some); `None` when the count did not change.
    pub applied: Option<u32>,
    /// Why the quota refused instances, when it did.
    pub quota: Option<String>,
}

/// What the autoscaler remembers of one app.
#[derive(Debug, Default)]
struct Memory {
    /// Recommendations within the scale-down stabilisation window (time, count).
    past: VecDeque<(Millis, u32)>,
    /// The latest evaluations, newest last.
    evaluations: VecDeque<Evaluation>,
    /// The last "held" or "refused" event recorded, so a lasting hold is said once.
    last_hold: Option<(EventKind, Verdict, u32)>,
    /// Until when a panic lasts (request metrics).
    panicking_until: Option<Millis>,
}

/// The autoscaler's memory of every autoscaled app (in memory: after a restart the
/// stabilisation window starts over from the count the app has, which holds scale downs for
/// one window).
#[derive(Debug, Default)]
pub struct AutoscaleBook {
    apps: Mutex<HashMap<String, Memory>>,
}

impl AutoscaleBook {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Memory>> {
        // Plain records: a panic elsewhere cannot leave them inconsistent.
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest evaluations of `app`, newest first.
    pub fn evaluations(&self, app: &str) -> Vec<Evaluation> {
        self.lock()
            .get(app)
            .map(|memory| memory.evaluations.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets the apps that are no longer autoscaled.
    fn retain(&self, autoscaled: &HashSet<String>) {
        self.lock().retain(|name, _| autoscaled.contains(name));
    }
}

/// What the autoscaler sees of an app's instances: ready ones are in the endpoint table;
/// each sampled instance's load is its CPU averaged over `window`, as a share of `limit`.
pub fn observe(
    app: &str,
    limit_millis: u64,
    window: Duration,
    usage: &HashMap<String, InstanceUsage>,
    endpoints: &EndpointMap,
) -> Vec<InstanceLoad> {
    let ready: HashSet<&str> = endpoints
        .get(app)
        .map(|list| list.iter().map(|e| e.container_id.as_str()).collect())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    let mut loads: Vec<InstanceLoad> = usage
        .iter()
        .filter(|(_, u)| u.app == app)
        .map(|(id, u)| {
            seen.insert(id.as_str());
            InstanceLoad {
                ready: ready.contains(id.as_str()),
                load: u
                    .cpu_millis_avg_within(window)
                    .map(|(millis, _)| cpu_load(millis, limit_millis)),
            }
        })
        .collect();
    loads.extend(
        ready
            .iter()
            .filter(|id| !seen.contains(*id))
            .map(|_| InstanceLoad {
                ready: true,
                load: None,
            }),
    );
    loads
}

/// What the autoscaler sees of an app on a request metric: the app's load over the window
/// shared evenly by its ready instances (the router sees every request, so none lacks a
/// sample), and the instances not ready yet. No reading of the router yet: no samples.
pub fn observe_requests(ready: usize, replicas: u32, total: Option<u64>) -> Vec<InstanceLoad> {
    let ready_count = u64::try_from(ready).unwrap_or(u64::MAX).max(1);
    let mut loads: Vec<InstanceLoad> = (0..ready)
        .map(|index| InstanceLoad {
            ready: true,
            load: total.map(|total| {
                // The remainder goes to the first instances, so the sum stays exact.
                let index = u64::try_from(index).unwrap_or(u64::MAX);
                total / ready_count + u64::from(index < total % ready_count)
            }),
        })
        .collect();
    let not_ready = usize::try_from(replicas)
        .unwrap_or(usize::MAX)
        .saturating_sub(ready);
    loads.extend((0..not_ready).map(|_| InstanceLoad {
        ready: false,
        load: None,
    }));
    loads
}

/// A load in basis points as a percentage with one decimal.
fn percent(load: u64) -> String {
    format!("{}.{} %", load / 100, load % 100 / 10)
}

/// A load of a metric as people read it: a percentage of the CPU limit, or requests with
/// up to two decimals.
fn amount(metric: Metric, load: u64) -> String {
    match metric {
        Metric::Cpu => percent(load),
        Metric::Concurrency | Metric::Rps => {
            let hundredths = load.div_ceil(10);
            let unit = if metric == Metric::Rps {
                " req/s"
            } else {
                " in flight"
            };
            format!("{}.{:02}{unit}", hundredths / 100, hundredths % 100)
        }
    }
}

/// The sentence of a decision: what the formula saw and said.
fn formula(decision: &Decision, settings: &Autoscale) -> String {
    // Two decimals, rounded up like the formula, so "2.08 → 3" reads right.
    let ratio = (decision.sum * 100).div_ceil(decision.target.max(1));
    let mut parts = vec![format!(
        "{} ready instances sampled over {}",
        decision.sampled,
        describe_timeout(settings.window_secs)
    )];
    if decision.missing > 0 {
        parts.push(format!("{} without samples", decision.missing));
    }
    if decision.not_ready > 0 {
        parts.push(format!("{} not ready", decision.not_ready));
    }
    let raw = decision
        .raw
        .map_or_else(|| "-".to_string(), |raw| raw.to_string());
    let metric = settings.metric;
    let what = match metric {
        Metric::Cpu => "CPU use",
        Metric::Concurrency => "requests in flight",
        Metric::Rps => "requests per second",
    };
    let of_limit = if metric == Metric::Cpu {
        " of the limit"
    } else {
        ""
    };
    let mut sentence = format!(
        "{}; {what} {}{of_limit} in all ÷ target {} = {}.{:02} → {raw}",
        parts.join(", "),
        amount(metric, decision.sum),
        amount(metric, decision.target),
        ratio / 100,
        ratio % 100
    );
    if let (Some(burst), Some(burst_raw)) = (decision.burst, decision.burst_raw) {
        sentence.push_str(&format!(
            "; the last {}: {} → {burst_raw}",
            describe_timeout(settings.panic_window_secs),
            amount(metric, burst)
        ));
        if decision.panicking_until.is_some() {
            sentence.push_str(" (panic: a burst)");
        }
    }
    sentence
}

/// Why a guard held the formula's count, in words.
fn hold_reason(settings: &Autoscale, decision: &Decision) -> String {
    match decision.verdict {
        Verdict::WithinTolerance => format!(
            "within the {} % tolerance band (counting instances without samples or not ready \
             conservatively)",
            settings.tolerance_percent
        ),
        Verdict::Stabilized => format!(
            "scale-down stabilisation: the highest recommendation of the last {} is {}",
            describe_timeout(settings.scale_down_stabilization_secs),
            decision.desired
        ),
        Verdict::StepCapped => format!(
            "one step adds at most {} instances",
            decision.desired - decision.current
        ),
        Verdict::AtBound if decision.raw.unwrap_or(0) > settings.max => {
            format!("the maximum is {}", settings.max)
        }
        Verdict::AtBound => format!("the minimum is {}", settings.min),
        Verdict::Panic => format!(
            "a panic (a burst asked for {} % of the ready instances or more) holds the count \
             up for {}",
            settings.panic_threshold_percent,
            describe_timeout(settings.window_secs)
        ),
        Verdict::Scale | Verdict::NoSamples => String::new(),
    }
}

/// The params every autoscaler event carries: each input of the decision.
fn decision_event(
    name: &str,
    now: Millis,
    kind: EventKind,
    message: String,
    settings: &Autoscale,
    decision: &Decision,
) -> Event {
    let metric = settings.metric;
    let mut event = Event::new(name, now, kind, message)
        .param("from", decision.current)
        .param("to", decision.desired)
        .param("verdict", decision.verdict.as_str())
        .param("metric", metric.as_str())
        .param("sampled", decision.sampled)
        .param("missing", decision.missing)
        .param("not_ready", decision.not_ready);
    event = match metric {
        Metric::Cpu => event
            .param("sum_percent", percent(decision.sum))
            .param("target_percent", percent(decision.target)),
        Metric::Concurrency | Metric::Rps => event
            .param("sum", amount(metric, decision.sum))
            .param("target", amount(metric, decision.target))
            .param(
                "burst",
                decision
                    .burst
                    .map_or_else(String::new, |burst| amount(metric, burst)),
            )
            .param(
                "burst_raw",
                decision
                    .burst_raw
                    .map_or_else(String::new, |raw| raw.to_string()),
            )
            .param("panic", decision.panicking_until.is_some())
            .param("panic_window", describe_timeout(settings.panic_window_secs)),
    };
    event
        .param(
            "raw",
            decision.raw.map_or_else(String::new, |raw| raw.to_string()),
        )
        .param("recommended", decision.recommended)
        .param("min", settings.min)
        .param("max", settings.max)
        .param("tolerance_percent", settings.tolerance_percent)
        .param(
            "stabilization",
            describe_timeout(settings.scale_down_stabilization_secs),
        )
        .param("window", describe_timeout(settings.window_secs))
}

/// The message of the setting as people read it.
fn describe(settings: &Autoscale) -> String {
    let target = match settings.metric {
        Metric::Cpu => format!("{} % of the CPU limit", settings.cpu_percent),
        Metric::Concurrency => format!("{} requests in flight each", settings.target_requests),
        Metric::Rps => format!("{} requests per second each", settings.target_requests),
    };
    let panic = if settings.metric.counts_requests() {
        format!(
            ", panic on a {} burst of {} %",
            describe_timeout(settings.panic_window_secs),
            settings.panic_threshold_percent
        )
    } else {
        String::new()
    };
    format!(
        "{}–{} instances at {target} (average over {}, tolerance {} %, scale down after \
         {}{panic})",
        settings.min,
        settings.max,
        describe_timeout(settings.window_secs),
        settings.tolerance_percent,
        describe_timeout(settings.scale_down_stabilization_secs)
    )
}

/// Refuses what an autoscaled app cannot do by hand: its count is Berth's.
pub(crate) fn refuse_manual_count(app: &App) -> OpResult<()> {
    match &app.autoscale {
        Some(settings) => Err(OpError::conflict(
            "autoscaled",
            format!(
                "replicas: app {} is autoscaled between {} and {} instances; change the range \
                 (berth autoscale {} --min N --max M) or turn autoscaling off (berth autoscale \
                 {} --off) first",
                app.name, settings.min, settings.max, app.name, app.name
            ),
        )),
        None => Ok(()),
    }
}

/// Refuses a template without a CPU limit for an app autoscaled on CPU.
pub(crate) fn require_cpu_limit(
    name: &str,
    autoscale: Option<&Autoscale>,
    cpu_millis: Option<u64>,
) -> OpResult<()> {
    if autoscale.is_some_and(|a| a.metric == Metric::Cpu) && cpu_millis.is_none() {
        return Err(OpError::field(
            "cpu_millis",
            format!(
                "app {name} autoscales on CPU, measured against its CPU limit: set a CPU limit \
                 (berth deploy {name} --cpu 500m) before autoscaling, and keep one while it \
                 autoscales"
            ),
        ));
    }
    Ok(())
}

impl Platform {
    /// Turns autoscaling of `name` on or changes it (`Some`), or off (`None`). Turning it on
    /// brings the count into the range at once (admitted by the quota); turning it off leaves
    /// the count where it is.
    pub async fn set_autoscale(
        &self,
        actor: &Actor,
        name: &str,
        settings: Option<Autoscale>,
    ) -> OpResult<CurrentApp> {
        if let Some(settings) = &settings {
            settings.validate()?;
            if settings.metric.counts_requests() && self.router.is_none() {
                return Err(OpError::field(
                    "metric",
                    format!(
                        "{} is counted by the router, which is off on this server \
                         (--http-listen off): scale on cpu instead",
                        settings.metric.as_str()
                    ),
                ));
            }
        }
        self.modify(Some(actor), name, |app, template, now| {
            if app.autoscale == settings {
                return Ok(Modification::Unchanged);
            }
            let mut events = Vec::new();
            let message = match &settings {
                Some(new) => {
                    require_cpu_limit(name, Some(new), template.resources.cpu_millis)?;
                    if let Some(idled) = app.idled.as_mut() {
                        // Scaled to 0 when idle: the count it wakes up to joins the range.
                        idled.replicas = idled.replicas.clamp(new.min, new.max);
                    } else {
                        let clamped = app.replicas.clamp(new.min, new.max);
                        if clamped != app.replicas {
                            events.push(scaled_event(name, now, app.replicas, clamped));
                            app.replicas = clamped;
                        }
                    }
                    format!("autoscaling on: {}", describe(new))
                }
                None => format!(
                    "autoscaling off: the count stays at {} until changed",
                    app.replicas
                ),
            };
            actor.audit.set_detail(message.clone());
            let mut event = Event::new(name, now, EventKind::AutoscaleChanged, message);
            event = match &settings {
                Some(new) => event
                    .param("cause", "on")
                    .param("min", new.min)
                    .param("max", new.max)
                    .param("metric", new.metric.as_str())
                    .param("cpu_percent", new.cpu_percent)
                    .param("target", new.target_requests)
                    .param("window", describe_timeout(new.window_secs)),
                None => event.param("cause", "off").param("replicas", app.replicas),
            };
            events.insert(0, event);
            app.autoscale = settings;
            Ok(Modification::Settings(events))
        })
        .await
    }

    /// Every `period`, evaluates each autoscaled app and applies its decision, for as long
    /// as the server runs.
    pub async fn keep_autoscaling(&self, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            let apps = match crate::apps::list_apps(self.store.as_ref(), None, None, None).await {
                Ok((apps, _)) => apps,
                Err(error) => {
                    tracing::warn!(%error, "autoscaler: cannot list the apps");
                    continue;
                }
            };
            let usage = self.controller.usage().snapshot();
            let endpoints = self.controller.endpoints().current();
            let mut autoscaled = HashSet::new();
            for listed in apps {
                let (app, Some(template)) = (listed.app, listed.template) else {
                    continue;
                };
                let Some(settings) = app.autoscale else {
                    continue;
                };
                autoscaled.insert(app.name.clone());
                // An idle app waits for its wake; a canary is judged at a fixed count.
                if app.idled.is_some() || app.canary_being_judged().is_some() {
                    continue;
                }
                let window_ms = Millis::from(settings.window_secs) * 1000;
                let (loads, burst) = match settings.metric {
                    Metric::Cpu => {
                        let Some(limit) = template.resources.cpu_millis else {
                            continue;
                        };
                        let window = Duration::from_secs(u64::from(settings.window_secs));
                        (observe(&app.name, limit, window, &usage, &endpoints), None)
                    }
                    Metric::Concurrency | Metric::Rps => {
                        let of = |load: crate::traffic::RequestLoad| match settings.metric {
                            Metric::Rps => load.rps_milli,
                            _ => load.concurrency_milli,
                        };
                        let rates = &self.traffic_rates;
                        let total = rates.load(&app.team, &app.name, window_ms).map(of);
                        let panic_ms = Millis::from(settings.panic_window_secs) * 1000;
                        let burst = rates.load(&app.team, &app.name, panic_ms).map(of);
                        let ready = endpoints.get(&app.name).map_or(0, Vec::len);
                        (observe_requests(ready, app.replicas, total), burst)
                    }
                };
                self.autoscale_once(&app, &settings, &loads, burst).await;
            }
            self.autoscaler.retain(&autoscaled);
        }
    }

    /// Evaluates `app` once with `loads` (and, on a request metric, the panic window's
    /// `burst`) and applies the decision.
    pub async fn autoscale_once(
        &self,
        app: &App,
        settings: &Autoscale,
        loads: &[InstanceLoad],
        burst: Option<u64>,
    ) {
        let now = self.now();
        let name = app.name.as_str();
        let decision = {
            let mut book = self.autoscaler.lock();
            let memory = book.entry(name.to_string()).or_default();
            if memory.past.is_empty() {
                // A fresh memory (a restart, autoscaling just turned on) holds scale downs
                // for one window, as if the current count had just been recommended.
                memory.past.push_back((now, app.replicas));
            }
            let window_ms = i64::from(settings.scale_down_stabilization_secs) * 1000;
            while memory
                .past
                .front()
                .is_some_and(|(at, _)| now.saturating_sub(*at) >= window_ms)
            {
                memory.past.pop_front();
            }
            let inputs = Inputs {
                current: app.replicas,
                instances: loads,
                target: settings.target_load(),
                full: match settings.metric {
                    Metric::Cpu => FULL_CPU_LOAD,
                    // Never used: the router sees every request, so no instance lacks a load.
                    Metric::Concurrency | Metric::Rps => settings.target_load(),
                },
                burst,
                panicking_until: memory.panicking_until,
            };
            let past: Vec<(Millis, u32)> = memory.past.iter().copied().collect();
            let decision = decide(settings, &inputs, &past, now);
            memory.past.push_back((now, decision.recommended));
            memory.panicking_until = decision.panicking_until;
            decision
        };
        let mut evaluation = Evaluation {
            at: now,
            metric: settings.metric,
            decision,
            applied: None,
            quota: None,
        };
        let mut events = Vec::new();
        if decision.changes() {
            match self
                .apply_count(app, settings, &decision, decision.desired)
                .await
            {
                Ok(applied) => evaluation.applied = applied.then_some(decision.desired),
                Err(OpError::QuotaExceeded { team, exceeded }) => {
                    let why = OpError::quota_message(&team, &exceeded);
                    let admitted = self.largest_admitted(app, decision.desired).await;
                    if let Some(count) = admitted
                        && let Ok(true) = self.apply_count(app, settings, &decision, count).await
                    {
                        evaluation.applied = Some(count);
                    }
                    evaluation.quota = Some(why.clone());
                    let got = evaluation.applied.unwrap_or(app.replicas);
                    events.push(
                        decision_event(
                            name,
                            now,
                            EventKind::AutoscaleRefused,
                            format!(
                                "autoscaling wanted {} instances but the quota admits {got}: \
                                 {why}",
                                decision.desired
                            ),
                            settings,
                            &decision,
                        )
                        .param("quota", &why)
                        .param("admitted", got),
                    );
                }
                Err(error) => {
                    tracing::warn!(app = %name, %error, "autoscaler: cannot change the count");
                }
            }
        } else if decision.held() {
            events.push(decision_event(
                name,
                now,
                EventKind::AutoscaleHeld,
                format!(
                    "autoscaling held at {} instances: {}, but {}",
                    decision.current,
                    formula(&decision, settings),
                    hold_reason(settings, &decision)
                ),
                settings,
                &decision,
            ));
        }
        {
            let mut book = self.autoscaler.lock();
            let memory = book.entry(name.to_string()).or_default();
            // A lasting hold or refusal is said once, until something changes.
            events.retain(|event| {
                let key = (event.kind, decision.verdict, decision.desired);
                let repeated = memory.last_hold == Some(key);
                memory.last_hold = Some(key);
                !repeated
            });
            if evaluation.applied.is_some() || !(decision.held() || evaluation.quota.is_some()) {
                memory.last_hold = None;
            }
            memory.evaluations.push_back(evaluation);
            while memory.evaluations.len() > KEPT_EVALUATIONS {
                memory.evaluations.pop_front();
            }
        }
        if !events.is_empty() {
            self.controller.record(events).await;
        }
    }

    /// The most instances the team's quota admits for `app`, above its count and below
    /// `wanted`.
    async fn largest_admitted(&self, app: &App, wanted: u32) -> Option<u32> {
        let budget = Budget::of(self.store.as_ref(), &app.team, Some(&app.name))
            .await
            .ok()?;
        let resources = self
            .store
            .get_revision(&app.name, app.current_revision)
            .await
            .ok()??
            .template
            .resources;
        let before = steady(app, &resources);
        (app.replicas + 1..wanted)
            .rev()
            .find(|count| budget.admit(before, app_usage(*count, &resources)).is_ok())
    }

    /// Scales `app` from the count `decision` was made at to `count`, as Berth (no actor),
    /// recording the decision; `false` when the app changed meanwhile (its count, or its
    /// autoscaling), so the next evaluation decides again.
    async fn apply_count(
        &self,
        app: &App,
        settings: &Autoscale,
        decision: &Decision,
        count: u32,
    ) -> OpResult<bool> {
        let mut applied = false;
        self.modify(None, &app.name, |current, _, now| {
            applied = current.replicas == decision.current
                && current.autoscale.as_ref() == Some(settings)
                && current.idled.is_none();
            if !applied {
                return Ok(Modification::Unchanged);
            }
            current.replicas = count;
            let held = if count == decision.desired {
                match decision.verdict {
                    Verdict::Scale => String::new(),
                    _ => format!(" ({})", hold_reason(settings, decision)),
                }
            } else {
                " (capped by the quota)".to_string()
            };
            let mut event = decision_event(
                &app.name,
                now,
                EventKind::Autoscaled,
                format!(
                    "autoscaled from {} to {count} instances: {}{held}",
                    decision.current,
                    formula(decision, settings)
                ),
                settings,
                decision,
            );
            event.params.insert("to".into(), count.to_string());
            Ok(Modification::Settings(vec![event]))
        })
        .await?;
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_controller::endpoints::Endpoint;
    use berth_controller::usage::History;
    use berth_engine::ResourceSample;

    fn usage(app: &str, cpu_per_5s_ms: &[u64]) -> InstanceUsage {
        let mut history = History::default();
        let mut cpu = 0;
        for (i, ms) in cpu_per_5s_ms.iter().enumerate() {
            let at = i64::try_from(i).expect("small") * 5_000;
            history.push(
                ResourceSample {
                    sampled_at_ms: at,
                    cpu_time_ns: cpu,
                    memory_bytes: 1,
                    memory_limit_bytes: None,
                },
                Duration::from_secs(300),
            );
            cpu += ms * 1_000_000;
        }
        InstanceUsage {
            app: app.into(),
            instance: format!("{app}-x"),
            cpu_millis: None,
            cpu_millis_avg: None,
            avg_span_ms: 0,
            memory_bytes: 1,
            memory_limit_bytes: None,
            sampled_at: 0,
            history,
        }
    }

    fn endpoint(id: &str) -> Endpoint {
        Endpoint {
            container_id: id.into(),
            instance: id.into(),
            address: "10.0.0.1".into(),
            port: 80,
            revision: 1,
        }
    }

    #[test]
    fn observation_marks_ready_sampled_and_missing_instances() {
        // c1: ready, 250 m (1.25 s of CPU every 5 s); c2: sampled, not ready; c3: ready
        // without samples; c9: another app's.
        let usage = HashMap::from([
            ("c1".to_string(), usage("web", &[1_250, 1_250, 1_250])),
            ("c2".to_string(), usage("web", &[500, 500])),
            ("c9".to_string(), usage("api", &[5_000, 5_000])),
        ]);
        let endpoints = EndpointMap::from([
            ("web".to_string(), vec![endpoint("c1"), endpoint("c3")]),
            ("api".to_string(), vec![endpoint("c9")]),
        ]);
        let mut loads = observe("web", 500, Duration::from_secs(60), &usage, &endpoints);
        loads.sort_by_key(|l| (l.ready, l.load));
        assert_eq!(
            loads,
            vec![
                // 100 m of a 500 m limit
                InstanceLoad {
                    ready: false,
                    load: Some(2_000)
                },
                InstanceLoad {
                    ready: true,
                    load: None
                },
                // 250 m of 500 m
                InstanceLoad {
                    ready: true,
                    load: Some(5_000)
                },
            ]
        );
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(percent(12_345), "123.4 %");
        assert_eq!(percent(6_000), "60.0 %");
        assert_eq!(percent(5), "0.0 %");
        let decision = Decision {
            current: 2,
            sampled: 2,
            missing: 1,
            not_ready: 0,
            sum: 18_000,
            target: 6_000,
            raw: Some(3),
            recommended: 3,
            desired: 3,
            verdict: Verdict::Scale,
            burst: None,
            burst_raw: None,
            panicking_until: None,
        };
        assert_eq!(
            formula(&decision, &Autoscale::new(1, 5)),
            "2 ready instances sampled over 1m, 1 without samples; CPU use 180.0 % of the \
             limit in all ÷ target 60.0 % = 3.00 → 3"
        );
        let on_requests = Decision {
            missing: 0,
            sum: 45_500,
            target: 10_000,
            raw: Some(5),
            desired: 5,
            recommended: 5,
            burst: Some(60_004),
            burst_raw: Some(7),
            panicking_until: Some(1),
            ..decision
        };
        let settings = Autoscale::on_requests(1, 9, Metric::Concurrency, 10);
        assert_eq!(
            formula(&on_requests, &settings),
            "2 ready instances sampled over 1m; requests in flight 45.50 in flight in all ÷ \
             target 10.00 in flight = 4.55 → 5; the last 6s: 60.01 in flight → 7 (panic: a \
             burst)"
        );
        assert_eq!(amount(Metric::Rps, 1), "0.01 req/s");
    }

    #[test]
    fn request_loads_are_shared_by_the_ready_instances() {
        // (ready, replicas, total, loads of the ready ones, not ready)
        let cases: [(usize, u32, Option<u64>, Vec<Option<u64>>, usize); 4] = [
            (
                3,
                3,
                Some(10_000),
                vec![Some(3_334), Some(3_333), Some(3_333)],
                0,
            ),
            (2, 4, Some(0), vec![Some(0), Some(0)], 2),
            (1, 1, None, vec![None], 0),
            (0, 2, Some(5_000), vec![], 2),
        ];
        for (ready, replicas, total, want, not_ready) in cases {
            let loads = observe_requests(ready, replicas, total);
            let got: Vec<Option<u64>> = loads.iter().filter(|l| l.ready).map(|l| l.load).collect();
            assert_eq!(got, want, "{ready} of {replicas}, {total:?}");
            assert_eq!(loads.iter().filter(|l| !l.ready).count(), not_ready);
        }
    }
}
