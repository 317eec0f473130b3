#!/usr/bin/env python3
"""Benchmark 6: the code pipeline -- Berth's build, test and push of a small repository vs
doing the same by hand with git and the docker CLI, cold and with a warm build cache.

The repository (one per side, so neither side reuses the other's build cache or registry
blobs; same layout, different random bytes):

    Dockerfile    FROM <shell image>          (berth-testapp-shell:latest, pinned, see below)
                  COPY lib/ /app/lib/         <- changed for "cold"
                  RUN sha256sum /app/lib/* > /app/lib.sha256
                  COPY test.sh /app/
                  COPY version.txt /app/      <- changed for "warm"
    lib/          two small text files and random.bin (--random-kib, default 256 KiB)
    test.sh       checks the files; the test command is `/bin/sh /app/test.sh`
    version.txt   one line
    .dockerignore `.git`

Per repetition, for each variant, a new commit is made in both repositories (not timed):

* cold: new random bytes in lib/random.bin (copied first), so no step after FROM is cached
        and every layer is new for the registry;
* warm: a new version.txt only (copied last), so the build cache covers everything but the
        last COPY and the registry already has every other layer.

Then both sides do the same work on that commit, one right after the other (the side that
goes first alternates between repetitions, so load and order affect both alike):

* by hand: `git clone` + `git checkout <sha>` into a temp dir; `docker build -t
  127.0.0.1:PORT/default/<ns>-hand:<sha> .` (classic builder, DOCKER_BUILDKIT=0, as Berth
  uses); `docker run --rm --init --entrypoint /bin/sh IMAGE /app/test.sh`; `docker push`
  of the commit tag, then `docker tag` + `docker push` of the branch tag `main` (Berth pushes
  both tags; the one-tag time is reported too). The CLI is logged in to Berth's registry as
  `admin` with the admin token (own DOCKER_CONFIG, so the user's config is not touched).
  Wall time of the commands in a row, each CLI start included.
* Berth: `POST /api/v1/pipelines/default/bench/builds {"commit": sha}` (branch `main`), then
  `GET /api/v1/builds/ID` every --poll seconds (default 0.1) until the build ends; wall time
  from the POST until a poll sees it ended, plus the server's own account: created_at to
  finished_at (no polling delay) and each step's duration_ms.

One unmeasured round (--warmup) runs first. Ratio = Berth median / by-hand median.

Image cleanup: the hand side's tags (all under 127.0.0.1:PORT/default/<ns>-hand), Berth's
images (label berth.namespace=<ns>) and the pinned base tag are removed at the end, the
containers of the namespace and the data dir as in every benchmark. The base image is
`berth-testapp-shell:latest` tagged once more as `berth-bench-shell-<ns>:latest`, so a rebuild
of the shared test image during the run (tests running meanwhile) cannot change the base.
When `berth-testapp-shell:latest` is missing it is built like berth_testkit::shell_image
does (berth-testapp:latest plus Debian's static busybox).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402

SHELL_IMAGE = "berth-testapp-shell:latest"
BRANCH = "main"
PIPELINE = "bench"
TERMINAL = {"succeeded", "failed", "cancelled", "interrupted", "timed_out"}
STEPS = ("fetch", "build", "test", "push")
HAND_STEPS = ("clone", "build", "test", "push", "push_branch")

TEST_SH = """set -e
test -s /app/lib.sha256
test -s /app/version.txt
test "$(wc -l < /app/lib.sha256)" -eq 3
echo "tests passed on version $(cat /app/version.txt)"
"""


# ----------------------------------------------------------------------------- base image


def ensure_shell_image() -> None:
    """berth-testapp-shell:latest, built like berth_testkit::shell_image when missing."""
    if subprocess.run(["docker", "image", "inspect", SHELL_IMAGE],
                      capture_output=True).returncode == 0:
        return
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if Path(p).is_file()), None)
    if busybox is None:
        raise bb.BenchError(f"{SHELL_IMAGE} is missing and busybox is not installed "
                            "(install Debian's busybox-static)")
    bb.ensure_image()
    target = bb.ROOT / "target"
    target.mkdir(exist_ok=True)
    # The lock berth_testkit takes, so a test building the same image meanwhile waits.
    with open(target / "berth-testapp-image.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(["docker", "image", "inspect", SHELL_IMAGE],
                          capture_output=True).returncode == 0:
            return
        bb.log("building", SHELL_IMAGE)
        context = target / "berth-shell-image-context"
        context.mkdir(exist_ok=True)
        shutil.copy(busybox, context / "busybox")
        (context / "Dockerfile").write_text(
            "FROM berth-testapp:latest\nCOPY busybox /bin/busybox\n"
            "RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nLABEL berth.test=\"true\"\n")
        done = subprocess.run(["docker", "build", "--quiet", "--tag", SHELL_IMAGE, str(context)],
                              capture_output=True, text=True, env={**os.environ,
                                                                   "DOCKER_BUILDKIT": "0"})
        if done.returncode:
            raise bb.BenchError(f"building {SHELL_IMAGE} failed: {done.stderr.strip()}")


# ----------------------------------------------------------------------------- repositories


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env)
    if done.returncode:
        raise bb.BenchError(f"git {' '.join(args)} in {repo}: {done.stderr.strip()}")
    return done.stdout.strip()


class Repo:
    """One side's repository; every change is a commit whose id is returned."""

    def __init__(self, path: Path, base: str, random_kib: int):
        self.path = path
        self.random_kib = random_kib
        self.version = 0
        path.mkdir(parents=True)
        (path / "lib").mkdir()
        (path / "Dockerfile").write_text(
            f"FROM {base}\n"
            "COPY lib/ /app/lib/\n"
            "RUN sha256sum /app/lib/* > /app/lib.sha256\n"
            "COPY test.sh /app/\n"
            "COPY version.txt /app/\n")
        (path / ".dockerignore").write_text(".git\n")
        (path / "test.sh").write_text(TEST_SH)
        (path / "lib" / "a.txt").write_text("alpha\n" * 100)
        (path / "lib" / "b.txt").write_text("beta\n" * 100)
        git(path, "init", "--quiet", f"--initial-branch={BRANCH}")

    def _commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "--quiet", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def cold(self) -> str:
        """New random bytes in the file copied first: nothing after FROM is cached."""
        (self.path / "lib" / "random.bin").write_bytes(os.urandom(self.random_kib * 1024))
        return self.warm(what="cold")

    def warm(self, what: str = "warm") -> str:
        """A new version.txt, the file copied last."""
        self.version += 1
        (self.path / "version.txt").write_text(f"{self.version}\n")
        return self._commit(f"{what} change {self.version}")


