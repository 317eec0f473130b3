#!/usr/bin/env python3
"""Benchmark 1: 0 -> 20 ready instances, Berth vs plain `docker run`.

Berth: time from the POST /api/v1/apps call (20 replicas) until GET /api/v1/apps/NAME
reports 20 ready instances, polled every 50 ms. Run once per readiness probe period
(default: 200 ms and Berth's default 1000 ms). From the app's events it also derives when
the last container had been started (Docker create+start returned) and when the prober
saw the last instance ready, on the server's clock.

Peer: 20 x `docker run -d --init --network <user bridge>` of the same image started in
parallel (one thread each), then each container's IP polled every 50 ms with GET /healthz
until 200. Time from the first `docker run` until the last container answers.

Each repetition runs Berth (every probe period) and the peer back to back, so both see
the same machine load. Between measurements everything is removed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402


def measure_berth(run: bb.Run, name: str, replicas: int, probe_ms: int) -> dict:
    body = {
        "name": name,
        "image": bb.IMAGE,
        "replicas": replicas,
        "readiness": {"path": "/healthz", "period_ms": probe_ms},
        "liveness": {"path": "/healthz", "period_ms": 1000},
    }
    wall0 = time.time()
    t0 = time.monotonic()
    run.api("POST", "/apps", body)
    run.wait_app(name, lambda a: a["ready_instances"] >= replicas, f"{replicas} ready")
    total = time.monotonic() - t0
    events = run.events(name)
    started = [bb.event_ms(e) - wall0 for e in events if e["kind"] == "instance_started"]
    ready = [bb.event_ms(e) - wall0 for e in events if e["kind"] == "instance_ready"]
    run.delete_app(name)
    return {
        "total": total,
        "last_started": max(started) if started else None,
        "first_ready": min(ready) if ready else None,
        "last_ready": max(ready) if ready else None,
    }


def measure_docker(run: bb.Run, net: str, replicas: int, rep: int) -> dict:
    t0 = time.monotonic()

    def one(i: int) -> tuple[float, float]:
        cid = bb.docker_run(f"{run.namespace}-peer{rep}-{i}", net, run.namespace)
        t_run = time.monotonic() - t0
        bb.wait_healthy(bb.container_ip(cid, net))
        return t_run, time.monotonic() - t0

    results = bb.parallel(one, list(range(replicas)))
    total = time.monotonic() - t0
    run.remove_peer_containers()
    return {"total": total, "last_run_returned": max(r[0] for r in results)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--probe-ms", default="200,1000",
                        help="readiness probe periods to measure Berth with (comma list)")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    probes = [int(p) for p in args.probe_ms.split(",") if p]

    berth: dict[int, list[dict]] = {p: [] for p in probes}
    peer: list[dict] = []
    with bb.Run("zero-to-twenty") as run:
        context = bb.load_context()
        bb.header("0 -> N ready instances", {"replicas": args.replicas, "reps": args.reps,
                                             "probe periods (ms)": probes, **context})
        net = run.peer_network()
        for rep in range(args.reps):
            for p in probes:
                r = measure_berth(run, f"up{rep}p{p}", args.replicas, p)
                berth[p].append(r)
                bb.log(f"rep {rep + 1}: berth (probe {p} ms) {r['total']:.2f} s  "
                       f"[last container started {r['last_started']:.2f} s, "
                       f"last ready event {r['last_ready']:.2f} s]")
                time.sleep(1)
            r = measure_docker(run, net, args.replicas, rep)
            peer.append(r)
            bb.log(f"rep {rep + 1}: docker run {r['total']:.2f} s  "
                   f"[last docker run returned {r['last_run_returned']:.2f} s]")
            time.sleep(1)

    def stat(rows: list[dict], key: str) -> dict:
        return bb.summary([r[key] for r in rows if r.get(key) is not None])

    peer_total = stat(peer, "total")
    rows = []
    result = {"benchmark": "zero_to_twenty", "replicas": args.replicas, "reps": args.reps,
              "context": context, "berth": {}, "docker": {
                  "total": peer_total, "last_run_returned": stat(peer, "last_run_returned")}}
    for p in probes:
        total = stat(berth[p], "total")
        result["berth"][str(p)] = {
            "total": total,
            "last_started": stat(berth[p], "last_started"),
            "first_ready": stat(berth[p], "first_ready"),
            "last_ready": stat(berth[p], "last_ready"),
            "ratio_vs_docker": bb.ratio(total, peer_total),
        }
        rows.append((f"Berth, readiness probe {p} ms", bb.fmt_s(total),
                     bb.fmt_s(stat(berth[p], "last_started")),
                     f"{bb.ratio(total, peer_total):.2f}x"))
    rows.append(("docker run -d --init (parallel)", bb.fmt_s(peer_total),
                 bb.fmt_s(stat(peer, "last_run_returned")), "1.00x"))
    bb.print_table(
        f"0 -> {args.replicas} ready instances: median (min-max) of {args.reps}, "
        f"API/container polled every {bb.POLL * 1000:.0f} ms",
        rows,
        ("what", "until all ready", "until all containers started", "ratio vs docker"),
    )
    bb.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
