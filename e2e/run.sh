#!/usr/bin/env bash
# End-to-end run (`make e2e`): installs what is missing (Debian's Chromium, playwright in the venv), then runs
# e2e/harness.py, which starts the Hatchet simulator and Airflow, drives the connection form in Chromium,
# triggers the example DAGs through the REST API, checks them, and stops everything again.
#
# Every process started here inherits E2E_RUN_TAG; at the end (also on failure or Ctrl-C) whatever still
# carries the tag is killed, and the run fails if anything survives.
#
# Environment:
#   E2E_VENV=PATH               venv with Airflow and this package (default .venv; `make env` when missing)
#   E2E_SKIP_INSTALL=1          install nothing
#   E2E_TIMEOUT=SECONDS         hard limit for the harness (default 600)
#   E2E_SIMULATOR_MODULE=MOD    module run as `python -m MOD --port 0 --info-file F`
#   E2E_RUN_DIR=PATH            where logs and report.json go (default build/e2e/run)
# Extra arguments go to harness.py (e.g. --skip-dags, --expect-label host=Other, --docs-screenshot PATH).
# Artifacts (logs, screenshots, report.json) are left in build/e2e/run.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUN="${E2E_RUN_DIR:-$ROOT/build/e2e/run}"
VENV="${E2E_VENV:-$ROOT/.venv}"
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
E2E_RUN_TAG="e2e-$(date +%s)-$$-$RANDOM"
export E2E_RUN_TAG

t0=$(date +%s)
phase() { echo "[e2e] $1 ($(( $(date +%s) - t0 ))s)"; }

# Kill every process whose environment holds E2E_RUN_TAG=$1, or that is in a group this run started (but not this
# shell); print what was left.
sweep() {
    python3 "$ROOT/e2e/sweep.py" --pgids "$RUN/pgids" "$1" "$$"
}

harness_pid=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$harness_pid" ] && kill -0 "$harness_pid" 2>/dev/null; then
        kill -TERM "$harness_pid" 2>/dev/null || true
        wait "$harness_pid" 2>/dev/null || true
    fi
    sweep "$E2E_RUN_TAG" || rc=1
    echo "[e2e] total wall time $(( $(date +%s) - t0 ))s (rc=$rc); artifacts in ${RUN#"$ROOT"/}"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${E2E_SKIP_INSTALL:-0}" != 1 ]; then
    phase "install: chromium"
    if [ ! -x /usr/bin/chromium ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
    phase "install: venv + playwright"
    [ -x "$VENV/bin/python" ] || make env
    if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
        [ -x .tools/bin/uv ] || make .tools/bin/uv
        .tools/bin/uv pip install -q --python "$VENV/bin/python" playwright
    fi
fi

# A previous run's leftovers, by their tag only: its process group ids may belong to others by now.
if [ -f "$RUN/tag" ]; then
    python3 "$ROOT/e2e/sweep.py" "$(cat "$RUN/tag")" "$$" || true
fi
rm -rf "$RUN"
mkdir -p "$RUN/logs"
echo "$E2E_RUN_TAG" > "$RUN/tag"
phase "harness"
args=(--run-dir "$RUN")
[ -n "${E2E_SIMULATOR_MODULE:-}" ] && args+=(--simulator-module "$E2E_SIMULATOR_MODULE")
timeout --kill-after=30 "${E2E_TIMEOUT:-600}" "$VENV/bin/python" "$ROOT/e2e/harness.py" "${args[@]}" "$@" &
harness_pid=$!
wait "$harness_pid"
