//! Persistent volumes: what an app mounts ([`VolumeMount`], `NAME:PATH[:OPTIONS]` on the
//! command line), the team-owned [`Volume`] record, the engine's names for its storage, and
//! the checks on mounts — paths absolute and clean, a volume of the app's own team only, one
//! scope per volume, a per-instance volume in one app only.
//!
//! A **shared** volume is one store every instance of every app mounting it sees (a
//! rolling rollout briefly has two writers: use the recreate strategy when that is unsafe). A
//! **per-instance** volume gives each running instance a store of its own: instance slots
//! `0, 1, …`, an instance taking the lowest slot no other instance of its app holds, so a
//! replacement takes over the slot of the one it replaced once that one stopped.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::validate::{ValidationErrors, name_problem};

/// Most mounts one app may have.
pub const MAX_MOUNTS: usize = 16;
/// Longest mount path.
pub const MAX_PATH_LEN: usize = 256;

/// Paths a mount may not cover: the container's root and the kernel's file systems.
const FORBIDDEN_PATHS: [&str; 4] = ["/", "/proc", "/sys", "/dev"];

/// Whether the instances of an app share one store or each have their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeScope {
    /// One store, mounted by every instance (of every app mounting it).
    #[default]
    Shared,
    /// A store per instance slot, of one app.
    PerInstance,
}

impl VolumeScope {
    /// The stable code: `shared`, `per_instance`.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeScope::Shared => "shared",
            VolumeScope::PerInstance => "per_instance",
        }
    }
}

impl fmt::Display for VolumeScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VolumeScope::Shared => "shared",
            VolumeScope::PerInstance => "per-instance",
        })
    }
}

/// A volume of the app's team mounted at `path` in every instance (part of the revisioned
/// template).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The volume's name within the app's team.
    pub name: String,
    /// Where it appears in the container: absolute, without `.` or `..` parts.
    pub path: String,
    #[serde(default)]
    pub scope: VolumeScope,
    #[serde(default)]
    pub read_only: bool,
}

/// A team's volume as Berth records it; created when an app first mounts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub team: String,
    pub name: String,
    pub scope: VolumeScope,
    pub created_at: Millis,
    /// Username of whoever deployed the app that first mounted it.
    pub created_by: String,
    /// Bytes it holds (every slot of a per-instance volume together), as last measured.
    pub size_bytes: Option<u64>,
    pub measured_at: Option<Millis>,
}

impl VolumeMount {
    /// A shared, writable mount.
    pub fn shared(name: &str, path: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            path: path.into(),
            scope: VolumeScope::Shared,
            read_only: false,
        }
    }

    /// Reads the command line's `NAME:PATH[:OPTIONS]`, OPTIONS a comma-separated list of
    /// `ro` (read-only), `rw`, `shared` and `per-instance`.
    pub fn parse(text: &str) -> Result<VolumeMount, String> {
        let mut parts = text.splitn(3, ':');
        let (name, path) = match (parts.next(), parts.next()) {
            (Some(name), Some(path)) if !name.is_empty() && !path.is_empty() => (name, path),
            _ => return Err(format!("{text:?} is not NAME:PATH[:OPTIONS]")),
        };
        let mut mount = VolumeMount::shared(name, path);
        if let Some(options) = parts.next() {
            for option in options.split(',') {
                match option {
                    "ro" => mount.read_only = true,
                    "rw" => mount.read_only = false,
                    "shared" => mount.scope = VolumeScope::Shared,
                    "per-instance" => mount.scope = VolumeScope::PerInstance,
                    other => {
                        return Err(format!(
                            "unknown volume option {other:?} (ro, rw, shared, per-instance)"
                        ));
                    }
                }
            }
        }
        Ok(mount)
    }
}

impl fmt::Display for VolumeMount {
    /// The command line's form: `data:/var/lib/app`, `cache:/cache:per-instance,ro`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.path)?;
        let options: Vec<&str> = [
            (self.scope == VolumeScope::PerInstance, "per-instance"),
            (self.read_only, "ro"),
        ]
        .into_iter()
        .filter_map(|(on, option)| on.then_some(option))
        .collect();
        if !options.is_empty() {
            write!(f, ":{}", options.join(","))?;
        }
        Ok(())
    }
}

/// Why a mount path is not acceptable, or `None`.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("must be an absolute path (starting with '/')");
    }
    if path.len() > MAX_PATH_LEN {
        return Some("must be at most 256 characters");
    }
    if path.chars().any(|c| c.is_control() || c == ':' || c == ',') {
        return Some("must not contain control characters, ':' or ','");
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed
        .split('/')
        .skip(1)
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Some("must not contain empty, '.' or '..' parts");
    }
    let clean = if trimmed.is_empty() { "/" } else { trimmed };
    if FORBIDDEN_PATHS.iter().any(|forbidden| {
        clean == *forbidden || (*forbidden != "/" && clean.starts_with(&format!("{forbidden}/")))
    }) {
        return Some("must not be /, nor inside /proc, /sys or /dev");
    }
    None
}

