#!/usr/bin/env bash
# `make real-hatchet` (part of `make test`): hatchet-up, test-real, hatchet-down; down also runs on failure and
# on Ctrl-C. Without go on PATH it skips with a loud line, except under CI=true, where that is a failure.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
MAKE="${MAKE:-make}"
if ! command -v go >/dev/null 2>&1; then
    echo "!!!!!! real-hatchet SKIPPED: 'go' is not on PATH, so the real Hatchet server cannot be built !!!!!!"
    if [ "${CI:-}" = true ]; then
        echo "real-hatchet: CI=true, and a skipped real-server run fails CI" >&2
        exit 1
    fi
    exit 0
fi
# Stop the server, then repeat test-real's summary so that it stays the run's last line.
down() {
    local rc=$?
    "$MAKE" --no-print-directory hatchet-down || rc=1
    [ -f build/real/summary.txt ] && cat build/real/summary.txt
    exit "$rc"
}
trap down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
t0=$(date +%s)
rm -f build/real/summary.txt
"$MAKE" --no-print-directory hatchet-up
echo "real-hatchet: server up in $(( $(date +%s) - t0 ))s"
"$MAKE" --no-print-directory test-real
# The AssetWatcher example on Airflow's real triggerer, against this server (the e2e run's watcher phase).
E2E_RUN_DIR="$ROOT/build/e2e/real" E2E_SKIP_INSTALL=1 bash e2e/run.sh --hatchet real
