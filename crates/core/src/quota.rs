//! Team quotas: limits on CPU, memory, instances, registry and volume storage, what an app reserves
//! against them, the pure check that refuses growth beyond them, and quota requests.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::spec::Resources;
use crate::validate::ValidationErrors;

/// The quota of a newly registered team: 4 cores, 8 GiB memory, 20 instances, 10 GiB of
/// registry storage, 20 GiB of volume storage.
pub const DEFAULT_TEAM_QUOTA: Quota = Quota {
    cpu_millis: Some(4_000),
    memory_bytes: Some(8 * GIB),
    instances: Some(20),
    registry_bytes: Some(10 * GIB),
    volume_bytes: Some(20 * GIB),
};

/// Longest reason of a quota request, in characters.
pub const MAX_QUOTA_REASON_LEN: usize = 1000;

const GIB: u64 = 1024 * 1024 * 1024;

/// A team's limits. `None`: unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub instances: Option<u64>,
    pub registry_bytes: Option<u64>,
    /// What the team's volumes may hold, as measured (see [`crate::volume`]).
    #[serde(default)]
    pub volume_bytes: Option<u64>,
}

/// What a team uses (or what a change would add).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub instances: u64,
    pub registry_bytes: u64,
    #[serde(default)]
    pub volume_bytes: u64,
}

/// One limited resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaResource {
    Cpu,
    Memory,
    Instances,
    RegistryStorage,
    VolumeStorage,
}

/// Why a change does not fit: what was asked, what is in use, what the limit is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaExceeded {
    pub resource: QuotaResource,
    /// What the change adds.
    pub asked: u64,
    /// What the team uses without the change.
    pub in_use: u64,
    pub limit: u64,
}

/// Where a quota request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaRequestStatus {
    Pending,
    Approved,
    Rejected,
}

/// A member's request for a larger quota, and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaRequest {
    /// Assigned by the store.
    pub id: i64,
    pub team: String,
    /// Username of the requester.
    pub requested_by: String,
    /// The limits asked for: each `Some` field is the new limit wanted for that resource
    /// (larger than the limit when filed); `None` fields are left as they are.
    pub requested: Quota,
    pub reason: String,
    pub status: QuotaRequestStatus,
    pub created_at: Millis,
    /// Username of the admin who decided.
    pub decided_by: Option<String>,
    pub decided_at: Option<Millis>,
    /// The admin's comment (required when rejecting).
    pub comment: Option<String>,
}

impl Quota {
    /// No limit on anything.
    pub const fn unlimited() -> Quota {
        Quota {
            cpu_millis: None,
            memory_bytes: None,
            instances: None,
            registry_bytes: None,
            volume_bytes: None,
        }
    }

    /// The limit on `resource`; `None`: unlimited.
    pub fn limit(&self, resource: QuotaResource) -> Option<u64> {
        match resource {
            QuotaResource::Cpu => self.cpu_millis,
            QuotaResource::Memory => self.memory_bytes,
            QuotaResource::Instances => self.instances,
            QuotaResource::RegistryStorage => self.registry_bytes,
            QuotaResource::VolumeStorage => self.volume_bytes,
        }
    }
}

impl Usage {
    /// The amount of `resource` (millicores, bytes or instances).
    pub fn get(&self, resource: QuotaResource) -> u64 {
        match resource {
            QuotaResource::Cpu => self.cpu_millis,
            QuotaResource::Memory => self.memory_bytes,
            QuotaResource::Instances => self.instances,
            QuotaResource::RegistryStorage => self.registry_bytes,
            QuotaResource::VolumeStorage => self.volume_bytes,
        }
    }

    /// Both usages together, each resource saturating at `u64::MAX`.
    #[allow(clippy::should_implement_trait)] // also implemented as `+` below
    pub fn add(self, other: Usage) -> Usage {
        Usage {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
            instances: self.instances.saturating_add(other.instances),
            registry_bytes: self.registry_bytes.saturating_add(other.registry_bytes),
            volume_bytes: self.volume_bytes.saturating_add(other.volume_bytes),
        }
    }

