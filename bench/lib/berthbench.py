"""Shared helpers for Berth's benchmarks (standard library only).

Every benchmark script:

* builds (or takes) a release `berth` binary and copies it into its own temp dir, so a
  rebuild of the workspace during the run cannot swap the binary under it;
* starts its own `berth server` on a free loopback port, with a unique namespace and a
  temp dir `$TMPDIR/berth-bench-run-*` holding the binary, data dir and log (`Run`);
* labels every container/network it creates for the docker peer with `berth.bench=<ns>`;
* cleans up in `Run.close()` -- called from `finally`, on SIGINT/SIGTERM/SIGHUP too:
  stops the server first (so it cannot replace what is removed), then removes every
  container labelled `berth.namespace=<ns>` or `berth.bench=<ns>`, the networks of the
  namespace (`<ns>`, its teams' `<ns>-team-<team>` and the peer's `<ns>-<suffix>`), and the
  temp dir;
* measures with `time.monotonic()` and reports median and min/max over repetitions.

Nothing here asserts a duration: a benchmark fails only when something does not work at all
(an API error, or a state not reached within a generous give-up timeout).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("BERTH_BENCH_IMAGE", "berth-testapp:latest")
# How often the benchmarks look at the API / at a container (seconds).
POLL = float(os.environ.get("BERTH_BENCH_POLL", "0.05"))
# Give up waiting for a state after this long (a failure, not a measurement).
GIVE_UP = float(os.environ.get("BERTH_BENCH_GIVE_UP", "180"))


def log(*args: object) -> None:
    print("[bench]", *args, file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- signals


class _Interrupted(BaseException):
    pass


def _raise_interrupted(signum, _frame):
    raise _Interrupted(f"signal {signum}")


def install_signal_handlers() -> None:
    """Turns SIGTERM/SIGHUP/SIGINT into an exception so `finally` blocks (cleanup) run."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _raise_interrupted)


def entry(main) -> int:
    """Runs a benchmark's main(); an interruption or a BenchError ends it with a short
    message (cleanup has run by then, in the `with Run(...)` block)."""
    install_signal_handlers()
    try:
        return main()
    except _Interrupted as e:
        log(f"interrupted ({e}); cleaned up")
        return 130
    except BenchError as e:
        log(f"FAILED: {e}")
        return 1


# ----------------------------------------------------------------------------- stats


def summary(values: list[float]) -> dict:
    """Median, min, max and the raw values (seconds or any unit)."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "values": []}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def fmt_s(stat: dict) -> str:
    if not stat["n"]:
        return "n/a"
    return f"{stat['median']:.2f} s ({stat['min']:.2f}-{stat['max']:.2f})"


def ratio(a: dict, b: dict) -> float | None:
    if not a["n"] or not b["n"] or not b["median"]:
        return None
    return a["median"] / b["median"]


def print_table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    sys.stdout.flush()


# Panics seen in the logs of the servers this process ran: (namespace, kept log, first line).
PANICS: list[tuple[str, str, str]] = []


def write_json(path: str | None, data: dict) -> None:
    """Writes the results, with the server panics seen (a Berth bug when not empty)."""
    if path:
        data = {**data, "server_panics": [{"namespace": n, "log": log_path, "line": line}
                                          for n, log_path, line in PANICS]}
        Path(path).write_text(json.dumps(data, indent=2) + "\n")


# ----------------------------------------------------------------------------- binary


def berth_binary(dest_dir: Path) -> Path:
    """The release binary, copied into `dest_dir`.

    `BERTH_BIN` selects a prebuilt binary; otherwise `cargo build --release -p berth` runs
    first (unless `BERTH_BENCH_NO_BUILD=1`, then `target/release/berth` is used as it is).
    """
    source = os.environ.get("BERTH_BIN")
    if not source:
        if os.environ.get("BERTH_BENCH_NO_BUILD") != "1":
            log("cargo build --release -p berth")
            subprocess.run(
                ["cargo", "build", "--release", "--quiet", "-p", "berth"],
                cwd=ROOT,
                check=True,
            )
        source = str(ROOT / "target" / "release" / "berth")
    if not Path(source).is_file():
        raise BenchError(f"no berth binary at {source}")
    dest = dest_dir / "berth"
    shutil.copy2(source, dest)
    return dest


def ensure_image() -> None:
    if subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True
    ).returncode != 0:
        if IMAGE != "berth-testapp:latest":
            raise BenchError(f"image {IMAGE} is missing")
        log("building", IMAGE)
        subprocess.run([str(ROOT / "scripts" / "build-testapp-image.sh")], check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- docker


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise BenchError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def container_ip(container: str, network: str) -> str:
    ip = docker(
        "inspect",
        "-f",
        "{{ (index .NetworkSettings.Networks \"" + network + "\").IPAddress }}",
        container,
    )
    if not ip:
        raise BenchError(f"container {container} has no address on {network}")
    return ip


def http_status(host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """Status of a GET, or None when nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        status = conn.getresponse().status
        return status
    except OSError:
        return None
    finally:
        conn.close()


