#!/usr/bin/env python3
"""Benchmark 7: latency of app writes (create, deploy, scale) with 100 and 1,000 apps stored.

Each store size gets a fresh `berth server`. It is filled through the API with N apps of
`replicas: 0` (nothing runs; image `berth-testapp:latest`), spread round-robin over four
teams: `bench-a`, `bench-b`, `bench-c` (quota `{}`: unlimited) and `bench-capped` (quota
`instances: 1`). Then, one request at a time, each operation is timed `--reps` times (the
client-side time of one HTTP request on loopback, `time.monotonic()` around it):

* **create**: POST /api/v1/apps `{name, team: bench-a, image, replicas: 0}` → 201. Quota
  admission, the app row and its first revision. The app is deleted again (not timed), so
  the store keeps N apps.
* **deploy**: POST /api/v1/apps/bench-a-0/deploy `{env: {BENCH_REP: "<rep>"}}` → 200. A
  new revision of a `replicas: 0` app (admission of the rollout peak, the revision write);
  the rollout completes with no instance to start.
* **scale**: POST /api/v1/apps/bench-capped-0/scale `{replicas: 2}` → 403 quota_exceeded.
  A full admission (the team's usage, the check) of a scale that would start containers if
  admitted, so nothing starts and the app stays at 0: the request is refused only at the
  last step, after everything a permitted scale computes except the write.

Reported per operation and store size: p50 and p99 (nearest rank) in milliseconds, and the
ratio of the 1,000-app latency to the 100-app latency (flat in the number of apps ≈ 1).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402

TEAMS = {
    "bench-a": {},
    "bench-b": {},
    "bench-c": {},
    "bench-capped": {"instances": 1},
}
FILL_WORKERS = 4
OPERATIONS = ("create", "deploy", "scale")


def request(run: bb.Run, method: str, path: str, body: dict) -> tuple[int, bytes]:
    """One API request; returns the status and body whatever the status."""
    req = urllib.request.Request(
        run.base + "/api/v1" + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {run.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def timed(run: bb.Run, method: str, path: str, body: dict, want: int) -> float:
    t = time.monotonic()
    status, raw = request(run, method, path, body)
    elapsed = time.monotonic() - t
    if status != want:
        raise bb.BenchError(f"{method} {path}: HTTP {status} (want {want}): "
                            f"{raw.decode(errors='replace')[:500]}")
    return elapsed


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def measure(apps: int, reps: int) -> dict:
    with bb.Run(f"app-writes-{apps}") as run:
        for team, quota in TEAMS.items():
            run.api("POST", "/teams", {"name": team, "quota": quota})
        teams = list(TEAMS)
        names = [(f"{teams[i % len(teams)]}-{i // len(teams)}", teams[i % len(teams)])
                 for i in range(apps)]
        t0 = time.monotonic()
        bb.parallel(lambda item: run.api("POST", "/apps", {
            "name": item[0], "team": item[1], "image": bb.IMAGE, "replicas": 0}),
            names, workers=FILL_WORKERS)
        bb.log(f"{apps} apps created in {time.monotonic() - t0:.1f} s")

        samples: dict[str, list[float]] = {op: [] for op in OPERATIONS}
        for rep in range(reps):
            name = f"bench-new-{rep}"
            samples["create"].append(timed(run, "POST", "/apps", {
                "name": name, "team": "bench-a", "image": bb.IMAGE, "replicas": 0}, 201))
            run.delete_app(name)
            samples["deploy"].append(timed(run, "POST", "/apps/bench-a-0/deploy",
                                           {"env": {"BENCH_REP": str(rep)}}, 200))
            samples["scale"].append(timed(run, "POST", "/apps/bench-capped-0/scale",
                                          {"replicas": 2}, 403))
        result = {}
        for op, values in samples.items():
            ms = [1000 * v for v in values]
            result[op] = {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
                          "values_ms": ms}
            bb.log(f"{apps} apps, {op}: p50 {result[op]['p50_ms']:.1f} ms, "
                   f"p99 {result[op]['p99_ms']:.1f} ms")
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=100,
                        help="timed requests per operation and store size (default 100)")
    parser.add_argument("--apps", default="100,1000",
                        help="store sizes, comma-separated (default 100,1000)")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    sizes = [int(n) for n in args.apps.split(",")]

    context = bb.load_context()
    bb.header("app writes vs apps in the store", {"sizes": sizes, "reps": args.reps,
                                                  **context})
    by_size = {n: measure(n, args.reps) for n in sizes}

    rows = []
    for op in OPERATIONS:
        row = [op]
        for n in sizes:
            row += [f"{by_size[n][op]['p50_ms']:.1f}", f"{by_size[n][op]['p99_ms']:.1f}"]
        if len(sizes) >= 2:
            first, last = by_size[sizes[0]][op], by_size[sizes[-1]][op]
            row += [f"{last['p50_ms'] / first['p50_ms']:.2f}",
                    f"{last['p99_ms'] / first['p99_ms']:.2f}"]
        rows.append(tuple(row))
    head = ["operation"]
    for n in sizes:
        head += [f"p50 ms @{n}", f"p99 ms @{n}"]
    if len(sizes) >= 2:
        head += [f"p50 {sizes[-1]}/{sizes[0]}", f"p99 {sizes[-1]}/{sizes[0]}"]
    bb.print_table(f"app write latency (ms, {args.reps} requests each, one at a time)", rows,
                   tuple(head))
    bb.write_json(args.json, {"benchmark": "app_writes", "reps": args.reps, "context": context,
                              "sizes": {str(n): by_size[n] for n in sizes}})
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
