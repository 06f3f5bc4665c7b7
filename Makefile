# Build, lint, type-check and test airflow-provider-hatchet.
# Needs only GNU make and python3 (3.11) with pip; everything else is bootstrapped from PyPI.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
PY_VERSION ?= $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
AIRFLOW_VERSION ?= 3.3.2
AIRFLOW2_VERSION ?= 2.10.5
# Airflow 2.10.5 sets an attribute on cryptography's MultiFernet, which cryptography 51 made a Rust type that
# refuses it: every connection read from the metadata DB then fails. Airflow's own 2.10.5 constraints pin 42.0.8.
AF2_PINS := "cryptography<51"
# The Airflow 3 lines below AIRFLOW_VERSION, each in its own venv (.venv-af30, ...): the newest patch of each
# that installs here. `make test-airflow-matrix` runs the tests marked `matrix` on each.
AIRFLOW_MATRIX ?= 3.0.6 3.1.8 3.2.2
# Pins a line needs where its own requirements let in a release that breaks it. Airflow 3.0 and 3.1 set the same
# MultiFernet attribute as 2.10 (AF2_PINS). Airflow 3.0 sets no upper bound on FastAPI; from 0.118 its execution
# API refuses the task runner's requests (no task starts: "Input should be a valid dictionary"); 3.1 caps it.
# Airflow 3.2 has no upper bound either; FastAPI 0.137+ (with cadwyn 9) fails every task it starts ("Model
# 'TITerminalStatePayload' needs a discriminator field"), and 3.3 caps it below 0.137. Airflow 3.2.2 (May 2026)
# predates svcs 26.2.0 (Aug 2026), whose FastAPI lifespan deletes app.state.svcs_registry when it exits: under
# dag.test() every task's first in-process API call then fails ("'State' object has no attribute
# 'svcs_registry'"). svcs 26.1.0 leaves the attribute alone.
MATRIX_PINS_30 := $(AF2_PINS) "fastapi<0.118"
MATRIX_PINS_31 := $(AF2_PINS)
MATRIX_PINS_32 := "fastapi<0.137" "svcs<26.2"
# The real Hatchet the suite is proven against: the newest release the Go module proxy serves here.
HATCHET_VERSION ?= v0.105.0
HATCHET_SDK_VERSION ?= 1.43.1
# The older releases CI also proves: the oldest the Go module proxy serves in full (v0.74.x and before answer 403)
# and a middle one. On each: the conformance scenarios (against the simulator answering as that release, with the
# differences of tests/real/accepted_deviations.yaml marked `before:`), the exactly-once bulk tests (REST and gRPC),
# the test button's version and the refused idempotency-key filter; the whole suite on the newest.
HATCHET_MATRIX ?= v0.75.0 v0.90.0
REAL_MATRIX_TESTS ?= tests/real/test_conformance.py tests/real/test_bulk_faults.py tests/real/test_grpc_bulk_faults.py \
	tests/real/test_run_lifecycle.py::test_runs_are_listed_by_idempotency_key \
	tests/real/test_client_and_hook.py::test_connection_reports_a_good_token_a_bad_one_and_a_foreign_tenant
TOXIPROXY_VERSION ?= v2.5.0

TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
VENV_AF2 := .venv-af2
VENV_WORKER := .venv-hatchet-worker
VENV_PROD := .venv-prod
VENV_DOCS := .venv-docs
STAMP_DOCS := $(VENV_DOCS)/.make-env-stamp
STAMP_PROD := $(VENV_PROD)/.make-env-stamp
STAMP_WORKER := $(VENV_WORKER)/.make-env-stamp
STAMP := $(VENV)/.make-env-stamp
STAMP_AF2 := $(VENV_AF2)/.make-env-stamp
# 3.1.8 -> .venv-af31; the version of a venv's name back from AIRFLOW_MATRIX.
matrix_venv = .venv-af$(subst .,,$(basename $(1)))
matrix_version = $(firstword $(foreach v,$(AIRFLOW_MATRIX),$(if $(filter $(1),$(subst .,,$(basename $(v)))),$(v))))
STAMPS_MATRIX := $(foreach v,$(AIRFLOW_MATRIX),$(call matrix_venv,$(v))/.make-env-stamp)
LINT_PATHS := airflow_provider_hatchet tests benchmarks dags_examples e2e scripts
PYTEST := -m pytest -q -p no:cacheprovider --durations=25 --timeout=600
# xdist workers per suite: the suites mostly wait on the simulator's windows and polls, not on the CPU, so more
# workers than cores pay off. A file's tests stay on one worker (module fixtures, one Postgres cluster per file).
PYTEST_WORKERS ?= 4
XDIST := -n $(PYTEST_WORKERS) --dist loadfile
# `make check`: no server on loopback, no Go, no Airflow metadata DB (the markers are in pyproject.toml).
CHECK_MARKS := not (airflow or loopback or faults or real_hatchet)

