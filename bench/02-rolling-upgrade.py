#!/usr/bin/env python3
"""Benchmark 2: rolling upgrade of 10 instances, Berth vs a hand-made docker loop.

Berth: an app with 10 ready replicas; time from the POST /api/v1/apps/NAME/deploy call
(a new env var -> a new revision) until the API reports rollout phase `complete` for the new
revision with 10 ready instances of it (polled every 50 ms). Also recorded: until no
instance of an old revision is listed any more (old containers stopped and removed).
Scenarios (each repetition runs all of them, then the peer):

* readiness probe 200 ms, default strategy (max_surge 1, max_unavailable 0);
* readiness probe 200 ms, max_surge 3 (sent in the deploy body: {"strategy":{"max_surge":3}});
* readiness probe 1000 ms (Berth's default), default strategy.

The strategy is sent explicitly with every deploy ({"max_surge":1,"max_unavailable":0} is
the default) because a deploy's strategy sticks to the app.

Peer: 10 `docker run -d --init` containers on a user bridge network; replaced one at a time
by hand: `docker run` the new one, poll its GET /healthz every 50 ms until 200, `docker stop`
the old one (SIGTERM; the test app exits at once), `docker rm` it; ten times.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402

SCENARIOS = [
    # (key, readiness period ms, max_surge, label)
    ("probe200_surge1", 200, 1, "Berth, probe 200 ms, max_surge 1"),
    ("probe200_surge3", 200, 3, "Berth, probe 200 ms, max_surge 3"),
    ("probe1000_surge1", 1000, 1, "Berth, probe 1000 ms, max_surge 1"),
]


def create_app(run: bb.Run, name: str, replicas: int, probe_ms: int) -> None:
    run.api("POST", "/apps", {
        "name": name,
        "image": bb.IMAGE,
        "replicas": replicas,
        "readiness": {"path": "/healthz", "period_ms": probe_ms},
        "liveness": {"path": "/healthz", "period_ms": 1000},
    })
    app = run.wait_app(name, lambda a: a["ready_instances"] >= replicas and a["rollout"]["done"],
                       f"{replicas} ready", poll=0.2)
    strategy = app["strategy"]
    if strategy["max_surge"] != 1 or strategy["max_unavailable"] != 0:
        raise bb.BenchError(f"unexpected default strategy {strategy}")


def measure_berth(run: bb.Run, name: str, replicas: int, surge: int, value: str) -> dict:
    body = {"env": {"BENCH_VALUE": value},
            "strategy": {"max_surge": surge, "max_unavailable": 0}}
    t0 = time.monotonic()
    deployed = run.api("POST", f"/apps/{name}/deploy", body)
    revision = deployed["rollout"]["revision"]

    def complete(app: dict) -> bool:
        rollout = app["rollout"]
        if rollout["revision"] != revision:
            raise bb.BenchError(f"rollout moved to revision {rollout['revision']}")
        if rollout["failed"]:
            raise bb.BenchError(f"rollout failed: {rollout['message']}")
        new_ready = sum(1 for i in app["instances"] if i["revision"] == revision and i["ready"])
        return rollout["phase"] == "complete" and new_ready >= replicas

    run.wait_app(name, complete, "rolled out")
    total = time.monotonic() - t0
    run.wait_app(name, lambda a: all(i["revision"] == revision for i in a["instances"]),
                 "without old instances")
    old_gone = time.monotonic() - t0
    return {"total": total, "old_gone": old_gone, "revision": revision}


def start_peer(run: bb.Run, net: str, replicas: int) -> list[str]:
    def one(i: int) -> str:
        cid = bb.docker_run(f"{run.namespace}-roll-{i}", net, run.namespace)
        bb.wait_healthy(bb.container_ip(cid, net))
        return cid

    return bb.parallel(one, list(range(replicas)))


def measure_peer(run: bb.Run, net: str, current: list[str], rep: int) -> tuple[dict, list[str]]:
    t0 = time.monotonic()
    replaced = []
    for i, old in enumerate(current):
        new = bb.docker_run(f"{run.namespace}-roll{rep}-{i}", net, run.namespace,
                            env={"BENCH_VALUE": str(rep)})
        bb.wait_healthy(bb.container_ip(new, net))
        bb.docker("stop", old)
        bb.docker("rm", old)
        replaced.append(new)
    return {"total": time.monotonic() - t0}, replaced


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--scenarios", default=",".join(s[0] for s in SCENARIOS),
                        help="comma list of: " + ", ".join(s[0] for s in SCENARIOS))
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if s[0] in args.scenarios.split(",")]

    berth: dict[str, list[dict]] = {s[0]: [] for s in chosen}
    peer: list[dict] = []
    with bb.Run("rolling-upgrade") as run:
        context = bb.load_context()
        bb.header("rolling upgrade", {"replicas": args.replicas, "reps": args.reps,
                                      "scenarios": [s[0] for s in chosen], **context})
        apps = {}
        for probe_ms in sorted({s[1] for s in chosen}):
            apps[probe_ms] = f"roll{probe_ms}"
            create_app(run, apps[probe_ms], args.replicas, probe_ms)
        net = run.peer_network()
        containers = start_peer(run, net, args.replicas)
        for rep in range(args.reps):
            for key, probe_ms, surge, _ in chosen:
                r = measure_berth(run, apps[probe_ms], args.replicas, surge, f"{key}-{rep}")
                berth[key].append(r)
                bb.log(f"rep {rep + 1}: {key}: complete {r['total']:.2f} s, "
                       f"old gone {r['old_gone']:.2f} s (revision {r['revision']})")
                time.sleep(1)
            r, containers = measure_peer(run, net, containers, rep)
            peer.append(r)
            bb.log(f"rep {rep + 1}: docker one-by-one {r['total']:.2f} s")
            time.sleep(1)

    peer_total = bb.summary([r["total"] for r in peer])
    result = {"benchmark": "rolling_upgrade", "replicas": args.replicas, "reps": args.reps,
              "context": context, "berth": {}, "docker": {"total": peer_total}}
    rows = []
    for key, probe_ms, surge, label in chosen:
        total = bb.summary([r["total"] for r in berth[key]])
        old_gone = bb.summary([r["old_gone"] for r in berth[key]])
        result["berth"][key] = {"probe_ms": probe_ms, "max_surge": surge, "total": total,
                                "old_gone": old_gone,
                                "ratio_vs_docker": bb.ratio(total, peer_total)}
        rows.append((label, bb.fmt_s(total), bb.fmt_s(old_gone),
                     f"{bb.ratio(total, peer_total):.2f}x"))
    rows.append(("docker by hand, one at a time", bb.fmt_s(peer_total), "(same)", "1.00x"))
    bb.print_table(
        f"Rolling upgrade of {args.replicas} instances: median (min-max) of {args.reps}, "
        f"polled every {bb.POLL * 1000:.0f} ms",
        rows,
        ("what", "until complete + all new ready", "until old removed", "ratio vs docker"),
    )
    bb.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
