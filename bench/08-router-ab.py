#!/usr/bin/env python3
"""Benchmark 8, A/B: two builds of Berth's router side by side, with nginx as the control.

Two `berth server`s (`--bin-a`, `--bin-b`: release binaries, e.g. the baseline and a candidate)
run at once, each with an app of 2 ready `berth-testapp` instances and its router on a free
loopback port; Debian's nginx (configured as in `08-router.py`) proxies to A's instances.
Then `--cycles` times, `wrk -t2 -c64 -d<seconds>s` loads A, nginx and B one after the other
(the order reversed every other cycle), and each window's req/s and the proxy's CPU time per
request (`/proc`, as in `08-router.py`) are recorded.

Why: on a shared machine, runs of `08-router.py` minutes apart differ by ±20 % or more; short
windows interleaved put both builds under the same load. Reported: per build the median req/s
ratio to nginx and CPU µs per request, and per cycle B ÷ A (req/s and CPU per request).
**Run it once with the same binary as A and B first**: on the shared 2-vCPU VM of
docs/BENCHMARKS.md an A/A run of 8 cycles gave B ÷ A of 0.95 (req/s) and 1.02 (CPU), single
cycles 0.81–1.9 and 0.93–1.29: the noise floor any difference must clear. Needs `nginx` and
`wrk`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "router_bench", Path(__file__).resolve().parent / "08-router.py")
router = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(router)


def start(name: str, binary: str, stack: list,
          env: dict[str, str] | None) -> tuple[bb.Run, int, list[tuple[str, int]]]:
    """A server of `binary` with the benchmark's app (its instances started with `env`), its
    router port and instance addresses."""
    os.environ["BERTH_BIN"] = binary  # read by `Run.start`
    port = bb.free_port()
    run = bb.Run(name, ["--http-listen", f"127.0.0.1:{port}"])
    run.__enter__()
    stack.append(run)
    return run, port, run.ready_backends("web", 2, env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-a", required=True, help="release binary A (e.g. the baseline)")
    parser.add_argument("--bin-b", required=True, help="release binary B (the candidate)")
    parser.add_argument("--cycles", type=int, default=10, help="rounds over A, nginx, B")
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk window")
    parser.add_argument("--json", help="write results here")
    parser.add_argument("--quiet-instances", action="store_true",
                        help="instances write no log line per request (QUIET=1), as in "
                             "08-router.py")
    args = parser.parse_args()
    router.require("nginx", "wrk")
    runs: list[bb.Run] = []
    results: dict[str, list[dict]] = {"A": [], "B": [], "nginx": []}
    try:
        env = {"QUIET": "1"} if args.quiet_instances else None
        run_a, port_a, backends = start("router-a", args.bin_a, runs, env)
        run_b, port_b, _ = start("router-b", args.bin_b, runs, env)
        with tempfile.TemporaryDirectory(prefix="berth-bench-ab-") as tmp:
            prefix = Path(tmp)
            nginx_port = bb.free_port()
            (prefix / "nginx.conf").write_text(
                router.nginx_config(nginx_port, backends, prefix))
            nginx = subprocess.Popen(
                ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                 "-g", "daemon off;"],
                stdout=subprocess.DEVNULL, stderr=open(prefix / "nginx.out", "wb"))
            try:
                targets = {"A": (port_a, run_a.server.pid), "nginx": (nginx_port, nginx.pid),
                           "B": (port_b, run_b.server.pid)}
                for name, (port, _) in targets.items():
                    router.wait_port(port, name)
                    router.wrk(port, 2, 64, 2)  # warm-up: connections and pools
                order = list(targets)
                for cycle in range(args.cycles):
                    for name in order if cycle % 2 == 0 else order[::-1]:
                        port, pid = targets[name]
                        cpu_before = router.proxy_cpu_seconds(pid)
                        window = router.wrk(port, 2, 64, args.seconds)
                        cpu = router.proxy_cpu_seconds(pid) - cpu_before
                        window["cpu_us_per_request"] = cpu * 1e6 / max(
                            window["rps"] * args.seconds, 1)
                        results[name].append(window)
                    bb.log(f"cycle {cycle + 1}: " + ", ".join(
                        f"{name} {results[name][-1]['rps']:.0f} req/s "
                        f"{results[name][-1]['cpu_us_per_request']:.1f} µs"
                        for name in order))
            finally:
                nginx.terminate()
                nginx.wait(timeout=10)
        for run in runs:
            run.delete_app("web")
    finally:
        for run in reversed(runs):
            run.__exit__(None, None, None)

    median = statistics.median
    nginx_rows = results["nginx"]
    rows = []
    for name in ("A", "B"):
        mine = results[name]
        rows.append((
            name,
            f"{median(r['rps'] / n['rps'] for r, n in zip(mine, nginx_rows)):.3f}x",
            f"{median(r['cpu_us_per_request'] for r in mine):.1f}",
            f"{median(r['cpu_us_per_request'] / n['cpu_us_per_request'] for r, n in zip(mine, nginx_rows)):.2f}x",
            f"{median(r['p99_ms'] / n['p99_ms'] for r, n in zip(mine, nginx_rows)):.2f}x",
            str(sum(r["non_2xx"] + r["socket_errors"] for r in mine)),
        ))
    rows.append((
        "B ÷ A (per cycle)",
        f"{median(b['rps'] / a['rps'] for a, b in zip(results['A'], results['B'])):.3f}",
        "",
        f"{median(b['cpu_us_per_request'] / a['cpu_us_per_request'] for a, b in zip(results['A'], results['B'])):.3f}",
        "", "",
    ))
    bb.print_table(
        f"Router A/B with nginx as control: {args.cycles} cycles of wrk -t2 -c64 "
        f"-d{args.seconds}s (medians; nginx CPU "
        f"{median(n['cpu_us_per_request'] for n in nginx_rows):.1f} µs/request)",
        rows,
        ("build", "req/s vs nginx", "CPU µs/req", "CPU vs nginx", "p99 vs nginx", "failed"),
    )
    bb.write_json(args.json, {"benchmark": "router-ab", "seconds": args.seconds,
                              "bin_a": args.bin_a, "bin_b": args.bin_b,
                              "context": bb.load_context(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