export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1
# Precompiled site-packages save ~2 s on every Python process that imports Airflow.
export UV_COMPILE_BYTECODE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help env env-af2 env-worker env-prod e2e-prod lint typecheck check unit pytest pytest-af3 pytest-af2 \
	test-airflow-matrix env-matrix \
	test-faults e2e test demo bench clean hatchet-up hatchet-down test-real real-hatchet grpc-pins dist dist-build \
	dist-af2 dist-af3 docs env-docs real-hatchet-matrix

help:
	@echo "make env         .venv: Airflow $(AIRFLOW_VERSION) + this package editable [testing,lineage] + group dev"
	@echo "make env-af2     .venv-af2: Airflow $(AIRFLOW2_VERSION) + this package editable [testing] + group dev"
	@echo "make lint        ruff check (for Python 3.10, and 3.12)"
	@echo "make typecheck   mypy --strict on the package, for Python 3.10, 3.11 and 3.12"
	@echo "make check       lint + typecheck + unit (the inner loop: no server, no Go, no Airflow DB)"
	@echo "make unit        the tests of make check: -m \"$(CHECK_MARKS)\""
	@echo "make pytest      pytest-af3 and pytest-af2 side by side (everything on the simulator, no Toxiproxy)"
	@echo "make pytest-af3  the suite on Airflow $(AIRFLOW_VERSION), but real_hatchet and faults"
	@echo "make pytest-af2  tests marked af2 on Airflow $(AIRFLOW2_VERSION)"
	@echo "make env-matrix  .venv-af30 ...: one venv per Airflow line of AIRFLOW_MATRIX ($(AIRFLOW_MATRIX))"
	@echo "make test-airflow-matrix  the Airflow-facing af2 and matrix tests on each of $(AIRFLOW_MATRIX), in turn"
	@echo "make test-faults the faults tier on the simulator, through Toxiproxy (built with go)"
	@echo "make e2e         end-to-end script (e2e/run.sh) if present"
	@echo "make e2e-prod    Airflow on Postgres + Celery/Redis against the real Hatchet, with crashes (CONTRIBUTING.md)"
	@echo "make hatchet-up  a real Hatchet $(HATCHET_VERSION) on 127.0.0.1 (Postgres, engine, API, worker)"
	@echo "make hatchet-down stop it"
	@echo "make test-real   the real_hatchet tests against the running server (build/hatchet/env)"
	@echo "make dist        build and check the wheel and sdist into dist/, then install the wheel into fresh Airflow"
	@echo "                 $(AIRFLOW2_VERSION) and $(AIRFLOW_VERSION) venvs: grpc pins, providers list, public imports, one DAG"
	@echo "make grpc-pins   the same as make dist (installing the wheel leaves Airflow's grpcio and protobuf as they were)"
	@echo "make docs        the docs site (mkdocs --strict) into build/site, and its link check"
	@echo "make real-hatchet-matrix  on each of $(HATCHET_MATRIX): up, the conformance and exactly-once bulk tests, down"
	@echo "make test        env + lint + typecheck + docs + pytest + test-airflow-matrix + test-faults + dist + e2e"
	@echo "                 + real-hatchet + real-hatchet-matrix + e2e-prod"
	@echo "make demo        env + scripts/demo.sh"
	@echo "make bench       import-time benchmark"
	@echo "make clean       remove environments, tools and caches"

