"""schemathesis hooks of scripts/fuzz-api.sh (loaded through SCHEMATHESIS_HOOKS).

The fuzzer learns names from responses (GET /users answers the fuzzing admin's own name), so it
would sooner or later demote, disable or delete the very admin it runs as — once it has made a
second admin, the server's last-admin guard no longer stops it — and the rest of the run would be
401s and 403s that test nothing. These operations stay fuzzed for every other user; cases aimed
at a user the run authenticates as (BERTH_FUZZ_PROTECTED_USERS, comma-separated) go to
`not-<name>` instead.
"""

import os

import schemathesis

PROTECTED = {name for name in os.environ.get("BERTH_FUZZ_PROTECTED_USERS", "").split(",") if name}

# Operations on /users/{username} that can take a user's rights away.
TAKE_AWAY = {
    ("PATCH", "/api/v1/users/{username}"),
    ("POST", "/api/v1/users/{username}/disable"),
    ("DELETE", "/api/v1/users/{username}"),
}


# scripts/fuzz-api.sh loads these hooks only for a run of the operations above: any hook at all
# halves the pace at which schemathesis generates cases.
@schemathesis.hook.apply_to(path_regex=r"^/api/v1/users/\{username\}")
def map_case(context, case):
    # Rewritten rather than filtered out: the fuzzer draws the learned name so often that
    # filtering fails hypothesis's health check.
    operation = (case.operation.method.upper(), case.operation.path)
    parameters = case.path_parameters or {}
    if operation in TAKE_AWAY and parameters.get("username") in PROTECTED:
        parameters["username"] = "not-" + parameters["username"]
    return case
