#!/usr/bin/env python3
"""Benchmark 11: CPU autoscaling — how fast a load step brings the added instances, and what
the usage collector that feeds the autoscaler costs.

**Load step.** One `berth server` (release build) with the default 5 s usage interval. Per
window (`--windows`, default 60 s — the brief's minute — and 15 s) and repetition: an app of 1
instance of `berth-testapp:latest` with a CPU limit of 250 m and a readiness probe every 1 s,
autoscaled `min 1, max 4, cpu 50 %` with that window (scale-down delay 5 min, so nothing goes
back down while measuring). After the window has filled with idle samples, the one instance is
told to burn 1000 m for 3 minutes (`POST /admin/burn`; its cgroup caps it at the 250 m limit,
100 % of it); desired = ceil(100 % / 50 %) = 2. Measured from the burn request: the
`autoscaled` event's time (the decision) and the moment the API reports 2 ready instances.

**Collector cost.** Servers one after the other, each with one app of 100 instances (no
health check), and the server's and dockerd's CPU time over `--cpu-window` seconds, with every
periodic collector off (`--usage-interval 0 --metrics-interval 0 --connections-interval 0`)
and then with one more turned on at a time, at its 5 s default:

* **usage sampler** (`--usage-interval 5s`): every instance's CPU and memory from the engine;
* **metrics recorder** (`--metrics-interval 5s`, on top of the usage sampler it records): one
  engine listing, the samples of every instance, app, team and node written to the metrics
  store in each tier;
* **connection observer** (`--connections-interval 5s`): the host's conntrack table read and
  matched to the instances.

Each one's cost is the difference to the run before it (`--costs` picks which to measure).

Nothing asserts a duration; a state not reached within 180 s fails the run.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402

CPU_LIMIT = 250


def dockerd_pid() -> int | None:
    try:
        return int(Path("/var/run/docker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def conntrack_entries() -> int | None:
    """The size of the host's connection tracking table (what the observer reads)."""
    try:
        with open("/proc/net/nf_conntrack", encoding="ascii", errors="replace") as table:
            return sum(1 for _ in table)
    except OSError:
        return None


