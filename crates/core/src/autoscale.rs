//! CPU autoscaling (opt-in per app): the settings and their bounds, and the pure decision of
//! how many instances an app needs — the founding brief's rule, desired = ceil(sum of the
//! instances' CPU utilisation / target utilisation), made safe the way Kubernetes' replica
//! calculator and its scaling behaviours make it safe.
//!
//! The decision works on *loads* in integer units, so no rounding can tip a `ceil`: for CPU a
//! load is an instance's utilisation of its CPU limit in basis points (10 000 = the whole
//! limit), and the target is the wanted utilisation in the same units. In order:
//!
//! 1. **Ratio.** Only ready instances with samples count at first. Their usage ratio is
//!    sum / (target × count); within the tolerance band around 1 nothing changes.
//! 2. **Missing and not-ready instances, conservatively.** A ready instance without samples
//!    counts as fully loaded (the whole limit) when the ratio says "down" and as idle when it
//!    says "up"; an instance that is not ready counts as idle, and only when scaling up. If
//!    these guesses flip the direction or land within tolerance, nothing changes.
//! 3. **The brief's formula:** raw = ceil(sum / target), clamped to [min, max].
//! 4. **Scale-down stabilisation:** a scale down goes only as low as the highest
//!    recommendation of the stabilisation window (default 5 minutes), so a dip does not
//!    remove instances a moment before the load returns.
//! 5. **Growth cap:** one step adds at most max(current, [`MIN_STEP_UP`]) instances.
//!
//! The quota is the caller's last word: every scale up is admitted against the team's quota
//! as any other change of the app.
//!
//! **Beyond CPU** ([`Metric`]): an app may scale on the requests the router counts instead —
//! requests in flight per instance (average concurrency over the window, Knative's default
//! metric) or requests per second per instance. Loads are then thousandths of a request, and
//! the same steps apply, plus Knative's **panic mode** (step 0): the load of the short panic
//! window (default 6 s) is put through the formula too, and when it asks for at least the
//! panic threshold (default 200 %) of the ready instances, the app panics for one window:
//! the count follows the larger of the two recommendations at once (no tolerance band, no
//! growth cap) and never goes down until the panic is over.

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::validate::{MAX_REPLICAS, ValidationErrors};

/// The average window when none is set: the brief's "last minute".
pub const DEFAULT_WINDOW_SECS: u32 = 60;
/// The shortest average window: two samples 5 s apart, and then some.
pub const MIN_WINDOW_SECS: u32 = 10;
/// The longest average window (the usage sampler keeps this much history).
pub const MAX_WINDOW_SECS: u32 = 300;
/// The tolerance band when none is set (Kubernetes' default).
pub const DEFAULT_TOLERANCE_PERCENT: u32 = 10;
/// The widest tolerance band.
pub const MAX_TOLERANCE_PERCENT: u32 = 50;
/// The scale-down stabilisation window when none is set (Kubernetes' default).
pub const DEFAULT_SCALE_DOWN_STABILIZATION_SECS: u32 = 300;
/// The longest scale-down stabilisation window.
pub const MAX_SCALE_DOWN_STABILIZATION_SECS: u32 = 3600;
/// One step may always add this many instances (and at most doubles the app above it).
pub const MIN_STEP_UP: u32 = 4;
/// A load of a whole CPU limit, in basis points.
pub const FULL_CPU_LOAD: u64 = 10_000;
/// A request metric's load of one request (in flight, or per second), in thousandths.
pub const ONE_REQUEST_LOAD: u64 = 1000;
/// The panic window when none is set (Knative's: 10 % of its 60 s stable window).
pub const DEFAULT_PANIC_WINDOW_SECS: u32 = 6;
/// The shortest panic window: the router's counters are read every second.
pub const MIN_PANIC_WINDOW_SECS: u32 = 2;
/// The panic threshold when none is set (Knative's): the burst asks for twice the instances.
pub const DEFAULT_PANIC_THRESHOLD_PERCENT: u32 = 200;
/// The lowest panic threshold: panic only when the burst asks for more than there is.
pub const MIN_PANIC_THRESHOLD_PERCENT: u32 = 110;
/// The highest panic threshold.
pub const MAX_PANIC_THRESHOLD_PERCENT: u32 = 1000;
/// The highest target of a request metric, per instance.
pub const MAX_REQUEST_TARGET: u32 = 100_000;

