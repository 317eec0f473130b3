#!/usr/bin/env python3
"""Benchmark 10: cold start through the router — a request sent to an app Berth scaled to 0
when idle, until the first byte of its answer.

One `berth server` (release build) with its router on a free loopback port. An app `cold` of
1 instance of `berth-testapp:latest` with `idle_timeout_seconds: 10` (the minimum) and a
readiness probe on `/healthz` every `--probe-ms` (200 ms and 1000 ms, one app each). Per
repetition: wait until Berth scaled the app to 0 (`idle` set, no instance left), then one
`GET /` through the router (`Host: cold<probe>.default.localhost`) is timed from the moment it
is sent until its status line arrives (the router held it while the app woke: the event, a
container start, the first readiness pass, the table swap). A warm request right after gives
the same path's time without the wake. Nothing asserts a duration; the request must answer 200.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402


def timed_get(port: int, host: str) -> tuple[int, float]:
    """Status and seconds from sending the request to its status line."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        t0 = time.monotonic()
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        first_byte = time.monotonic() - t0
        response.read()
        return response.status, first_byte
    finally:
        conn.close()


def measure(run: bb.Run, port: int, probe_ms: int, reps: int) -> dict:
    name = f"cold{probe_ms}"
    host = f"{name}.default.localhost"
    run.api("POST", "/apps", {"name": name, "image": bb.IMAGE, "replicas": 1,
                              "idle_timeout_seconds": 10,
                              "readiness": {"path": "/healthz", "period_ms": probe_ms},
                              "liveness": {"path": "/healthz"}})
    run.wait_app(name, lambda a: a["ready_instances"] >= 1 and a["rollout"]["done"], "ready",
                 poll=0.2)
    cold, warm = [], []
    for rep in range(reps):
        run.wait_app(name, lambda a: a["idle"] is not None and not a["instances"],
                     "scaled to 0 when idle", poll=0.2)
        status, seconds = timed_get(port, host)
        if status != 200:
            raise bb.BenchError(f"{host}: the cold request answered {status}")
        warm_status, warm_seconds = timed_get(port, host)
        if warm_status != 200:
            raise bb.BenchError(f"{host}: the warm request answered {warm_status}")
        cold.append(seconds)
        warm.append(warm_seconds)
        bb.log(f"probe {probe_ms} ms, rep {rep + 1}: cold {seconds:.3f} s, "
               f"warm {warm_seconds * 1000:.1f} ms")
    held = run.app(name)["traffic"]["held_total"]
    return {"probe_ms": probe_ms, "cold_s": bb.summary(cold), "warm_s": bb.summary(warm),
            "held_total": held}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="cold starts per probe period")
    parser.add_argument("--probes", default="200,1000",
                        help="readiness probe periods in ms, comma-separated")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    port = bb.free_port()
    with bb.Run("cold-start", ["--http-listen", f"127.0.0.1:{port}"]) as run:
        results = [measure(run, port, int(p), args.reps) for p in args.probes.split(",")]
        context = bb.load_context()
    bb.print_table(
        "Cold start through the router: request to an app scaled to 0 when idle → first byte",
        [(f"{r['probe_ms']} ms", bb.fmt_s(r["cold_s"]),
          f"{r['warm_s']['median'] * 1000:.1f} ms", str(r["held_total"])) for r in results],
        ("readiness probe", "cold start (median, min-max)", "warm request (median)",
         "requests held"))
    bb.write_json(args.json, {"benchmark": "cold-start", "context": context,
                              "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