def burn(address: str, millicores: int, seconds: int) -> None:
    request = urllib.request.Request(
        f"http://{address}/admin/burn?millicores={millicores}&seconds={seconds}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        if answer.status >= 300:
            raise bb.BenchError(f"burn: {answer.status}")


def load_step(run: bb.Run, window: int, rep: int) -> dict:
    name = f"step{window}r{rep}"
    run.api("POST", "/apps", {"name": name, "image": bb.IMAGE, "replicas": 1,
                              "cpu_millis": CPU_LIMIT,
                              "readiness": {"path": "/healthz", "period_ms": 1000},
                              "liveness": {"path": "/healthz"}})
    app = run.wait_app(name, lambda a: a["ready_instances"] >= 1 and a["rollout"]["done"],
                       "ready", poll=0.2)
    run.api("PUT", f"/apps/{name}/autoscale",
            {"min_instances": 1, "max_instances": 4, "cpu_percent": 50,
             "window_seconds": window, "scale_down_stabilization_seconds": 300})
    # A steady app: the whole window holds idle samples before the step.
    time.sleep(window + 5)
    address = next(i["address"] for i in app["instances"] if i["ready"])
    t0_wall = time.time()
    t0 = time.monotonic()
    burn(address, 1000, 180)
    run.wait_app(name, lambda a: a["replicas"] >= 2 and a["ready_instances"] >= 2,
                 "2 ready instances", poll=0.1)
    ready = time.monotonic() - t0
    decided = next((bb.event_ms(e) - t0_wall for e in run.events(name)
                    if e["kind"] == "autoscaled"), None)
    run.delete_app(name)
    bb.log(f"window {window} s, rep {rep + 1}: decided after {decided:.1f} s, "
           f"2 ready after {ready:.1f} s")
    return {"decided_s": decided, "ready_s": ready}


OFF = {"--usage-interval": "0", "--metrics-interval": "0", "--connections-interval": "0"}
# (name, what it adds, settings on top of OFF, the run its cost is measured against)
COLLECTORS = [
    ("usage", "usage sampler", {"--usage-interval": "5s"}, "off"),
    ("recorder", "metrics recorder", {"--usage-interval": "5s", "--metrics-interval": "5s"},
     "usage"),
    ("observer", "connection observer", {"--connections-interval": "5s"}, "off"),
]


def collector_cost(name: str, settings: dict, instances: int, cpu_window: float) -> dict:
    flags = [part for item in {**OFF, **settings}.items() for part in item]
    with bb.Run(f"collector-{name}", flags + ["--http-listen", "off"]) as run:
        run.api("POST", "/apps", {"name": "many", "image": bb.IMAGE, "replicas": instances})
        run.wait_app("many", lambda a: a["ready_instances"] >= instances, f"{instances} ready",
                     poll=0.5)
        time.sleep(15)  # settle: starts done, a few sampling rounds
        pid, dpid = run.server.pid, dockerd_pid()
        c0, d0 = bb.cpu_seconds(pid), bb.cpu_seconds(dpid) if dpid else 0.0
        w0 = time.monotonic()
        time.sleep(cpu_window)
        c1, d1 = bb.cpu_seconds(pid), bb.cpu_seconds(dpid) if dpid else 0.0
        span = time.monotonic() - w0
        run.delete_app("many")
    result = {"run": name, "flags": flags, "server_core_percent": 100 * (c1 - c0) / span,
              "dockerd_core_percent": 100 * (d1 - d0) / span,
              "conntrack_entries": conntrack_entries()}
    bb.log(f"{name}: server {result['server_core_percent']:.2f} % of a core, dockerd "
           f"{result['dockerd_core_percent']:.2f} %")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="load steps per window")
    parser.add_argument("--windows", default="60,15", help="average windows in s, comma-separated")
    parser.add_argument("--instances", type=int, default=100, help="instances for the collector cost")
    parser.add_argument("--cpu-window", type=float, default=60, help="seconds of CPU measured")
    parser.add_argument("--skip-cost", action="store_true", help="only the load step")
    parser.add_argument("--skip-step", action="store_true", help="only the collectors' cost")
    parser.add_argument("--costs", default="usage,recorder,observer",
                        help="collectors to measure, comma-separated")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    steps = {}
    context = bb.load_context()
    if not args.skip_step:
        with bb.Run("autoscale") as run:
            for window in (int(w) for w in args.windows.split(",")):
                runs = [load_step(run, window, rep) for rep in range(args.reps)]
                steps[window] = {"decided_s": bb.summary([r["decided_s"] for r in runs]),
                                 "ready_s": bb.summary([r["ready_s"] for r in runs])}
            context = bb.load_context()
        bb.print_table(
            "CPU autoscaling: load step (1 instance at 100 % of its limit, target 50 %) → 2 ready",
            [(f"{w} s", bb.fmt_s(s["decided_s"]), bb.fmt_s(s["ready_s"]))
             for w, s in steps.items()],
            ("average window", "decision (median, min-max)", "2 ready (median, min-max)"))
    cost = None
    if not args.skip_cost:
        wanted = [c for c in COLLECTORS if c[0] in args.costs.split(",")]
        runs = {"off": collector_cost("off", {}, args.instances, args.cpu_window)}
        for name, _, settings, _ in wanted:
            if name == "recorder" and "usage" not in runs:
                runs["usage"] = collector_cost("usage", COLLECTORS[0][2], args.instances,
                                               args.cpu_window)
            runs[name] = collector_cost(name, settings, args.instances, args.cpu_window)
        cost = {"runs": runs}
        rows = []
        for name, label, _, base in wanted:
            server = runs[name]["server_core_percent"] - runs[base]["server_core_percent"]
            dockerd = runs[name]["dockerd_core_percent"] - runs[base]["dockerd_core_percent"]
            cost[name] = {"server_core_percent": server, "dockerd_core_percent": dockerd}
            rows.append((label, f"{server:.2f} %", f"{dockerd:.2f} %", f"{server + dockerd:.2f} %"))
        bb.print_table(
            f"Periodic collectors at 5 s with {args.instances} instances: cost over the run "
            f"without them ({runs['off']['server_core_percent']:.2f} % server, "
            f"{runs['off']['dockerd_core_percent']:.2f} % dockerd)",
            rows, ("collector", "berth server", "dockerd", "total (% of one core)"))
    bb.write_json(args.json, {"benchmark": "autoscale", "context": context,
                              "load_step": {str(w): s for w, s in steps.items()},
                              "collector": cost, "args": vars(args)})
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