/// What an app scales on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// CPU use as a share of the instance's CPU limit (the founding brief's rule).
    #[default]
    Cpu,
    /// Requests in flight per instance: the average concurrency the router saw over the
    /// window (the time its requests took, per second).
    Concurrency,
    /// Requests per second per instance, as the router counted them.
    Rps,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Concurrency => "concurrency",
            Metric::Rps => "rps",
        }
    }

    /// Parses the API and CLI name.
    pub fn parse(name: &str) -> Option<Metric> {
        [Metric::Cpu, Metric::Concurrency, Metric::Rps]
            .into_iter()
            .find(|metric| metric.as_str() == name)
    }

    /// Whether the router's request counters are the metric's source.
    pub fn counts_requests(self) -> bool {
        self != Metric::Cpu
    }
}

/// An app's autoscaling setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Autoscale {
    /// Fewest instances (at least 1).
    pub min: u32,
    /// Most instances.
    pub max: u32,
    /// The CPU use each instance should run at, in percent of its CPU limit (1–100). 100, the
    /// default, is the brief's rule (the target is the limit itself); less leaves headroom.
    pub cpu_percent: u32,
    /// How far back CPU use is averaged, seconds.
    pub window_secs: u32,
    /// Usage within this many percent of the target changes nothing.
    pub tolerance_percent: u32,
    /// A scale down goes no lower than the highest recommendation of this many seconds.
    pub scale_down_stabilization_secs: u32,
    /// What it scales on (settings stored before request metrics existed are CPU).
    #[serde(default)]
    pub metric: Metric,
    /// For a request metric: the requests in flight, or per second, each instance should
    /// take (0 with CPU).
    #[serde(default)]
    pub target_requests: u32,
    /// For a request metric: the short window whose burst can start a panic, seconds.
    #[serde(default = "default_panic_window")]
    pub panic_window_secs: u32,
    /// For a request metric: the burst's recommendation, in percent of the ready instances,
    /// that starts a panic.
    #[serde(default = "default_panic_threshold")]
    pub panic_threshold_percent: u32,
}

fn default_panic_window() -> u32 {
    DEFAULT_PANIC_WINDOW_SECS
}

fn default_panic_threshold() -> u32 {
    DEFAULT_PANIC_THRESHOLD_PERCENT
}

impl Autoscale {
    /// A setting with every default but the range.
    pub fn new(min: u32, max: u32) -> Autoscale {
        Autoscale {
            min,
            max,
            cpu_percent: 100,
            window_secs: DEFAULT_WINDOW_SECS,
            tolerance_percent: DEFAULT_TOLERANCE_PERCENT,
            scale_down_stabilization_secs: DEFAULT_SCALE_DOWN_STABILIZATION_SECS,
            metric: Metric::Cpu,
            target_requests: 0,
            panic_window_secs: DEFAULT_PANIC_WINDOW_SECS,
            panic_threshold_percent: DEFAULT_PANIC_THRESHOLD_PERCENT,
        }
    }

    /// A setting on a request metric with every default but the range and the target.
    pub fn on_requests(min: u32, max: u32, metric: Metric, target_requests: u32) -> Autoscale {
        Autoscale {
            metric,
            target_requests,
            ..Autoscale::new(min, max)
        }
    }

    /// Checks every bound, naming the API field of each bad value.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if self.min == 0 {
            errors.push(
                "min_instances",
                "must be at least 1 (scale to zero is the idle timeout's job)",
            );
        }
        if self.max > MAX_REPLICAS {
            errors.push("max_instances", format!("must be at most {MAX_REPLICAS}"));
        }
        if self.min > self.max {
            errors.push(
                "min_instances",
                format!(
                    "must not be above max_instances ({} > {})",
                    self.min, self.max
                ),
            );
        }
        if !(1..=100).contains(&self.cpu_percent) {
            errors.push(
                "cpu_percent",
                "must be between 1 and 100 (percent of the CPU limit)",
            );
        }
        if !(MIN_WINDOW_SECS..=MAX_WINDOW_SECS).contains(&self.window_secs) {
            errors.push(
                "window_seconds",
                format!("must be between {MIN_WINDOW_SECS} and {MAX_WINDOW_SECS}"),
            );
        }
        if self.metric.counts_requests() {
            if !(1..=MAX_REQUEST_TARGET).contains(&self.target_requests) {
                errors.push(
                    "target",
                    format!(
                        "must be between 1 and {MAX_REQUEST_TARGET} (requests {} per instance)",
                        if self.metric == Metric::Rps {
                            "per second"
                        } else {
                            "in flight"
                        }
                    ),
                );
            }
            if !(MIN_PANIC_WINDOW_SECS..=self.window_secs.max(MIN_PANIC_WINDOW_SECS))
                .contains(&self.panic_window_secs)
            {
                errors.push(
                    "panic_window_seconds",
                    format!(
                        "must be between {MIN_PANIC_WINDOW_SECS} and the window ({} s)",
                        self.window_secs
                    ),
                );
            }
            if !(MIN_PANIC_THRESHOLD_PERCENT..=MAX_PANIC_THRESHOLD_PERCENT)
                .contains(&self.panic_threshold_percent)
            {
                errors.push(
                    "panic_threshold_percent",
                    format!(
                        "must be between {MIN_PANIC_THRESHOLD_PERCENT} and \
                         {MAX_PANIC_THRESHOLD_PERCENT}"
                    ),
                );
            }
        } else if self.target_requests != 0 {
            errors.push(
                "target",
                "applies to the request metrics (concurrency, rps); CPU takes cpu_percent",
            );
        }
        if self.tolerance_percent > MAX_TOLERANCE_PERCENT {
            errors.push(
                "tolerance_percent",
                format!("must be at most {MAX_TOLERANCE_PERCENT}"),
            );
        }
        if self.scale_down_stabilization_secs > MAX_SCALE_DOWN_STABILIZATION_SECS {
            errors.push(
                "scale_down_stabilization_seconds",
                format!("must be at most {MAX_SCALE_DOWN_STABILIZATION_SECS}"),
            );
        }
        errors.into_result()
    }

    /// The target load per instance: basis points of the CPU limit, or thousandths of a
    /// request for a request metric.
    pub fn target_load(&self) -> u64 {
        match self.metric {
            Metric::Cpu => u64::from(self.cpu_percent) * 100,
            Metric::Concurrency | Metric::Rps => u64::from(self.target_requests) * ONE_REQUEST_LOAD,
        }
    }
}

