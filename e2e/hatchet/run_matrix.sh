#!/usr/bin/env bash
# `make real-hatchet-matrix` (part of `make test`): for each older Hatchet release in HATCHET_MATRIX, hatchet-up,
# the conformance scenarios and the exactly-once bulk tests (REAL_MATRIX_TESTS), hatchet-down; down also runs on
# failure and on Ctrl-C. Every release runs even if one fails; a table of the results ends the run, and the exit
# code is 1 if any failed. Without go on PATH it skips with a loud line, except under CI=true (as real-hatchet).
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
MAKE="${MAKE:-make}"
: "${HATCHET_MATRIX:?the releases to run, e.g. 'v0.75.0 v0.90.0'}"
: "${REAL_MATRIX_TESTS:?the real tests to run on each release}"
if ! command -v go >/dev/null 2>&1; then
    echo "!!!!!! real-hatchet-matrix SKIPPED: 'go' is not on PATH, so no Hatchet server can be built !!!!!!"
    [ "${CI:-}" != true ] || { echo "real-hatchet-matrix: CI=true, and a skipped real-server run fails CI" >&2; exit 1; }
    exit 0
fi
mkdir -p build/real
table=build/real/matrix.txt
: > "$table"
trap '"$MAKE" --no-print-directory hatchet-down >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
failed=0
for version in $HATCHET_MATRIX; do
    t0=$(date +%s)
    rc=0
    if "$MAKE" --no-print-directory hatchet-up HATCHET_VERSION="$version"; then
        REAL_TESTS="$REAL_MATRIX_TESTS" "$MAKE" --no-print-directory test-real || rc=$?
        result="$(cat build/real/summary.txt 2>/dev/null || echo "real-hatchet: engine $version, no summary")"
    else
        rc=1
        result="real-hatchet: engine $version, the server did not start (build/hatchet/logs)"
    fi
    "$MAKE" --no-print-directory hatchet-down || rc=1
    echo "$result; up + tests + down $(( $(date +%s) - t0 ))s" >> "$table"
    [ "$rc" -eq 0 ] || failed=1
done
echo "real-hatchet-matrix ($REAL_MATRIX_TESTS):"
cat "$table"
exit "$failed"
