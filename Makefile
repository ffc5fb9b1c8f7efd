# Developer and CI entry points. CI runs `make test` too (see .ci/run).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: .venv test lint demo bench soak clean

# The virtualenv, reinstalled whenever pyproject.toml changes.
.venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "capebase needs Python >= 3.11; run: make PYTHON=python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]'
	touch $@

lint: .venv
	$(BIN)/ruff check src tests
	$(BIN)/mypy

# The whole suite on SQLite, PostgreSQL and MariaDB (CAPEBASE_TEST_DBS=sqlite,... to narrow it).
test: lint
	$(BIN)/pytest -q

# 10,000 random operations on two processes through a PostgreSQL and a Redis restart (~4 min;
# not part of `make test`). Prints what it found; exits 1 on a leak or a lost event.
# Needs the servers `make test` uses. SOAK_ARGS=--operations 2000 for a shorter run.
soak: .venv
	$(BIN)/python -m tests.reliability.soak $(SOAK_ARGS)

# The example app; it prints the URL it serves on.
demo: .venv
	$(BIN)/python -m examples.todo

# Benchmarks against hand-written FastAPI, FastCRUD and PocketBase (~11 min; BENCH_ARGS=--quick
# to try it). Writes bench/RESULTS.md. Needs wrk: apt-get update && apt-get install -y wrk
bench: .venv
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

# Build and tool leftovers; the virtualenv stays (rm -rf .venv to rebuild it).
clean:
	rm -rf build dist .mypy_cache .ruff_cache .pytest_cache .hypothesis test-artifacts
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -name '*.egg-info' -type d -exec rm -rf {} +
