#!/usr/bin/env python3
"""Benchmark 9: the router while Berth changes things — failed requests during a rolling
upgrade of 10 instances under wrk load, and the server's memory with 50 apps and 100 domains.

One `berth server` (release build) with its router on a free loopback port (`--http-listen`):

1. **Routing table memory**: VmRSS of the `berth server` process (`/proc/PID/status`) after
   it idled with no app, then after creating 50 apps (`route0` … `route49`, `replicas: 0`, so
   no container runs and only the routing table and the store grow) each with 2 custom domains
   (`a<i>.bench.test`, `www.a<i>.bench.test`: 100 domains, 150 hosts with the default ones) and
   letting the table refresh. A few requests through the router then show that it routes them:
   both domains of a sample of apps answer the app's own "app route<i> is scaled to 0" page
   (503), an unknown domain gets 404.
2. **Rolling upgrade under load**: an app `roll` of 10 ready instances of
   `berth-testapp:latest` (readiness `/healthz`, the default 1000 ms probe, the default
   strategy max_surge 1 / max_unavailable 0), also reachable at 2 custom domains;
   `wrk -t2 -c64 --latency` on `GET /` through the router (`Host: roll.default.localhost`)
   starts, runs 3 s against the settled app, then `POST /api/v1/apps/roll/deploy` with a new
   env var rolls all 10 instances; 3 s after the rollout is complete (10 ready instances of the
   new revision, no old one left) wrk is stopped with SIGINT (it prints its totals then). A wrk
   Lua script counts every answer that is not 2xx by status; wrk's own "Non-2xx or 3xx" and
   socket errors (connect/read/write/timeout) are reported too. Goal (issue): 0 failed.

Numbers on a shared 2-core machine are noisy (wrk, the router, the 10-11 instances and
Docker share the cores with whatever else runs); the failure count is what matters here.
Needs `wrk` (Debian: `apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402

ROLL_HOST = "roll.default.localhost"

# Counts every answer that is not 2xx, by status, over all of wrk's threads.
STATUS_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  if status < 200 or status > 299 then
    statuses[status] = (statuses[status] or 0) + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do
      io.write(string.format("status %d: %d\n", status, n))
      total = total + n
    end
  end
  io.write(string.format("not 2xx: %d\n", total))
end
"""