# ----------------------------------------------------------------------------- by hand


class Hand:
    def __init__(self, run: bb.Run, work: Path, repo: Repo):
        self.run = run
        self.work = work
        self.repo = repo
        self.registry = f"127.0.0.1:{run.port}"
        self.repository = f"{self.registry}/default/{run.namespace}-hand"
        self.env = {**os.environ, "DOCKER_CONFIG": str(work / "docker-config"),
                    "DOCKER_BUILDKIT": "0"}
        self.build_steps: int | None = None
        self.count = 0
        login = subprocess.run(
            ["docker", "login", self.registry, "-u", "admin", "--password-stdin"],
            input=run.token, capture_output=True, text=True, env=self.env)
        if login.returncode:
            raise bb.BenchError(f"docker login {self.registry}: {login.stderr.strip()}")

    def _cmd(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True,
                              env=self.env)
        if done.returncode:
            raise bb.BenchError(f"{' '.join(args)}: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def measure(self, sha: str) -> dict:
        self.count += 1
        checkout = self.work / f"checkout-{self.count}"
        image = f"{self.repository}:{sha}"
        branch_image = f"{self.repository}:{BRANCH}"
        times: dict[str, float] = {}
        t0 = time.monotonic()
        self._cmd("git", "clone", "--quiet", str(self.repo.path), str(checkout))
        self._cmd("git", "-C", str(checkout), "checkout", "--quiet", "--detach", sha)
        t1 = time.monotonic()
        times["clone"] = t1 - t0
        out = self._cmd("docker", "build", "-t", image, ".", cwd=checkout)
        t2 = time.monotonic()
        times["build"] = t2 - t1
        self.build_steps = len(re.findall(r"^Step \d+/\d+ :", out, re.M))
        self._cmd("docker", "run", "--rm", "--init", "--label", f"berth.bench={self.run.namespace}",
                  "--entrypoint", "/bin/sh", image, "/app/test.sh")
        t3 = time.monotonic()
        times["test"] = t3 - t2
        self._cmd("docker", "push", image)
        t4 = time.monotonic()
        times["push"] = t4 - t3
        self._cmd("docker", "tag", image, branch_image)
        self._cmd("docker", "push", branch_image)
        t5 = time.monotonic()
        times["push_branch"] = t5 - t4
        times["total"] = t5 - t0
        times["total_one_tag"] = t4 - t0
        shutil.rmtree(checkout, ignore_errors=True)
        return times


# ----------------------------------------------------------------------------- Berth


class Berth:
    def __init__(self, run: bb.Run, repo: Repo, poll: float):
        self.run = run
        self.repo = repo
        self.poll = poll
        self.build_steps: int | None = None
        self.last_log = ""
        run.api("PUT", f"/pipelines/default/{PIPELINE}", {
            "repository_url": str(repo.path),
            "branch_pattern": BRANCH,
            "test_command": ["/bin/sh", "/app/test.sh"],
            "target_repository": f"default/{run.namespace}-berth",
        })

    def log_text(self, build_id: int) -> str:
        req = urllib.request.Request(f"{self.run.base}/api/v1/builds/{build_id}/logs",
                                     headers={"Authorization": f"Bearer {self.run.token}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as e:
            return f"(no log: {e})"

    def measure(self, sha: str) -> dict:
        t0 = time.monotonic()
        queued = self.run.api("POST", f"/pipelines/default/{PIPELINE}/builds", {"commit": sha})
        build_id = queued["id"]
        deadline = t0 + bb.GIVE_UP
        while True:
            build = self.run.api("GET", f"/builds/{build_id}")
            if build["status"] in TERMINAL:
                break
            if time.monotonic() > deadline:
                raise bb.BenchError(f"build {build_id} did not end within {bb.GIVE_UP} s: "
                                    f"{json.dumps(build)[:2000]}")
            time.sleep(self.poll)
        total = time.monotonic() - t0
        log_text = self.log_text(build_id)
        if build["status"] != "succeeded":
            raise bb.BenchError(f"build {build_id} {build['status']}: {build.get('reason')}\n"
                                f"{log_text[-3000:]}\n{self.run.tail_log()}")
        self.last_log = log_text
        self.build_steps = len(re.findall(r"Step \d+/\d+ :", log_text))
        times: dict[str, float] = {"total": total}
        if build.get("finished_at") and build.get("created_at"):
            times["server_total"] = (build["finished_at"] - build["created_at"]) / 1000
        if build.get("started_at") and build.get("created_at"):
            times["queued"] = (build["started_at"] - build["created_at"]) / 1000
        for step in build["steps"]:
            if step["name"] in STEPS and step.get("duration_ms") is not None:
                times[step["name"]] = step["duration_ms"] / 1000
        push = next((s for s in build["steps"] if s["name"] == "push"), None)
        if push and push.get("finished_at") and build.get("finished_at"):
            times["after_push"] = (build["finished_at"] - push["finished_at"]) / 1000
        return times


# ----------------------------------------------------------------------------- cleanup


def remove_images(namespace: str, port: int, base_alias: str) -> None:
    refs = []
    prefix = f"127.0.0.1:{port}/default/{namespace}-"
    listing = bb.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False)
    refs += [r for r in listing.split() if r.startswith(prefix)]
    ids = bb.docker("images", "-q", "--filter", f"label=berth.namespace={namespace}",
                    check=False).split()
    for batch in (refs, sorted(set(ids))):
        if batch:
            bb.docker("rmi", "-f", *batch, check=False)
    bb.docker("rmi", base_alias, check=False)


# ----------------------------------------------------------------------------- summary


def summary_rows(path: str) -> int:
    """Prints benchmark 6's table for run-all.sh's summary (the columns of
    bench/lib/summary.py) from a --json result, and the server panics it recorded."""
    b = json.loads(Path(path).read_text())
    rows = []

    def add(what: str, stat: dict, r) -> None:
        if not stat or not stat.get("n"):
            rows.append(("6. build, test, push", what, "n/a", "", "", ""))
            return
        rows.append(("6. build, test, push", what, f"{stat['median']:.2f} s",
                     f"{stat['min']:.2f}–{stat['max']:.2f}", str(stat["n"]),
                     "" if r is None else f"{r:.2f}×"))

    for variant in ("cold", "warm"):
        v = b[variant]
        add(f"{variant}: Berth (POST until the build ended)", v["berth"]["total"], v["ratio"])
        add(f"{variant}: Berth, server clock (created → finished)", v["berth"]["server_total"],
            v["ratio_server_clock"])
        add(f"{variant}: by hand (git clone, docker build/run/push ×2)", v["hand"]["total"], 1.0)
    header = ("benchmark", "what", "median", "min–max", "n", "ratio vs by hand")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, None, *rows]:
        if r is None:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        else:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    for p in b.get("server_panics", []):
        print(f"\nWARNING: benchmark 06: berth server panicked: {p['line']}  (log: {p['log']})")
    return 0


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1,
                        help="unmeasured rounds (cold + warm, both sides) before the reps")
    parser.add_argument("--random-kib", type=int, default=256,
                        help="size of the random file copied first (KiB)")
    parser.add_argument("--poll", type=float, default=0.1,
                        help="seconds between polls of the build's status")
    parser.add_argument("--json", help="write results here")
    parser.add_argument("--summary", metavar="JSON",
                        help="only print summary-table rows (as run-all.sh shows them) from a "
                             "result written with --json, and exit")
    args = parser.parse_args()
    if args.summary:
        return summary_rows(args.summary)

    ensure_shell_image()
    raw: dict[str, dict[str, list[dict]]] = {v: {"hand": [], "berth": []}
                                             for v in ("cold", "warm")}
    steps_seen: dict[str, int | None] = {}
    run = bb.Run("pipeline")
    base_alias = f"berth-bench-shell-{run.namespace}:latest"
    try:
        with run:
            bb.docker("tag", SHELL_IMAGE, base_alias)
            context = bb.load_context()
            bb.header("code pipeline: build, test, push", {
                "reps": args.reps, "warmup rounds": args.warmup,
                "random file (KiB)": args.random_kib, "poll (s)": args.poll,
                "base image": f"{SHELL_IMAGE} as {base_alias}", **context})
            work = Path(tempfile.mkdtemp(prefix="work-", dir=run.tmp))
            repos = {side: Repo(work / f"repo-{side}", base_alias, args.random_kib)
                     for side in ("hand", "berth")}
            hand = Hand(run, work, repos["hand"])
            berth = Berth(run, repos["berth"], args.poll)
            sides = {"hand": hand, "berth": berth}
            for rep in range(-args.warmup, args.reps):
                order = ("hand", "berth") if rep % 2 == 0 else ("berth", "hand")
                label = f"warm-up {rep + args.warmup + 1}" if rep < 0 else f"rep {rep + 1}"
                for variant in ("cold", "warm"):
                    shas = {side: getattr(repos[side], variant)() for side in order}
                    line = []
                    for side in order:
                        r = sides[side].measure(shas[side])
                        if rep >= 0:
                            raw[variant][side].append(r)
                        keys = HAND_STEPS if side == "hand" else (
                            "queued", *STEPS, "after_push", "server_total")
                        parts = " ".join(f"{k} {r[k]:.2f}" for k in keys if k in r)
                        line.append(f"{side} {r['total']:.2f} s [{parts}]")
                        time.sleep(0.5)
                    bb.log(f"{label} {variant}: " + "; ".join(line))
                steps_seen = {"hand": hand.build_steps, "berth": berth.build_steps}
            bb.log("Dockerfile steps in the last build: "
                   f"by hand {steps_seen['hand']}, Berth {steps_seen['berth']}")
            last_build_log = berth.last_log
            context_end = bb.load_context()
    finally:
        remove_images(run.namespace, run.port, base_alias)

    def stat(rows: list[dict], key: str) -> dict:
        return bb.summary([r[key] for r in rows if r.get(key) is not None])

    result: dict = {"benchmark": "pipeline", "reps": args.reps, "warmup": args.warmup,
                    "random_kib": args.random_kib, "poll_s": args.poll,
                    "context": context, "context_end": context_end,
                    "dockerfile_steps": steps_seen,
                    "berth_build_log_tail": last_build_log[-4000:]}
    rows = []
    for variant in ("cold", "warm"):
        h, b = raw[variant]["hand"], raw[variant]["berth"]
        hand_total, berth_total = stat(h, "total"), stat(b, "total")
        entry = {
            "hand": {k: stat(h, k) for k in (*HAND_STEPS, "total", "total_one_tag")},
            "berth": {k: stat(b, k) for k in (*STEPS, "queued", "after_push", "total",
                                               "server_total")},
            "ratio": bb.ratio(berth_total, hand_total),
            "ratio_server_clock": bb.ratio(stat(b, "server_total"), hand_total),
            "ratio_vs_one_tag": bb.ratio(berth_total, stat(h, "total_one_tag")),
            "raw": {"hand": h, "berth": b},
        }
        result[variant] = entry
        rows.append((f"{variant}: by hand (clone, build, run, push ×2)",
                     bb.fmt_s(hand_total),
                     " / ".join(f"{stat(h, k)['median']:.2f}" for k in HAND_STEPS),
                     "1.00x"))
        rows.append((f"{variant}: Berth (POST until ended)", bb.fmt_s(berth_total),
                     " / ".join(f"{stat(b, k)['median']:.2f}" for k in STEPS),
                     f"{entry['ratio']:.2f}x"))
        rows.append((f"{variant}: Berth, server clock (created to finished)",
                     bb.fmt_s(stat(b, "server_total")), "", f"{entry['ratio_server_clock']:.2f}x"))
        rows.append((f"{variant}: by hand, commit tag only", bb.fmt_s(stat(h, "total_one_tag")),
                     "", ""))
    bb.print_table(
        f"Code pipeline vs by hand: median (min-max) of {args.reps}, seconds; steps are "
        "medians (hand: clone / build / test / push / tag+push main; Berth: fetch / build / "
        "test / push of both tags)",
        rows, ("what", "total", "steps", "ratio vs by hand"))
    bb.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