# uv from PyPI in a private venv; falls back to `pip --target` where python3-venv is missing.
$(UV):
	@rm -rf $(TOOLS)
	@if $(PYTHON) -m venv $(TOOLS) >/dev/null 2>&1 && [ -x $(TOOLS)/bin/pip ]; then \
		$(TOOLS)/bin/pip install -q --disable-pip-version-check uv; \
	else \
		rm -rf $(TOOLS); \
		$(PYTHON) -m pip install -q --disable-pip-version-check --target $(TOOLS)/pylib uv; \
		mkdir -p $(TOOLS)/bin && ln -sf ../pylib/bin/uv $(UV); \
	fi
	@$(UV) --version

$(STAMP): pyproject.toml | $(UV)
	@start=$$(date +%s); \
	[ -x $(VENV)/bin/python ] || $(UV) venv -q --python $(PY_VERSION) $(VENV); \
	$(UV) pip install -q --python $(VENV)/bin/python "apache-airflow==$(AIRFLOW_VERSION)" -e ".[testing,lineage]" --group dev; \
	echo "$(VENV) ready (Airflow $(AIRFLOW_VERSION)) in $$(( $$(date +%s) - start ))s"
	@touch $@

$(STAMP_AF2): pyproject.toml Makefile | $(UV)
	@start=$$(date +%s); \
	[ -x $(VENV_AF2)/bin/python ] || $(UV) venv -q --python $(PY_VERSION) $(VENV_AF2); \
	$(UV) pip install -q --python $(VENV_AF2)/bin/python "apache-airflow==$(AIRFLOW2_VERSION)" $(AF2_PINS) -e ".[testing]" --group dev; \
	echo "$(VENV_AF2) ready (Airflow $(AIRFLOW2_VERSION)) in $$(( $$(date +%s) - start ))s"
	@touch $@

# One venv per line of AIRFLOW_MATRIX; the stamp depends on the Makefile, so a new patch in the list rebuilds it.
$(STAMPS_MATRIX): .venv-af%/.make-env-stamp: pyproject.toml Makefile | $(UV)
	@start=$$(date +%s); version=$(call matrix_version,$*); \
	[ -x .venv-af$*/bin/python ] || $(UV) venv -q --python $(PY_VERSION) .venv-af$*; \
	$(UV) pip install -q --python .venv-af$*/bin/python "apache-airflow==$$version" $(MATRIX_PINS_$*) -e ".[testing]" --group dev; \
	echo ".venv-af$* ready (Airflow $$version) in $$(( $$(date +%s) - start ))s"
	@touch $@

$(STAMP_WORKER): Makefile | $(UV)
	@[ -x $(VENV_WORKER)/bin/python ] || $(UV) venv -q --python $(PY_VERSION) $(VENV_WORKER)
	$(UV) pip install -q --python $(VENV_WORKER)/bin/python "hatchet-sdk==$(HATCHET_SDK_VERSION)"
	@touch $@

# `make e2e-prod` only: the celery provider, a Postgres driver and playwright stay out of .venv.
$(STAMP_PROD): pyproject.toml | $(UV)
	@start=$$(date +%s); \
	[ -x $(VENV_PROD)/bin/python ] || $(UV) venv -q --python $(PY_VERSION) $(VENV_PROD); \
	$(UV) pip install -q --python $(VENV_PROD)/bin/python "apache-airflow==$(AIRFLOW_VERSION)" -e ".[testing]" --group prod-e2e; \
	echo "$(VENV_PROD) ready (Airflow $(AIRFLOW_VERSION), CeleryExecutor) in $$(( $$(date +%s) - start ))s"
	@touch $@

# `make docs` only: MkDocs, Material, mkdocstrings and linkchecker (the `docs` group), no Airflow.
$(STAMP_DOCS): pyproject.toml | $(UV)
	@[ -x $(VENV_DOCS)/bin/python ] || $(UV) venv -q --python $(PY_VERSION) $(VENV_DOCS)
	$(UV) pip install -q --python $(VENV_DOCS)/bin/python --group docs
	@touch $@

env: $(STAMP)

env-worker: $(STAMP_WORKER)

env-af2: $(STAMP_AF2)

env-matrix: $(STAMPS_MATRIX)

env-prod: $(STAMP_PROD)

env-docs: $(STAMP_DOCS)

