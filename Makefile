# Developer and CI entry points. CI runs `make test` too (see .ci/run).
#
# Every environment is installed from uv.lock, so a fresh clone resolves exactly what was tested.
# `make lock` refreshes the lock (a deliberate commit); nothing else changes it.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
# Never let uv download an interpreter: use the one named by PYTHON.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
SYNC := $(UV) sync --frozen --python $(PYTHON)

.PHONY: .venv demo-env test lint docs docs-build test-oldest package compat demo bench soak deep mutate lock clean

# uv itself, pinned, in a virtualenv of its own (pip is all a fresh machine needs).
$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "capebase needs Python >= 3.11; run: make PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==$(UV_VERSION)

# The development environment: capebase (editable) with the dev extra, exactly as locked.
# Rebuilt when pyproject.toml or uv.lock change, or when PYTHON names another interpreter.
.venv:
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print(sys.version)')" != \
		"$$($(PYTHON) -c 'import sys; print(sys.version)')" ]; then rm -f $(VENV)/.installed; fi
	@$(MAKE) --no-print-directory $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(SYNC) --extra dev
	touch $@

lint: .venv
	$(BIN)/ruff check src tests
	$(BIN)/mypy

# The documentation site (docs/, mkdocs.yml). `make docs` serves it with live reload;
# `make docs-build` builds it into build/site with --strict: a broken link, anchor or API
# reference fails (a few seconds; part of `make test`).
DOCS_PORT ?= 8001
export NO_MKDOCS_2_WARNING := 1
docs: .venv
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

docs-build: .venv
	$(BIN)/mkdocs build --strict --quiet

# The whole suite on SQLite, PostgreSQL and MariaDB (CAPEBASE_TEST_DBS=sqlite,... to narrow it),
# on two workers but for the `serial` tests, which restart the servers the others use (see
# tests/conftest.py); then the oldest versions pyproject.toml allows.
# The packages are built first: tests/test_package.py installs that wheel (CAPEBASE_WHEEL_DIR)
# instead of building one of its own.
test: lint docs-build package
	CAPEBASE_WHEEL_DIR=$(CURDIR)/dist $(BIN)/pytest -q -n 2 --dist worksteal -m "not serial" --durations=25
	$(BIN)/pytest -q -m serial --durations=10
	$(MAKE) test-oldest

# The lowest version of every direct dependency that pyproject.toml allows, on SQLite: proves the
# declared floors. Its own virtualenv; the locked .venv is untouched. The server-restarting
# reliability and scale-out suites, the browser test and the documentation's tests run only in
# the locked environment, and so does tests/test_package.py (its clean virtualenv gets the
# locked versions, not the lowest: the same check as in the locked run).
OLDEST := .venv-oldest
test-oldest: | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(OLDEST)
	VIRTUAL_ENV=$(OLDEST) $(UV) pip install -q --resolution lowest-direct -e '.[dev]'
	CI= CAPEBASE_TEST_DBS=sqlite $(OLDEST)/bin/pytest -q -n 2 --dist worksteal -p no:cacheprovider \
		--ignore=tests/reliability --ignore=tests/scaleout --ignore=tests/demo --ignore=tests/docs --ignore=tests/clients \
		--ignore=tests/test_package.py