/// A CPU use as a load: basis points of `limit_millis` (rounded to the nearest).
pub fn cpu_load(cpu_millis: u64, limit_millis: u64) -> u64 {
    if limit_millis == 0 {
        return 0;
    }
    let limit = u128::from(limit_millis);
    let load = (u128::from(cpu_millis) * u128::from(FULL_CPU_LOAD) + limit / 2) / limit;
    u64::try_from(load).unwrap_or(u64::MAX)
}

/// What the autoscaler knows of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLoad {
    /// Ready and in the router's rotation.
    pub ready: bool,
    /// Its load averaged over the window; `None` without two samples in it.
    pub load: Option<u64>,
}

/// Everything one evaluation looks at.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The app's instance count now.
    pub current: u32,
    pub instances: &'a [InstanceLoad],
    /// Wanted load per instance (> 0).
    pub target: u64,
    /// The load a ready instance without samples counts as when scaling down.
    pub full: u64,
    /// A request metric's load summed over the panic window (`None`: no panic mode).
    pub burst: Option<u64>,
    /// The panic in progress: until when it lasts (from the previous evaluation).
    pub panicking_until: Option<Millis>,
}

/// Why the count is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No ready instance has samples yet: nothing to go by.
    NoSamples,
    /// The load is within the tolerance band of the target (or the conservative guesses for
    /// missing and not-ready instances put it there, or turned its direction).
    WithinTolerance,
    /// The count changes to what the formula says.
    Scale,
    /// The formula wants fewer, but a recommendation of the stabilisation window holds the
    /// count higher.
    Stabilized,
    /// The formula wants more than one step may add.
    StepCapped,
    /// The formula wants more than the maximum (or fewer than the minimum), which holds.
    AtBound,
    /// A burst: the panic window's load asks for more instances at once, and the count does
    /// not go down until the panic is over.
    Panic,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::NoSamples => "no_samples",
            Verdict::WithinTolerance => "within_tolerance",
            Verdict::Scale => "scale",
            Verdict::Stabilized => "stabilized",
            Verdict::StepCapped => "step_capped",
            Verdict::AtBound => "at_bound",
            Verdict::Panic => "panic",
        }
    }
}

/// One evaluation with every number that went into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The instance count before.
    pub current: u32,
    /// Ready instances whose samples were used.
    pub sampled: u32,
    /// Ready instances without samples (counted conservatively).
    pub missing: u32,
    /// Instances not ready (counted as idle when scaling up, else left out).
    pub not_ready: u32,
    /// The summed load the formula used (guesses included).
    pub sum: u64,
    /// The target load per instance.
    pub target: u64,
    /// ceil(sum / target): the brief's formula, before any guard (`None` without samples).
    pub raw: Option<u32>,
    /// What the formula and the tolerance band recommend, clamped to [min, max]: the value
    /// the stabilisation window remembers.
    pub recommended: u32,
    /// The count to scale to (before the quota).
    pub desired: u32,
    pub verdict: Verdict,
    /// The panic window's load, summed (request metrics only).
    pub burst: Option<u64>,
    /// ceil(burst / target): the formula on the panic window's load.
    pub burst_raw: Option<u32>,
    /// Until when the app panics (set while in a panic; the caller keeps it for the next
    /// evaluation).
    pub panicking_until: Option<Millis>,
}