# Only Python 3.11 runs the tests. pyproject's target is py310, the oldest supported; the py312 pass drops the rules
# that propose syntax newer than 3.10 (UP), the import order of a 3.11+ stdlib (I) and ASYNC109 (asyncio.timeout).
lint: env
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff check --target-version py312 --extend-ignore UP,I,ASYNC109 $(LINT_PATHS)
	$(VENV)/bin/lint-imports --no-cache

# The stubs and Airflow are those installed for 3.11; --python-version checks the package's own code per version.
typecheck: env
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --python-version 3.10
	$(VENV)/bin/mypy --python-version 3.12

check: lint typecheck unit

# --offline fails a test that opens a TCP socket or creates the metadata DB: it belongs to pytest, not here.
# No xdist: in one process these take ~15 s, less than two workers take to start.
unit: env
	$(VENV)/bin/python $(PYTEST) --offline -m "$(CHECK_MARKS)"

# The two suites side by side, each with its own xdist workers; each one's output shows when it ends.
pytest: env env-af2
	@$(MAKE) --no-print-directory -j2 --output-sync=target pytest-af3 pytest-af2

# Exit code 5 (nothing collected) fails the main suite on purpose.
pytest-af3: env
	$(VENV)/bin/python $(PYTEST) $(XDIST) -m "not (real_hatchet or faults)"

pytest-af2: env-af2
	$(VENV_AF2)/bin/python $(PYTEST) $(XDIST) -m "af2 and not faults" \
		|| { rc=$$?; [ $$rc -eq 5 ] && echo "no af2 tests collected"; [ $$rc -eq 5 ]; }

# The Airflow 3 lines below AIRFLOW_VERSION, one after another: each already runs PYTEST_WORKERS workers on CI's 2
# cores, so side by side they would only contend (and interleave their output). The client's and the simulator's own modules import no Airflow (lint-imports): they
# run once on each of 2.10 and 3.3, not again here.
MATRIX_IGNORE := test_client.py test_client_config.py test_client_responses.py test_grpc_client.py \
	test_simulator.py test_simulator_server.py test_scheduling.py test_task_logs.py
MATRIX_MARKS := (af2 or matrix) and not (faults or real_hatchet)
test-airflow-matrix: $(STAMPS_MATRIX)
	@for version in $(AIRFLOW_MATRIX); do \
		venv=.venv-af$$(echo "$${version%.*}" | tr -d .); start=$$(date +%s); \
		echo "== Airflow $$version ($$venv)"; \
		$$venv/bin/python $(PYTEST) $(XDIST) -m "$(MATRIX_MARKS)" $(addprefix --ignore=tests/,$(MATRIX_IGNORE)) \
			|| { echo "test-airflow-matrix: Airflow $$version failed" >&2; exit 1; }; \
		echo "== Airflow $$version: $$(( $$(date +%s) - start ))s"; \
	done

# The [sim] half of the fault tests, through a Toxiproxy built here (never inside pytest). Without go (and no
# cached build) it skips with a loud line, except under CI=true, where that is a failure, as real-hatchet does.
test-faults: env
	@if ! bin="$$(python3 e2e/hatchet/binaries.py toxiproxy $(TOXIPROXY_VERSION))"; then \
		echo "!!!!!! test-faults SKIPPED: no toxiproxy-server, and it could not be built (above) !!!!!!"; \
		[ "$${CI:-}" != true ] || { echo "test-faults: CI=true, and skipped fault tests fail CI" >&2; exit 1; }; \
		exit 0; \
	fi; \
	TOXIPROXY_BIN="$$bin/toxiproxy-server" $(VENV)/bin/python $(PYTEST) $(XDIST) -m "faults and not real_hatchet"

e2e: env
	@if [ -f e2e/run.sh ]; then bash e2e/run.sh; else echo "e2e/run.sh not present; skipping"; fi

hatchet-up: env env-worker
	$(VENV)/bin/python e2e/hatchet/real_stack.py up --version $(HATCHET_VERSION) --worker-python $(VENV_WORKER)/bin/python

hatchet-down:
	@if [ -x $(VENV)/bin/python ]; then $(VENV)/bin/python e2e/hatchet/real_stack.py down; fi

