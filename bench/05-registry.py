#!/usr/bin/env python3
"""Benchmark 5: Berth's registry vs Distribution 2.8 -- push and pull of a 200 MB image, GC.

Berth: the standalone registry server `crates/registry/examples/serve.rs` (release build;
positional arguments ADDR DATA_DIR USER, password in BERTH_REGISTRY_PASSWORD, basic auth, filesystem storage with fsync,
default `RegistryConfig`). Peer: Debian's `docker-registry` (Distribution 2.8, filesystem
storage, no auth, delete enabled through REGISTRY_STORAGE_DELETE_ENABLED=true). Both listen on
127.0.0.1 (free ports) and store under this run's temp dir on the same filesystem; the client
is Debian's `skopeo` on the same machine, so client, server and disk share the CPUs.

Image: an OCI layout written by this script (no `docker build`): N layers (default 4) of
50,000,000 bytes from os.urandom each, every layer a tar with one file inside a gzip stream of
*stored* (level 0) deflate blocks, so the payload is incompressible and neither skopeo nor a
registry spends CPU on compression (skopeo would gzip uncompressed layers for a registry).

Per repetition and registry (the order alternates between repetitions), each registry on a
fresh port with an empty data dir, so every push uploads every blob (skopeo's blob-info cache
knows no location on the new port, and nothing can be mounted):

* push:  `skopeo copy oci:IMG:v1 docker://127.0.0.1:PORT/team/big:v1`, wall time;
* sync:  `sync(2)` right after the push, so data the registry left in the page cache
         (Distribution does not fsync, Berth fsyncs every blob before it becomes visible)
         reaches the disk before the next measurement; reported as "push + sync";
* pull:  `skopeo copy docker://.../team/big:v1 oci:FRESH_DIR:v1` (blobs come from the
         server's page cache, land in the client's page cache), then the pulled layout is
         checked to hold every layer;
* GET:   `curl` of the N layer blobs one after the other to /dev/null on one connection:
         the server's blob download path without skopeo's digest verification and writes.

Also the registry process's CPU time (utime+stime) during push and pull, and its peak RSS.

GC: a repository with T (default 20) tags of small distinct images (a shared 2 MB base layer,
a unique 1 MB layer and a unique config each) is pushed with skopeo, tag by tag; then D
(default 15) of the manifests are deleted by digest (`DELETE /v2/team/gc/manifests/<digest>`,
which removes their tags too), and garbage collection reclaims their blobs:

* Distribution: the server is stopped and `docker-registry garbage-collect config.yml` is
  timed (wall time of the command, including its process start). Afterwards the server is
  started again on the same data.
* Berth: the example server has no way to trigger garbage collection (no endpoint, no flag;
  `Registry::garbage_collect` is callable from Rust only, with the fixed default grace
  period of 600 s). So this part runs on `berth server`, which serves the same registry
  crate under /v2 on its API listener (user `admin`, the admin token as password), started
  with `--registry-gc-grace 0s --registry-gc-interval 0` (no grace period, no scheduled
  GC), and times `POST /api/v1/registry/gc` (which also applies stored retention rules:
  there are none); the report's own `duration_ms` is recorded too. The berth binary comes
  from BERTH_BIN, or `cargo build --release -p berth` (not with BERTH_BENCH_NO_BUILD=1:
  target/release/berth as it is). When there is no such binary (build fails, or the server
  has no --registry-gc-grace), `--berth-gc auto` falls back to the example: Berth's GC is
  then not timed, only the bytes a GC would free are reported (see below).
* Both: bytes freed = apparent size of the blob store before minus after; then one
  remaining tag is pulled (GC must leave kept images whole) and one deleted manifest must
  answer 404. For Berth, the bytes a GC should free are also computed from the data dir
  before the GC, the way `garbage_collect(GcOptions::default())` marks: every blob that no
  remaining manifest record references and that is not a remaining manifest itself.

Environment: BERTH_REGISTRY_BIN (use this examples/serve binary instead of building it),
BERTH_BIN (berth binary for the GC scenario), BERTH_BENCH_NO_BUILD=1 (build nothing, take
target/release/...), BERTH_BENCH_DISTRIBUTION_BIN (default docker-registry),
BERTH_BENCH_KEEP_TMP=1 (keep the temp dirs). Temp dirs: /tmp/berth-bench-registry-* (and
/tmp/berth-bench-registry-gc-* of berth server), removed at the end, also on errors, Ctrl-C,
SIGTERM and SIGHUP. After a SIGKILL, bench/cleanup.sh removes the temp dirs and the berth
server; the `berth-registry-serve` and `docker-registry serve` processes of the temp dir
must then be stopped by hand (by PID). skopeo records blob locations in its blob-info cache
(/var/lib/containers/cache for root), as any skopeo copy does.

Nothing asserts a duration. The script fails only when something does not work at all
(a server that does not start, a failed skopeo copy, an unexpected HTTP status).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import berthbench as bb  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join([
    OCI_MANIFEST, OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
MB = 1_000_000
# Give up on one command after this long (a failure, not a measurement).
COMMAND_TIMEOUT = 300


# ----------------------------------------------------------------------------- OCI layout


class OciLayout:
    """Writes an OCI image layout (blobs + index.json) directly, no docker needed."""

    def __init__(self, root: Path):
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.index: list[dict] = []

    def blob(self, data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / "blobs" / "sha256" / digest
        if not path.exists():
            path.write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def layer(self, name: str, payload: bytes) -> tuple[dict, str]:
        """A tar with one file, in a gzip stream of stored blocks; (descriptor, diff_id)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(payload))
        raw = buf.getvalue()
        gz = gzip.compress(raw, compresslevel=0, mtime=0)
        return self.blob(gz, OCI_LAYER_GZIP), "sha256:" + hashlib.sha256(raw).hexdigest()

    def image(self, tag: str, layers: list[tuple[dict, str]], label: str) -> dict:
        config = {
            "created": "2024-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"berth.bench": label}},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
                        for i in range(len(layers))],
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(json.dumps(config, sort_keys=True).encode(), OCI_CONFIG),
            "layers": [d for d, _ in layers],
        }
        desc = self.blob(json.dumps(manifest, indent=2).encode(), OCI_MANIFEST)
        self.index.append({**desc, "annotations": {"org.opencontainers.image.ref.name": tag}})
        return desc

    def write_index(self) -> None:
        (self.root / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.index}, indent=2))


