#!/usr/bin/env python3
"""Benchmark 14: Berth on a 3-node Docker Swarm (scripts/swarm-rig.sh), beside Swarm's own
scheduling of a plain service in the same run.

The rig: three dockerds in network namespaces on this machine, nodes 1 and 2 in datacenter dc1,
node 3 in dc2. One `berth server` (release build) with `--engine swarm` on the rig's manager,
listening on 10.77.0.1 so the nodes pull `berth-testapp:latest` from its registry (copied there
with skopeo). The plain Swarm service pulls the same image from the same registry.

1. 0 → 20 ready: POST /api/v1/apps with 20 replicas (readiness probe on /healthz every 1000 ms,
   the default) until the API reports 20 ready instances; beside it `docker service create
   --replicas 20 --publish mode=host,target=8080 --endpoint-mode dnsrr` until 20 tasks run.
   (Berth counts an instance ready when it answered its probe; Swarm counts a task running
   when its process started.)
2. Node loss: an app of 6 ready instances and a plain service of 6 replicas (restart policy
   `any`, the default) spread over the three nodes; `swarm-rig.sh kill-node 3` kills node 3
   (its dockerd and everything in it); timed until Berth's API reports 6 ready instances none
   on node 3, and until the plain service has 6 running tasks none on node 3. Node 3 is
   started again after each repetition.
Nothing asserts a duration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RIG = ROOT / "scripts" / "swarm-rig.sh"
RIG_HOST = "10.77.0.1"
TIMEOUT = 240


def rig(*args: str) -> str:
    done = subprocess.run([str(RIG), *args], capture_output=True, text=True)
    if done.returncode:
        raise bb.BenchError(f"swarm-rig.sh {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def rig_env() -> dict:
    return dict(line.split("=", 1) for line in rig("env").splitlines() if "=" in line)


class Swarm:
    """The plain Swarm side: docker CLI on the manager, logged in to Berth's registry."""

    def __init__(self, manager: str, registry: str, token: str):
        self.manager = manager
        self.config = tempfile.mkdtemp(prefix="berth-bench-swarm-docker-")
        self.docker("login", registry, "-u", "admin", "--password-stdin", stdin=token)

    def docker(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(["docker", "-H", self.manager, *args], input=stdin,
                              capture_output=True, text=True,
                              env={**os.environ, "DOCKER_CONFIG": self.config})
        if done.returncode:
            raise bb.BenchError(f"docker {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def running(self, service: str) -> list[str]:
        """The nodes of the service's running tasks."""
        out = self.docker("service", "ps", service, "--filter", "desired-state=running",
                          "--format", "{{.Node}} {{.CurrentState}}")
        return [line.split()[0] for line in out.splitlines()
                if len(line.split()) > 1 and line.split()[1] == "Running"]

    def create(self, name: str, image: str, replicas: int) -> None:
        self.docker("service", "create", "--detach", "--with-registry-auth", "--name", name,
                    "--replicas", str(replicas), "--endpoint-mode", "dnsrr",
                    "--publish", "mode=host,target=8080", "--label", "berth.bench=swarm", image)

    def remove(self, name: str) -> None:
        try:
            self.docker("service", "rm", name)
        except bb.BenchError:
            pass


def wait(what: str, done) -> float:
    t0 = time.monotonic()
    while not done():
        if time.monotonic() - t0 > TIMEOUT:
            raise bb.BenchError(f"{what}: not reached within {TIMEOUT} s")
        time.sleep(0.2)
    return time.monotonic() - t0


def ready_nodes(run: bb.Run, name: str) -> list[str]:
    app = run.app(name)
    return [i["node"] for i in app["instances"] if i.get("ready")]


def in_parallel(*jobs):
    """Runs each job in a thread; answers their results in order."""
    results: list = [None] * len(jobs)
    errors: list = []

    def runner(i, job):
        try:
            results[i] = job()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=runner, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def zero_to_twenty(run: bb.Run, swarm: Swarm, image: str, rep: int) -> tuple[float, float]:
    app, service = f"twenty{rep}", f"bench-twenty{rep}"

    def berth() -> float:
        t0 = time.monotonic()
        run.api("POST", "/apps", {"name": app, "image": image, "replicas": 20,
                                  "health_path": "/healthz"})
        wait("20 ready (Berth)", lambda: len(ready_nodes(run, app)) == 20)
        return time.monotonic() - t0

    def plain() -> float:
        t0 = time.monotonic()
        swarm.create(service, image, 20)
        wait("20 running (Swarm)", lambda: len(swarm.running(service)) == 20)
        return time.monotonic() - t0

    berth_s = berth()
    plain_s = plain()
    run.delete_app(app)
    swarm.remove(service)
    return berth_s, plain_s


def node_loss(run: bb.Run, swarm: Swarm, image: str, rep: int) -> tuple[float, float]:
    app, service = f"loss{rep}", f"bench-loss{rep}"
    run.api("POST", "/apps", {"name": app, "image": image, "replicas": 6,
                              "health_path": "/healthz"})
    swarm.create(service, image, 6)
    wait("6 ready (Berth)", lambda: len(ready_nodes(run, app)) == 6)
    wait("6 running (Swarm)", lambda: len(swarm.running(service)) == 6)
    if "rig-node-3" not in ready_nodes(run, app) or "rig-node-3" not in swarm.running(service):
        raise bb.BenchError("node 3 runs none of the instances: nothing to lose")
    rig("kill-node", "3")
    died = time.monotonic()

    def berth() -> float:
        wait("Berth's 6 ready off node 3", lambda: (lambda nodes: len(nodes) == 6
                                                    and "rig-node-3" not in nodes)(
            ready_nodes(run, app)))
        return time.monotonic() - died

    def plain() -> float:
        wait("Swarm's 6 running off node 3", lambda: (lambda nodes: len(nodes) == 6
                                                      and "rig-node-3" not in nodes)(
            swarm.running(service)))
        return time.monotonic() - died

    berth_s, plain_s = in_parallel(berth, plain)
    rig("start-node", "3")
    run.delete_app(app)
    swarm.remove(service)
    time.sleep(5)  # node 3 back and Ready before the next repetition
    return berth_s, plain_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2, help="repetitions of each measurement")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    rig("up")
    manager = rig_env()["BERTH_RIG_MANAGER"]
    results: dict = {"zero_to_twenty": [], "node_loss": []}
    with bb.Run("swarm", ["--engine", "swarm", "--docker-host", manager],
                listen_host=RIG_HOST) as run:
        registry = f"{RIG_HOST}:{run.port}"
        image = f"{registry}/default/bench:1"
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                        "--dest-creds", f"admin:{run.token}", f"docker-daemon:{bb.IMAGE}",
                        f"docker://{image}"], check=True)
        swarm = Swarm(manager, registry, run.token)
        for rep in range(args.reps):
            b, s = zero_to_twenty(run, swarm, image, rep)
            bb.log(f"0 → 20, rep {rep + 1}: Berth {b:.1f} s, Swarm {s:.1f} s")
            results["zero_to_twenty"].append({"berth_s": b, "swarm_s": s})
        for rep in range(args.reps):
            b, s = node_loss(run, swarm, image, rep)
            bb.log(f"node loss, rep {rep + 1}: Berth {b:.1f} s, Swarm {s:.1f} s")
            results["node_loss"].append({"berth_s": b, "swarm_s": s})
        context = bb.load_context()
    rows = []
    for key, label in (("zero_to_twenty", "0 → 20 ready on 3 nodes"),
                       ("node_loss", "node 3 killed → 6 ready on the others")):
        berth = bb.summary([r["berth_s"] for r in results[key]])
        plain = bb.summary([r["swarm_s"] for r in results[key]])
        ratio = bb.ratio(berth, plain)
        rows.append((label, bb.fmt_s(berth), bb.fmt_s(plain),
                     f"{ratio:.2f}×" if ratio else "-"))
    bb.print_table("Berth on a 3-node Swarm vs a plain Swarm service (same run)", rows,
                   ("measurement", "Berth (median, min-max)", "plain Swarm service", "ratio"))
    bb.write_json(args.json, {"benchmark": "swarm", "context": context,
                              "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
