#!/usr/bin/env bash
# Builds the test app as a static binary and packs it into a FROM scratch Docker image
# (default berth-testapp:latest; pass another reference as the first argument).
# Quick and idempotent: cargo does nothing when the sources are unchanged, and the image is
# only rebuilt when its binary's checksum (kept as a label) differs.
set -euo pipefail

image="${1:-berth-testapp:latest}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target=x86_64-unknown-linux-gnu
target_dir="target/testapp-static"
binary="$target_dir/$target/release/berth-testapp"

# Variables that would override RUSTFLAGS or the target dir when run from inside cargo.
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release --quiet -p berth-testapp --target "$target" --target-dir "$target_dir"

sum="$(sha256sum "$binary" | cut -d' ' -f1)"
current="$(docker image inspect --format '{{ index .Config.Labels "berth.testapp.sha256" }}' "$image" 2>/dev/null || true)"
if [[ "$current" == "$sum" ]]; then
  echo "==> $image is up to date (binary sha256 ${sum:0:12})"
  exit 0
fi

context="$(mktemp -d "${TMPDIR:-/tmp}/berth-testapp-image.XXXXXX")"
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/berth-testapp"
cp testapp/Dockerfile "$context/Dockerfile"
docker build --quiet --label "berth.testapp.sha256=$sum" --tag "$image" "$context" >/dev/null
echo "==> built $image (binary sha256 ${sum:0:12})"
