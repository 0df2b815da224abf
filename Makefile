# The two commands of the quickstart, and what they need. Each creates and fills the
# virtual environment from uv.lock on first use (and again when the lock changes).
VENV := .venv
STAMP := $(VENV)/.synced
UV_VERSION := 0.13.9

.PHONY: run test test-slow lint bench chaos

run: $(STAMP)  ## Run the whole system: Prefect server, worker, sync watcher (SQLite default).
	$(VENV)/bin/jobctl up

test: $(STAMP)  ## Run every test: unit, integration (SQLite and PostgreSQL), end to end.
	$(VENV)/bin/python -m pytest

test-slow: $(STAMP)  ## The long tests (marked slow), outside the default run.
	$(VENV)/bin/python -m pytest -m slow

lint: $(STAMP)  ## ruff, mypy, the import contracts between layers, declared dependencies.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/deptry .

bench: $(STAMP)  ## The benchmarks of bench/ (see bench/README.md).
	$(VENV)/bin/python -m bench

chaos: $(STAMP)  ## The 30-minute chaos soak: overlapping faults, then an exact account.
	$(VENV)/bin/python -m bench chaos

$(STAMP): pyproject.toml uv.lock
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/uv sync --frozen --all-extras --quiet --compile-bytecode
	touch $@