/// `path` without a trailing `/` (the form Berth stores).
pub fn clean_path(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }.to_string()
}

/// Checks a template's mounts on their own; `prefix` is the JSON path of the list.
pub fn validate_mounts(errors: &mut ValidationErrors, prefix: &str, mounts: &[VolumeMount]) {
    if mounts.len() > MAX_MOUNTS {
        errors.push(prefix, format!("at most {MAX_MOUNTS} volumes"));
        return;
    }
    let mut names = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let field = |name: &str| format!("{prefix}[{i}].{name}");
        if mount.name.contains('/') {
            errors.push(
                field("name"),
                format!(
                    "{:?}: an app mounts volumes of its own team only, named without a team",
                    mount.name
                ),
            );
        } else if let Some(problem) = name_problem(&mount.name) {
            errors.push(field("name"), format!("{:?} {problem}", mount.name));
        } else if !names.insert(mount.name.as_str()) {
            errors.push(
                field("name"),
                format!("volume {} is mounted twice", mount.name),
            );
        }
        if let Some(problem) = path_problem(&mount.path) {
            errors.push(field("path"), format!("{:?} {problem}", mount.path));
        } else if !paths.insert(clean_path(&mount.path)) {
            errors.push(
                field("path"),
                format!("{} has two volumes", clean_path(&mount.path)),
            );
        }
    }
}

/// What an app's mounts conflict with among the team's recorded volumes and the other apps'
/// mounts: a volume recorded with another scope, or a per-instance volume another app mounts
/// (or that this app would share with one). `others` are the current mounts of the team's
/// other apps, by app name. Each error names its field under `prefix`.
pub fn mount_conflicts<'a>(
    prefix: &str,
    mounts: &[VolumeMount],
    recorded: &[Volume],
    others: impl IntoIterator<Item = (&'a str, &'a [VolumeMount])> + Clone,
) -> ValidationErrors {
    let mut errors = ValidationErrors::default();
    for (i, mount) in mounts.iter().enumerate() {
        let field = format!("{prefix}[{i}].scope");
        if let Some(volume) = recorded.iter().find(|v| v.name == mount.name)
            && volume.scope != mount.scope
        {
            errors.push(
                field,
                format!(
                    "volume {} is {}, not {}: a volume keeps the scope it was created with",
                    mount.name, volume.scope, mount.scope
                ),
            );
            continue;
        }
        let user = others.clone().into_iter().find(|(_, their)| {
            their.iter().any(|m| {
                m.name == mount.name
                    && (m.scope == VolumeScope::PerInstance
                        || mount.scope == VolumeScope::PerInstance)
            })
        });
        if let Some((app, _)) = user {
            errors.push(
                field,
                format!(
                    "volume {} is per-instance and app {app} mounts it: a per-instance volume belongs to one app",
                    mount.name
                ),
            );
        }
    }
    errors
}

/// The engine's name of a volume's store: `<namespace>_<team>_<name>`, and `_<slot>` after it
/// for a per-instance volume's slot. Names and teams hold no `_`, so no two differ only in
/// where one part ends.
pub fn engine_volume_name(namespace: &str, team: &str, name: &str, slot: Option<u32>) -> String {
    match slot {
        Some(slot) => format!("{namespace}_{team}_{name}_{slot}"),
        None => format!("{namespace}_{team}_{name}"),
    }
}