    /// This usage without `other`, each resource stopping at 0.
    pub fn saturating_sub(self, other: Usage) -> Usage {
        Usage {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
            instances: self.instances.saturating_sub(other.instances),
            registry_bytes: self.registry_bytes.saturating_sub(other.registry_bytes),
            volume_bytes: self.volume_bytes.saturating_sub(other.volume_bytes),
        }
    }
}

impl std::ops::Add for Usage {
    type Output = Usage;

    /// Saturating, like [`Usage::add`].
    fn add(self, other: Usage) -> Usage {
        Usage::add(self, other)
    }
}

impl std::iter::Sum for Usage {
    fn sum<I: Iterator<Item = Usage>>(iter: I) -> Usage {
        iter.fold(Usage::default(), Usage::add)
    }
}

impl QuotaResource {
    /// Every resource, in the order checks and messages list them.
    pub const ALL: [QuotaResource; 5] = [
        QuotaResource::Cpu,
        QuotaResource::Memory,
        QuotaResource::Instances,
        QuotaResource::RegistryStorage,
        QuotaResource::VolumeStorage,
    ];

    /// The stable code (as serialized): `cpu`, `memory`, `instances`, `registry_storage`,
    /// `volume_storage`.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaResource::Cpu => "cpu",
            QuotaResource::Memory => "memory",
            QuotaResource::Instances => "instances",
            QuotaResource::RegistryStorage => "registry_storage",
            QuotaResource::VolumeStorage => "volume_storage",
        }
    }

    /// The API field holding this resource's limit or usage: `cpu_millis`, `memory_bytes`,
    /// `instances`, `registry_bytes`, `volume_bytes`.
    pub fn field(self) -> &'static str {
        match self {
            QuotaResource::Cpu => "cpu_millis",
            QuotaResource::Memory => "memory_bytes",
            QuotaResource::Instances => "instances",
            QuotaResource::RegistryStorage => "registry_bytes",
            QuotaResource::VolumeStorage => "volume_bytes",
        }
    }

    /// How messages name the resource.
    fn label(self) -> &'static str {
        match self {
            QuotaResource::RegistryStorage => "registry storage",
            QuotaResource::VolumeStorage => "volume storage",
            other => other.as_str(),
        }
    }

    /// An amount of this resource for people: cores, binary byte units or a plain count.
    pub fn format_amount(self, amount: u64) -> String {
        match self {
            QuotaResource::Cpu => format_cores(amount),
            QuotaResource::Memory
            | QuotaResource::RegistryStorage
            | QuotaResource::VolumeStorage => format_bytes(amount),
            QuotaResource::Instances => amount.to_string(),
        }
    }
}

/// `value / 10^digits` with at most `digits` decimals, trailing zeros trimmed.
fn trimmed_decimal(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Millicores as cores with up to 3 decimals: `1.5 cores`, `1 core`, `0.25 cores`.
pub fn format_cores(millis: u64) -> String {
    if millis == 1000 {
        return "1 core".into();
    }
    format!("{} cores", trimmed_decimal(u128::from(millis), 3))
}

/// Bytes in the largest binary unit that fits, with up to 2 decimals (rounded):
/// `512 MiB`, `1.5 GiB`, `100 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let bytes = u128::from(bytes);
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1u128 << (10 * (unit + 1)) {
        unit += 1;
    }
    let hundredths = |unit: usize| {
        let size = 1u128 << (10 * unit);
        (bytes * 100 + size / 2) / size
    };
    let mut amount = hundredths(unit);
    // Rounding may reach the next unit (1023.999 MiB is 1 GiB, not 1024 MiB).
    if unit + 1 < UNITS.len() && amount >= 1024 * 100 {
        unit += 1;
        amount = hundredths(unit);
    }
    format!("{} {}", trimmed_decimal(amount, 2), UNITS[unit])
}