def build_big_image(root: Path, layers: int, layer_bytes: int) -> dict:
    """The big image under tag v1; returns its manifest descriptor, layer digests, bytes."""
    oci = OciLayout(root)
    descs = [oci.layer(f"data/layer{i}.bin", os.urandom(layer_bytes)) for i in range(layers)]
    manifest = oci.image("v1", descs, root.name)
    oci.write_index()
    manifest_doc = json.loads((root / "blobs" / "sha256" / manifest["digest"][7:]).read_bytes())
    total = manifest["size"] + manifest_doc["config"]["size"] + sum(d["size"] for d, _ in descs)
    return {"manifest": manifest, "layers": [d["digest"] for d, _ in descs],
            "layer_bytes": sum(d["size"] for d, _ in descs), "total_bytes": total}


def build_gc_images(root: Path, tags: int) -> list[str]:
    """`tags` small images sharing a 2 MB base layer, each with a unique 1 MB layer."""
    oci = OciLayout(root)
    base = oci.layer("base.bin", os.urandom(2 * MB))
    names = []
    for i in range(tags):
        tag = f"t{i + 1:02d}"
        oci.image(tag, [base, oci.layer(f"own{i}.bin", os.urandom(1 * MB))], f"gc-{tag}")
        names.append(tag)
    oci.write_index()
    return names


# ----------------------------------------------------------------------------- servers


def blob_store_bytes(root: Path) -> tuple[int, int]:
    """(files, apparent bytes) under a directory."""
    files = size = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            try:
                size += os.lstat(os.path.join(dirpath, n)).st_size
                files += 1
            except FileNotFoundError:
                pass
    return files, size


