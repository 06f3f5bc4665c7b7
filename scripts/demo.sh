#!/usr/bin/env bash
# `make demo`: run example DAGs from dags_examples/ end to end on real Airflow (`airflow dags test`, SQLite
# metadata DB in a temporary AIRFLOW_HOME) and print the DAG runs and the Hatchet runs they triggered.
#
# The Hatchet server is the bundled simulator on a free loopback port, unless AIRFLOW_CONN_HATCHET_DEFAULT or
# HATCHET_CLIENT_TOKEN is set: then the DAGs talk to that server, which must have the workflows they run
# (demo-multi, demo-etl) with a worker serving them.
#
# Environment:
#   DEMO_DAGS="dag_id ..."   the DAGs to run (default: example_hatchet_trigger_and_wait example_hatchet_bulk)
#   DEMO_KEEP=1              keep the temporary AIRFLOW_HOME (logs, metadata DB) after a successful run too
#   DEMO_PYTHON=PATH         the interpreter with Airflow and this package (default .venv/bin/python)
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${DEMO_PYTHON:-$ROOT/.venv/bin/python}"
AIRFLOW="$(dirname "$PY")/airflow"
read -r -a DAGS <<< "${DEMO_DAGS:-example_hatchet_trigger_and_wait example_hatchet_bulk}"
DEMO_HOME="$(mktemp -d "${TMPDIR:-/tmp}/hatchet-demo.XXXXXX")"
sim_pid=""
started=$SECONDS

say() { printf '[demo %3ss] %s\n' "$(( SECONDS - started ))" "$*"; }
# Airflow log lines without the timestamp, level, logger and source location; indented under the last `say`.
tidy() { sed -E 's/^[0-9T:.-]+Z \[[a-z ]+\] //; s/ +\[airflow[^]]*\].*$//' | cut -c1-200 | sed 's/^/           /'; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
        kill -TERM "$sim_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$sim_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    if [ "$rc" -eq 0 ] && [ "${DEMO_KEEP:-0}" != 1 ]; then
        rm -rf "$DEMO_HOME"
    else
        echo "Airflow home (logs, metadata DB) kept in $DEMO_HOME"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    local log="$1"; shift
    echo "FAILED: $*" >&2
    if [ -f "$log" ]; then
        echo "--- last lines of $log" >&2
        tail -n 40 "$log" | cut -c1-400 >&2
        echo "---" >&2
    fi
    exit 1
}

[ -x "$PY" ] && [ -x "$AIRFLOW" ] || { echo "No Airflow at $PY: run \`make demo\` (or \`make env\` first)." >&2; exit 1; }

# Only this temporary home counts: no user config, settings, DB or DAGs leak in (connections do).
unset AIRFLOW_CONFIG
while read -r name; do unset "$name"; done < <(compgen -e | grep '^AIRFLOW__' || true)
export AIRFLOW_HOME="$DEMO_HOME"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags_examples"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$DEMO_HOME/airflow.db"
export AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS=False
export AIRFLOW__LOGGING__BASE_LOG_FOLDER="$DEMO_HOME/logs"
# A task that retries (example_hatchet_bulk has retries=1) waits seconds, not the default 5 minutes.
export AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY=5
mkdir -p "$DEMO_HOME/logs"

if [ -n "${AIRFLOW_CONN_HATCHET_DEFAULT:-}" ] || [ -n "${HATCHET_CLIENT_TOKEN:-}" ]; then
    source_var=AIRFLOW_CONN_HATCHET_DEFAULT
    [ -n "${AIRFLOW_CONN_HATCHET_DEFAULT:-}" ] || source_var=HATCHET_CLIENT_TOKEN
    say "Using the Hatchet server configured by $source_var"
    "$PY" scripts/demo.py check > "$DEMO_HOME/check.log" 2>&1 || fail "$DEMO_HOME/check.log" "cannot use that server"
    tidy < "$DEMO_HOME/check.log"
else
    say "Starting the Hatchet simulator on a free loopback port"
    "$PY" -m airflow_provider_hatchet.testing --port 0 --info-file "$DEMO_HOME/simulator.json" \
        > "$DEMO_HOME/simulator.log" 2>&1 &
    sim_pid=$!
    AIRFLOW_CONN_HATCHET_DEFAULT="$("$PY" scripts/demo.py simulator-conn "$DEMO_HOME/simulator.json" \
        2>> "$DEMO_HOME/simulator.log")" || fail "$DEMO_HOME/simulator.log" "the simulator did not start"
    export AIRFLOW_CONN_HATCHET_DEFAULT
    say "$(head -n 1 "$DEMO_HOME/simulator.log") (pid $sim_pid)"
fi

say "Creating the metadata DB (airflow db migrate, SQLite in $DEMO_HOME)"
"$AIRFLOW" db migrate > "$DEMO_HOME/db-migrate.log" 2>&1 || fail "$DEMO_HOME/db-migrate.log" "airflow db migrate"

failed_log=""
for dag_id in "${DAGS[@]}"; do
    log="$DEMO_HOME/logs/dags-test-$dag_id.log"
    say "Running DAG $dag_id: airflow dags test $dag_id"
    if ! "$AIRFLOW" dags test "$dag_id" > "$log" 2>&1; then
        say "airflow dags test $dag_id failed (log: $log)"
        failed_log="${failed_log:-$log}"
    fi
    # The provider's own task log lines, without Airflow's chatter.
    grep -E "Triggered Hatchet|Hatchet run: |Triggering [0-9]+ Hatchet|Hatchet runs? .*(completed|finished)" "$log" \
        | grep -v "not found yet" | tidy || true
done

say "Summary"
summary_ok=1
"$PY" scripts/demo.py summary "${DAGS[@]}" 2> "$DEMO_HOME/summary.log" || summary_ok=0
[ -z "$failed_log" ] || fail "$failed_log" "a DAG run failed"
[ "$summary_ok" = 1 ] || fail "$DEMO_HOME/summary.log" "the summary found a failed DAG run or no Hatchet run"
airflow_version="$("$PY" -c 'from importlib.metadata import version; print(version("apache-airflow"))')"
server="Hatchet server"
[ -z "$sim_pid" ] || server="Hatchet simulator"
echo
say "Done: ${#DAGS[@]} DAG run(s) on Airflow $airflow_version against the $server in $(( SECONDS - started )) s."
