//! A host's readings: CPU time (`/proc/stat`), memory (`/proc/meminfo`) and the space of its
//! disks (`statvfs`). The node monitor reads the machine Berth runs on with them; the node
//! agent reads every other node with them and hands the same [`HostReading`] back as JSON.

use std::path::Path;

use berth_core::node::{DiskRole, DiskSample, Space};
use berth_engine::node_agent::MAX_OUTPUT_BYTES;
use serde::{Deserialize, Serialize};

/// Cumulative CPU time of a host, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

impl CpuTimes {
    /// The busy share between `earlier` and this reading; `None` without time between them
    /// or when the counters went backwards.
    pub fn busy_percent_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        (total > 0).then(|| (busy as f64 * 100.0 / total as f64).min(100.0))
    }
}

/// One reading of a host: what the node monitor turns into a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReading {
    /// `None` when `/proc/stat` could not be read.
    pub cpu: Option<CpuTimes>,
    /// `None` when `/proc/meminfo` could not be read.
    pub memory: Option<Space>,
    pub disks: Vec<DiskSample>,
}

/// A disk to measure: its role, the directory as the node names it, and where this process
/// sees that directory (the same path, or where the node agent mounts it).
#[derive(Debug, Clone)]
pub struct WatchedDisk<'a> {
    pub role: DiskRole,
    pub named: &'a str,
    pub seen_at: &'a Path,
}

/// Reads the host whose `/proc` is at `proc_root`, and the space of each of `disks`.
pub fn read_host(proc_root: &Path, disks: &[WatchedDisk<'_>]) -> HostReading {
    let cpu = std::fs::read_to_string(proc_root.join("stat"))
        .ok()
        .and_then(|t| parse_proc_stat(&t));
    let memory = std::fs::read_to_string(proc_root.join("meminfo"))
        .ok()
        .and_then(|t| parse_meminfo(&t));
    let disks = disks
        .iter()
        .map(|disk| DiskSample {
            role: disk.role,
            path: disk.named.to_owned(),
            space: disk_space(disk.seen_at),
        })
        .collect();
    HostReading { cpu, memory, disks }
}

/// A reading the node agent printed. Its numbers are the node's own: a space whose free
/// part exceeds its total is refused, and the disk roles are the known ones.
pub fn parse_report(output: &[u8]) -> Result<HostReading, String> {
    if output.len() > MAX_OUTPUT_BYTES {
        return Err(format!(
            "the node agent's report has {} bytes, more than {MAX_OUTPUT_BYTES}",
            output.len()
        ));
    }
    let reading: HostReading = serde_json::from_slice(output)
        .map_err(|e| format!("the node agent's report is not a reading: {e}"))?;
    let spaces = reading
        .memory
        .iter()
        .chain(reading.disks.iter().filter_map(|d| d.space.as_ref()));
    for space in spaces {
        if space.free_bytes > space.total_bytes {
            return Err(format!(
                "the node agent reports {} bytes free of {}",
                space.free_bytes, space.total_bytes
            ));
        }
    }
    if let Some(cpu) = reading.cpu
        && cpu.busy > cpu.total
    {
        return Err(format!(
            "the node agent reports {} busy CPU ticks of {}",
            cpu.busy, cpu.total
        ));
    }
    Ok(reading)
}

/// `/proc/stat`'s `cpu` line: every field is time; idle and iowait are not busy.
fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice — already in user/nice]
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total.checked_sub(idle)?,
        total,
    })
}

/// `/proc/meminfo`'s total and available memory.
fn parse_meminfo(text: &str) -> Option<Space> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some(Space {
        total_bytes: field("MemTotal")?,
        free_bytes: field("MemAvailable")?,
    })
}

