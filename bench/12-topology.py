#!/usr/bin/env python3
"""Benchmark 12: the topology at scale — `GET /api/v1/topology` with `--apps` apps (default
50) of `--replicas` instances each (default 4: 200 instances), every app depending on the
next, half of them external.

One `berth server` (release build). The apps are created through the API (`berth-testapp`,
readiness probe every 1 s) and waited for until every instance is ready; then, one request at
a time, `GET /api/v1/topology` and — the peer, the same apps and instances read the way the
Apps page reads them — `GET /api/v1/apps` are timed `--reps` times each, alternating. Reported:
median and p90 of each and the ratio. Then, unless `--no-browser`, the console's Topology page
in Debian's chromium (`bench/lib/topology-render.mjs`, playwright-core from `ui/node_modules`):
the time from navigation until every app box is drawn and the live stream connected, and over
20 s of live updates (a new topology every 2 s) the longest main-thread task the page ran (long
tasks are those over 50 ms; none means every update was laid out in less). Nothing asserts a
duration.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402


def timed(run: bb.Run, path: str) -> tuple[float, int]:
    t0 = time.monotonic()
    body = run.api("GET", path)
    return time.monotonic() - t0, len(json.dumps(body))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def browser_render(run: bb.Run, apps: int) -> dict:
    """The Topology page's layout times in chromium, signed in as a new platform admin."""
    username, password = "bench-viewer", secrets.token_urlsafe(18)
    run.api("POST", "/users", {"username": username, "email": "bench@example.com",
                               "password": password, "is_admin": True})
    script = Path(__file__).resolve().parent / "lib" / "topology-render.mjs"
    out = subprocess.run(["node", str(script), run.base, username, password, str(apps)],
                         check=True, capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--reps", type=int, default=30, help="requests of each kind")
    parser.add_argument("--json", help="write results here")
    parser.add_argument("--no-browser", action="store_true",
                        help="skip the console's layout time (needs node and ui/node_modules)")
    args = parser.parse_args()
    names = [f"t{i:03d}" for i in range(args.apps)]
    with bb.Run("topology", ["--http-listen", "off"]) as run:
        t0 = time.monotonic()

        def create(i: int) -> None:
            run.api("POST", "/apps", {
                "name": names[i], "image": bb.IMAGE, "replicas": args.replicas,
                "readiness": {"path": "/healthz", "period_ms": 1000},
                "dependencies": [names[i + 1]] if i + 1 < len(names) else [],
                "internal": i % 2 == 1})

        bb.parallel(create, list(range(args.apps)), workers=4)
        deadline = time.monotonic() + 600
        while True:
            apps = run.api("GET", "/apps")
            ready = sum(a["ready_instances"] for a in apps)
            if ready >= args.apps * args.replicas:
                break
            if time.monotonic() > deadline:
                raise bb.BenchError(f"only {ready} instances ready after 600 s")
            time.sleep(1)
        bb.log(f"{args.apps} apps, {ready} instances ready after {time.monotonic() - t0:.0f} s")
        time.sleep(10)  # let the usage sampler and the probes settle
        topology, listing = [], []
        size = {}
        for _ in range(args.reps):
            seconds, size["topology"] = timed(run, "/topology")
            topology.append(seconds)
            seconds, size["apps"] = timed(run, "/apps")
            listing.append(seconds)
        shape = run.api("GET", "/topology")
        render = None if args.no_browser else browser_render(run, args.apps)
        context = bb.load_context()
        bb.parallel(run.delete_app, names, workers=8)
    placed = sum(len(n["instances"]) for dc in shape["datacenters"] for n in dc["nodes"])
    result = {
        "apps": len(shape["apps"]), "instances": placed, "edges": len(shape["edges"]),
        "topology_s": {"median": percentile(topology, 0.5), "p90": percentile(topology, 0.9)},
        "apps_s": {"median": percentile(listing, 0.5), "p90": percentile(listing, 0.9)},
        "bytes": size,
    }
    result["ratio_median"] = result["topology_s"]["median"] / result["apps_s"]["median"]
    result["browser"] = render
    bb.print_table(
        f"GET /api/v1/topology vs GET /api/v1/apps: {result['apps']} apps, "
        f"{result['instances']} instances, {result['edges']} edges",
        [("GET /api/v1/topology", f"{result['topology_s']['median'] * 1000:.1f} ms",
          f"{result['topology_s']['p90'] * 1000:.1f} ms", f"{size['topology'] / 1024:.0f} KiB"),
         ("GET /api/v1/apps", f"{result['apps_s']['median'] * 1000:.1f} ms",
          f"{result['apps_s']['p90'] * 1000:.1f} ms", f"{size['apps'] / 1024:.0f} KiB"),
         ("ratio (median)", f"{result['ratio_median']:.2f}", "", "")],
        ("request", "median", "p90", "body"))
    if render:
        bb.print_table(
            f"The console's Topology page in chromium: {render['apps_drawn']} app boxes, "
            f"{render['instances_drawn']} instances",
            [("first layout (navigation → every app drawn, stream connected)",
              f"{render['first_layout_ms']} ms"),
             (f"longest task over {render['update_seconds']} s of live updates",
              f"{render['longest_task_ms']:.0f} ms" if render["long_tasks"] else "< 50 ms"),
             ("tasks over 50 ms, their total",
              f"{render['long_tasks']}, {render['long_task_ms_total']:.0f} ms")],
            ("measure", "value"))
    bb.write_json(args.json, {"benchmark": "topology", "context": context, "result": result,
                              "args": vars(args)})
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
