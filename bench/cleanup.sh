#!/usr/bin/env bash
# Removes what a benchmark left behind if it was killed with SIGKILL (the scripts clean up
# after themselves on normal exit, errors, Ctrl-C and SIGTERM): containers and networks of
# every benchmark namespace (`bench` + 6 hex digits), and `berth server` processes started
# from a benchmark temp dir. Touches nothing else.
set -euo pipefail

for pid in $(pgrep -f '^/tmp/berth-bench-[^ ]*/berth server ' || true); do
  echo "stopping leftover benchmark server $pid"
  kill -TERM "$pid" 2>/dev/null || true
done

containers="$(docker ps -a --format '{{.ID}} {{.Label "berth.namespace"}} {{.Label "berth.bench"}}' |
  awk '$2 ~ /^bench[0-9a-f]{6}$/ || $3 ~ /^bench[0-9a-f]{6}$/ {print $1}')"
if [[ -n "$containers" ]]; then
  echo "removing $(wc -w <<<"$containers") containers"
  # shellcheck disable=SC2086
  docker rm -f $containers >/dev/null
fi
networks="$(docker network ls --format '{{.ID}} {{.Name}}' |
  awk '$2 ~ /^bench[0-9a-f]{6}(-peer)?$/ {print $1}')"
if [[ -n "$networks" ]]; then
  echo "removing $(wc -w <<<"$networks") networks"
  # shellcheck disable=SC2086
  docker network rm $networks >/dev/null
fi
rm -rf /tmp/berth-bench-* 2>/dev/null || true
echo "clean"