impl Decision {
    /// Whether the count changes.
    pub fn changes(&self) -> bool {
        self.desired != self.current
    }

    /// Whether the formula alone would change the count but a guard holds it (some or all).
    /// Resting at the minimum while the formula wants fewer is not a hold: it is the floor
    /// the user chose.
    pub fn held(&self) -> bool {
        let at_floor = self.verdict == Verdict::AtBound
            && self.desired == self.current
            && self.raw.is_some_and(|raw| raw < self.current);
        !matches!(
            self.verdict,
            Verdict::Scale | Verdict::NoSamples | Verdict::Panic
        ) && !at_floor
            && self.raw.is_some_and(|raw| raw != self.current)
    }
}

/// ceil(a / b) as an instance count (b > 0).
fn ceil_count(sum: u64, target: u64) -> u32 {
    let target = target.max(1);
    u32::try_from(sum.div_ceil(target)).unwrap_or(u32::MAX)
}

/// Whether sum / (target × count) is within `tolerance_percent` of 1.
fn within_tolerance(sum: u64, target: u64, count: u32, tolerance_percent: u32) -> bool {
    let expected = u128::from(target) * u128::from(count);
    let distance = u128::from(sum).abs_diff(expected);
    distance * 100 <= expected * u128::from(tolerance_percent)
}

/// The formula with its guards for missing and not-ready instances (steps 1–3 above):
/// the recommended count, the raw formula and the numbers it used.
fn recommend(settings: &Autoscale, inputs: &Inputs<'_>) -> Decision {
    let target = inputs.target.max(1);
    let mut sampled = 0u32;
    let mut missing = 0u32;
    let mut not_ready = 0u32;
    let mut sum = 0u64;
    for instance in inputs.instances {
        match (instance.ready, instance.load) {
            (true, Some(load)) => {
                sampled += 1;
                sum = sum.saturating_add(load);
            }
            (true, None) => missing += 1,
            (false, _) => not_ready += 1,
        }
    }
    let clamp = |n: u32| n.clamp(settings.min, settings.max);
    let mut decision = Decision {
        current: inputs.current,
        sampled,
        missing,
        not_ready,
        sum,
        target,
        raw: None,
        recommended: clamp(inputs.current),
        desired: clamp(inputs.current),
        verdict: Verdict::NoSamples,
        burst: inputs.burst,
        burst_raw: None,
        panicking_until: None,
    };
    if sampled == 0 {
        return decision;
    }
    let expected = u128::from(target) * u128::from(sampled);
    let up = u128::from(sum) > expected;
    let down = u128::from(sum) < expected;
    let scale_up_with_unready = not_ready > 0 && up;
    let (sum, count) = if missing == 0 && !scale_up_with_unready {
        (sum, sampled)
    } else {
        // Missing samples count as the full load when going down and as nothing when going
        // up; not-ready instances as nothing, and only when going up.
        let sum = if down {
            sum.saturating_add(inputs.full.saturating_mul(u64::from(missing)))
        } else {
            sum
        };
        let count = sampled + missing + if scale_up_with_unready { not_ready } else { 0 };
        (sum, count)
    };
    decision.sum = sum;
    let raw = ceil_count(sum, target);
    decision.raw = Some(raw);
    let expected = u128::from(target) * u128::from(count);
    let flipped = (up && u128::from(sum) < expected) || (down && u128::from(sum) > expected);
    let wrong_way = (up && raw < inputs.current) || (down && raw > inputs.current);
    let proposal =
        if within_tolerance(sum, target, count, settings.tolerance_percent) || flipped || wrong_way
        {
            decision.verdict = Verdict::WithinTolerance;
            inputs.current
        } else {
            decision.verdict = Verdict::Scale;
            raw
        };
    decision.recommended = clamp(proposal);
    if decision.verdict == Verdict::Scale && decision.recommended != proposal {
        decision.verdict = Verdict::AtBound;
    }
    decision.desired = decision.recommended;
    decision
}

