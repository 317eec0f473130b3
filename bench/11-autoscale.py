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

**Collector cost.** Two servers one after the other, each with one app of 100 instances (no
health check): the server's and dockerd's CPU time over `--cpu-window` seconds with
`--usage-interval 5s` and with `--usage-interval 0` (sampling off); the difference is what
sampling 100 instances every 5 s costs.

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


def collector_cost(usage_interval: str, instances: int, cpu_window: float) -> dict:
    with bb.Run(f"collector-{usage_interval}", ["--usage-interval", usage_interval,
                                                "--http-listen", "off"]) as run:
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
    result = {"usage_interval": usage_interval, "server_core_percent": 100 * (c1 - c0) / span,
              "dockerd_core_percent": 100 * (d1 - d0) / span}
    bb.log(f"usage interval {usage_interval}: server {result['server_core_percent']:.2f} % "
           f"of a core, dockerd {result['dockerd_core_percent']:.2f} %")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="load steps per window")
    parser.add_argument("--windows", default="60,15", help="average windows in s, comma-separated")
    parser.add_argument("--instances", type=int, default=100, help="instances for the collector cost")
    parser.add_argument("--cpu-window", type=float, default=60, help="seconds of CPU measured")
    parser.add_argument("--skip-cost", action="store_true", help="only the load step")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    steps = {}
    with bb.Run("autoscale") as run:
        for window in (int(w) for w in args.windows.split(",")):
            runs = [load_step(run, window, rep) for rep in range(args.reps)]
            steps[window] = {"decided_s": bb.summary([r["decided_s"] for r in runs]),
                             "ready_s": bb.summary([r["ready_s"] for r in runs])}
        context = bb.load_context()
    bb.print_table(
        "CPU autoscaling: load step (1 instance at 100 % of its limit, target 50 %) → 2 ready",
        [(f"{w} s", bb.fmt_s(s["decided_s"]), bb.fmt_s(s["ready_s"])) for w, s in steps.items()],
        ("average window", "decision (median, min-max)", "2 ready (median, min-max)"))
    cost = None
    if not args.skip_cost:
        on = collector_cost("5s", args.instances, args.cpu_window)
        off = collector_cost("0", args.instances, args.cpu_window)
        cost = {"on": on, "off": off,
                "server_core_percent": on["server_core_percent"] - off["server_core_percent"],
                "dockerd_core_percent": on["dockerd_core_percent"] - off["dockerd_core_percent"]}
        bb.print_table(
            f"Usage collector: {args.instances} instances sampled every 5 s vs sampling off",
            [("berth server", f"{on['server_core_percent']:.2f} %", f"{off['server_core_percent']:.2f} %",
              f"{cost['server_core_percent']:.2f} %"),
             ("dockerd", f"{on['dockerd_core_percent']:.2f} %", f"{off['dockerd_core_percent']:.2f} %",
              f"{cost['dockerd_core_percent']:.2f} %")],
            ("process", "sampling every 5 s", "sampling off", "cost (% of one core)"))
    bb.write_json(args.json, {"benchmark": "autoscale", "context": context,
                              "load_step": {str(w): s for w, s in steps.items()},
                              "collector": cost, "args": vars(args)})
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
