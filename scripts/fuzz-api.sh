#!/usr/bin/env bash
# API fuzzing: schemathesis, driven by the server's own OpenAPI document, against a real
# `berth server` (its own data dir, port and engine namespace), once as the first admin and
# once as a plain member of a team. Checks: no 5xx, and every response conforms to the
# document (documented status code, content type, body schema). Builds nothing: the binary
# comes from BERTH_BIN (default target/debug/berth).
#
#   BERTH_BIN               the berth binary (default target/debug/berth)
#   BERTH_FUZZ_EXAMPLES     test cases per operation and phase (default 25)
#   BERTH_FUZZ_MAX_TIME     time budget of each token's run, in seconds (default 100)
#   BERTH_FUZZ_SEED         replay a run (every run prints its seed)
#   BERTH_FUZZ_KEEP=1       keep the work dir (server log, reports) even when all passed
#   SCHEMATHESIS            the schemathesis command (default: schemathesis, else
#                           python3 -m schemathesis.cli)
#
# Ends with one line `fuzz: <runs> runs, <passed> passed, <failed> failed` (three schemathesis
# runs; failed ones print schemathesis's report with a curl command for every failure).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${BERTH_BIN:-target/debug/berth}
if [[ -n ${SCHEMATHESIS:-} ]]; then
  read -ra schemathesis <<<"$SCHEMATHESIS"
elif command -v schemathesis >/dev/null 2>&1; then
  schemathesis=(schemathesis)
else
  schemathesis=(python3 -m schemathesis.cli)
fi
examples=${BERTH_FUZZ_EXAMPLES:-25}
max_time=${BERTH_FUZZ_MAX_TIME:-100}
seed=${BERTH_FUZZ_SEED:-$(python3 -c 'import random; print(random.getrandbits(64))')}

[[ -x $bin ]] || { echo "fuzz: no berth binary at $bin (cargo build -p berth, or set BERTH_BIN)" >&2; exit 2; }
"${schemathesis[@]}" --version >/dev/null 2>&1 \
  || { echo "fuzz: schemathesis not found (python3 -m pip install schemathesis==4.32.5, as .ci/run does)" >&2; exit 2; }
command -v curl >/dev/null 2>&1 || { echo "fuzz: curl not found" >&2; exit 2; }

hooks="$PWD/scripts/fuzz-api-hooks.py"
config="$PWD/scripts/fuzz-api.toml"
ns="bt-fuzz-$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-fuzz.XXXXXX")
server_pid=
ok=0
trap 'exit 130' INT TERM

cleanup() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  # What the fuzzed server made in Docker (apps from generated requests, build containers and
  # images): a create the server sent just before it stopped can land after the first sweep.
  local filter="label=berth.namespace=$ns" ids
  for _ in 1 2 3 4; do
    ids=$(docker ps -aq --filter "$filter" 2>/dev/null || true)
    [[ -z $ids ]] && break
    echo "$ids" | xargs docker rm -f -v >/dev/null 2>&1 || true
    sleep 0.5
  done
  ids=$(docker images -q --no-trunc --filter "$filter" 2>/dev/null | sort -u || true)
  [[ -n $ids ]] && { echo "$ids" | xargs docker rmi -f >/dev/null 2>&1 || true; }
  # The namespace's network and its teams' (`<ns>-team-<team>`), matched by exact name.
  docker network ls --format '{{.Name}}' 2>/dev/null | while read -r name; do
    if [[ $name == "$ns" || $name == "$ns"-team-* ]]; then
      docker network rm "$name" >/dev/null 2>&1 || true
    fi
  done
  ids=$(docker volume ls -q --filter "$filter" 2>/dev/null || true)
  [[ -n $ids ]] && { echo "$ids" | xargs docker volume rm -f >/dev/null 2>&1 || true; }
  if ((ok)) && [[ -z ${BERTH_FUZZ_KEEP:-} ]]; then
    rm -rf "$work"
  else
    echo "fuzz: server log and reports kept in $work" >&2
  fi
}
trap cleanup EXIT