/// The lowest slot not in `held`.
pub fn free_slot(held: &BTreeSet<u32>) -> u32 {
    (0..).find(|slot| !held.contains(slot)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_from_the_command_line_form() {
        let per_instance_ro = VolumeMount {
            scope: VolumeScope::PerInstance,
            read_only: true,
            ..VolumeMount::shared("cache", "/var/cache")
        };
        let cases: [(&str, Result<VolumeMount, &str>); 8] = [
            (
                "data:/var/lib/app",
                Ok(VolumeMount::shared("data", "/var/lib/app")),
            ),
            (
                "cache:/var/cache:per-instance,ro",
                Ok(per_instance_ro.clone()),
            ),
            ("cache:/var/cache:ro,per-instance", Ok(per_instance_ro)),
            ("data:/d:shared,rw", Ok(VolumeMount::shared("data", "/d"))),
            ("data", Err("is not NAME:PATH")),
            (":/x", Err("is not NAME:PATH")),
            ("data:", Err("is not NAME:PATH")),
            ("data:/x:rx", Err("unknown volume option \"rx\"")),
        ];
        for (text, expected) in cases {
            match (VolumeMount::parse(text), expected) {
                (Ok(mount), Ok(want)) => {
                    assert_eq!(mount, want, "{text}");
                    assert_eq!(VolumeMount::parse(&mount.to_string()), Ok(want), "{text}");
                }
                (Err(error), Err(want)) => assert!(error.contains(want), "{text}: {error}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn mount_paths_are_absolute_clean_and_outside_the_kernels_file_systems() {
        let cases = [
            ("/var/lib/app", None),
            ("/data/", None),
            ("/procs", None),
            ("/devices/x", None),
            ("data", Some("absolute")),
            ("", Some("absolute")),
            ("/", Some("must not be /")),
            ("//", Some("must not be /")),
            ("/proc", Some("inside /proc")),
            ("/sys/fs/cgroup", Some("inside /proc")),
            ("/dev/shm", Some("inside /proc")),
            ("/a/../etc", Some("'..'")),
            ("/a/./b", Some("'.'")),
            ("/a//b", Some("empty")),
            ("/a\nb", Some("control")),
            ("/a:b", Some("':'")),
        ];
        for (path, want) in cases {
            match (path_problem(path), want) {
                (None, None) => {}
                (Some(problem), Some(want)) => assert!(problem.contains(want), "{path}: {problem}"),
                (got, want) => panic!("{path:?}: got {got:?}, want {want:?}"),
            }
        }
        assert!(path_problem(&format!("/{}", "a".repeat(300))).is_some());
        assert_eq!(clean_path("/data/"), "/data");
        assert_eq!(clean_path("/"), "/");
    }

    #[test]
    fn a_templates_mounts_are_checked_each_naming_its_field() {
        let cases: [(Vec<VolumeMount>, &[&str]); 6] = [
            (vec![VolumeMount::shared("data", "/data")], &[]),
            (
                vec![VolumeMount::shared("other/data", "/data")],
                &["volumes[0].name"],
            ),
            (
                vec![VolumeMount::shared("Data", "/data")],
                &["volumes[0].name"],
            ),
            (
                vec![
                    VolumeMount::shared("data", "/a"),
                    VolumeMount::shared("data", "/b"),
                ],
                &["volumes[1].name"],
            ),
            (
                vec![
                    VolumeMount::shared("a", "/data"),
                    VolumeMount::shared("b", "/data/"),
                ],
                &["volumes[1].path"],
            ),
            (
                vec![VolumeMount::shared("a", "relative")],
                &["volumes[0].path"],
            ),
        ];
        for (mounts, fields) in cases {
            let mut errors = ValidationErrors::default();
            validate_mounts(&mut errors, "volumes", &mounts);
            let got: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(got, fields, "{mounts:?}");
        }
        let many: Vec<VolumeMount> = (0..=MAX_MOUNTS)
            .map(|i| VolumeMount::shared(&format!("v{i}"), &format!("/v{i}")))
            .collect();
        let mut errors = ValidationErrors::default();
        validate_mounts(&mut errors, "volumes", &many);
        assert_eq!(errors.0[0].field, "volumes");
    }

    #[test]
    fn a_volume_keeps_its_scope_and_a_per_instance_one_its_app() {
        let recorded = |name: &str, scope| Volume {
            team: "t".into(),
            name: name.into(),
            scope,
            created_at: 0,
            created_by: "ann".into(),
            size_bytes: None,
            measured_at: None,
        };
        let per_instance = |name: &str, path: &str| VolumeMount {
            scope: VolumeScope::PerInstance,
            ..VolumeMount::shared(name, path)
        };
        let db_mounts = vec![per_instance("db", "/db"), VolumeMount::shared("up", "/up")];
        let others = [("db-app", db_mounts.as_slice())];
        let volumes = [
            recorded("db", VolumeScope::PerInstance),
            recorded("up", VolumeScope::Shared),
        ];
        let cases: [(Vec<VolumeMount>, Option<&str>); 5] = [
            // Sharing a shared volume with another app is the point of one.
            (vec![VolumeMount::shared("up", "/u")], None),
            (vec![VolumeMount::shared("new", "/n")], None),
            (
                vec![per_instance("up", "/u")],
                Some("is shared, not per-instance"),
            ),
            (
                vec![VolumeMount::shared("db", "/d")],
                Some("is per-instance, not shared"),
            ),
            (
                vec![per_instance("cache", "/c"), per_instance("db", "/d")],
                Some("app db-app mounts it"),
            ),
        ];
        for (mounts, want) in cases {
            let errors = mount_conflicts("volumes", &mounts, &volumes, others);
            match (errors.first(), want) {
                (None, None) => {}
                (Some(error), Some(want)) => {
                    assert!(error.message.contains(want), "{mounts:?}: {error:?}");
                    assert!(error.field.ends_with("].scope"), "{error:?}");
                }
                (got, want) => panic!("{mounts:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn engine_names_and_slots() {
        assert_eq!(
            engine_volume_name("berth", "web", "data", None),
            "berth_web_data"
        );
        assert_eq!(
            engine_volume_name("berth", "web", "data", Some(2)),
            "berth_web_data_2"
        );
        let held = |slots: &[u32]| slots.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(free_slot(&held(&[])), 0);
        assert_eq!(free_slot(&held(&[0, 1, 3])), 2);
        assert_eq!(free_slot(&held(&[1])), 0);
    }
}
