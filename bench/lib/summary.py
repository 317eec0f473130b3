#!/usr/bin/env python3
"""Prints one Markdown table from the JSON files the benchmark scripts wrote (--json).

Usage: summary.py DIR   (reads DIR/01.json, DIR/02.json, DIR/03.json, DIR/03b.json, DIR/04.json,
DIR/09.json when present)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def s(stat: dict, unit: str = "s", digits: int = 2) -> tuple[str, str]:
    if not stat or not stat.get("n"):
        return "n/a", ""
    return (f"{stat['median']:.{digits}f} {unit}".strip(),
            f"{stat['min']:.{digits}f}–{stat['max']:.{digits}f}")


def ratio(r) -> str:
    return "" if r is None else f"{r:.2f}×"


def main() -> int:
    out = Path(sys.argv[1])
    rows: list[tuple[str, str, str, str, str, str]] = []

    def add(bench: str, what: str, stat: dict, r=None, unit="s", digits=2, n=None):
        med, rng = s(stat, unit, digits)
        rows.append((bench, what, med, rng, str(n if n is not None else stat.get("n", "")),
                     ratio(r)))

    def load(name: str):
        path = out / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    if (b := load("01")) is not None:
        title = f"1. 0 → {b['replicas']} ready"
        for p, v in b["berth"].items():
            add(title, f"Berth (readiness probe {p} ms)", v["total"], v["ratio_vs_docker"])
        add(title, "docker run -d --init ×{} in parallel".format(b["replicas"]),
            b["docker"]["total"], 1.0)
    if (b := load("02")) is not None:
        title = f"2. rolling upgrade of {b['replicas']}"
        for v in b["berth"].values():
            add(title, f"Berth (probe {v['probe_ms']} ms, max_surge {v['max_surge']})",
                v["total"], v["ratio_vs_docker"])
        add(title, "docker by hand, one at a time", b["docker"]["total"], 1.0)
    for key in ("03", "03b"):
        if (b := load(key)) is not None:
            delay = b.get("startup_delay_ms") or 0
            title = f"3. kill → ready ({b['replicas']} replicas)"
            if delay:
                title += f", app starts in {delay} ms"
            for p, v in b["berth"].items():
                add(title, f"Berth (readiness probe {p} ms)", v["total"], v["ratio_vs_docker"])
            add(title, "fresh docker run -d --init", b["docker"]["total"], 1.0)
    if (b := load("04")) is not None:
        title = "4. berth server"
        w = b["windows_s"]
        add(title, f"VmRSS idle, no apps ({w['idle_empty']:.0f} s)", b["rss_empty_mib"],
            unit="MiB", digits=1)
        add(title, f"VmRSS, {b['apps']} apps ready ({w['idle_apps']:.0f} s idle)",
            b["rss_apps_mib"], unit="MiB", digits=1)
        add(title, f"CPU time, {w['cpu_window']:.0f} s idle with {b['apps']} apps", b["cpu_s"])
        add(title, "  = % of one core", b["cpu_pct"], unit="%", digits=1)
        not_ready = b.get("apps_not_ready") or {}
        if not_ready.get("n") and not_ready["max"]:
            add(title, f"apps NOT ready 60 s after creation (Berth problem)", not_ready,
                unit="", digits=0)

    if (b := load("09")) is not None:
        title = "9. router under change"
        rounds = b["rollouts"]

        def stat(values: list[float]) -> dict:
            ordered = sorted(values)
            return {"n": len(values), "median": ordered[len(ordered) // 2],
                    "min": ordered[0], "max": ordered[-1]}

        replicas = b.get("replicas", 10)
        add(title, f"rolling upgrade of {replicas} under wrk -t2 -c64",
            stat([r["rollout_s"] for r in rounds]))
        add(title, "  failed requests (not 2xx + socket errors; goal 0)",
            stat([float(r["failed"]) for r in rounds]), unit="", digits=0)
        m = b["memory"]
        add(title, "VmRSS idle, no apps", stat([m["rss_before_mib"]]), unit="MiB", digits=1)
        add(title, f"VmRSS, {m['apps']} apps (replicas 0) + {m['domains']} domains",
            stat([m["rss_after_mib"]]), unit="MiB", digits=1)

    panics = []
    for name in ("01", "02", "03", "03b", "04", "09"):
        if (b := load(name)) is not None:
            panics += [(name, p) for p in b.get("server_panics", [])]

    header = ("benchmark", "what", "median", "min–max", "n", "ratio vs docker")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    if panics:
        print(f"\nWARNING: berth server panicked {len(panics)} time(s) (a Berth bug):")
        for name, p in panics:
            print(f"  benchmark {name}: {p['line']}  (log: {p['log']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