impl fmt::Display for QuotaExceeded {
    /// `instances: asked for 3, 8 in use, limit 10`, in human units for CPU and bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.resource;
        if self.asked == 0 {
            // Nothing measurable asked (a new volume): the team is already at its limit.
            return write!(
                f,
                "{}: {} in use, limit {}",
                r.label(),
                r.format_amount(self.in_use),
                r.format_amount(self.limit),
            );
        }
        write!(
            f,
            "{}: asked for {}, {} in use, limit {}",
            r.label(),
            r.format_amount(self.asked),
            r.format_amount(self.in_use),
            r.format_amount(self.limit),
        )
    }
}

/// What an app with `replicas` instances of `resources` reserves: `replicas ×` its CPU and
/// memory limits (an unlimited resource counts 0) and `replicas` instances; no registry bytes.
pub fn app_usage(replicas: u32, resources: &Resources) -> Usage {
    let replicas = u64::from(replicas);
    Usage {
        cpu_millis: replicas.saturating_mul(resources.cpu_millis.unwrap_or(0)),
        memory_bytes: replicas.saturating_mul(resources.memory_bytes.unwrap_or(0)),
        instances: replicas,
        registry_bytes: 0,
        volume_bytes: 0,
    }
}

/// Whether a change adding `extra` fits a team using `in_use` under `quota`.
///
/// Only growth is checked: a resource the change does not add to (`extra` 0) never fails,
/// even when the team is already over that limit (e.g. after an admin lowered it). Every
/// resource that does not fit is reported, in [`QuotaResource::ALL`] order.
pub fn check(quota: &Quota, in_use: &Usage, extra: &Usage) -> Result<(), Vec<QuotaExceeded>> {
    let exceeded: Vec<QuotaExceeded> = QuotaResource::ALL
        .into_iter()
        .filter_map(|resource| {
            let asked = extra.get(resource);
            let limit = quota.limit(resource)?;
            let used = in_use.get(resource);
            // An overflowing total exceeds any limit.
            let fits = used.checked_add(asked).is_some_and(|total| total <= limit);
            (asked > 0 && !fits).then_some(QuotaExceeded {
                resource,
                asked,
                in_use: used,
                limit,
            })
        })
        .collect();
    if exceeded.is_empty() {
        Ok(())
    } else {
        Err(exceeded)
    }
}

/// When a team limits CPU (memory), its apps must set a CPU (memory) limit: otherwise one
/// instance could use the whole machine uncounted. Returns the API field and the message of
/// the first missing limit, or `None`.
pub fn required_limits_problem(
    quota: &Quota,
    resources: &Resources,
) -> Option<(&'static str, String)> {
    if quota.cpu_millis.is_some() && resources.cpu_millis.is_none() {
        return Some(("cpu_millis", "is required: team quota limits CPU".into()));
    }
    if quota.memory_bytes.is_some() && resources.memory_bytes.is_none() {
        return Some((
            "memory_bytes",
            "is required: team quota limits memory".into(),
        ));
    }
    None
}

/// Validates a quota request against the team's `current` quota: at least one limit asked
/// for, each larger than the current one (an unlimited resource cannot be raised), and a
/// reason of 1 to [`MAX_QUOTA_REASON_LEN`] characters. Fields are the request's:
/// `cpu_millis`, `memory_bytes`, `instances`, `registry_bytes`, `volume_bytes`, `reason`.
pub fn quota_request_problems(
    current: &Quota,
    requested: &Quota,
    reason: &str,
) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if QuotaResource::ALL
        .iter()
        .all(|&r| requested.limit(r).is_none())
    {
        errors.push(
            QuotaResource::Cpu.field(),
            "ask for at least one of cpu_millis, memory_bytes, instances, registry_bytes, volume_bytes",
        );
    }
    for resource in QuotaResource::ALL {
        let Some(wanted) = requested.limit(resource) else {
            continue;
        };
        match current.limit(resource) {
            None => errors.push(resource.field(), "is unlimited already"),
            Some(limit) if wanted <= limit => {
                let human = match resource {
                    QuotaResource::Instances => String::new(),
                    _ => format!(" ({})", resource.format_amount(limit)),
                };
                errors.push(
                    resource.field(),
                    format!("must be larger than the current limit, {limit}{human}"),
                );
            }
            Some(_) => {}
        }
    }
    if reason.trim().is_empty() {
        errors.push("reason", "must not be empty");
    } else if reason.chars().count() > MAX_QUOTA_REASON_LEN {
        errors.push(
            "reason",
            format!("must be at most {MAX_QUOTA_REASON_LEN} characters"),
        );
    }
    errors.into_result()
}