echo "==> API fuzzing (schemathesis $("${schemathesis[@]}" --version | awk '{print $NF}'), namespace $ns, seed $seed)"
# Outbound HTTP of the fuzzed server (external registries, git remotes made of generated
# URLs) goes to a closed loopback port instead of wherever a generated string points.
HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9 \
http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 all_proxy=http://127.0.0.1:9 \
NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost \
BERTH_LOG=warn \
  "$bin" server --listen "127.0.0.1:$port" --data-dir "$work/data" --namespace "$ns" \
  >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 150); do
  curl -fsS --noproxy '*' "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { echo "fuzz: server exited" >&2; cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done
curl -fsS --noproxy '*' "$base/healthz" >/dev/null || { echo "fuzz: server did not answer /healthz" >&2; exit 1; }
admin_token=$(cat "$work/data/admin-token")

# call METHOD PATH [JSON] [TOKEN]: prints the body; fails on a non-2xx answer.
call() {
  local args=(-sS --noproxy '*' -X "$1" -o "$work/answer" -w '%{http_code}' -H "Authorization: Bearer ${4:-$admin_token}")
  [[ -n ${3:-} ]] && args+=(-H 'Content-Type: application/json' --data "$3")
  local status
  status=$(curl "${args[@]}" "$base$2")
  if [[ $status != 2* ]]; then
    echo "fuzz: setup $1 $2 answered $status: $(cat "$work/answer")" >&2
    return 1
  fi
  cat "$work/answer"
}

# A plain member of a team (not its owner, not an admin), with an API token of their own.
member=fuzz-member
password=fuzz-member-password-1
call POST /api/v1/users "{\"username\":\"$member\",\"email\":\"$member@example.com\",\"password\":\"$password\"}" >/dev/null
call POST /api/v1/teams '{"name":"fuzz-team"}' >/dev/null
call PUT "/api/v1/teams/fuzz-team/members/$member" '{"role":"member"}' >/dev/null
member_token=$(call POST /api/v1/auth/token "{\"username\":\"$member\",\"password\":\"$password\",\"name\":\"fuzz\"}" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

passed=0
failed=0
runs=0
# fuzz NAME TOKEN SECONDS [schemathesis options...]: one schemathesis run with TOKEN.
fuzz() {
  local name=$1 token=$2 seconds=$3 status=0
  shift 3
  runs=$((runs + 1))
  echo "--> $name"
  (cd "$work" && "${schemathesis[@]}" --config-file "$config" run "$base/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" --max-time "$seconds" --seed "$seed" \
    `# One worker: CPython 3.11's ast.parse is not thread-safe, and hypothesis calls it while` \
    `# describing strategies (a random "AST constructor recursion depth mismatch" error).` \
    --workers 1 --request-timeout 20 --no-color --generation-database none \
    --report junit --report-dir "$work/report-$name" \
    `# Revoking a token by id: the coverage phase tries small ids, which are the` \
    `# fuzzing tokens themselves; the rest of the run would be 401s.` \
    --exclude-operation-id revoke_token \
    `# Closing one's own account: the fuzzing user would be gone.` \
    --exclude-operation-id close_account \
    "$@") >"$work/$name.txt" 2>&1 || status=$?
  if ((status == 0)); then
    passed=$((passed + 1))
    grep -E '^(Test cases:|  [0-9]+ generated)' "$work/$name.txt" | tr -s ' ' | paste -sd' ' | sed 's/^/    /'
  else
    failed=$((failed + 1))
    cat "$work/$name.txt"
  fi
}

# The operations that can demote, disable or delete a user: the fuzzer learns the admin's own
# name from GET /users, so the admin fuzzes them apart, with hooks that send the cases aimed at
# itself elsewhere (scripts/fuzz-api-hooks.py; hooks slow every operation down, hence apart).
take_away=(update_user disable_user delete_user)
# The member first: the admin's runs may disable or delete other users.
fuzz member "$member_token" "$max_time"
fuzz admin "$admin_token" "$max_time" "${take_away[@]/#/--exclude-operation-id=}"
SCHEMATHESIS_HOOKS="$hooks" BERTH_FUZZ_PROTECTED_USERS=admin \
  fuzz admin-users "$admin_token" $((max_time / 5 + 1)) "${take_away[@]/#/--include-operation-id=}"

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "fuzz: the server died during the run" >&2
  failed=$((failed + 1))
fi
if ((failed)); then
  echo "--- server log (last 40 lines)"
  tail -n 40 "$work/server.log"
else
  ok=1
fi
echo "fuzz: $runs runs, $passed passed, $failed failed"
((failed == 0))
