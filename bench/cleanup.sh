#!/usr/bin/env bash
# Removes what a benchmark left behind if it was killed with SIGKILL (the scripts clean up
# after themselves on normal exit, errors, Ctrl-C and SIGTERM): containers and networks of
# every benchmark namespace (`bench` + 6 hex digits), their volumes, `berth server` processes started
# from a benchmark temp dir, and those temp dirs (results dirs are kept). Touches nothing
# else. Run it only when no benchmark is running.
set -euo pipefail

tmp="${TMPDIR:-/tmp}"
# Servers first, and wait for them: a running server would replace what is removed below.
servers="$(pgrep -f "^$tmp/berth-bench-run-[^ ]*/berth server " || true)"
for pid in $servers; do
  echo "stopping leftover benchmark server $pid"
  kill -TERM "$pid" 2>/dev/null || true
done
for pid in $servers; do
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL "$pid" 2>/dev/null || true
done

# (grep -E, not awk: Debian's mawk has no {n} intervals.) Networks: the namespace's own,
# its teams' (`<ns>-team-<team>`) and the Docker peer's (`<ns>-peer`, `<ns>-<suffix>`).
containers="$(docker ps -a --format '{{.ID}} ns={{.Label "berth.namespace"}} bench={{.Label "berth.bench"}}' |
  grep -E ' (ns|bench)=bench[0-9a-f]{6}( |$)' | cut -d' ' -f1 || true)"
if [[ -n "$containers" ]]; then
  echo "removing $(wc -w <<<"$containers") containers"
  # shellcheck disable=SC2086
  docker rm -f $containers >/dev/null
fi
networks="$(docker network ls --format '{{.ID}} {{.Name}}' |
  grep -E ' bench[0-9a-f]{6}(-[a-z0-9._-]+)?$' | cut -d' ' -f1 || true)"
if [[ -n "$networks" ]]; then
  echo "removing $(wc -w <<<"$networks") networks"
  # shellcheck disable=SC2086
  docker network rm $networks >/dev/null
fi
# Volumes: the apps' and each namespace's claim (`<namespace>-installation`).
volumes="$(docker volume ls --format '{{.Name}} ns={{.Label "berth.namespace"}}' |
  grep -E ' ns=bench[0-9a-f]{6}$' | cut -d' ' -f1 || true)"
if [[ -n "$volumes" ]]; then
  echo "removing $(wc -w <<<"$volumes") volumes"
  # shellcheck disable=SC2086
  docker volume rm -f $volumes >/dev/null
fi
rm -rf "$tmp"/berth-bench-run-* "$tmp"/berth-bench-bin.* 2>/dev/null || true
echo "clean"
