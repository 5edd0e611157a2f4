#!/usr/bin/env bash
# Runs the official MCP conformance suite (npm @modelcontextprotocol/conformance) in server mode
# against a running AgentVoiceBox MCP endpoint and compares the outcome with
# tests/conformance/expected-failures.txt.
#
#   deploy/conformance.sh [URL]          # default URL: http://127.0.0.1:8080/mcp
#
# Start the server first, e.g. `avb dev` (or ./deploy/dev.sh). Use a localhost URL: the
# dns-rebinding-protection scenario fails by design for any other host.
#
# Exit status: 0 when exactly the expected scenarios fail; 1 when a scenario fails that is not
# listed (regression) or a listed one passes (stale entry: delete its line); 2 on setup errors.
#
# Environment:
#   AVB_CACHE_DIR              download cache (default ~/.cache/avb); Node 22 and the suite go here
#   AVB_CONFORMANCE_OUT        where per-scenario results (checks.json, logs) go (default: a temp dir)
#   AVB_CONFORMANCE_EXPECTED   expected-failures file (default tests/conformance/expected-failures.txt)
#   AVB_CONFORMANCE_SCENARIOS  space-separated subset of scenarios to run (default: the whole suite)
#   AVB_CONFORMANCE_TIMEOUT    seconds allowed per scenario (default 120)
#   AVB_CONFORMANCE_VERSION    another version of the suite (default: the pinned one; the tests also
#                              run 0.1.16, the 2025-11-25 set)
set -euo pipefail