# sdist and wheel, checked by twine (tests/test_package.py, in the suite, installs the wheel
# into a clean virtualenv and serves the Quick start from it; `make test` builds them first).
package: .venv
	rm -rf dist
	$(BIN)/python -m build --outdir dist . > /dev/null
	$(BIN)/twine check --strict dist/*

# capebase 0.1.0a3's own end-to-end tests (tests/test_rls.py and tests/test_subscribe.py from
# its sdist on PyPI, checked against a pinned sha256) run against this checkout. Not part of
# `make test`, which downloads nothing. The deselected tests are the ones we differ from on
# purpose; docs/guides/upgrading.md ("Compatibility with capebase 0.1") says why.
COMPAT_VERSION := 0.1.0a3
COMPAT_SDIST := .cache/capebase-$(COMPAT_VERSION).tar.gz
COMPAT_RUN := .cache/compat-run
COMPAT_DESELECT := \
	test_subscribe.py::test_subscribe_decorator \
	test_subscribe.py::test_multiple_subscriptions_same_model \
	test_subscribe.py::test_subscribe_handler_called_for_sql_constructs \
	test_subscribe.py::test_sql_constructs_bulk_operations \
	test_subscribe.py::test_subscribe_handler_called_for_statements \
	test_subscribe.py::test_subscribe_handler_called_for_bulk_operations

compat: .venv $(COMPAT_SDIST)
	rm -rf $(COMPAT_RUN) && mkdir -p $(COMPAT_RUN)
	tar -xzf $(COMPAT_SDIST) -C $(COMPAT_RUN) --strip-components=2 \
		capebase-$(COMPAT_VERSION)/tests/test_rls.py capebase-$(COMPAT_VERSION)/tests/test_subscribe.py
	cp compat-0.1/conftest.py compat-0.1/pytest.ini $(COMPAT_RUN)/
	cd $(COMPAT_RUN) && ../../$(BIN)/pytest -q -c pytest.ini --rootdir . -p no:cacheprovider \
		test_rls.py test_subscribe.py $(addprefix --deselect ,$(COMPAT_DESELECT))

# pip, not uv: uv has no `pip download`.
$(COMPAT_SDIST):
	mkdir -p .cache
	$(PYTHON) -m pip download -q --no-deps --no-binary :all: capebase==$(COMPAT_VERSION) -d .cache
	cd .cache && sha256sum -c ../compat-0.1/capebase-$(COMPAT_VERSION).tar.gz.sha256

# Only what the demo needs (no test or lint tools), in its own virtualenv.
DEMO_VENV := .venv-demo
demo-env: $(DEMO_VENV)/.installed

$(DEMO_VENV)/.installed: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(DEMO_VENV) $(SYNC) --extra demo
	touch $@

# The example app; it prints the URL it serves on.
demo: demo-env
	$(DEMO_VENV)/bin/python -m examples.todo

# Re-resolve every dependency to its newest allowed version and rewrite uv.lock.
lock: | $(UV)
	$(UV) lock --upgrade

# 10,000 random operations on two processes through a PostgreSQL and a Redis restart (~4 min;
# not part of `make test`). Prints what it found; exits 1 on a leak or a lost event.
# Needs the servers `make test` uses. SOAK_ARGS=--operations 2000 for a shorter run.
soak: .venv
	$(BIN)/python -m tests.reliability.soak $(SOAK_ARGS)

# The Hypothesis tests, not derandomized: a fresh seed each run and ten times the examples of
# `make test` (the `deep` profile, tests/_hypothesis.py), on every database. It prints the seed
# first; DEEP_SEED=<seed> replays a run. (~10 min; DEEP_ARGS=-k stateful and the like to narrow.)
ifndef DEEP_SEED
DEEP_SEED := $(shell $(PYTHON) -c 'import random; print(random.randrange(2**32))')
endif
DEEP_TESTS := tests/policy/test_stateful.py tests/policy/test_predicates_agree.py
deep: .venv
	@echo "make deep: --hypothesis-seed=$(DEEP_SEED) (make deep DEEP_SEED=$(DEEP_SEED) replays it)"
	$(BIN)/pytest -q -p no:cacheprovider --hypothesis-profile=deep \
		--hypothesis-seed=$(DEEP_SEED) --hypothesis-show-statistics $(DEEP_TESTS) $(DEEP_ARGS)

# Mutation testing (mutmut) of the policy, change capture, realtime visibility, lockout and
# direct writes, each group against its own fast tests on SQLite (tests/mutate.py; report and
# survivors per group in build/mutate/<group>/report.txt; docs/MUTATION.md records the runs).
# CPU-heavy: hours for every group; MUTATE=lockout (or policy, statements, shapes, coverage,
# capture, visibility, hub, fallible, flush, mapper, writes) for one. Exits 1 if a mutant survived.
MUTATE ?= policy statements shapes coverage fallible flush mapper capture visibility hub lockout writes
mutate: | $(UV)
	$(SYNC) --extra dev --extra mutate
	$(BIN)/python -m tests.mutate $(MUTATE) $(MUTATE_ARGS); status=$$?; \
		$(SYNC) --extra dev; exit $$status

# Benchmarks against hand-written FastAPI, FastCRUD and PocketBase (~11 min; BENCH_ARGS=--quick
# to try it). Writes bench/RESULTS.md. Needs wrk: apt-get update && apt-get install -y wrk
bench: | $(UV)
	$(SYNC) --extra dev --extra bench
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(SYNC) --extra dev

# Build and tool leftovers; the virtualenvs stay (rm -rf .venv* .tools to rebuild them).
clean:
	rm -rf build dist .mypy_cache .ruff_cache .pytest_cache .hypothesis test-artifacts .cache
	find . -path './.venv*' -prune -o -path ./$(TOOLS) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	find . -path './.venv*' -prune -o -path ./$(TOOLS) -prune -o -name '*.egg-info' -type d -exec rm -rf {} +