/// The space of the file system holding `path`, for unprivileged use; `None` when `path` is
/// not visible from here.
fn disk_space(path: &Path) -> Option<Space> {
    let stat = rustix::fs::statvfs(path).ok()?;
    let block = stat.f_frsize.max(1);
    Some(Space {
        total_bytes: stat.f_blocks.saturating_mul(block),
        free_bytes: stat.f_bavail.saturating_mul(block),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_busy_and_total() {
        let text = "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 0 0\nintr 1\n";
        assert_eq!(
            parse_proc_stat(text),
            Some(CpuTimes {
                busy: 160,
                total: 1000
            })
        );
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_proc_stat("cpu  a b\n"), None);
        // (earlier, later, want)
        let t = |busy, total| CpuTimes { busy, total };
        let cases = [
            (t(100, 1000), t(150, 1100), Some(50.0)),
            (t(100, 1000), t(100, 1000), None),
            (t(100, 1000), t(50, 900), None),
            (t(0, 0), t(400, 400), Some(100.0)),
        ];
        for (earlier, later, want) in cases {
            assert_eq!(
                later.busy_percent_since(&earlier),
                want,
                "{earlier:?} → {later:?}"
            );
        }
    }

    #[test]
    fn meminfo_reads_total_and_available() {
        let text = "MemTotal:       16000 kB\nMemFree:  100 kB\nMemAvailable:    4000 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Some(Space {
                total_bytes: 16000 * 1024,
                free_bytes: 4000 * 1024
            })
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn an_invisible_disk_is_unknown() {
        assert_eq!(disk_space(Path::new("/no/such/berth/dir")), None);
        assert!(disk_space(Path::new("/")).is_some_and(|s| s.total_bytes > 0));
    }

    #[test]
    fn a_host_is_read_under_its_proc_root() {
        let proc_root = tempfile::tempdir().unwrap();
        std::fs::write(
            proc_root.path().join("stat"),
            "cpu  10 0 10 80 0 0 0 0 0 0\n",
        )
        .unwrap();
        std::fs::write(
            proc_root.path().join("meminfo"),
            "MemTotal: 100 kB\nMemAvailable: 40 kB\n",
        )
        .unwrap();
        let disks = [
            WatchedDisk {
                role: DiskRole::EngineDataRoot,
                named: "/var/lib/docker",
                seen_at: proc_root.path(),
            },
            WatchedDisk {
                role: DiskRole::BerthDataDir,
                named: "/gone",
                seen_at: Path::new("/no/such/berth/dir"),
            },
        ];
        let reading = read_host(proc_root.path(), &disks);
        assert_eq!(
            reading.cpu,
            Some(CpuTimes {
                busy: 20,
                total: 100
            })
        );
        assert_eq!(reading.memory.unwrap().free_bytes, 40 * 1024);
        assert_eq!(reading.disks[0].path, "/var/lib/docker");
        assert!(reading.disks[0].space.is_some());
        assert_eq!(reading.disks[1].space, None);
        // What the agent prints is what the monitor reads back.
        let printed = serde_json::to_vec(&reading).unwrap();
        assert_eq!(parse_report(&printed).unwrap(), reading);
        // Nothing readable: no numbers, no failure.
        let empty = read_host(Path::new("/no/such/proc"), &[]);
        assert_eq!((empty.cpu, empty.memory), (None, None));
    }

    #[test]
    fn a_report_that_cannot_be_true_is_refused() {
        // (report, what the refusal says)
        let cases: [(&[u8], &str); 5] = [
            (b"not json", "not a reading"),
            (br#"{"cpu": null, "memory": {"total_bytes": 1, "free_bytes": 2}, "disks": []}"#, "2 bytes free of 1"),
            (br#"{"cpu": {"busy": 5, "total": 4}, "memory": null, "disks": []}"#, "5 busy CPU ticks of 4"),
            (br#"{"cpu": null, "memory": null, "disks": [{"role": "root", "path": "/", "space": null}]}"#, "not a reading"),
            (br#"{"cpu": null, "memory": null, "disks": [{"role": "engine_data_root", "path": "/", "space": {"total_bytes": 0, "free_bytes": 9}}]}"#, "9 bytes free of 0"),
        ];
        for (report, says) in cases {
            let error = parse_report(report).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
        let huge = vec![b' '; MAX_OUTPUT_BYTES + 1];
        assert!(parse_report(&huge).unwrap_err().contains("more than"));
    }
}
