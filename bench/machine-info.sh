#!/usr/bin/env bash
# Prints the machine description that goes with benchmark numbers (Markdown list).
# Usage: bench/machine-info.sh [BERTH_BINARY]   (default target/release/berth)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mem_kib="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git status --porcelain --untracked-files=no -- crates 2>/dev/null | wc -l)"
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- nproc: $(nproc)"
echo "- memory: $((mem_kib / 1024)) MiB ($(awk -v k="$mem_kib" 'BEGIN {printf "%.1f", k/1048576}') GiB)"
echo "- CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "- kernel: $(uname -sr)"
echo "- Docker Engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown)" \
  "(cgroup $(docker info --format '{{.CgroupVersion}}' 2>/dev/null || echo '?'), storage $(docker info --format '{{.Driver}}' 2>/dev/null || echo '?'))"
echo "- workspace: commit $commit$([[ $dirty -gt 0 ]] && echo " + $dirty uncommitted changes in crates/")"
bin="${1:-target/release/berth}"
if [[ -x "$bin" ]]; then
  echo "- berth binary: $("$bin" --version 2>/dev/null | head -1), release build of $(date -u -r "$bin" '+%Y-%m-%d %H:%M UTC')"
fi
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
