#!/usr/bin/env bash
# Brings Berth up on this machine: a reachable Docker Engine (installed and started when
# possible), the test app image to try things with, the web console (embedded in the binary),
# then `berth server` in the foreground.
# Extra arguments go to `berth server` (see `berth server --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed; install Rust (https://rustup.rs) and try again" >&2
  exit 1
fi
./scripts/ensure-docker.sh
echo "==> building the test app image (berth-testapp:latest) for trying Berth out"
./scripts/build-testapp-image.sh >/dev/null
./scripts/build-ui.sh
echo "==> building berth (release)"
cargo build --release --locked -p berth
echo "==> starting berth server (stop with Ctrl-C; app instances keep running)"
exec ./target/release/berth server "$@"
