#!/usr/bin/env bash
# Runs Berth's benchmarks 1-4, 6 and 9 once (each with its own repetitions) and prints the
# machine description and the summary tables (Markdown). Takes about 15-17 minutes.
# (bench/05-registry.py is separate: see bench/05-registry.md.)
#
#   bench/run-all.sh                 # build release berth, run all, print summary
#   BERTH_BIN=path/to/berth bench/run-all.sh    # use that binary, do not build
#   BERTH_BENCH_REPS=3 bench/run-all.sh         # repetitions of benchmarks 1-3 and 6 (default 5)
#   BERTH_BENCH_MEM_REPS=1 bench/run-all.sh     # repetitions of benchmark 4 (default 3)
#   BERTH_BENCH_OUT=dir bench/run-all.sh        # keep JSON results and logs there
#
# Each benchmark starts its own `berth server` (free port, unique namespace, temp data dir)
# and removes its containers/networks and stops its server when it ends, fails or is
# interrupted. Nothing here asserts a duration.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

reps="${BERTH_BENCH_REPS:-5}"
mem_reps="${BERTH_BENCH_MEM_REPS:-3}"
out="${BERTH_BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-results.XXXXXX")}"
mkdir -p "$out"

./scripts/ensure-docker.sh
if ! ./scripts/build-testapp-image.sh; then
  # The workspace may be mid-edit; an existing test image is good enough to measure with.
  docker image inspect berth-testapp:latest >/dev/null 2>&1 || exit 1
  echo "warning: could not rebuild berth-testapp:latest; using the existing image" >&2
fi

# One binary for the whole run, copied so that a rebuild of the workspace meanwhile cannot
# change what is measured.
bin_dir="$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-bin.XXXXXX")"
trap 'rm -rf "$bin_dir"' EXIT
if [[ -z "${BERTH_BIN:-}" ]]; then
  echo "==> cargo build --release -p berth"
  if ! cargo build --release --quiet -p berth; then
    echo "error: the release build failed; to measure an existing binary instead run" >&2
    echo "       BERTH_BIN=target/release/berth bench/run-all.sh" >&2
    exit 1
  fi
  BERTH_BIN=target/release/berth
fi
cp -p "$BERTH_BIN" "$bin_dir/berth"
export BERTH_BIN="$bin_dir/berth"

bench/machine-info.sh "$BERTH_BIN" | tee "$out/machine.md"

start=$SECONDS
failed=()
run() {
  local key="$1"
  shift
  echo
  echo "==> $*"
  local t0=$SECONDS
  if python3 "$@" --json "$out/$key.json" 2> >(tee "$out/$key.log" >&2); then
    echo "    ($((SECONDS - t0)) s)"
  else
    echo "    FAILED after $((SECONDS - t0)) s (log: $out/$key.log)"
    failed+=("$key")
  fi
}

run 01 bench/01-zero-to-twenty.py --reps "$reps"
run 02 bench/02-rolling-upgrade.py --reps "$reps"
run 03 bench/03-kill-replace.py --reps "$reps"
run 03b bench/03-kill-replace.py --reps 3 --startup-delay-ms 500
run 04 bench/04-server-memory.py --reps "$mem_reps"
run 06 bench/06-pipeline.py --reps "$reps"
if command -v wrk >/dev/null; then
  run 09 bench/09-router-rollout.py --reps 3
else
  echo
  echo "==> skipping bench/09-router-rollout.py: no wrk (apt-get install -y wrk)"
fi

echo
echo "## Summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $((SECONDS - start)) s, load average now $(cut -d' ' -f1-3 /proc/loadavg))"
echo
python3 bench/lib/summary.py "$out" | tee "$out/summary.md"
if [[ -f "$out/06.json" ]]; then
  echo | tee -a "$out/summary.md"
  python3 bench/06-pipeline.py --summary "$out/06.json" | tee -a "$out/summary.md"
fi
echo
echo "JSON results and logs: $out"
if ((${#failed[@]})); then
  echo "failed: ${failed[*]}"
  exit 1
fi
