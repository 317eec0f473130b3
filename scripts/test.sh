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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --workspace --all-targets -- --test-threads="${BERTH_TEST_THREADS:-4}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
