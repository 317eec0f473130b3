#!/usr/bin/env bash
# Makes a Docker Engine reachable: uses DOCKER_HOST or /var/run/docker.sock when it answers;
# otherwise installs Debian's docker.io (when root and apt is available) and starts dockerd.
# Prints what is missing and exits non-zero when it cannot.
set -euo pipefail

docker_answers() {
  if [[ -n "${DOCKER_HOST:-}" ]]; then
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    [[ -S /var/run/docker.sock ]] && docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  fi
}

if command -v docker >/dev/null 2>&1 && docker_answers; then
  exit 0
fi
if [[ -n "${DOCKER_HOST:-}" ]]; then
  echo "error: DOCKER_HOST=${DOCKER_HOST} is set but no Docker Engine answers there." >&2
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: no Docker Engine is reachable and dockerd is not installed." >&2
    echo "       install it as root with: apt-get install -y docker.io   (then start dockerd)" >&2
    exit 1
  fi
  echo "==> installing Debian's docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "error: dockerd is installed but not running, and starting it needs root." >&2
  echo "       start it as root with: dockerd &" >&2
  exit 1
fi

# A dockerd that was killed (e.g. when the previous session ended) leaves its pid file behind,
# and a new dockerd refuses to start while it exists: remove it when that process is gone.
pidfile=/var/run/docker.pid
if [[ -f $pidfile ]]; then
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null || [[ $(cat /proc/"$pid"/comm 2>/dev/null) != dockerd ]]; then
    rm -f "$pidfile"
  fi
fi

echo "==> starting dockerd (log: /var/log/berth-dockerd.log)"
# With BERTH_DOCKERD_LOOPBACK_ONLY=1 (the test suite sets it) the engine reaches registries on
# this machine only: every other registry goes through a proxy address where nothing listens,
# so a test's missing image fails at once instead of asking a public registry.
proxy=()
if [[ ${BERTH_DOCKERD_LOOPBACK_ONLY:-} == 1 ]]; then
  echo "==> dockerd may reach loopback registries only"
  proxy=(env HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9
    http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9
    NO_PROXY=localhost,127.0.0.0/8,::1 no_proxy=localhost,127.0.0.0/8,::1)
fi
# No systemd here: run dockerd in the background, detached from this shell.
nohup "${proxy[@]}" dockerd >/var/log/berth-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if docker_answers; then
    echo "==> Docker Engine $(docker version --format '{{.Server.Version}}') is up"
    exit 0
  fi
  sleep 0.5
done
echo "error: dockerd did not come up within 30 s; see /var/log/berth-dockerd.log" >&2
tail -n 20 /var/log/berth-dockerd.log >&2 || true
exit 1
