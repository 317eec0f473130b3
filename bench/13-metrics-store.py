#!/usr/bin/env python3
"""Benchmark 13: the metrics history's size on disk per instance per day, and what a round
costs the store.

The real store (`SqliteMetricsStore`, its own `metrics.db`, WAL, the default tiers
`5s:1h,1m:1d,10m:30d`) is fed simulated rounds every 5 s of simulated time — per instance CPU
and memory, per app its seven series (CPU, memory, ready instances, restarts, requests/s, 5xx
share, p95), three team totals and three node series, exactly what the recorder writes — and
pruned every minute as the recorder does, by the ignored test
`crates/store/tests/metrics_size.rs`. Then the file (WAL checkpointed) is measured and its
points counted per tier.

Reported: the file after `--hours` (24) of rounds, per instance; bytes per point; the steady
state once every tier is full (30 days: each series holds `retention/step` points per tier —
the bound on the store's size), per instance; what each further day adds until then; and the
store's time per round (`record`, one transaction of multi-row upserts) and per prune. The
test runs in cargo's `test` profile (dependencies at opt-level 1) unless `--release`: sizes do
not depend on it, times are an upper bound.

Nothing asserts a duration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402


def measure(instances: int, apps: int, hours: int, release: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="berth-bench-metrics-") as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "BERTH_BENCH_INSTANCES": str(instances),
               "BERTH_BENCH_APPS": str(apps), "BERTH_BENCH_HOURS": str(hours),
               "BERTH_BENCH_OUT": str(out), "CARGO_INCREMENTAL": "0"}
        command = ["cargo", "test", "--quiet", "-p", "berth-store", "--test", "metrics_size"]
        if release:
            command.insert(2, "--release")
        command += ["--", "--ignored", "--exact", "metrics_store_size_per_instance_per_day"]
        bb.log(" ".join(command) + f"  ({instances} instances, {apps} apps, {hours} h)")
        subprocess.run(command, cwd=bb.ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def kib(n: float) -> str:
    return f"{n / 1024:.0f} KiB" if n < 10 * 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--apps", type=int, default=20, help="the instances are spread over these")
    parser.add_argument("--hours", type=int, default=24, help="simulated time")
    parser.add_argument("--release", action="store_true", help="build the test in release")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    r = measure(args.instances, args.apps, args.hours, args.release)
    per_round_cost = r["record_ms_per_round"] / 5000 * 100
    bb.print_table(
        f"Metrics store: {r['instances']} instances in {r['apps']} apps, {r['series']} series, "
        f"{r['simulated_hours']} h of 5 s rounds, tiers {r['tiers']}",
        [("file after the simulated time", kib(r["file_bytes"]),
          kib(r["bytes_per_instance_after_simulation"])),
         ("each further day (until 30 days)", kib(r["growth_bytes_per_instance_per_later_day"] * r["instances"]),
          kib(r["growth_bytes_per_instance_per_later_day"])),
         ("steady state (every tier full, the bound)", kib(r["steady_state_bytes"]),
          kib(r["steady_state_bytes_per_instance"])),
         ("bytes per point", f"{r['bytes_per_point']:.1f}", "")],
        ("", "whole store", "per instance"))
    bb.print_table(
        "Metrics store: time per operation",
        [("record (one round)", f"{r['record_ms_per_round']:.2f} ms",
          f"{per_round_cost:.2f} % of a core at one round per 5 s"),
         ("prune (every minute)", f"{r['prune_ms_per_prune']:.2f} ms", "")],
        ("operation", "mean", "cost"))
    bb.write_json(args.json, {"benchmark": "metrics-store", "result": r,
                              "profile": "release" if args.release else "test (deps opt-level 1)",
                              "context": bb.load_context(), "args": vars(args)})
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
