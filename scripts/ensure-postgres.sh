#!/usr/bin/env bash
# Makes a local PostgreSQL answer for Berth's PostgreSQL store tests (and for trying
# `berth server --store postgres://…` on one machine): installs Debian's postgresql when it is
# missing (as root, with apt), starts its cluster, and makes sure a role `berth` (password
# `berth`, allowed to create databases) exists. Prints the server's URL on stdout, e.g.
#   postgres://berth:berth@127.0.0.1:5432/postgres
# Tests create a database of their own under it. Exits non-zero, saying what is missing, when
# it cannot.
set -euo pipefail
# Only the URL goes to stdout (callers capture it): everything the tools print, such as
# pg_ctlcluster's "Removed stale pid file.", goes to stderr.
exec 3>&1 1>&2

url="postgres://berth:berth@127.0.0.1:${BERTH_POSTGRES_PORT:-5432}/postgres"

if [[ $(id -u) -ne 0 ]]; then
  if pg_isready -q -h 127.0.0.1 -p "${BERTH_POSTGRES_PORT:-5432}" 2>/dev/null; then
    echo "$url" >&3
    exit 0
  fi
  echo "error: no PostgreSQL answers on 127.0.0.1, and starting one needs root." >&2
  exit 1
fi

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: PostgreSQL is not installed and apt-get is not available." >&2
    exit 1
  fi
  echo "==> installing Debian's postgresql" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
  echo "==> creating the PostgreSQL $version cluster" >&2
  pg_createcluster "$version" main >/dev/null 3>&-
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online" { found = 1 } END { exit !found }'; then
  echo "==> starting PostgreSQL $version" >&2
  pg_ctlcluster "$version" main start 3>&-   # the server must not hold the URL pipe open
fi
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p "${BERTH_POSTGRES_PORT:-5432}" && break
  sleep 0.2
done
if ! pg_isready -q -h 127.0.0.1 -p "${BERTH_POSTGRES_PORT:-5432}"; then
  echo "error: PostgreSQL $version did not start; see /var/log/postgresql/postgresql-$version-main.log" >&2
  exit 1
fi
# The role the tests connect as (idempotent).
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d postgres >/dev/null <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'berth') THEN
        CREATE ROLE berth LOGIN CREATEDB PASSWORD 'berth';
    END IF;
END
$$;
SQL
echo "$url" >&3
