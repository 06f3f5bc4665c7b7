#!/usr/bin/env bash
# `make e2e-prod`: Airflow as a production deployment (Postgres, CeleryExecutor + Redis, two workers) against the
# real Hatchet server, with crashes on purpose. Starts the Hatchet server (`make hatchet-up`, its demo-etl lasting
# 10 s), runs e2e/prod.py in .venv-prod, then stops the server; everything started carries E2E_RUN_TAG and
# whatever still carries it at the end (also on failure or Ctrl-C) is killed, by e2e/sweep.py as in e2e/run.sh.
#
# Environment:
#   E2E_SKIP_INSTALL=1          install nothing (Chromium, redis-server)
#   E2E_TIMEOUT=SECONDS         hard limit for the harness (default 2400)
#   E2E_RUN_DIR=PATH            where logs and report.json go (default build/e2e/prod)
# Extra arguments go to prod.py (e.g. --crash bulk, --skip-ui, --skip-dags).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUN="${E2E_RUN_DIR:-$ROOT/build/e2e/prod}"
VENV="$ROOT/.venv-prod"
MAKE="${MAKE:-make}"
# Like make real-hatchet: without go the real server cannot be built; a loud skip, a failure under CI=true.
if ! command -v go >/dev/null 2>&1; then
    echo "!!!!!! e2e-prod SKIPPED: 'go' is not on PATH, so the real Hatchet server cannot be built !!!!!!"
    [ "${CI:-}" = true ] && { echo "e2e-prod: CI=true, and a skipped run fails CI" >&2; exit 1; }
    exit 0
fi
E2E_RUN_TAG="e2e-prod-$(date +%s)-$$-$RANDOM"
export E2E_RUN_TAG

t0=$(date +%s)
phase() { echo "[e2e-prod] $1 ($(( $(date +%s) - t0 ))s)"; }

harness_pid=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$harness_pid" ] && kill -0 "$harness_pid" 2>/dev/null; then
        kill -TERM "$harness_pid" 2>/dev/null || true
        wait "$harness_pid" 2>/dev/null || true
    fi
    "$MAKE" --no-print-directory hatchet-down || rc=1
    # Airflow's Postgres, if the harness died before its teardown: its data folder is outside the checkout.
    python3 "$ROOT/e2e/hatchet/pg_cluster.py" remove "$RUN" || rc=1
    python3 "$ROOT/e2e/sweep.py" --pgids "$RUN/pgids" "$E2E_RUN_TAG" "$$" || rc=1
    # The crash scenarios' counts and the summary line, again as the run's last lines.
    grep -E '^(\[e2e-prod\] (ok|FAILED) in |e2e-prod: )' "$RUN/harness.log" 2>/dev/null || true
    echo "[e2e-prod] total wall time $(( $(date +%s) - t0 ))s (rc=$rc); artifacts in ${RUN#"$ROOT"/}"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${E2E_SKIP_INSTALL:-0}" != 1 ]; then
    phase "install: chromium, redis-server"
    missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/redis-server ] || missing+=(redis-server)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

# A previous run's leftovers, by their tag only: its process group ids may belong to others by now.
if [ -f "$RUN/tag" ]; then
    python3 "$ROOT/e2e/sweep.py" "$(cat "$RUN/tag")" "$$" || true
fi
rm -rf "$RUN"
mkdir -p "$RUN/logs"
echo "$E2E_RUN_TAG" > "$RUN/tag"
phase "hatchet-up"
HATCHET_DEMO_ETL_SECONDS=10 "$MAKE" --no-print-directory hatchet-up
phase "harness"
timeout --kill-after=30 "${E2E_TIMEOUT:-2400}" "$VENV/bin/python" "$ROOT/e2e/prod.py" --run-dir "$RUN" "$@" \
    > >(tee "$RUN/harness.log") 2>&1 &
harness_pid=$!
wait "$harness_pid"