impl QuotaRequestStatus {
    /// The stable code (as serialized): `pending`, `approved`, `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaRequestStatus::Pending => "pending",
            QuotaRequestStatus::Approved => "approved",
            QuotaRequestStatus::Rejected => "rejected",
        }
    }

    /// The status with code `s`, or `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => QuotaRequestStatus::Pending,
            "approved" => QuotaRequestStatus::Approved,
            "rejected" => QuotaRequestStatus::Rejected,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn usage(cpu_millis: u64, memory_bytes: u64, instances: u64, registry_bytes: u64) -> Usage {
        Usage {
            cpu_millis,
            memory_bytes,
            instances,
            registry_bytes,
            volume_bytes: 0,
        }
    }

    fn quota(cpu: Option<u64>, mem: Option<u64>, inst: Option<u64>, reg: Option<u64>) -> Quota {
        Quota {
            cpu_millis: cpu,
            memory_bytes: mem,
            instances: inst,
            registry_bytes: reg,
            volume_bytes: None,
        }
    }

    #[test]
    fn usage_arithmetic_saturates() {
        // (a, b, a + b, a - b)
        let cases = [
            (
                usage(1, 2, 3, 4),
                usage(10, 20, 30, 40),
                usage(11, 22, 33, 44),
                usage(0, 0, 0, 0),
            ),
            (
                usage(100, 200, 3, 0),
                usage(40, 200, 1, 0),
                usage(140, 400, 4, 0),
                usage(60, 0, 2, 0),
            ),
            (
                usage(u64::MAX, 5, u64::MAX - 1, 0),
                usage(1, 1, 5, 1),
                usage(u64::MAX, 6, u64::MAX, 1),
                usage(u64::MAX - 1, 4, u64::MAX - 6, 0),
            ),
        ];
        for (a, b, sum, diff) in cases {
            assert_eq!(a.add(b), sum, "{a:?} add {b:?}");
            assert_eq!(a + b, sum, "{a:?} + {b:?}");
            assert_eq!(a.saturating_sub(b), diff, "{a:?} - {b:?}");
        }
        let total: Usage = [usage(1, 1, 1, 1), usage(2, 2, 2, 2), usage(3, 0, 0, 9)]
            .into_iter()
            .sum();
        assert_eq!(total, usage(6, 3, 3, 12));
    }

    #[test]
    fn per_resource_accessors() {
        let q = Quota {
            volume_bytes: Some(5),
            ..quota(Some(1), None, Some(3), Some(4))
        };
        let u = Usage {
            volume_bytes: 50,
            ..usage(10, 20, 30, 40)
        };
        // (resource, limit, usage, field, code)
        let cases = [
            (QuotaResource::Cpu, Some(1), 10, "cpu_millis", "cpu"),
            (QuotaResource::Memory, None, 20, "memory_bytes", "memory"),
            (
                QuotaResource::Instances,
                Some(3),
                30,
                "instances",
                "instances",
            ),
            (
                QuotaResource::RegistryStorage,
                Some(4),
                40,
                "registry_bytes",
                "registry_storage",
            ),
            (
                QuotaResource::VolumeStorage,
                Some(5),
                50,
                "volume_bytes",
                "volume_storage",
            ),
        ];
        for (resource, limit, used, field, code) in cases {
            assert_eq!(q.limit(resource), limit, "{resource:?}");
            assert_eq!(u.get(resource), used, "{resource:?}");
            assert_eq!(resource.field(), field);
            assert_eq!(resource.as_str(), code);
            // The code is the serialized form.
            assert_eq!(serde_json::to_value(resource).unwrap(), code);
        }
        for resource in QuotaResource::ALL {
            assert_eq!(Quota::unlimited().limit(resource), None);
        }
        assert_eq!(Quota::unlimited(), Quota::default());
    }

    #[test]
    fn default_team_quota() {
        assert_eq!(
            DEFAULT_TEAM_QUOTA,
            Quota {
                volume_bytes: Some(20 * 1024 * MIB),
                ..quota(
                    Some(4000),
                    Some(8 * 1024 * MIB),
                    Some(20),
                    Some(10 * 1024 * MIB)
                )
            }
        );
    }

    #[test]
    fn app_usage_multiplies_by_replicas() {
        let res = |cpu, mem| Resources {
            cpu_millis: cpu,
            memory_bytes: mem,
        };
        // (replicas, resources, want)
        let cases = [
            (
                3,
                res(Some(500), Some(256 * MIB)),
                usage(1500, 768 * MIB, 3, 0),
            ),
            (0, res(Some(500), Some(256 * MIB)), usage(0, 0, 0, 0)),
            (2, res(None, Some(MIB)), usage(0, 2 * MIB, 2, 0)),
            (4, res(Some(250), None), usage(1000, 0, 4, 0)),
            (5, res(None, None), usage(0, 0, 5, 0)),
            (
                u32::MAX,
                res(Some(u64::MAX / 2), Some(1)),
                usage(u64::MAX, u64::from(u32::MAX), u64::from(u32::MAX), 0),
            ),
        ];
        for (replicas, resources, want) in cases {
            assert_eq!(
                app_usage(replicas, &resources),
                want,
                "{replicas} × {resources:?}"
            );
        }
    }

    #[test]
    fn check_refuses_only_growth_beyond_limits() {
        let exceeded = |resource, asked, in_use, limit| QuotaExceeded {
            resource,
            asked,
            in_use,
            limit,
        };
        let q = quota(Some(4000), Some(1024 * MIB), Some(10), Some(100));
        // (quota, in use, extra, want)
        let cases: Vec<(Quota, Usage, Usage, Result<(), Vec<QuotaExceeded>>)> = vec![
            // Fits exactly.
            (
                q,
                usage(3000, 512 * MIB, 8, 50),
                usage(1000, 512 * MIB, 2, 50),
                Ok(()),
            ),
            // Nothing added.
            (q, usage(0, 0, 0, 0), usage(0, 0, 0, 0), Ok(())),
            // One instance too many.
            (
                q,
                usage(0, 0, 8, 0),
                usage(0, 0, 3, 0),
                Err(vec![exceeded(QuotaResource::Instances, 3, 8, 10)]),
            ),
            // Already over the memory limit, but the change adds no memory.
            (q, usage(0, 2048 * MIB, 1, 0), usage(100, 0, 1, 0), Ok(())),
            // Already over and growing: refused.
            (
                q,
                usage(0, 2048 * MIB, 1, 0),
                usage(0, 1, 0, 0),
                Err(vec![exceeded(
                    QuotaResource::Memory,
                    1,
                    2048 * MIB,
                    1024 * MIB,
                )]),
            ),
            // Every resource over: all reported, in order.
            (
                q,
                usage(4000, 1024 * MIB, 10, 100),
                usage(1, 1, 1, 1),
                Err(vec![
                    exceeded(QuotaResource::Cpu, 1, 4000, 4000),
                    exceeded(QuotaResource::Memory, 1, 1024 * MIB, 1024 * MIB),
                    exceeded(QuotaResource::Instances, 1, 10, 10),
                    exceeded(QuotaResource::RegistryStorage, 1, 100, 100),
                ]),
            ),
            // Unlimited resources never fail.
            (
                Quota::unlimited(),
                usage(u64::MAX, u64::MAX, u64::MAX, u64::MAX),
                usage(u64::MAX, u64::MAX, u64::MAX, u64::MAX),
                Ok(()),
            ),
            (
                quota(None, None, Some(10), None),
                usage(1_000_000, 0, 9, 0),
                usage(1_000_000, 1, 1, 1),
                Ok(()),
            ),
            // A zero limit refuses any growth, and saturation does not wrap around.
            (
                quota(Some(0), None, Some(u64::MAX), None),
                usage(0, 0, u64::MAX, 0),
                usage(1, 0, 1, 0),
                Err(vec![
                    exceeded(QuotaResource::Cpu, 1, 0, 0),
                    exceeded(QuotaResource::Instances, 1, u64::MAX, u64::MAX),
                ]),
            ),
        ];
        for (quota, in_use, extra, want) in cases {
            assert_eq!(
                check(&quota, &in_use, &extra),
                want,
                "{quota:?} {in_use:?} + {extra:?}"
            );
        }
    }

    #[test]
    fn human_amounts() {
        let cores = [
            (0, "0 cores"),
            (1, "0.001 cores"),
            (250, "0.25 cores"),
            (1000, "1 core"),
            (1500, "1.5 cores"),
            (3000, "3 cores"),
            (4010, "4.01 cores"),
            (1234, "1.234 cores"),
        ];
        for (millis, want) in cores {
            assert_eq!(format_cores(millis), want, "{millis} millis");
        }
        let bytes = [
            (0, "0 B"),
            (100, "100 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (512 * MIB, "512 MiB"),
            (1024 * MIB, "1 GiB"),
            (1536 * MIB, "1.5 GiB"),
            (MIB + MIB / 3, "1.33 MiB"),
            (MIB + 2 * MIB / 3, "1.67 MiB"),
            (1024 * MIB - 1, "1 GiB"),
            (8 * 1024 * MIB, "8 GiB"),
            (6_291_456, "6 MiB"),
            (u64::MAX, "16 EiB"),
        ];
        for (n, want) in bytes {
            assert_eq!(format_bytes(n), want, "{n} bytes");
        }
    }

    #[test]
    fn exceeded_messages() {
        let cases = [
            (
                QuotaResource::Instances,
                3,
                8,
                10,
                "instances: asked for 3, 8 in use, limit 10",
            ),
            (
                QuotaResource::Cpu,
                1500,
                3000,
                4000,
                "cpu: asked for 1.5 cores, 3 cores in use, limit 4 cores",
            ),
            (
                QuotaResource::Memory,
                512 * MIB,
                1024 * MIB,
                1536 * MIB,
                "memory: asked for 512 MiB, 1 GiB in use, limit 1.5 GiB",
            ),
            (
                QuotaResource::RegistryStorage,
                120 * MIB,
                10 * 1024 * MIB - 100 * MIB,
                10 * 1024 * MIB,
                "registry storage: asked for 120 MiB, 9.9 GiB in use, limit 10 GiB",
            ),
            (
                QuotaResource::VolumeStorage,
                300 * MIB,
                1024 * MIB,
                1200 * MIB,
                "volume storage: asked for 300 MiB, 1 GiB in use, limit 1.17 GiB",
            ),
            // A new volume asks for nothing measurable: the team is at its limit already.
            (
                QuotaResource::VolumeStorage,
                0,
                2048 * MIB,
                1024 * MIB,
                "volume storage: 2 GiB in use, limit 1 GiB",
            ),
        ];
        for (resource, asked, in_use, limit, want) in cases {
            let e = QuotaExceeded {
                resource,
                asked,
                in_use,
                limit,
            };
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn required_limits() {
        let res = |cpu, mem| Resources {
            cpu_millis: cpu,
            memory_bytes: mem,
        };
        let cpu_missing = Some((
            "cpu_millis",
            "is required: team quota limits CPU".to_string(),
        ));
        let mem_missing = Some((
            "memory_bytes",
            "is required: team quota limits memory".to_string(),
        ));
        // (quota, resources, want)
        let cases = [
            (Quota::unlimited(), res(None, None), None),
            (DEFAULT_TEAM_QUOTA, res(Some(100), Some(MIB)), None),
            (
                DEFAULT_TEAM_QUOTA,
                res(None, Some(MIB)),
                cpu_missing.clone(),
            ),
            (
                DEFAULT_TEAM_QUOTA,
                res(Some(100), None),
                mem_missing.clone(),
            ),
            (DEFAULT_TEAM_QUOTA, res(None, None), cpu_missing),
            (
                quota(None, Some(1), None, None),
                res(None, None),
                mem_missing,
            ),
            // Instance and registry limits need no per-app limit.
            (quota(None, None, Some(1), Some(1)), res(None, None), None),
        ];
        for (quota, resources, want) in cases {
            assert_eq!(
                required_limits_problem(&quota, &resources),
                want,
                "{quota:?} {resources:?}"
            );
        }
    }

    #[test]
    fn quota_request_validation() {
        let current = quota(Some(4000), Some(1024 * MIB), Some(10), None);
        let long = "x".repeat(MAX_QUOTA_REASON_LEN + 1);
        let longest = "é".repeat(MAX_QUOTA_REASON_LEN);
        // (requested, reason, the bad fields)
        let cases: Vec<(Quota, &str, Vec<&str>)> = vec![
            (quota(Some(8000), None, None, None), "more apps", vec![]),
            (
                quota(Some(4001), Some(2048 * MIB), Some(11), None),
                "growth",
                vec![],
            ),
            (quota(None, None, Some(20), None), &longest, vec![]),
            (Quota::unlimited(), "please", vec!["cpu_millis"]),
            (
                quota(Some(4000), None, None, None),
                "same",
                vec!["cpu_millis"],
            ),
            (
                quota(None, Some(512 * MIB), None, None),
                "less",
                vec!["memory_bytes"],
            ),
            (quota(None, None, Some(0), None), "less", vec!["instances"]),
            // Registry storage is unlimited already.
            (
                quota(None, None, None, Some(1)),
                "more",
                vec!["registry_bytes"],
            ),
            (quota(None, None, Some(11), None), "  \n", vec!["reason"]),
            (quota(None, None, Some(11), None), "", vec!["reason"]),
            (quota(None, None, Some(11), None), &long, vec!["reason"]),
            (
                quota(Some(1), Some(1), Some(1), Some(1)),
                "",
                vec![
                    "cpu_millis",
                    "memory_bytes",
                    "instances",
                    "registry_bytes",
                    "reason",
                ],
            ),
        ];
        for (requested, reason, want) in cases {
            let got: Vec<String> = match quota_request_problems(&current, &requested, reason) {
                Ok(()) => vec![],
                Err(e) => e.0.into_iter().map(|e| e.field).collect(),
            };
            assert_eq!(got, want, "{requested:?} {:?}", reason.get(..20));
        }
    }

    #[test]
    fn quota_request_messages() {
        let current = quota(Some(4000), None, Some(10), None);
        let requested = quota(Some(2000), Some(1), Some(10), None);
        let err = quota_request_problems(&current, &requested, "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cpu_millis: must be larger than the current limit, 4000 (4 cores); \
             memory_bytes: is unlimited already; \
             instances: must be larger than the current limit, 10"
        );
    }

    #[test]
    fn request_status_round_trips() {
        for status in [
            QuotaRequestStatus::Pending,
            QuotaRequestStatus::Approved,
            QuotaRequestStatus::Rejected,
        ] {
            assert_eq!(QuotaRequestStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for bad in ["", "Pending", "denied", "approved "] {
            assert_eq!(QuotaRequestStatus::parse(bad), None, "{bad:?}");
        }
    }
}
