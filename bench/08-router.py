#!/usr/bin/env python3
"""Benchmark 8: Berth's router vs nginx and HAProxy in front of the same two instances.

One `berth server` (release build) runs an app of 2 ready instances of `berth-testapp:latest`
and its router on a free loopback port (`--http-listen`); the app answers there as
`web.default.localhost`. Debian's nginx (an upstream of the two instance addresses with
`keepalive 64`, HTTP/1.1 to the upstream) and HAProxy (`balance roundrobin`,
`http-reuse always`) run beside it on free loopback ports, proxying to the same two instance
addresses. Each proxy is loaded with `wrk` (`GET /`, the test app's small JSON answer), one
after the other, in the same run:

* **throughput**: `wrk -t2 -c64 -d<seconds>s --latency`: requests per second, p50 and p99;
* **one connection**: `wrk -t1 -c1 -d<seconds/2>s --latency`: p50 and p99 of a lone client;
* **CPU per request**: the proxy's CPU time (user + system, all its processes, from
  `/proc/PID/stat`) over the throughput run, divided by the requests answered: what each proxy
  costs per request, which a machine shared with other work disturbs far less than req/s.

Ratios are to nginx (the goal of issue 14: ≥ 0.9× nginx's req/s, p99 ≤ 1.2× nginx's). Every
proxy gets the same `Host: web.default.localhost`. wrk counts non-2xx answers and socket
errors; any is reported. Needs `nginx`, `haproxy` and `wrk` (Debian: `apt-get install -y nginx
haproxy wrk`).

The instances write a log line per request by default, as most apps do; the engine copying
those lines (dockerd and the containerd shims) then takes about as much CPU as the proxy, on
the same cores, and how much it takes per line depends on how the requests arrive.
`--quiet-instances` starts them with `QUIET=1` (no line per request) so that only the proxies
differ.

`--bare` adds a fourth contestant: `crates/router/examples/bare_proxy.rs` (built here), the least
a hyper proxy on the router's threads model does (no routing, headers, metering or retries).
Berth's cost beyond it is the router's own logic; its cost beyond nginx is hyper and tokio.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402

HOST = "web.default.localhost"


def require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise bb.BenchError(
            f"missing {', '.join(missing)} (Debian: apt-get install -y nginx haproxy wrk)")


def nginx_config(port: int, backends: list[tuple[str, int]], prefix: Path) -> str:
    servers = "\n".join(f"        server {ip}:{p};" for ip, p in backends)
    return f"""worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream app {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""


def haproxy_config(port: int, backends: list[tuple[str, int]]) -> str:
    servers = "\n".join(f"    server i{n} {ip}:{p}" for n, (ip, p) in enumerate(backends))
    return f"""global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option forwardfor
    http-reuse always
frontend front
    bind 127.0.0.1:{port}
    default_backend app
backend app
    balance roundrobin
{servers}
"""


def wait_port(port: int, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + 20
    while bb.http_status("127.0.0.1", port, "/", timeout=1.0) is None:
        if time.monotonic() > deadline:
            said = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise bb.BenchError(f"{what} does not answer on port {port}: {said}")
        time.sleep(0.1)


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict:
    """Requests/s, p50 and p99 in ms, and the failures wrk counted."""
    def latency(percent: str) -> float:
        m = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not m:
            raise bb.BenchError(f"no {percent}% latency in wrk's output:\n{output}")
        return float(m.group(1)) * UNITS[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not rps:
        raise bb.BenchError(f"no Requests/sec in wrk's output:\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def wrk(port: int, threads: int, connections: int, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-H", f"Host: {HOST}", f"http://127.0.0.1:{port}/"],
        check=True, capture_output=True, text=True, timeout=seconds + 60,
    ).stdout
    return parse_wrk(out)


def proxy_cpu_seconds(pid: int) -> float:
    """CPU time of a proxy: the process and its direct children (nginx's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(k) for k in children.read_text().split()] if children.exists() else []
    total = 0.0
    for p in [pid, *kids]:
        try:
            total += bb.cpu_seconds(p)
        except FileNotFoundError:
            pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="throughput run length")
    parser.add_argument("--reps", type=int, default=1, help="rounds over the three proxies")
    parser.add_argument("--json", help="write results here")
    parser.add_argument("--quiet-instances", action="store_true",
                        help="instances write no log line per request (QUIET=1)")
    parser.add_argument("--bare", action="store_true",
                        help="also measure the bare hyper proxy (examples/bare_proxy.rs)")
    args = parser.parse_args()
    require("nginx", "haproxy", "wrk")
    if args.bare:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "berth-router",
                        "--example", "bare_proxy"], check=True, cwd=bb.ROOT)
    router_port = bb.free_port()
    results: dict[str, dict[str, list[dict]]] = {}
    with bb.Run("router", ["--http-listen", f"127.0.0.1:{router_port}"]) as run, \
            tempfile.TemporaryDirectory(prefix="berth-bench-proxies-") as tmp:
        prefix = Path(tmp)
        backends = run.ready_backends("web", 2,
                                      {"QUIET": "1"} if args.quiet_instances else None)
        (prefix / "nginx.conf").write_text(nginx_config(bb.free_port(), backends, prefix))
        nginx_port = int(re.search(r"listen 127.0.0.1:(\d+)",
                                   (prefix / "nginx.conf").read_text()).group(1))
        haproxy_port = bb.free_port()
        (prefix / "haproxy.cfg").write_text(haproxy_config(haproxy_port, backends))
        nginx = subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                  "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                 stderr=open(prefix / "nginx.out", "wb"))
        haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(prefix / "haproxy.cfg")],
                                   stdout=subprocess.DEVNULL,
                                   stderr=open(prefix / "haproxy.out", "wb"))
        bare = None
        try:
            targets = {"berth": router_port, "nginx": nginx_port, "haproxy": haproxy_port}
            pids = {"berth": run.server.pid, "nginx": nginx.pid, "haproxy": haproxy.pid}
            if args.bare:
                bare_port = bb.free_port()
                bare = subprocess.Popen(
                    [str(bb.ROOT / "target/release/examples/bare_proxy"),
                     f"127.0.0.1:{bare_port}", *(f"{ip}:{p}" for ip, p in backends)],
                    stdout=subprocess.DEVNULL, stderr=open(prefix / "bare.out", "wb"))
                targets["bare"] = bare_port
                pids["bare"] = bare.pid
            for name, port in targets.items():
                wait_port(port, name, prefix / f"{name}.out")
                wrk(port, 2, 64, 2)  # warm-up: connections and pools
            for rep in range(args.reps):
                for name, port in targets.items():
                    cpu_before = proxy_cpu_seconds(pids[name])
                    many = wrk(port, 2, 64, args.seconds)
                    cpu = proxy_cpu_seconds(pids[name]) - cpu_before
                    many["cpu_us_per_request"] = cpu * 1e6 / max(many["rps"] * args.seconds, 1)
                    one = wrk(port, 1, 1, max(args.seconds // 2, 1))
                    results.setdefault(name, {"many": [], "one": []})
                    results[name]["many"].append(many)
                    results[name]["one"].append(one)
                    bb.log(f"rep {rep + 1} {name}: {many['rps']:.0f} req/s, "
                           f"{many['cpu_us_per_request']:.1f} µs CPU per request, "
                           f"p50 {many['p50_ms']:.2f} ms, p99 {many['p99_ms']:.2f} ms; "
                           f"1 connection p50 {one['p50_ms']:.3f} ms, p99 {one['p99_ms']:.3f} ms"
                           f"; failures {many['non_2xx'] + many['socket_errors']}"
                           f"+{one['non_2xx'] + one['socket_errors']}")
        finally:
            for proc in (nginx, haproxy, bare):
                if proc is None:
                    continue
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        run.delete_app("web")

    def median(name: str, mode: str, key: str) -> float:
        values = sorted(r[key] for r in results[name][mode])
        return values[len(values) // 2]

    rows = []
    for name in results:
        failures = sum(r["non_2xx"] + r["socket_errors"]
                       for mode in ("many", "one") for r in results[name][mode])
        rows.append((
            name,
            f"{median(name, 'many', 'rps'):.0f}",
            f"{median(name, 'many', 'rps') / median('nginx', 'many', 'rps'):.2f}x",
            f"{median(name, 'many', 'p50_ms'):.2f}",
            f"{median(name, 'many', 'p99_ms'):.2f}",
            f"{median(name, 'many', 'p99_ms') / median('nginx', 'many', 'p99_ms'):.2f}x",
            f"{median(name, 'many', 'cpu_us_per_request'):.1f}",
            f"{median(name, 'many', 'cpu_us_per_request') / median('nginx', 'many', 'cpu_us_per_request'):.2f}x",
            f"{median(name, 'one', 'p50_ms'):.3f}",
            f"{median(name, 'one', 'p99_ms'):.3f}",
            str(failures),
        ))
    bb.print_table(
        f"Router vs nginx and HAProxy: 2 instances"
        f"{' (quiet)' if args.quiet_instances else ''}, wrk -t2 -c64 -d{args.seconds}s and "
        f"-t1 -c1 (medians of {args.reps})",
        rows,
        ("proxy", "req/s", "vs nginx", "p50 ms", "p99 ms", "p99 vs nginx", "CPU µs/req",
         "CPU vs nginx", "1 conn p50 ms",
         "1 conn p99 ms", "failed"),
    )
    bb.write_json(args.json, {"benchmark": "router", "seconds": args.seconds,
                              "context": bb.load_context(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