# Pinned versions. Bumping CONFORMANCE_VERSION usually changes the scenario list: rerun and
# update tests/conformance/expected-failures.txt in the same change.
# 0.2.0-alpha.12 carries the frozen 2026-07-28 set and the Tasks extension scenarios; 0.1.16 (npm
# `latest`) is the 2025-11-25 set, still run by the tests as AVB_CONFORMANCE_VERSION=0.1.16.
CONFORMANCE_VERSION=${AVB_CONFORMANCE_VERSION:-0.2.0-alpha.12} # Node: deploy/lib/node.sh

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXPECTED_FILE=${AVB_CONFORMANCE_EXPECTED:-$ROOT/tests/conformance/expected-failures.txt}
URL=${1:-http://127.0.0.1:8080/mcp}
PER_SCENARIO_TIMEOUT=${AVB_CONFORMANCE_TIMEOUT:-120}

log() { printf '%s\n' "$*" >&2; }
die() {
    log "conformance.sh: $*"
    exit 2
}

# shellcheck source=lib/node.sh
source "$ROOT/deploy/lib/node.sh"
CONF_DIR=$CACHE/conformance-$CONFORMANCE_VERSION
CONF_JS=$CONF_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js

# ---------------------------------------------------------------- install (cached)
ensure_node
ensure_package "$CONF_DIR" @modelcontextprotocol/conformance "$CONFORMANCE_VERSION" "$CONF_JS"

conformance() { "$NODE" "$CONF_JS" "$@"; }

# ---------------------------------------------------------------- expected failures
[[ -f $EXPECTED_FILE ]] || die "missing $EXPECTED_FILE"
declare -A EXPECTED=()
while IFS= read -r line || [[ -n $line ]]; do
    name=${line%%#*}
    name=${name//[[:space:]]/}
    [[ -z $name ]] && continue
    EXPECTED[$name]=1
done <"$EXPECTED_FILE"

# ---------------------------------------------------------------- scenario list
mapfile -t ALL_SCENARIOS < <(conformance list --server | sed -n 's/^  - \([A-Za-z0-9_./-]*\).*/\1/p')
((${#ALL_SCENARIOS[@]} > 0)) || die "could not list the suite's server scenarios"
declare -A KNOWN=()
for s in "${ALL_SCENARIOS[@]}"; do KNOWN[$s]=1; done

# An expected-failures entry must name a scenario of the pinned suite (catches renames).
for s in "${!EXPECTED[@]}"; do
    [[ -n ${KNOWN[$s]:-} ]] || die "$EXPECTED_FILE names '$s', which conformance@$CONFORMANCE_VERSION does not have"
done

# Every server scenario of the pinned suite, including the ones it marks pending
# (json-schema-2020-12, server-sse-polling in 0.1.16): pending means "not yet required of SDKs",
# and we still want to know where we stand.
SCENARIOS=("${ALL_SCENARIOS[@]}")
if [[ -n ${AVB_CONFORMANCE_SCENARIOS:-} ]]; then
    read -r -a SCENARIOS <<<"$AVB_CONFORMANCE_SCENARIOS"
    for s in "${SCENARIOS[@]}"; do
        [[ -n ${KNOWN[$s]:-} ]] || die "unknown scenario '$s'"
    done
fi

# ---------------------------------------------------------------- run
# Any HTTP answer means the server is up (a bare GET on /mcp is a 4xx/405, that's fine).
curl -s -o /dev/null --max-time 5 "$URL" || die "nothing answers at $URL (start the server first)"

OUT=${AVB_CONFORMANCE_OUT:-$(mktemp -d /tmp/avb-conformance.XXXXXX)}
mkdir -p "$OUT"
log "conformance@$CONFORMANCE_VERSION (Node $NODE_VERSION) against $URL; ${#SCENARIOS[@]} scenarios; results in $OUT"

# Prints "check-id: error" for each FAILURE check in a scenario's checks.json.
failure_summary() {
    local f
    f=$(find "$1" -name checks.json -print -quit 2>/dev/null)
    [[ -n $f ]] || return 0
    "$NODE" -e '
        const checks = require(process.argv[1]);
        for (const c of checks.filter((c) => c.status === "FAILURE"))
            console.log(`${c.id}: ${(c.errorMessage || c.description || "").slice(0, 300)}`);
    ' "$f"
}

declare -a PASSED=() UNEXPECTED=() STALE=() EXPECTED_FAILED=()
for s in "${SCENARIOS[@]}"; do
    dir=$OUT/$s
    mkdir -p "$dir"
    rc=0
    # One scenario per invocation: its exit code is the verdict (1 if any check is FAILURE or
    # the scenario crashed), and a crash in one cannot hide the others.
    timeout "$PER_SCENARIO_TIMEOUT" "$NODE" "$CONF_JS" server --url "$URL" --scenario "$s" \
        -o "$dir" >"$dir/output.txt" 2>&1 || rc=$?
    if ((rc == 0)); then
        if [[ -n ${EXPECTED[$s]:-} ]]; then
            STALE+=("$s")
            printf 'STALE     %s (listed as expected failure, now passes)\n' "$s"
        else
            PASSED+=("$s")
            printf 'pass      %s\n' "$s"
        fi
    else
        ((rc == 124)) && echo "timed out after ${PER_SCENARIO_TIMEOUT}s" >>"$dir/output.txt"
        if [[ -n ${EXPECTED[$s]:-} ]]; then
            EXPECTED_FAILED+=("$s")
            printf 'xfail     %s\n' "$s"
        else
            UNEXPECTED+=("$s")
            printf 'FAIL      %s\n' "$s"
            summary=$(failure_summary "$dir")
            [[ -n $summary ]] || summary=$(tail -n 5 "$dir/output.txt")
            sed 's/^/            /' <<<"$summary"
        fi
    fi
done

echo
echo "passed: ${#PASSED[@]}, expected failures: ${#EXPECTED_FAILED[@]}, unexpected failures: ${#UNEXPECTED[@]}, stale expected-failure entries: ${#STALE[@]}"
echo "results: $OUT"
status=0
if ((${#UNEXPECTED[@]})); then
    echo "unexpected failures (fix them, or list them in ${EXPECTED_FILE#"$ROOT"/} with a reason): ${UNEXPECTED[*]}"
    status=1
fi
if ((${#STALE[@]})); then
    echo "now passing, remove from ${EXPECTED_FILE#"$ROOT"/}: ${STALE[*]}"
    status=1
fi
exit "$status"