def router_get(port: int, host: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": host})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def rss_mib(pid: int) -> float:
    return bb.rss_kib(pid)[0] / 1024


def memory_part(run: bb.Run, router_port: int, apps: int, idle: float) -> dict:
    pid = run.server.pid
    time.sleep(idle)
    before = rss_mib(pid)
    bb.log(f"idle, no apps, after {idle:.0f} s: VmRSS {before:.1f} MiB")
    names = [f"route{i}" for i in range(apps)]

    def create(i: int) -> None:
        run.api("POST", "/apps", {"name": names[i], "image": bb.IMAGE, "replicas": 0,
                                  "health_path": "/healthz",
                                  "domains": [f"a{i}.bench.test", f"www.a{i}.bench.test"]})

    t0 = time.monotonic()
    for i in range(apps):
        create(i)
    created = time.monotonic() - t0
    # The router's table is rebuilt from the endpoint table (at least once a second): wait
    # until the last app's domains route, then let it settle.
    deadline = time.monotonic() + 30
    last = f"www.a{apps - 1}.bench.test"
    while router_get(router_port, last)[0] != 503:
        if time.monotonic() > deadline:
            raise bb.BenchError(f"{last} does not route within 30 s")
        time.sleep(0.1)
    routed = time.monotonic() - t0
    time.sleep(idle)
    after, hwm = (v / 1024 for v in bb.rss_kib(pid))
    bb.log(f"{apps} apps (replicas 0) with {2 * apps} domains created in {created:.1f} s, "
           f"all routed after {routed:.1f} s; after {idle:.0f} s: VmRSS {after:.1f} MiB "
           f"(+{after - before:.1f} MiB, peak {hwm:.1f} MiB)")
    checks = []
    sample = sorted({0, 7, apps // 2, apps - 1})
    for i in sample:
        for host in (f"a{i}.bench.test", f"www.a{i}.bench.test", f"WWW.A{i}.bench.test:80"):
            status, body = router_get(router_port, host)
            ok = status == 503 and f"app route{i} is scaled to 0" in body
            checks.append({"host": host, "status": status, "ok": ok})
    status, body = router_get(router_port, "nobody.bench.test")
    checks.append({"host": "nobody.bench.test", "status": status,
                   "ok": status == 404 and "nobody.bench.test" in body})
    for c in checks:
        bb.log(f"  GET {c['host']}: {c['status']} {'as expected' if c['ok'] else 'UNEXPECTED'}")
    if not all(c["ok"] for c in checks):
        raise bb.BenchError(f"the router does not route the domains as expected: {checks}")
    return {"apps": apps, "replicas": 0, "domains": 2 * apps,
            "rss_before_mib": before, "rss_after_mib": after, "hwm_mib": hwm,
            "create_s": created, "all_routed_s": routed, "route_checks": checks}


def parse_wrk(output: str) -> dict:
    def num(pattern: str) -> int:
        m = re.search(pattern, output)
        return int(m.group(1)) if m else 0

    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    if not m:
        raise bb.BenchError(f"no request count in wrk's output:\n{output}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    socket = dict(zip(("connect", "read", "write", "timeout"),
                      (int(x) for x in errors.groups()))) if errors else \
        {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    return {
        "requests": int(m.group(1)),
        "rps": float(rps.group(1)) if rps else None,
        "p99_ms": float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
        if p99 else None,
        "non_2xx_3xx_wrk": num(r"Non-2xx or 3xx responses:\s+(\d+)"),
        "not_2xx_lua": num(r"not 2xx: (\d+)"),
        "statuses": {int(s): int(n) for s, n in re.findall(r"status (\d+): (\d+)", output)},
        "socket_errors": socket,
    }


def rollout_part(run: bb.Run, router_port: int, replicas: int, rep: int, lua: Path,
                 settle: float) -> dict:
    app = run.app("roll")
    old_revision = app["rollout"]["revision"]
    wrk = subprocess.Popen(
        ["wrk", "-t2", "-c64", "-d600s", "--latency", "-s", str(lua), "-H", f"Host: {ROLL_HOST}",
         f"http://127.0.0.1:{router_port}/"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(settle)
        if wrk.poll() is not None:
            raise bb.BenchError(f"wrk ended early: {wrk.stdout.read()}")
        t0 = time.monotonic()
        deployed = run.api("POST", "/apps/roll/deploy", {"env": {"BENCH_ROUND": str(rep)}})
        revision = deployed["rollout"]["revision"]

        def complete(a: dict) -> bool:
            rollout = a["rollout"]
            if rollout["failed"]:
                raise bb.BenchError(f"rollout failed: {rollout['message']}")
            new_ready = sum(1 for i in a["instances"] if i["revision"] == revision and i["ready"])
            return (rollout["revision"] == revision and rollout["phase"] == "complete"
                    and new_ready >= replicas
                    and all(i["revision"] == revision for i in a["instances"]))

        run.wait_app("roll", complete, "rolled out", poll=0.1)
        duration = time.monotonic() - t0
        time.sleep(settle)
        wrk.send_signal(signal.SIGINT)
        out, _ = wrk.communicate(timeout=30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    result = parse_wrk(out)
    result.update({"rollout_s": duration, "from_revision": old_revision, "to_revision": revision,
                   "wrk_output": out})
    result["failed"] = (max(result["not_2xx_lua"], result["non_2xx_3xx_wrk"])
                        + sum(result["socket_errors"].values()))
    bb.log(f"rep {rep + 1}: revision {old_revision} -> {revision} in {duration:.1f} s; wrk "
           f"{result['requests']} requests ({result['rps']:.0f} req/s), not 2xx "
           f"{result['not_2xx_lua']} {result['statuses'] or ''}, socket errors "
           f"{result['socket_errors']}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="rolling upgrades under load")
    parser.add_argument("--replicas", type=int, default=10, help="instances of the rolled app")
    parser.add_argument("--apps", type=int, default=50, help="apps for the memory part")
    parser.add_argument("--idle", type=float, default=10, help="seconds idle before each RSS")
    parser.add_argument("--settle", type=float, default=3,
                        help="seconds of load before the deploy and after the rollout")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise bb.BenchError("missing wrk (Debian: apt-get install -y wrk)")
    router_port = bb.free_port()
    with bb.Run("router-rollout", ["--http-listen", f"127.0.0.1:{router_port}"]) as run, \
            tempfile.TemporaryDirectory(prefix="berth-bench-wrk-") as tmp:
        lua = Path(tmp) / "statuses.lua"
        lua.write_text(STATUS_LUA)
        memory = memory_part(run, router_port, args.apps, args.idle)

        run.api("POST", "/apps", {"name": "roll", "image": bb.IMAGE, "replicas": args.replicas,
                                  "health_path": "/healthz",
                                  "domains": ["roll.bench.test", "www.roll.bench.test"]})
        run.wait_app("roll", lambda a: a["ready_instances"] >= args.replicas
                     and a["rollout"]["done"], f"{args.replicas} ready", poll=0.2)
        for host in ("roll.bench.test", "www.roll.bench.test", ROLL_HOST):
            status, body = router_get(router_port, host)
            if status != 200 or '"app":"roll"' not in body.replace(" ", ""):
                raise bb.BenchError(f"GET {host} through the router: {status} {body[:200]}")
        bb.log(f"roll: {args.replicas} ready, answers at its 2 domains and {ROLL_HOST}")
        rounds = [rollout_part(run, router_port, args.replicas, rep, lua, args.settle)
                  for rep in range(args.reps)]
        rss_end = rss_mib(run.server.pid)
        context = bb.load_context()

    rows = [(str(i + 1), f"{r['rollout_s']:.1f}", str(r["requests"]), f"{r['rps']:.0f}",
             f"{r['p99_ms']:.1f}" if r["p99_ms"] is not None else "n/a",
             f"{r['not_2xx_lua']} / {r['non_2xx_3xx_wrk']}",
             " ".join(f"{k} {v}" for k, v in r["socket_errors"].items()), str(r["failed"]))
            for i, r in enumerate(rounds)]
    bb.print_table(
        f"Rolling upgrade of {args.replicas} instances under wrk -t2 -c64 through the router",
        rows,
        ("rep", "rollout s", "requests", "req/s", "p99 ms", "not 2xx (Lua / wrk)",
         "socket errors", "failed"))
    bb.print_table(
        f"berth server VmRSS with {memory['apps']} apps (replicas 0) and {memory['domains']} "
        "custom domains",
        [("idle, no apps", f"{memory['rss_before_mib']:.1f}"),
         (f"{memory['apps']} apps + {memory['domains']} domains", f"{memory['rss_after_mib']:.1f}"),
         ("difference", f"{memory['rss_after_mib'] - memory['rss_before_mib']:+.1f}"),
         ("after the rollouts under load", f"{rss_end:.1f}")],
        ("state", "VmRSS MiB"))
    failed = sum(r["failed"] for r in rounds)
    print(f"\nfailed requests over {len(rounds)} rolling upgrades: {failed} (goal 0)")
    bb.write_json(args.json, {"benchmark": "router-rollout", "context": context,
                              "replicas": args.replicas,
                              "memory": memory, "rss_end_mib": rss_end, "rollouts": rounds,
                              "failed": failed})
    if failed:
        raise bb.BenchError(f"{failed} requests failed during the rolling upgrades (goal 0)")
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
