#!/usr/bin/env bash
# `make test-real`: the real_hatchet tests against a live Hatchet, then one summary line.
#
# The server is the one `make hatchet-up` started (build/hatchet/env), or, when HATCHET_CLIENT_TOKEN is already
# set, your own: HATCHET_CLIENT_TOKEN (and optionally HATCHET_CLIENT_SERVER_URL, HATCHET_CLIENT_HOST_PORT,
# HATCHET_CLIENT_TLS_STRATEGY) with e2e/hatchet/worker.py serving that tenant. REAL_TESTS: the test files or ids
# to run (default: tests/real).
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PYTHON="$1"
if [ -z "${HATCHET_CLIENT_TOKEN:-}" ]; then
    if [ ! -f build/hatchet/env ]; then
        echo "test-real: no server: run 'make hatchet-up' first, or set HATCHET_CLIENT_TOKEN" >&2
        exit 2
    fi
    set -a; . build/hatchet/env; set +a
fi
export TOXIPROXY_BIN
TOXIPROXY_BIN="$(python3 e2e/hatchet/binaries.py toxiproxy "${TOXIPROXY_VERSION:-v2.5.0}")/toxiproxy-server"
mkdir -p build/real
rm -f build/real/summary.txt
rc=0
# REAL_TESTS narrows the run (the matrix's older releases run a selection); the whole real suite by default.
# shellcheck disable=SC2086
"$PYTHON" -m pytest -p no:cacheprovider -q --durations=25 --timeout=900 -m real_hatchet ${REAL_TESTS:-tests/real} \
    --junitxml=build/real/junit.xml \
    || rc=$?
"$PYTHON" - <<'PY'
import os, xml.etree.ElementTree as ET
suites = ET.parse("build/real/junit.xml").getroot()
suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
total, failed = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
skipped = int(suite.get("skipped", 0))
version = os.environ.get("HATCHET_ENGINE_VERSION", "unknown")
line = f"real-hatchet: engine {version}, {total - failed - skipped} passed, {failed} failed"
open("build/real/summary.txt", "w").write(line + "\n")
print(line)
PY
exit "$rc"
