#!/usr/bin/env python3
"""Benchmark 3: `docker kill` of one instance -> a ready replacement.

Berth: an app with 3 ready replicas; `docker kill` one instance's container; time from the
moment `docker kill` returned until GET /api/v1/apps/NAME (polled every 50 ms) reports 3
ready instances, none of them the killed one. Every repetition uses a fresh app, so the
killed instance is always a first crash (Berth's crash-loop backoff starts only at the
second quick crash in a row). Run once per readiness probe period (default 200 ms and
Berth's default 1000 ms). From the app's events: when Berth started the replacement.
`--startup-delay-ms N` makes the test app bind its port only N ms after start (Berth and
peer alike), which shows the readiness probe period's granularity.

Peer (for context): Docker's restart policy does not help here -- `docker kill` counts as a
manual stop, so even `--restart always` leaves the container dead. What Docker offers is a
fresh `docker run -d --init`: timed from the call until the new container answers
GET /healthz with 200 (polled every 50 ms).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402


def measure_berth(run: bb.Run, name: str, replicas: int, probe_ms: int, env: dict) -> dict:
    run.api("POST", "/apps", {
        "name": name,
        "image": bb.IMAGE,
        "env": env,
        "replicas": replicas,
        "readiness": {"path": "/healthz", "period_ms": probe_ms},
        "liveness": {"path": "/healthz", "period_ms": 1000},
    })
    app = run.wait_app(name, lambda a: a["ready_instances"] >= replicas and a["rollout"]["done"],
                       f"{replicas} ready", poll=0.2)
    # Let the first rollout settle (events recorded, probes steady).
    time.sleep(1)
    victim = app["instances"][0]["name"]
    container = f"{run.namespace}-{victim}"
    bb.docker("kill", container)
    wall0 = time.time()
    t0 = time.monotonic()

    def replaced(a: dict) -> bool:
        ready = [i for i in a["instances"] if i["ready"] and i["name"] != victim]
        return len(ready) >= replicas

    run.wait_app(name, replaced, "healed")
    total = time.monotonic() - t0
    events = run.events(name)
    started = [bb.event_ms(e) - wall0 for e in events
               if e["kind"] == "instance_replaced" and bb.event_ms(e) >= wall0 - 0.01]
    ready = [bb.event_ms(e) - wall0 for e in events
             if e["kind"] == "instance_ready" and bb.event_ms(e) >= wall0 - 0.01]
    run.delete_app(name)
    return {
        "total": total,
        "replacement_started": min(started) if started else None,
        "replacement_ready_event": min(ready) if ready else None,
    }


def measure_docker(run: bb.Run, net: str, rep: int, env: dict) -> dict:
    t0 = time.monotonic()
    cid = bb.docker_run(f"{run.namespace}-fresh{rep}", net, run.namespace, env=env)
    t_run = time.monotonic() - t0
    bb.wait_healthy(bb.container_ip(cid, net))
    total = time.monotonic() - t0
    run.remove_peer_containers()
    return {"total": total, "run_returned": t_run}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--probe-ms", default="200,1000",
                        help="readiness probe periods to measure Berth with (comma list)")
    parser.add_argument("--startup-delay-ms", type=int, default=0,
                        help="STARTUP_DELAY_MS of the test app (Berth and peer): the app "
                             "binds its port only after this delay")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    probes = [int(p) for p in args.probe_ms.split(",") if p]
    env = {"STARTUP_DELAY_MS": str(args.startup_delay_ms)} if args.startup_delay_ms else {}

    berth: dict[int, list[dict]] = {p: [] for p in probes}
    peer: list[dict] = []
    with bb.Run("kill-replace") as run:
        context = bb.load_context()
        bb.header("kill -> ready replacement", {"replicas": args.replicas, "reps": args.reps,
                                                "probe periods (ms)": probes,
                                                "app env": env, **context})
        net = run.peer_network()
        for rep in range(args.reps):
            for p in probes:
                r = measure_berth(run, f"kill{rep}p{p}", args.replicas, p, env)
                berth[p].append(r)
                started = r["replacement_started"]
                bb.log(f"rep {rep + 1}: berth (probe {p} ms) {r['total']:.2f} s  "
                       f"[replacement started at "
                       f"{'?' if started is None else f'{started:.2f}'} s]")
                time.sleep(1)
            r = measure_docker(run, net, rep, env)
            peer.append(r)
            bb.log(f"rep {rep + 1}: docker run {r['total']:.2f} s")
            time.sleep(1)

    def stat(rows: list[dict], key: str) -> dict:
        return bb.summary([r[key] for r in rows if r.get(key) is not None])

    peer_total = stat(peer, "total")
    result = {"benchmark": "kill_replace", "replicas": args.replicas, "reps": args.reps,
              "startup_delay_ms": args.startup_delay_ms,
              "context": context, "berth": {},
              "docker": {"total": peer_total, "run_returned": stat(peer, "run_returned")}}
    rows = []
    for p in probes:
        total = stat(berth[p], "total")
        result["berth"][str(p)] = {
            "total": total,
            "replacement_started": stat(berth[p], "replacement_started"),
            "replacement_ready_event": stat(berth[p], "replacement_ready_event"),
            "ratio_vs_docker": bb.ratio(total, peer_total),
        }
        rows.append((f"Berth, readiness probe {p} ms", bb.fmt_s(total),
                     bb.fmt_s(stat(berth[p], "replacement_started")),
                     f"{bb.ratio(total, peer_total):.2f}x"))
    rows.append(("fresh docker run -d --init", bb.fmt_s(peer_total),
                 bb.fmt_s(stat(peer, "run_returned")), "1.00x"))
    bb.print_table(
        f"Kill -> ready replacement ({args.replicas} replicas"
        f"{f', STARTUP_DELAY_MS={args.startup_delay_ms}' if env else ''}): median (min-max) "
        f"of {args.reps}, polled every {bb.POLL * 1000:.0f} ms",
        rows,
        ("what", "until ready again", "until replacement started", "ratio vs docker"),
    )
    bb.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
