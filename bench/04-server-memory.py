#!/usr/bin/env python3
"""Benchmark 4: resident memory and idle CPU of `berth server`.

Each repetition starts a fresh server and reads, from /proc/PID:

* RSS (VmRSS) after 10 s idle with no apps;
* RSS after creating 50 apps of 1 replica each (default probes: readiness and liveness on
  /healthz every 1000 ms), waiting until all 50 are ready (GET /api/v1/apps every 1 s; when
  some are still not ready after 60 s it says so, counts them and measures anyway), then
  20 s of idling with no API calls (resync and probes running);
* CPU time (utime + stime from /proc/PID/stat) used by the server over the next 30 s of idle
  with the 50 apps, also as % of one core; VmHWM (peak RSS) and thread count.

After the CPU window: GET /api/v1/apps and GET /api/v1/apps/NAME latency (median of 5).
For context, dockerd's CPU time over the same 30 s is read too (it serves the server's
resync listings and inspects; other users of the same engine add to it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402

# The 50 apps are normally all ready within ~10-25 s.
READY_WAIT = 60.0


def dockerd_pid() -> int | None:
    out = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if len(out) == 1 else None


def measure(apps: int, idle_empty: float, idle_apps: float, cpu_window: float) -> dict:
    with bb.Run("server-memory") as run:
        pid = run.server.pid
        time.sleep(idle_empty)
        rss_empty, _ = bb.rss_kib(pid)
        bb.log(f"idle, no apps, after {idle_empty:.0f} s: VmRSS {rss_empty / 1024:.1f} MiB")

        names = [f"mem{i}" for i in range(apps)]
        t0 = time.monotonic()
        for name in names:
            run.api("POST", "/apps", {"name": name, "image": bb.IMAGE, "replicas": 1,
                                      "health_path": "/healthz"})
        deadline = time.monotonic() + READY_WAIT
        while True:
            listed = run.api("GET", "/apps")
            stuck = [a for a in listed if a["ready_instances"] < 1]
            if not stuck or time.monotonic() > deadline:
                break
            time.sleep(1)
        if stuck:
            # A Berth problem, not a reason to lose the memory numbers: report and go on.
            bb.log(f"WARNING: {len(stuck)}/{apps} apps not ready after {READY_WAIT:.0f} s; "
                   "measuring anyway. Details:")
            for a in stuck[:3]:
                bb.log(f"  {a['name']}: rollout {a['rollout']['phase']}, instances "
                       f"{[(i['name'], i['phase'], i['readiness'], i['address']) for i in a['instances']]}, "
                       f"events {[e['kind'] for e in run.events(a['name'])]}")
            panics = [line for line in run.server_log.read_text(errors="replace").splitlines()
                      if "panicked" in line]
            bb.log(f"  server log lines with 'panicked': {panics[:3] or 'none'}")
        all_ready = None if stuck else time.monotonic() - t0
        if all_ready is not None:
            bb.log(f"{apps} apps ready after {all_ready:.1f} s")
        time.sleep(idle_apps)
        rss_apps, hwm = bb.rss_kib(pid)
        bb.log(f"{apps} apps, after {idle_apps:.0f} s idle: VmRSS {rss_apps / 1024:.1f} MiB "
               f"(peak {hwm / 1024:.1f} MiB)")

        dpid = dockerd_pid()
        d0 = bb.cpu_seconds(dpid) if dpid else None
        c0 = bb.cpu_seconds(pid)
        w0 = time.monotonic()
        time.sleep(cpu_window)
        c1 = bb.cpu_seconds(pid)
        d1 = bb.cpu_seconds(dpid) if dpid else None
        window = time.monotonic() - w0
        cpu = c1 - c0
        threads = bb.threads(pid)
        bb.log(f"CPU over {window:.1f} s idle with {apps} apps: {cpu:.2f} s "
               f"({100 * cpu / window:.1f}% of one core), {threads} threads")
        # API latency with that many apps (after the idle window, so it does not disturb it).
        list_lat, get_lat = [], []
        for _ in range(5):
            t = time.monotonic()
            run.api("GET", "/apps")
            list_lat.append(time.monotonic() - t)
            t = time.monotonic()
            run.app(names[0])
            get_lat.append(time.monotonic() - t)
        # Remove the apps through Berth while it runs (the cleanup would do it too).
        bb.parallel(run.delete_app, names, workers=8)
        return {
            "rss_empty_mib": rss_empty / 1024,
            "rss_apps_mib": rss_apps / 1024,
            "hwm_mib": hwm / 1024,
            "cpu_s": cpu,
            "cpu_pct": 100 * cpu / window,
            "dockerd_cpu_s": None if d0 is None else d1 - d0,
            "threads": threads,
            "all_ready_s": all_ready,
            "apps_not_ready": len(stuck),
            "list_apps_ms": 1000 * bb.summary(list_lat)["median"],
            "get_app_ms": 1000 * bb.summary(get_lat)["median"],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--idle-empty", type=float, default=10)
    parser.add_argument("--idle-apps", type=float, default=20)
    parser.add_argument("--cpu-window", type=float, default=30)
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()

    context = bb.load_context()
    bb.header("berth server memory and idle CPU", {"apps": args.apps, "reps": args.reps,
                                                   **context})
    rows_raw = []
    for rep in range(args.reps):
        rows_raw.append(measure(args.apps, args.idle_empty, args.idle_apps, args.cpu_window))
        bb.log(f"rep {rep + 1} done")

    def stat(key: str) -> dict:
        return bb.summary([r[key] for r in rows_raw if r[key] is not None])

    keys = ["apps_not_ready", "rss_empty_mib", "rss_apps_mib", "hwm_mib", "cpu_s", "cpu_pct", "dockerd_cpu_s",
            "threads", "all_ready_s", "list_apps_ms", "get_app_ms"]
    result = {"benchmark": "server_memory", "apps": args.apps, "reps": args.reps,
              "context": context, "windows_s": {"idle_empty": args.idle_empty,
                                                "idle_apps": args.idle_apps,
                                                "cpu_window": args.cpu_window},
              **{k: stat(k) for k in keys}}

    def fmt(key: str, unit: str, digits: int = 1) -> str:
        s = result[key]
        if not s["n"]:
            return "n/a"
        return (f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}-"
                f"{s['max']:.{digits}f})")

    rows = [
        (f"VmRSS idle, no apps, after {args.idle_empty:.0f} s", fmt("rss_empty_mib", "MiB")),
        (f"VmRSS, {args.apps} apps x 1 replica ready, after {args.idle_apps:.0f} s idle",
         fmt("rss_apps_mib", "MiB")),
        ("VmHWM (peak RSS) at that point", fmt("hwm_mib", "MiB")),
        (f"CPU time over {args.cpu_window:.0f} s idle with {args.apps} apps",
         fmt("cpu_s", "s", 2)),
        ("  = share of one core", fmt("cpu_pct", "%", 1)),
        (f"dockerd CPU time over the same {args.cpu_window:.0f} s (context)",
         fmt("dockerd_cpu_s", "s", 2)),
        ("server threads", fmt("threads", "", 0)),
        (f"time until {args.apps} apps ready (created one after another)",
         fmt("all_ready_s", "s")),
        (f"apps not ready {READY_WAIT:.0f} s after creation (a Berth problem if not 0)",
         fmt("apps_not_ready", "", 0)),
        (f"GET /api/v1/apps latency with {args.apps} apps (median of 5)",
         fmt("list_apps_ms", "ms", 0)),
        ("GET /api/v1/apps/NAME latency (1 instance, median of 5)", fmt("get_app_ms", "ms", 0)),
    ]
    bb.print_table(f"berth server resources: median (min-max) of {args.reps}", rows,
                   ("what", "value"))
    bb.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
