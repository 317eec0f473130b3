#!/usr/bin/env bash
# Runs Berth's whole test suite: formatting and lints, unit tests, and the integration and
# end-to-end tests against a real Docker Engine (started here when needed).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/ensure-docker.sh
echo "==> building the test app image"
./scripts/build-testapp-image.sh
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "==> cargo test"
cargo test --locked --workspace -- --test-threads="${BERTH_TEST_THREADS:-4}"