class Server:
    """One registry process on a fresh port with an empty data dir."""

    kind = ""
    label = ""

    def __init__(self, tmp: Path, tag: str):
        self.dir = tmp / tag
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "server.log"
        self.auth: str | None = None  # "user:password"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict]:
        raise NotImplementedError

    def start(self, fresh: bool = True) -> None:
        if fresh:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            self.port = bb.free_port()
        argv, env = self.command()
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env={**os.environ, **env},
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while bb.http_status("127.0.0.1", self.port, "/v2/", timeout=0.5) not in (200, 401):
            if self.proc.poll() is not None:
                raise bb.BenchError(f"{self.label} exited: {self.tail_log()}")
            if time.monotonic() > deadline:
                raise bb.BenchError(f"{self.label} not answering within 30 s: {self.tail_log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail_log(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu(self) -> float:
        return bb.cpu_seconds(self.proc.pid) if self.proc else 0.0

    def hwm_kib(self) -> int:
        return bb.rss_kib(self.proc.pid)[1] if self.proc else 0

    # -- protocol

    def request(self, method: str, path: str, headers: dict | None = None,
                ok: tuple[int, ...] = (200,)) -> tuple[int, dict, bytes]:
        h = dict(headers or {})
        if self.auth:
            h["Authorization"] = "Basic " + base64.b64encode(self.auth.encode()).decode()
        req = urllib.request.Request(f"http://{self.host}{path}", method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, hdrs, body = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, body = e.code, dict(e.headers), e.read()
        if status not in ok:
            raise bb.BenchError(f"{self.label}: {method} {path}: HTTP {status}: "
                                f"{body[:500].decode(errors='replace')}")
        return status, hdrs, body

    def tags(self, repo: str) -> list[str]:
        _, _, body = self.request("GET", f"/v2/{repo}/tags/list")
        return sorted(json.loads(body).get("tags") or [])

    def manifest_digest(self, repo: str, tag: str) -> str:
        _, h, _ = self.request("HEAD", f"/v2/{repo}/manifests/{tag}",
                               {"Accept": MANIFEST_ACCEPT})
        digest = {k.lower(): v for k, v in h.items()}.get("docker-content-digest")
        if not digest:
            raise bb.BenchError(f"{self.label}: no Docker-Content-Digest for {repo}:{tag}")
        return digest

    def creds_args(self, flag: str) -> list[str]:
        return [flag, self.auth] if self.auth else []

    def blob_root(self) -> Path:
        raise NotImplementedError


class Berth(Server):
    kind = "berth"
    label = "Berth registry (examples/serve)"

    def __init__(self, tmp: Path, binary: Path):
        super().__init__(tmp, "berth")
        self.binary = binary
        self.auth = "bench:" + os.urandom(8).hex()

    def command(self) -> tuple[list[str], dict]:
        user, password = self.auth.split(":", 1)
        return ([str(self.binary), self.host, str(self.dir / "data"), user],
                {"BERTH_REGISTRY_PASSWORD": password})

    def blob_root(self) -> Path:
        return self.dir / "data" / "blobs"

def berth_gc_eligible(data: Path) -> tuple[int, int]:
    """(blobs, bytes) that Berth's `garbage_collect(GcOptions::default())` deletes once the
    grace period is over, read from a registry data dir (`<data>/meta`, `<data>/blobs`):
    every blob that no remaining manifest record references and that is not a remaining
    manifest itself."""
    live: set[str] = set()
    for rec in (data / "meta" / "repositories").rglob("_manifests/sha256/*"):
        if not rec.is_file():
            continue
        live.add("sha256:" + rec.name)
        r = json.loads(rec.read_bytes())
        for key in ("config", "subject"):
            if r.get(key):
                live.add(r[key])
        live.update(r.get("layers") or [])
        live.update(r.get("manifests") or [])
    n = size = 0
    for blob in (data / "blobs" / "sha256").glob("*/*"):
        if "sha256:" + blob.name not in live:
            n += 1
            size += blob.stat().st_size
    return n, size


class BerthServer(Server):
    """`berth server` (its built-in registry under /v2 on the API's listener; user `admin`,
    the admin token as password), used for the GC scenario: `POST /api/v1/registry/gc`."""

    kind = "berth"
    label = "berth server (built-in registry)"

    def __init__(self, tmp: Path, grace: str):
        super().__init__(tmp, "berth-server")
        self.grace = grace
        self.run: bb.Run | None = None

    def start(self, fresh: bool = True) -> None:
        if self.run and not fresh:
            return
        self.remove()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run = bb.Run("registry-gc", ["--registry-gc-grace", self.grace,
                                          "--registry-gc-interval", "0"])
        self.run.__enter__()
        self.port = self.run.port
        self.auth = f"admin:{self.run.token}"
        self.proc = self.run.server

    def stop(self) -> None:
        if self.run:
            self.run.stop_server()

    def remove(self) -> None:
        if self.run:
            self.run.close()
        self.run = None
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def blob_root(self) -> Path:
        return self.run.data_dir / "registry" / "blobs"

    def gc(self) -> dict:
        return self.run.api("POST", "/registry/gc", {})


class Distribution(Server):
    kind = "distribution"
    label = "Distribution 2.8 (docker-registry)"

    def __init__(self, tmp: Path, binary: str):
        super().__init__(tmp, "distribution")
        self.binary = binary
        self.config = self.dir / "config.yml"

    def write_config(self) -> None:
        self.config.write_text(f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {self.dir / "data"}
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {self.host}
""")

    def command(self) -> tuple[list[str], dict]:
        self.write_config()
        return ([self.binary, "serve", str(self.config)],
                {"REGISTRY_STORAGE_DELETE_ENABLED": "true"})

    def blob_root(self) -> Path:
        return self.dir / "data" / "docker" / "registry" / "v2" / "blobs"


# ----------------------------------------------------------------------------- clients


def run_cmd(argv: list[str], what: str) -> tuple[float, str]:
    t0 = time.monotonic()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise bb.BenchError(f"{what}: no result within {COMMAND_TIMEOUT} s: {' '.join(argv)}")
    elapsed = time.monotonic() - t0
    if done.returncode != 0:
        raise bb.BenchError(f"{what} failed ({done.returncode}): {' '.join(argv)}\n"
                            f"{done.stderr.strip()[-2000:]}")
    return elapsed, done.stdout + done.stderr


def skopeo_copy(src: str, dest: str, extra: list[str], what: str) -> float:
    argv = ["skopeo", "--insecure-policy", "copy", "--quiet",
            "--src-tls-verify=false", "--dest-tls-verify=false", *extra, src, dest]
    return run_cmd(argv, what)[0]


def timed_sync() -> float:
    t0 = time.monotonic()
    os.sync()
    return time.monotonic() - t0


def measure_big(server: Server, img: Path, image: dict, tmp: Path) -> dict:
    """push, sync, pull and blob GETs of the big image on a freshly started server."""
    server.start()
    ref = f"docker://{server.host}/team/big:v1"
    cpu0 = server.cpu()
    push = skopeo_copy(f"oci:{img}:v1", ref, server.creds_args("--dest-creds"),
                       f"push to {server.label}")
    cpu_push = server.cpu() - cpu0
    sync = timed_sync()
    if server.tags("team/big") != ["v1"]:
        raise bb.BenchError(f"{server.label}: tag v1 missing after push")

    pulled = tmp / f"pull-{server.kind}"
    shutil.rmtree(pulled, ignore_errors=True)
    cpu0 = server.cpu()
    pull = skopeo_copy(ref, f"oci:{pulled}:v1", server.creds_args("--src-creds"),
                       f"pull from {server.label}")
    cpu_pull = server.cpu() - cpu0
    missing = [d for d in image["layers"]
               if not (pulled / "blobs" / "sha256" / d[7:]).is_file()]
    if missing:
        raise bb.BenchError(f"pull from {server.label}: layers missing: {missing}")
    shutil.rmtree(pulled, ignore_errors=True)

    argv = ["curl", "-sSf", "--http1.1"]
    if server.auth:
        argv += ["-u", server.auth]
    for d in image["layers"]:
        argv += ["-o", "/dev/null", f"http://{server.host}/v2/team/big/blobs/{d}"]
    get, _ = run_cmd(argv, f"blob GET from {server.label}")
    hwm = server.hwm_kib()
    server.remove()
    os.sync()
    mb = image["total_bytes"] / MB
    layer_mb = image["layer_bytes"] / MB
    return {"push": push, "push_sync": push + sync, "sync_after_push": sync, "pull": pull,
            "get": get, "push_mbps": mb / push, "push_sync_mbps": mb / (push + sync),
            "pull_mbps": mb / pull, "get_mbps": layer_mb / get,
            "cpu_push": cpu_push, "cpu_pull": cpu_pull, "hwm_mib": hwm / 1024}


def measure_gc(server: Server, gc_img: Path, tags: list[str], delete: int,
               gc_binary: str) -> dict:
    repo = "team/gc"
    server.start()
    t0 = time.monotonic()
    for tag in tags:
        skopeo_copy(f"oci:{gc_img}:{tag}", f"docker://{server.host}/{repo}:{tag}",
                    server.creds_args("--dest-creds"), f"push {tag} to {server.label}")
    push_all = time.monotonic() - t0
    if server.tags(repo) != tags:
        raise bb.BenchError(f"{server.label}: tags after push: {server.tags(repo)}")
    doomed = tags[:delete]
    digests = [server.manifest_digest(repo, t) for t in doomed]
    t0 = time.monotonic()
    for d in digests:
        server.request("DELETE", f"/v2/{repo}/manifests/{d}", ok=(202,))
    delete_s = time.monotonic() - t0
    left = server.tags(repo)
    if left != tags[delete:]:
        raise bb.BenchError(f"{server.label}: tags after deleting {delete}: {left}")
    os.sync()
    files_before, bytes_before = blob_store_bytes(server.blob_root())
    out = {"push_all": push_all, "push_each": push_all / len(tags), "delete": delete_s,
           "blob_files_before": files_before, "blob_bytes_before": bytes_before}
    if isinstance(server, Distribution):
        server.stop()
        os.sync()
        gc_s, text = run_cmd([gc_binary, "garbage-collect", str(server.config)],
                             f"garbage-collect of {server.label}")
        m = re.search(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible", text)
        files_after, bytes_after = blob_store_bytes(server.blob_root())
        out.update({"gc": gc_s, "blobs_deleted": int(m.group(2)) if m else None,
                    "manifests_deleted": int(m.group(3)) if m else None,
                    "blob_files_after": files_after, "bytes_after": bytes_after,
                    "bytes_freed": bytes_before - bytes_after})
        # GC must leave the kept images whole: start again (same data) and pull one.
        server.start(fresh=False)
    else:
        n, size = berth_gc_eligible(server.blob_root().parent)
        out.update({"blobs_eligible": n, "bytes_eligible": size})
        if isinstance(server, BerthServer):
            t0 = time.monotonic()
            report = server.gc()
            gc_s = time.monotonic() - t0
            files_after, bytes_after = blob_store_bytes(server.blob_root())
            out.update({"gc": gc_s, "gc_reported": report["duration_ms"] / 1000,
                        "blobs_deleted": report["blobs_deleted"],
                        "manifests_deleted": report["manifests_deleted"],
                        "blobs_spared": report["blobs_spared"],
                        "blob_files_after": files_after, "bytes_after": bytes_after,
                        "bytes_freed": bytes_before - bytes_after,
                        "bytes_freed_reported": report["bytes_freed"]})
        else:
            out.update({"gc": None, "bytes_after": blob_store_bytes(server.blob_root())[1]})
            out["bytes_freed"] = bytes_before - out["bytes_after"]
    keep, gone = tags[-1], doomed[0]
    check = server.dir / "check"
    skopeo_copy(f"docker://{server.host}/{repo}:{keep}", f"oci:{check}:{keep}",
                server.creds_args("--src-creds"), f"pull of kept {keep} from {server.label}")
    shutil.rmtree(check, ignore_errors=True)
    server.request("HEAD", f"/v2/{repo}/manifests/{gone}", {"Accept": MANIFEST_ACCEPT},
                   ok=(404,))
    server.remove()
    return out


# ----------------------------------------------------------------------------- main


def serve_binary(dest_dir: Path) -> Path:
    """The release build of the registry example, copied into `dest_dir`."""
    source = os.environ.get("BERTH_REGISTRY_BIN")
    if not source:
        if os.environ.get("BERTH_BENCH_NO_BUILD") != "1":
            bb.log("cargo build --release -p berth-registry --example serve")
            subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "berth-registry",
                            "--example", "serve"], cwd=bb.ROOT, check=True)
        source = str(bb.ROOT / "target" / "release" / "examples" / "serve")
    if not Path(source).is_file():
        raise bb.BenchError(f"no registry example binary at {source}")
    dest = dest_dir / "berth-registry-serve"
    shutil.copy2(source, dest)
    return dest


def berth_server_binary(tmp: Path, mode: str) -> tuple[Path | None, str]:
    """A `berth` binary whose server has the registry GC endpoint and `--registry-gc-grace`,
    or None and why not (mode `auto` falls back to the example then, `server` fails)."""
    if mode == "example":
        return None, "--berth-gc example"
    (tmp / "bin").mkdir(exist_ok=True)
    try:
        binary = bb.berth_binary(tmp / "bin")
    except (subprocess.CalledProcessError, bb.BenchError) as e:
        why = f"no berth binary ({e})"
    else:
        done = subprocess.run([str(binary), "server", "--help"], capture_output=True,
                              text=True)
        if "--registry-gc-grace" in done.stdout:
            # bb.Run takes its binary from BERTH_BIN: no second build per repetition.
            os.environ["BERTH_BIN"] = str(binary)
            return binary, ""
        why = f"{os.environ.get('BERTH_BIN') or 'target/release/berth'} has no --registry-gc-grace"
    if mode == "server":
        raise bb.BenchError(f"--berth-gc server: {why}")
    bb.log(f"Berth GC through berth server not possible ({why}); GC scenario on the example")
    return None, why


def first_version(binary: Path) -> str:
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    return (done.stdout.strip().splitlines() or ["unknown"])[0]


def versions(serve: Path, dist_bin: str) -> dict:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    commit = first_line(["git", "-C", str(bb.ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(bb.ROOT), "status", "--porcelain",
                            "--untracked-files=no", "--", "crates/registry", "Cargo.toml",
                            "Cargo.lock"], capture_output=True, text=True).stdout

    def built(path: Path) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime))

    origin = (f"from BERTH_REGISTRY_BIN={os.environ['BERTH_REGISTRY_BIN']}"
              if os.environ.get("BERTH_REGISTRY_BIN") else
              f"workspace commit {commit}{' + uncommitted changes' if dirty.strip() else ''}")
    return {
        "berth_registry": f"examples/serve, release build of {built(serve)}, {origin}",
        "distribution": first_line([dist_bin, "--version"]),
        "skopeo": first_line(["skopeo", "--version"]),
        "curl": first_line(["curl", "--version"]),
    }


def fmt(stat: dict, unit: str = "s", digits: int = 2) -> str:
    if not stat["n"]:
        return "n/a"
    return (f"{stat['median']:.{digits}f}{unit} "
            f"({stat['min']:.{digits}f}-{stat['max']:.{digits}f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5,
                        help="repetitions of push/pull (default 5)")
    parser.add_argument("--gc-reps", type=int, default=3,
                        help="repetitions of the GC scenario (default 3)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mb", type=int, default=50,
                        help="random bytes per layer, in MB (10^6 bytes; default 50)")
    parser.add_argument("--gc-tags", type=int, default=20)
    parser.add_argument("--gc-delete", type=int, default=15)
    parser.add_argument("--berth-gc", choices=("auto", "server", "example"), default="auto",
                        help="Berth side of the GC scenario: `berth server` with "
                             "--registry-gc-grace 0s and POST /api/v1/registry/gc (server), "
                             "the example without a GC trigger (example), or server when a "
                             "berth binary with the endpoint is available (auto, default)")
    parser.add_argument("--distribution-bin", default=os.environ.get(
        "BERTH_BENCH_DISTRIBUTION_BIN", "docker-registry"))
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    if not 0 < args.gc_delete < args.gc_tags:
        parser.error("--gc-delete must be between 1 and --gc-tags - 1")
    for tool in ("skopeo", "curl", args.distribution_bin):
        if not shutil.which(tool):
            raise bb.BenchError(f"{tool} not found (apt-get install skopeo docker-registry curl)")

    bb.install_signal_handlers()
    berth_bin_source = os.environ.get("BERTH_BIN") or "target/release/berth"
    tmp = Path(tempfile.mkdtemp(prefix="berth-bench-registry-"))
    started: list[Server] = []  # everything to stop at the end
    try:
        serve = serve_binary(tmp)
        berth = Berth(tmp, serve)
        dist = Distribution(tmp, args.distribution_bin)
        servers = [berth, dist]
        started = [berth, dist]
        berth_bin, berth_gc_why = berth_server_binary(tmp, args.berth_gc)
        gc_berth: Server = BerthServer(tmp, "0s") if berth_bin else berth
        gc_servers = [gc_berth, dist]
        if berth_bin:
            started.append(gc_berth)
        context = {"loadavg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3])}
        info = versions(serve, args.distribution_bin)
        if berth_bin:
            info["berth_server"] = (
                f"{berth_bin_source}, {first_version(berth_bin)}, built " + time.strftime(
                    "%Y-%m-%d %H:%M UTC", time.gmtime(berth_bin.stat().st_mtime)))
        bb.header("registry push/pull and GC", {
            "image": f"{args.layers} layers x {args.layer_mb} MB random", "reps": args.reps,
            "gc": f"{args.gc_tags} tags, delete {args.gc_delete}, {args.gc_reps} reps",
            "berth GC via": f"berth server {berth_bin}" if berth_bin else
                            f"examples/serve, no GC trigger ({berth_gc_why})",
            "tmp": tmp, **info, **context})

        t0 = time.monotonic()
        img = tmp / "image-big"
        image = build_big_image(img, args.layers, args.layer_mb * MB)
        gc_img = tmp / "image-gc"
        gc_tags = build_gc_images(gc_img, args.gc_tags)
        os.sync()
        bb.log(f"images written in {time.monotonic() - t0:.1f} s: big image "
               f"{image['total_bytes']:,} bytes ({len(image['layers'])} layers)")

        big: dict[str, list[dict]] = {"berth": [], "distribution": []}
        for rep in range(args.reps):
            for server in (servers if rep % 2 == 0 else servers[::-1]):
                r = measure_big(server, img, image, tmp)
                big[server.kind].append(r)
                bb.log(f"rep {rep + 1}: {server.kind:12} push {r['push']:.2f} s "
                       f"(+sync {r['sync_after_push']:.2f} s), pull {r['pull']:.2f} s, "
                       f"GET {r['get']:.2f} s, server CPU push {r['cpu_push']:.2f} s / "
                       f"pull {r['cpu_pull']:.2f} s, peak RSS {r['hwm_mib']:.0f} MiB")

        gc: dict[str, list[dict]] = {"berth": [], "distribution": []}
        for rep in range(args.gc_reps):
            for server in (gc_servers if rep % 2 == 0 else gc_servers[::-1]):
                r = measure_gc(server, gc_img, gc_tags, args.gc_delete, args.distribution_bin)
                gc[server.kind].append(r)
                bb.log(f"gc rep {rep + 1}: {server.kind:12} push {args.gc_tags} tags "
                       f"{r['push_all']:.2f} s, delete {args.gc_delete} manifests "
                       f"{r['delete']:.3f} s, "
                       + (f"GC {r['gc']:.3f} s: {r['blobs_deleted']} blobs deleted, "
                          f"{r['bytes_freed']:,} bytes freed" if r["gc"] is not None else
                          "GC not triggerable")
                       + (f" ({r['blobs_eligible']} blobs / {r['bytes_eligible']:,} bytes "
                          f"eligible by the data dir)" if "bytes_eligible" in r else ""))
        context["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        for s in started:
            try:
                if isinstance(s, BerthServer):
                    s.remove()
                else:
                    s.stop()
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                bb.log(f"stopping {s.label} failed: {e}")
        if os.environ.get("BERTH_BENCH_KEEP_TMP") == "1":
            bb.log("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        bb.install_signal_handlers()

    def stat(rows: list[dict], key: str) -> dict:
        return bb.summary([r[key] for r in rows if r.get(key) is not None])

    result = {"benchmark": "registry", "reps": args.reps, "gc_reps": args.gc_reps,
              "image": {k: v for k, v in image.items() if k != "manifest"},
              "versions": info, "context": context, "big": {}, "gc": {}}
    rows = []
    mb = image["total_bytes"] / MB
    for what, key, mbps in (("push (skopeo copy oci: -> docker://)", "push", "push_mbps"),
                            ("push + sync(2) after it", "push_sync", "push_sync_mbps"),
                            ("pull (skopeo copy docker:// -> oci:)", "pull", "pull_mbps"),
                            (f"GET {args.layers} layer blobs (curl -> /dev/null)", "get",
                             "get_mbps")):
        b, d = stat(big["berth"], key), stat(big["distribution"], key)
        bm, dm = stat(big["berth"], mbps), stat(big["distribution"], mbps)
        tput = bm["median"] / dm["median"] if bm["n"] and dm["n"] else None
        result["big"][key] = {"berth": b, "distribution": d, "berth_mbps": bm,
                              "distribution_mbps": dm, "throughput_ratio": tput}
        rows.append((what, fmt(b, " s"), fmt(bm, "", 0), fmt(d, " s"), fmt(dm, "", 0),
                     f"{tput:.2f}" if tput else "n/a"))
    bb.print_table(
        f"Push/pull of a {mb:.1f} MB image ({args.layers} layers of {args.layer_mb} MB random, "
        f"stored gzip): median (min-max) of {args.reps}; MB/s with MB = 10^6 bytes",
        rows, ("what", "Berth", "Berth MB/s", "Distribution", "Distribution MB/s",
               "throughput Berth/Distribution"))

    rows = []
    for what, key in (("server CPU during push (s)", "cpu_push"),
                      ("server CPU during pull (s)", "cpu_pull"),
                      ("server peak RSS (MiB)", "hwm_mib")):
        b, d = stat(big["berth"], key), stat(big["distribution"], key)
        result["big"][key] = {"berth": b, "distribution": d}
        digits = 0 if key == "hwm_mib" else 2
        rows.append((what, fmt(b, "", digits), fmt(d, "", digits)))
    bb.print_table("Registry process during the push/pull reps (utime+stime; VmHWM)", rows,
                   ("what", "Berth", "Distribution"))

    bg, dg = gc["berth"], gc["distribution"]
    for kind, rows_ in gc.items():
        result["gc"][kind] = {k: stat(rows_, k) for k in rows_[0] if rows_} if rows_ else {}
        result["gc"][kind]["raw"] = rows_

    def first(rows_: list[dict], key: str):
        vals = sorted({r[key] for r in rows_ if r.get(key) is not None})
        return ", ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in vals) or "-"

    if berth_bin:
        berth_gc = fmt(stat(bg, "gc"), " s", 3) + " (POST /api/v1/registry/gc)"
        berth_freed = first(bg, "bytes_freed")
    else:
        berth_gc = "not triggerable in examples/serve"
        berth_freed = f"0 (eligible: {first(bg, 'bytes_eligible')}, once 600 s old)"
    gc_ratio = bb.ratio(stat(bg, "gc"), stat(dg, "gc"))
    rows = [
        (f"push {args.gc_tags} small images (one skopeo copy each)",
         fmt(stat(bg, "push_all"), " s"), fmt(stat(dg, "push_all"), " s")),
        (f"DELETE {args.gc_delete} manifests by digest",
         fmt(stat(bg, "delete"), " s", 3), fmt(stat(dg, "delete"), " s", 3)),
        ("blob store before GC (bytes)", first(bg, "blob_bytes_before"),
         first(dg, "blob_bytes_before")),
        ("garbage collection, wall", berth_gc,
         fmt(stat(dg, "gc"), " s", 3) + " (docker-registry garbage-collect)"),
        ("GC duration reported by Berth", fmt(stat(bg, "gc_reported"), " s", 3), "-"),
        ("GC time ratio Berth/Distribution", f"{gc_ratio:.2f}" if gc_ratio else "n/a", ""),
        ("blobs deleted (manifests + configs + layers)", first(bg, "blobs_deleted"),
         first(dg, "blobs_deleted")),
        ("bytes freed (blob store before - after)", berth_freed, first(dg, "bytes_freed")),
        ("eligible per Berth's data dir before GC", first(bg, "bytes_eligible"), "-"),
    ]
    berth_col = "Berth (berth server, grace 0s)" if berth_bin else "Berth (examples/serve)"
    bb.print_table(f"GC: {args.gc_tags} tags pushed, {args.gc_delete} manifests deleted: "
                   f"median (min-max) of {args.gc_reps}", rows,
                   ("what", berth_col, "Distribution"))
    result["gc"]["berth_via"] = "berth server" if berth_bin else "examples/serve"
    bb.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(bb.entry(main))
