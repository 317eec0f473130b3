#!/usr/bin/env bash
# Builds the web console (ui/) into ui/dist, which `berth server` serves: release builds embed
# it, debug builds read it from disk. Installs the npm packages from the lockfile (`npm ci`, only
# when the lockfile changed since the last install), generates the API types from
# ui/openapi.json, type-checks and bundles.
set -euo pipefail
cd "$(dirname "$0")/../ui"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "error: node and npm are needed to build the web console (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "error: the web console needs Node.js 20.19 or newer (found $(node --version))" >&2
  exit 1
fi

stamp=node_modules/.berth-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "==> npm ci (web console dependencies)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi
echo "==> building the web console (ui/dist)"
npm run --silent build