# Against the server `make hatchet-up` started, or any Hatchet whose HATCHET_CLIENT_* variables are set.
test-real: env
	@TOXIPROXY_VERSION=$(TOXIPROXY_VERSION) bash e2e/hatchet/test_real.sh $(VENV)/bin/python

# In `make test`: up, test-real, down (down also on failure and Ctrl-C); see e2e/hatchet/run_real.sh.
real-hatchet: env
	@MAKE="$(MAKE)" bash e2e/hatchet/run_real.sh

# In `make test`: the older Hatchet releases, one server at a time; see e2e/hatchet/run_matrix.sh.
real-hatchet-matrix: env
	@MAKE="$(MAKE)" HATCHET_MATRIX="$(HATCHET_MATRIX)" REAL_MATRIX_TESTS="$(REAL_MATRIX_TESTS)" \
		bash e2e/hatchet/run_matrix.sh

# The wheel and sdist into dist/, checked; then the wheel in fresh venvs of both Airflow lines, side by side: it
# leaves Airflow's grpcio and protobuf as they were, is listed, imports, and runs a DAG on the simulator
# (scripts/dist_check.py). Its own Airflow venvs, not .venv: an editable install would hide a file the wheel lacks.
# DIST_RELEASE=<tag> (the release workflow) refuses a dirty tree and a tag that is not v<version>.
dist: dist-build
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -j2 --output-sync=target dist-af2 dist-af3; \
	echo "make dist: both Airflow installs checked in $$(( $$(date +%s) - start ))s"

dist-build: | $(UV)
	$(PYTHON) scripts/dist_check.py build $(if $(DIST_RELEASE),--release $(DIST_RELEASE))

# These two use the files in dist/ as they are: `make dist` builds them first.
dist-af2: | $(UV)
	$(PYTHON) scripts/dist_check.py install $(AIRFLOW2_VERSION) $(AF2_PINS)

dist-af3: | $(UV)
	$(PYTHON) scripts/dist_check.py install $(AIRFLOW_VERSION)

# Folded into `make dist`, which builds the same fresh venvs.
grpc-pins: dist

# Starts and stops its own Hatchet server (make hatchet-up / hatchet-down); see e2e/run_prod.sh.
e2e-prod: env env-worker env-prod
	@MAKE="$(MAKE)" bash e2e/run_prod.sh

# Warnings fail the build (broken links and anchors among them); then linkchecker follows every link of the
# built site offline, anchors included, and the external ones are listed and checked for form, not fetched.
docs: env-docs
	@rm -rf build/site
	NO_MKDOCS_2_WARNING=1 $(VENV_DOCS)/bin/mkdocs build --strict
	@# linkchecker run as root reads as `nobody`, who may not enter the checkout: it reads a copy in /tmp.
	@copy="$$(mktemp -d)"; trap 'rm -rf "$$copy"' EXIT; chmod 755 "$$copy"; cp -R build/site/. "$$copy"; \
	rc=0; $(VENV_DOCS)/bin/linkchecker -f docs/linkcheckerrc --no-status -v -o csv "$$copy/index.html" \
		> build/linkcheck.csv 2> build/linkcheck.log || rc=$$?; \
	$(VENV_DOCS)/bin/python docs/_external_links.py build/linkcheck.csv || rc=1; \
	[ $$rc -eq 0 ] || { grep -v 'Running as root' build/linkcheck.log >&2; echo "make docs: link check failed" >&2; exit 1; }

test: env lint typecheck docs pytest test-airflow-matrix test-faults dist e2e real-hatchet real-hatchet-matrix e2e-prod

demo: env
	bash scripts/demo.sh

bench: env
	$(VENV)/bin/python benchmarks/import_time.py

# Stops the real server first and removes the Postgres data folders the stacks keep outside the checkout.
clean:
	-@$(MAKE) --no-print-directory hatchet-down
	-@python3 e2e/hatchet/pg_cluster.py remove build/hatchet build/e2e/prod
	rm -rf $(VENV) $(VENV_AF2) $(VENV_PROD) $(foreach v,$(AIRFLOW_MATRIX),$(call matrix_venv,$(v))) $(TOOLS) build dist .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