def wait_healthy(ip: str, port: int = 8080, path: str = "/healthz") -> None:
    """Polls a container every POLL seconds until GET path answers 200."""
    deadline = time.monotonic() + GIVE_UP
    while http_status(ip, port, path, timeout=0.5) != 200:
        if time.monotonic() > deadline:
            raise BenchError(f"{ip}:{port}{path} did not answer 200 within {GIVE_UP} s")
        time.sleep(POLL)


def docker_run(name: str, network: str, label: str, env: dict | None = None) -> str:
    """`docker run -d --init` of the test image on `network`; returns the container id."""
    args = ["run", "-d", "--init", "--network", network, "--label", f"berth.bench={label}",
            "--name", name]
    for k, v in (env or {}).items():
        args += ["-e", f"{k}={v}"]
    return docker(*args, IMAGE)


def parallel(fn, items: list, workers: int | None = None) -> list:
    with ThreadPoolExecutor(max_workers=workers or max(1, len(items))) as pool:
        return list(pool.map(fn, items))


# ----------------------------------------------------------------------------- process stats


CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, from /proc/PID/status."""
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process in seconds, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


# ----------------------------------------------------------------------------- a run


def api_call(base: str, token: str, method: str, path: str, body: dict | None = None,
             timeout: float = 120):
    """One call of the REST API at `base` (`/api/v1` + `path`) with `token`; its JSON."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base + "/api/v1" + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        raise BenchError(f"{method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')}")
    return json.loads(raw) if raw else None


class Run:
    """One benchmark run: a berth server with its own namespace, data dir and port."""

    def __init__(self, name: str, server_args: list[str] | None = None,
                 listen_host: str = "127.0.0.1"):
        install_signal_handlers()
        # Where the API and registry listen (another machine's nodes pull from there).
        self.listen_host = listen_host
        self.name = name
        self.namespace = f"bench{secrets.token_hex(3)}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"berth-bench-run-{name}-"))
        self.data_dir = self.tmp / "data"
        self.server_log = self.tmp / "server.log"
        self.server: subprocess.Popen | None = None
        self.server_args = server_args or []
        self.peer_networks: list[str] = []
        self.token = ""
        self.port = 0
        self.base = ""
        self._closed = False

    # -- lifecycle

    def __enter__(self) -> "Run":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        ensure_image()
        self.binary = berth_binary(self.tmp)
        self.port = free_port()
        self.base = f"http://{self.listen_host}:{self.port}"
        log(f"{self.name}: berth server on {self.base}, namespace {self.namespace}, "
            f"data {self.data_dir}")
        with open(self.server_log, "wb") as out:
            self.server = subprocess.Popen(
                [str(self.binary), "server", "--listen", f"{self.listen_host}:{self.port}",
                 "--data-dir", str(self.data_dir), "--namespace", self.namespace,
                 *self.server_args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group: a Ctrl-C reaches us, and we stop it in order.
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.server.poll() is not None:
                raise BenchError(f"berth server exited: {self.tail_log()}")
            token_file = self.data_dir / "admin-token"
            if token_file.is_file() and token_file.read_text().strip():
                try:
                    with urllib.request.urlopen(self.base + "/readyz", timeout=1) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
            if time.monotonic() > deadline:
                raise BenchError(f"berth server not ready within 60 s: {self.tail_log()}")
            time.sleep(0.05)
        self.token = (self.data_dir / "admin-token").read_text().strip()

    def tail_log(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.server_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop_server(self) -> None:
        if self.server and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Cleanup must finish even if another signal arrives meanwhile.
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        try:
            self.stop_server()
        except Exception as e:  # noqa: BLE001 - cleanup goes on
            log("stopping the server failed:", e)
        self._check_panics()
        cleanup_namespace(self.namespace)
        if os.environ.get("BERTH_BENCH_KEEP_TMP") == "1":
            log("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        install_signal_handlers()

    def _check_panics(self) -> None:
        """A panic in the server log is a Berth bug: say so and keep the log."""
        try:
            text = self.server_log.read_text(errors="replace")
        except OSError:
            return
        lines = [line for line in text.splitlines() if "panicked at" in line]
        if not lines:
            return
        kept = Path(tempfile.gettempdir()) / f"berth-server-panic-{self.namespace}.log"
        shutil.copy(self.server_log, kept)
        for line in lines:
            PANICS.append((self.namespace, str(kept), line.strip()))
        log(f"WARNING: berth server panicked {len(lines)} time(s) during this run "
            f"(a Berth bug); log kept in {kept}: {lines[0].strip()}")

    # -- REST

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 120):
        return api_call(self.base, self.token, method, path, body, timeout)

    def app(self, name: str) -> dict:
        return self.api("GET", f"/apps/{name}")

    def events(self, name: str) -> list[dict]:
        return sorted(self.api("GET", f"/apps/{name}/events?limit=1000"), key=lambda e: e["id"])

    def wait_app(self, name: str, done, what: str, poll: float | None = None) -> dict:
        """Polls GET /apps/NAME every `poll` s until `done(app)`; returns that app view."""
        deadline = time.monotonic() + GIVE_UP
        while True:
            app = self.app(name)
            if done(app):
                return app
            if time.monotonic() > deadline:
                raise BenchError(f"app {name}: not {what} within {GIVE_UP} s: "
                                 f"{json.dumps(app)[:2000]}\n{self.tail_log()}")
            time.sleep(POLL if poll is None else poll)

    def ready_backends(self, name: str, replicas: int,
                       env: dict[str, str] | None = None) -> list[tuple[str, int]]:
        """Creates NAME: `replicas` instances of the test app (with `env`) with a health check;
        once they are ready, their (ip, port) addresses on the app's network — what a proxy
        beside the router is pointed at."""
        self.api("POST", "/apps", {"name": name, "image": IMAGE, "replicas": replicas,
                                   "health_path": "/healthz", "env": env or {}})
        app = self.wait_app(name, lambda a: a["ready_instances"] >= replicas
                            and a["rollout"]["done"], f"{replicas} ready")
        # `address` is `ip:port` on the app's network.
        return [(i["address"].rsplit(":", 1)[0], int(i["address"].rsplit(":", 1)[1]))
                for i in app["instances"]]

    def delete_app(self, name: str) -> None:
        self.api("DELETE", f"/apps/{name}")
        deadline = time.monotonic() + 60
        while docker("ps", "-aq", "--filter", f"label=berth.namespace={self.namespace}",
                     "--filter", f"label=berth.app={name}"):
            if time.monotonic() > deadline:
                raise BenchError(f"containers of {name} still there 60 s after delete")
            time.sleep(0.2)

    # -- docker peer

    def peer_network(self, suffix: str = "peer") -> str:
        net = f"{self.namespace}-{suffix}"
        docker("network", "create", "--driver", "bridge", "--label",
               f"berth.bench={self.namespace}", net)
        self.peer_networks.append(net)
        return net

    def remove_peer_containers(self) -> None:
        ids = docker("ps", "-aq", "--filter", f"label=berth.bench={self.namespace}").split()
        if ids:
            docker("rm", "-f", *ids, check=False)


def _namespace_leftovers(namespace: str) -> tuple[list[str], list[str]]:
    containers: list[str] = []
    for label in (f"berth.namespace={namespace}", f"berth.bench={namespace}"):
        containers += docker("ps", "-aq", "--filter", f"label={label}", check=False).split()
    nets = docker("network", "ls", "-q", "--filter", f"label=berth.bench={namespace}",
                  check=False).split()
    # Berth's own networks are named after the namespace: `<namespace>` and one per team,
    # `<namespace>-team-<team>` (Docker 20.10 allows duplicate names, so by ID). The namespace
    # is `bench` + 6 random hex digits: a name starting with `<namespace>-` is this run's.
    for line in docker("network", "ls", "--format", "{{.ID}} {{.Name}}", check=False).splitlines():
        parts = line.split()
        if len(parts) == 2 and (parts[1] == namespace or parts[1].startswith(namespace + "-")):
            nets.append(parts[0])
    return containers, sorted(set(nets))


def cleanup_namespace(namespace: str) -> None:
    """Removes the containers and networks of one benchmark namespace (with a few retries,
    and a warning naming whatever could not be removed)."""
    errors: list[str] = []
    for attempt in range(5):
        containers, nets = _namespace_leftovers(namespace)
        if not containers and not nets:
            _remove_namespace_volumes(namespace)
            return
        errors = []
        if containers:
            done = subprocess.run(["docker", "rm", "-f", *containers], capture_output=True,
                                  text=True)
            if done.returncode:
                errors.append(done.stderr.strip())
        if nets:
            done = subprocess.run(["docker", "network", "rm", *nets], capture_output=True,
                                  text=True)
            if done.returncode:
                errors.append(done.stderr.strip())
        if not errors:
            continue
        time.sleep(1 + attempt)
    containers, nets = _namespace_leftovers(namespace)
    if containers or nets:
        log(f"WARNING: could not remove {len(containers)} containers and {len(nets)} networks "
            f"of namespace {namespace} (bench/cleanup.sh removes them later): {errors}")


def _remove_namespace_volumes(namespace: str) -> None:
    """The namespace's volumes: apps' and the installation's claim (`<namespace>-installation`)."""
    volumes = docker("volume", "ls", "-q", "--filter", f"label=berth.namespace={namespace}",
                     check=False).split()
    if volumes:
        docker("volume", "rm", "-f", *volumes, check=False)


def event_ms(event: dict) -> float:
    """An event's RFC 3339 timestamp as unix seconds."""
    from datetime import datetime

    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


def header(name: str, details: dict) -> None:
    log(f"== {name} ==")
    for k, v in details.items():
        log(f"   {k}: {v}")


def load_context() -> dict:
    """Load average and other containers on the engine, to judge noise."""
    load = Path("/proc/loadavg").read_text().split()[:3]
    running = docker("ps", "-q", check=False).split()
    return {"loadavg": " ".join(load), "containers_running_on_engine": len(running)}

