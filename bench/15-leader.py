#!/usr/bin/env python3
"""Benchmark 15: losing the leader of two Berth servers on one PostgreSQL database.

Two `berth server`s (release build) of one installation: one PostgreSQL database (a fresh one
on the server scripts/ensure-postgres.sh starts), one --shared-dir, one engine namespace, a
data directory each. The first to start leads. An app of 2 instances runs.

Each repetition, with server L leading and server F following:

1. A write through F's API is sent (scale the app to the other of 2 and 3 instances) while L
   is alive, and L is killed at once (`kill -9`) or stopped (SIGTERM, a planned hand-off).
2. Timed from the kill or the SIGTERM: until F's log says it leads (leadership), and until
   F's API reports the app at the new count of ready instances (the controllers resumed and
   carried out a write made while the leader went away). F's API answers writes all along.
3. L is started again (it follows), and the roles swap for the next repetition.

The issue's goal for a kill is 10 s (Kubernetes' controller leases take up to 15 s); no
other control plane runs here to compare with, so the table shows the goal beside the result.
Nothing asserts a duration.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOAL_KILL_S = 10.0


class Server:
    """One `berth server` of the pair."""

    def __init__(self, name: str, binary: Path, tmp: Path, store: str, shared: Path,
                 namespace: str):
        self.name = name
        self.binary = binary
        self.data_dir = tmp / name
        self.log_path = tmp / f"{name}.log"
        self.store = store
        self.shared = shared
        self.namespace = namespace
        self.port = bb.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [str(self.binary), "server", "--listen", f"127.0.0.1:{self.port}",
                 "--http-listen", f"127.0.0.1:{bb.free_port()}",
                 "--data-dir", str(self.data_dir), "--namespace", self.namespace,
                 "--store", self.store, "--shared-dir", str(self.shared)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while bb.http_status("127.0.0.1", self.port, "/healthz") != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise bb.BenchError(f"{self.name} did not start: {self.tail()}")
            time.sleep(0.05)

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])

    def terms_led(self) -> int:
        return self.log_path.read_text(errors="replace").count("this server leads")

    def stop(self, sig: int) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)

    def api(self, token: str, method: str, path: str, body: dict | None = None):
        return bb.api_call(self.base, token, method, path, body)


def wait_for(what: str, check) -> None:
    deadline = time.monotonic() + bb.GIVE_UP
    while not check():
        if time.monotonic() > deadline:
            raise bb.BenchError(f"{what}: not reached within {bb.GIVE_UP} s")
        time.sleep(bb.POLL)


def ready(app: dict) -> int:
    return sum(1 for i in app.get("instances", [])
               if i.get("phase") == "running" and i.get("readiness") == "ready")


def lose_leader(leader: Server, follower: Server, token: str, replicas: int,
                how: int) -> tuple[float, float]:
    """Scales to `replicas` through the follower, then kills or stops the leader; returns
    (seconds until the follower leads, seconds until the app is at `replicas` ready)."""
    led_before = follower.terms_led()
    follower.api(token, "POST", "/apps/web/scale", {"replicas": replicas})
    gone = time.monotonic()
    leader.stop(how)
    wait_for("the follower leads", lambda: follower.terms_led() > led_before)
    leads = time.monotonic() - gone
    wait_for(f"{replicas} ready",
             lambda: ready(follower.api(token, "GET", "/apps/web")) == replicas)
    return leads, time.monotonic() - gone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each way")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    bb.install_signal_handlers()
    bb.ensure_image()
    server_url = subprocess.run([str(ROOT / "scripts" / "ensure-postgres.sh")],
                                capture_output=True, text=True, check=True).stdout.strip()
    database = f"berth_bench_{secrets.token_hex(4)}"
    subprocess.run(["psql", server_url, "-q", "-c", f"CREATE DATABASE {database}"], check=True)
    store = server_url.rsplit("/", 1)[0] + "/" + database
    tmp = Path(tempfile.mkdtemp(prefix="berth-bench-run-leader-"))
    namespace = f"bench{secrets.token_hex(3)}"
    binary = bb.berth_binary(tmp)
    shared = tmp / "shared"
    servers = [Server(name, binary, tmp, store, shared, namespace) for name in ("one", "two")]
    results: dict = {"kill": [], "sigterm": []}
    try:
        servers[0].start()
        wait_for("one leads", lambda: servers[0].terms_led() == 1)
        token = (servers[0].data_dir / "admin-token").read_text().strip()
        servers[1].start()
        servers[0].api(token, "POST", "/apps", {"name": "web", "image": bb.IMAGE,
                                                "replicas": 2, "health_path": "/healthz"})
        wait_for("2 ready", lambda: ready(servers[0].api(token, "GET", "/apps/web")) == 2)
        leader, follower = servers
        replicas = 2
        for how, key in ((signal.SIGKILL, "kill"), (signal.SIGTERM, "sigterm")):
            for rep in range(args.reps):
                replicas = 5 - replicas
                leads, resumed = lose_leader(leader, follower, token, replicas, how)
                bb.log(f"{key} {rep + 1}: leads after {leads:.2f} s, "
                       f"{replicas} ready after {resumed:.2f} s")
                results[key].append({"leads_s": leads, "resumed_s": resumed})
                leader.start()
                leader, follower = follower, leader
        context = bb.load_context()
    finally:
        for server in servers:
            try:
                server.stop(signal.SIGTERM)
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                bb.log("stopping a server failed:", e)
        bb.cleanup_namespace(namespace)
        subprocess.run(["psql", server_url, "-q", "-c", f"DROP DATABASE IF EXISTS {database}"],
                       check=False)
        if os.environ.get("BERTH_BENCH_KEEP_TMP") == "1":
            bb.log("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for key, label, goal in (("kill", "leader killed (kill -9)", f"{GOAL_KILL_S:.0f} s"),
                             ("sigterm", "leader stopped (SIGTERM)", "1 s")):
        leads = bb.summary([r["leads_s"] for r in results[key]])
        resumed = bb.summary([r["resumed_s"] for r in results[key]])
        rows.append((label, bb.fmt_s(leads), bb.fmt_s(resumed), goal))
    bb.print_table("Two Berth servers on PostgreSQL: losing the leader", rows,
                   ("measurement", "follower leads (median, min-max)",
                    "write carried out", "goal"))
    bb.write_json(args.json, {"benchmark": "leader", "context": context, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