/// Decides the instance count at `now`. `past` holds the recommendations of earlier
/// evaluations (time, recommended count); the ones older than the stabilisation window are
/// ignored. Record the returned [`Decision::recommended`] for the next evaluation.
pub fn decide(
    settings: &Autoscale,
    inputs: &Inputs<'_>,
    past: &[(Millis, u32)],
    now: Millis,
) -> Decision {
    let mut decision = recommend(settings, inputs);
    let current = inputs.current;
    let recommended = decision.recommended;
    if let Some(burst) = inputs.burst {
        let burst_raw = ceil_count(burst, inputs.target);
        decision.burst_raw = Some(burst_raw);
        let ready = u64::from(decision.sampled + decision.missing);
        // Knative: panic when the burst asks for the threshold's share of the ready instances.
        let starts = ready > 0
            && u64::from(burst_raw) * 100 >= ready * u64::from(settings.panic_threshold_percent);
        let window_ms = i64::from(settings.window_secs) * 1000;
        let until = match (starts, inputs.panicking_until) {
            (true, _) => Some(now.saturating_add(window_ms)),
            (false, Some(until)) if until > now => Some(until),
            _ => None,
        };
        if until.is_some() {
            decision.panicking_until = until;
            // The larger recommendation at once, never below the count there is.
            let wanted = burst_raw.max(decision.raw.unwrap_or(0)).max(current);
            decision.desired = wanted.clamp(settings.min, settings.max);
            decision.recommended = decision.recommended.max(decision.desired);
            decision.verdict = if wanted > settings.max {
                Verdict::AtBound
            } else {
                Verdict::Panic
            };
            return decision;
        }
    }
    if recommended < current {
        let window_ms = i64::from(settings.scale_down_stabilization_secs) * 1000;
        let highest = past
            .iter()
            .filter(|(at, _)| now.saturating_sub(*at) < window_ms)
            .map(|(_, count)| *count)
            .fold(recommended, u32::max)
            .min(current);
        if highest > recommended {
            decision.desired = highest.max(settings.min);
            decision.verdict = Verdict::Stabilized;
        }
    } else if recommended > current {
        let cap = current.saturating_add(current.max(MIN_STEP_UP));
        if recommended > cap {
            decision.desired = cap;
            decision.verdict = Verdict::StepCapped;
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: bool = true;

    fn loads(list: &[(bool, Option<u64>)]) -> Vec<InstanceLoad> {
        list.iter()
            .map(|&(ready, load)| InstanceLoad { ready, load })
            .collect()
    }

    #[test]
    fn cpu_load_is_the_share_of_the_limit_in_basis_points() {
        // (millicores, limit, load)
        let cases = [
            (500, 1000, 5000),
            (1000, 1000, 10_000),
            (1500, 1000, 15_000),
            (1, 3, 3333),
            (2, 3, 6667),
            (0, 500, 0),
            (100, 0, 0),
        ];
        for (millis, limit, want) in cases {
            assert_eq!(cpu_load(millis, limit), want, "{millis}m of {limit}m");
        }
    }

    #[test]
    fn settings_bounds_name_the_field() {
        let ok = Autoscale::new(2, 10);
        assert_eq!(ok.validate(), Ok(()));
        let cases: [(fn(&mut Autoscale), &str); 8] = [
            (|a| a.min = 0, "min_instances"),
            (|a| a.min = 11, "min_instances"),
            (|a| a.max = MAX_REPLICAS + 1, "max_instances"),
            (|a| a.cpu_percent = 0, "cpu_percent"),
            (|a| a.cpu_percent = 101, "cpu_percent"),
            (|a| a.window_secs = 5, "window_seconds"),
            (|a| a.tolerance_percent = 51, "tolerance_percent"),
            (
                |a| a.scale_down_stabilization_secs = 3601,
                "scale_down_stabilization_seconds",
            ),
        ];
        for (spoil, field) in cases {
            let mut settings = ok;
            spoil(&mut settings);
            let errors = settings.validate().expect_err(field);
            assert_eq!(errors.first().map(|e| e.field.as_str()), Some(field));
        }
    }

    /// The ratio rule with its guards, without stabilisation history. Target 60 % (6000),
    /// tolerance 10 %, range 1–20 unless the case says otherwise.
    #[test]
    fn the_formula_and_its_guards() {
        struct Case {
            name: &'static str,
            current: u32,
            instances: Vec<(bool, Option<u64>)>,
            range: (u32, u32),
            raw: Option<u32>,
            desired: u32,
            verdict: Verdict,
        }
        let cases = [
            Case {
                name: "brief's formula: 2 × 90 % / 60 % = 3",
                current: 2,
                instances: vec![(READY, Some(9000)), (READY, Some(9000))],
                range: (1, 20),
                raw: Some(3),
                desired: 3,
                verdict: Verdict::Scale,
            },
            Case {
                name: "ceil: 3 × 70 % / 60 % = 3.5 → 4",
                current: 3,
                instances: vec![
                    (READY, Some(7000)),
                    (READY, Some(7000)),
                    (READY, Some(7000)),
                ],
                range: (1, 20),
                raw: Some(4),
                desired: 4,
                verdict: Verdict::Scale,
            },
            Case {
                name: "exactly on target: 2 × 60 %",
                current: 2,
                instances: vec![(READY, Some(6000)), (READY, Some(6000))],
                range: (1, 20),
                raw: Some(2),
                desired: 2,
                verdict: Verdict::WithinTolerance,
            },
            Case {
                name: "within tolerance: 64 % is 6.7 % above 60 %",
                current: 3,
                instances: vec![
                    (READY, Some(6400)),
                    (READY, Some(6400)),
                    (READY, Some(6400)),
                ],
                range: (1, 20),
                raw: Some(4),
                desired: 3,
                verdict: Verdict::WithinTolerance,
            },
            Case {
                name: "scale down: 4 × 15 % / 60 % = 1",
                current: 4,
                instances: vec![
                    (READY, Some(1500)),
                    (READY, Some(1500)),
                    (READY, Some(1500)),
                    (READY, Some(1500)),
                ],
                range: (1, 20),
                raw: Some(1),
                desired: 1,
                verdict: Verdict::Scale,
            },
            Case {
                name: "scale down stops at the minimum",
                current: 4,
                instances: vec![(READY, Some(0)); 4],
                range: (2, 20),
                raw: Some(0),
                desired: 2,
                verdict: Verdict::AtBound,
            },
            Case {
                name: "scale up stops at the maximum",
                current: 2,
                instances: vec![(READY, Some(30_000)), (READY, Some(30_000))],
                range: (1, 5),
                raw: Some(10),
                desired: 5,
                verdict: Verdict::AtBound,
            },
            Case {
                name: "no ready instance with samples: keep",
                current: 3,
                instances: vec![(READY, None), (false, Some(9000))],
                range: (1, 20),
                raw: None,
                desired: 3,
                verdict: Verdict::NoSamples,
            },
            Case {
                name: "no samples still honours the range",
                current: 1,
                instances: vec![],
                range: (2, 20),
                raw: None,
                desired: 2,
                verdict: Verdict::NoSamples,
            },
            Case {
                name: "missing sample when going down counts as the whole limit",
                // measured: 2 × 10 % → down; guessed: (10 + 10 + 100) % = 120 % / 60 % = 2
                current: 3,
                instances: vec![(READY, Some(1000)), (READY, Some(1000)), (READY, None)],
                range: (1, 20),
                raw: Some(2),
                desired: 2,
                verdict: Verdict::Scale,
            },
            Case {
                name: "missing sample that turns a scale down around: keep",
                // measured 50 % → down; guessed (50 + 100) / 2 = 75 % → up: keep
                current: 2,
                instances: vec![(READY, Some(5000)), (READY, None)],
                range: (1, 20),
                raw: Some(3),
                desired: 2,
                verdict: Verdict::WithinTolerance,
            },
            Case {
                name: "missing sample when going up counts as idle",
                // 2 × 120 % → up; guessed (240 + 0) % / 60 % = 4
                current: 3,
                instances: vec![(READY, Some(12_000)), (READY, Some(12_000)), (READY, None)],
                range: (1, 20),
                raw: Some(4),
                desired: 4,
                verdict: Verdict::Scale,
            },
            Case {
                name: "a not-ready instance counts as idle when going up",
                // 1 × 150 % → up; (150 + 0) / 2 = 75 % → still up; ceil(150 / 60) = 3
                current: 2,
                instances: vec![(READY, Some(15_000)), (false, None)],
                range: (1, 20),
                raw: Some(3),
                desired: 3,
                verdict: Verdict::Scale,
            },
            Case {
                name: "not-ready instances that absorb the scale up: keep",
                // 1 × 100 % → up; (100 + 0 + 0) / 3 = 33 % → down: keep
                current: 3,
                instances: vec![(READY, Some(10_000)), (false, None), (false, Some(0))],
                range: (1, 20),
                raw: Some(2),
                desired: 3,
                verdict: Verdict::WithinTolerance,
            },
            Case {
                name: "not-ready instances are left out when going down",
                current: 3,
                instances: vec![
                    (READY, Some(1000)),
                    (READY, Some(1000)),
                    (false, Some(50_000)),
                ],
                range: (1, 20),
                raw: Some(1),
                desired: 1,
                verdict: Verdict::Scale,
            },
        ];
        for case in cases {
            let settings = Autoscale {
                cpu_percent: 60,
                ..Autoscale::new(case.range.0, case.range.1)
            };
            let instances = loads(&case.instances);
            let inputs = Inputs {
                current: case.current,
                instances: &instances,
                target: settings.target_load(),
                full: FULL_CPU_LOAD,
                burst: None,
                panicking_until: None,
            };
            let decision = decide(&settings, &inputs, &[], 0);
            assert_eq!(decision.raw, case.raw, "{}: raw", case.name);
            assert_eq!(decision.desired, case.desired, "{}: desired", case.name);
            assert_eq!(decision.verdict, case.verdict, "{}: verdict", case.name);
        }
    }

    #[test]
    fn scale_down_waits_for_the_highest_recommendation_of_the_window() {
        let settings = Autoscale {
            scale_down_stabilization_secs: 300,
            ..Autoscale::new(1, 20)
        };
        // Four instances, now at 25 % each: the formula says 1.
        let instances = loads(&[(READY, Some(2500)); 4]);
        let inputs = Inputs {
            current: 4,
            instances: &instances,
            target: settings.target_load(),
            full: FULL_CPU_LOAD,
            burst: None,
            panicking_until: None,
        };
        let now = 1_000_000;
        // (past recommendations, desired, verdict)
        let cases = [
            (vec![], 1, Verdict::Scale),
            (vec![(now - 60_000, 3)], 3, Verdict::Stabilized),
            (
                vec![(now - 60_000, 3), (now - 10_000, 2)],
                3,
                Verdict::Stabilized,
            ),
            (vec![(now - 300_000, 4)], 1, Verdict::Scale),
            (vec![(now - 299_999, 4)], 4, Verdict::Stabilized),
            // A past recommendation above the current count holds it, no more.
            (vec![(now - 5_000, 9)], 4, Verdict::Stabilized),
        ];
        for (past, desired, verdict) in cases {
            let decision = decide(&settings, &inputs, &past, now);
            assert_eq!(decision.recommended, 1, "{past:?}");
            assert_eq!(
                (decision.desired, decision.verdict),
                (desired, verdict),
                "{past:?}"
            );
        }
    }

    #[test]
    fn one_step_adds_at_most_the_current_count_or_four() {
        // (current, formula's count, desired)
        let cases = [
            (1, 20, 5),
            (3, 20, 7),
            (4, 20, 8),
            (10, 20, 20),
            (10, 30, 20),
        ];
        for (current, wanted, desired) in cases {
            let settings = Autoscale::new(1, 100);
            // One instance carrying the whole load at 100 % target: raw = wanted.
            let mut list = vec![(READY, Some(FULL_CPU_LOAD * u64::from(wanted)))];
            list.resize(current as usize, (READY, Some(0)));
            let instances = loads(&list);
            let inputs = Inputs {
                current,
                instances: &instances,
                target: settings.target_load(),
                full: FULL_CPU_LOAD,
                burst: None,
                panicking_until: None,
            };
            let decision = decide(&settings, &inputs, &[], 0);
            assert_eq!(decision.raw, Some(wanted), "{current} → {wanted}");
            assert_eq!(decision.desired, desired, "{current} → {wanted}");
            let verdict = if desired < wanted {
                Verdict::StepCapped
            } else {
                Verdict::Scale
            };
            assert_eq!(decision.verdict, verdict, "{current} → {wanted}");
        }
    }

    #[test]
    fn held_means_the_formula_disagrees_with_the_count() {
        let decision = |raw, current, desired, verdict| Decision {
            current,
            sampled: 1,
            missing: 0,
            not_ready: 0,
            sum: 0,
            target: 1,
            raw,
            recommended: desired,
            desired,
            verdict,
            burst: None,
            burst_raw: None,
            panicking_until: None,
        };
        // (decision, changes, held)
        let cases = [
            (decision(Some(3), 2, 3, Verdict::Scale), true, false),
            (
                decision(Some(2), 2, 2, Verdict::WithinTolerance),
                false,
                false,
            ),
            (
                decision(Some(3), 2, 2, Verdict::WithinTolerance),
                false,
                true,
            ),
            (decision(Some(1), 4, 3, Verdict::Stabilized), true, true),
            (decision(Some(9), 2, 6, Verdict::StepCapped), true, true),
            (decision(None, 2, 2, Verdict::NoSamples), false, false),
            (decision(Some(9), 5, 5, Verdict::AtBound), false, true),
            (decision(Some(0), 2, 2, Verdict::AtBound), false, false),
            (decision(Some(0), 4, 2, Verdict::AtBound), true, true),
        ];
        for (decision, changes, held) in cases {
            assert_eq!(decision.changes(), changes, "{decision:?}");
            assert_eq!(decision.held(), held, "{decision:?}");
        }
    }

    /// Knative's panic mode on a request metric: target 10 in flight per instance, window
    /// 60 s, panic window 6 s, threshold 200 %, range 1–20.
    #[test]
    fn a_burst_panics_and_holds_the_count_up_for_a_window() {
        struct Case {
            name: &'static str,
            current: u32,
            /// Ready instances' window loads (thousandths of a request in flight).
            instances: Vec<u64>,
            burst: u64,
            panicking_until: Option<Millis>,
            desired: u32,
            verdict: Verdict,
            panicking: bool,
        }
        let now: Millis = 1_000_000;
        let cases = [
            Case {
                name: "a burst of 45 in flight on 2 instances asks for 5 ≥ 2 × 2: panic, 5 at once",
                current: 2,
                instances: vec![5_000, 5_000],
                burst: 45_000,
                panicking_until: None,
                desired: 5,
                verdict: Verdict::Panic,
                panicking: true,
            },
            Case {
                name: "a burst that asks for less than twice the instances: no panic",
                current: 2,
                instances: vec![10_000, 10_000],
                burst: 29_000,
                panicking_until: None,
                desired: 2,
                verdict: Verdict::WithinTolerance,
                panicking: false,
            },
            Case {
                name: "a panic skips the growth cap: 1 → 12",
                current: 1,
                instances: vec![2_000],
                burst: 120_000,
                panicking_until: None,
                desired: 12,
                verdict: Verdict::Panic,
                panicking: true,
            },
            Case {
                name: "during a panic the count does not go down though the load fell",
                current: 6,
                instances: vec![1_000; 6],
                burst: 2_000,
                panicking_until: Some(now + 30_000),
                desired: 6,
                verdict: Verdict::Panic,
                panicking: true,
            },
            Case {
                name: "a panic that is over leaves the window's formula in charge",
                current: 6,
                instances: vec![1_000; 6],
                burst: 2_000,
                panicking_until: Some(now - 1),
                desired: 1,
                verdict: Verdict::Scale,
                panicking: false,
            },
            Case {
                name: "a panic stops at the maximum",
                current: 10,
                instances: vec![30_000; 10],
                burst: 900_000,
                panicking_until: None,
                desired: 20,
                verdict: Verdict::AtBound,
                panicking: true,
            },
        ];
        let settings = Autoscale::on_requests(1, 20, Metric::Concurrency, 10);
        for case in cases {
            let instances: Vec<InstanceLoad> = case
                .instances
                .iter()
                .map(|&load| InstanceLoad {
                    ready: true,
                    load: Some(load),
                })
                .collect();
            let inputs = Inputs {
                current: case.current,
                instances: &instances,
                target: settings.target_load(),
                full: settings.target_load(),
                burst: Some(case.burst),
                panicking_until: case.panicking_until,
            };
            let decision = decide(&settings, &inputs, &[], now);
            assert_eq!(decision.desired, case.desired, "{}", case.name);
            assert_eq!(decision.verdict, case.verdict, "{}", case.name);
            assert_eq!(
                decision.panicking_until.is_some(),
                case.panicking,
                "{}",
                case.name
            );
            if decision.panicking_until.is_some() && case.panicking_until.is_none() {
                assert_eq!(
                    decision.panicking_until,
                    Some(now + 60_000),
                    "{}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn request_metric_settings_name_the_field() {
        let ok = Autoscale::on_requests(1, 10, Metric::Rps, 50);
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.target_load(), 50_000);
        let cases: [(fn(&mut Autoscale), &str); 6] = [
            (|a| a.target_requests = 0, "target"),
            (|a| a.target_requests = MAX_REQUEST_TARGET + 1, "target"),
            (|a| a.panic_window_secs = 1, "panic_window_seconds"),
            (|a| a.panic_window_secs = 61, "panic_window_seconds"),
            (
                |a| a.panic_threshold_percent = 100,
                "panic_threshold_percent",
            ),
            (
                |a| {
                    a.metric = Metric::Cpu;
                },
                "target",
            ),
        ];
        for (spoil, field) in cases {
            let mut settings = ok;
            spoil(&mut settings);
            let errors = settings.validate().expect_err(field);
            assert_eq!(errors.first().map(|e| e.field.as_str()), Some(field));
        }
        for name in ["cpu", "concurrency", "rps"] {
            assert_eq!(Metric::parse(name).map(Metric::as_str), Some(name));
        }
        assert_eq!(Metric::parse("memory"), None);
    }

    #[test]
    fn settings_stored_before_request_metrics_read_as_cpu() {
        let stored = r#"{"min":1,"max":5,"cpu_percent":60,"window_secs":60,"tolerance_percent":10,"scale_down_stabilization_secs":300}"#;
        let settings: Autoscale = serde_json::from_str(stored).unwrap();
        assert_eq!(settings.metric, Metric::Cpu);
        assert_eq!(settings.panic_window_secs, DEFAULT_PANIC_WINDOW_SECS);
        assert_eq!(settings.validate(), Ok(()));
    }
}
