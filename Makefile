# Callbook: `make run` starts the app on its embedded defaults; `make test` runs every check.
# Both build .venv from the hashed lock files with Python's own pip, so a fresh machine needs only Python 3.11.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help install run test lint typecheck pytest lock bench clean

help:
	@echo "make run    - set up and start Callbook on http://$(HOST):$(PORT) (web + Celery worker + beat)"
	@echo "make test   - lint, type-check and run the test suite"
	@echo "make bench  - run the benchmark suite (prints ratios against same-run baselines)"
	@echo "make lock   - re-resolve requirements*.lock from pyproject.toml"

$(STAMP): requirements-dev.lock requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Callbook needs Python 3.11 (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	@touch $@

install: $(STAMP)

# The embedded mode is a development mode: DEBUG on, SQLite and recordings under var/, broker on the filesystem.
run: export DEBUG ?= 1
run: export PATH := $(CURDIR)/$(BIN):$(PATH)
run: export HOST := $(HOST)
run: export PORT := $(PORT)
# The simulator dialer calls this server's API back (demo campaign runs): follow PORT unless told otherwise.
run: export CALLBOOK_PUBLIC_URL ?= http://$(HOST):$(PORT)
run: $(STAMP)
	@mkdir -p var/recordings
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo ""
	@echo "  Callbook: http://$(HOST):$(PORT)/   (API docs: http://$(HOST):$(PORT)/api/docs/)"
	@echo "  Sign in with one of the logins above. Ctrl-C stops the web server, worker and beat."
	@echo ""
	$(BIN)/honcho --env /dev/null -f Procfile.dev start

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy loads the settings module (django-stubs); it only needs a key, never a real one.
typecheck: $(STAMP)
	SECRET_KEY=typecheck-only $(BIN)/mypy .

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py

lock:
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -c requirements.lock -o requirements-dev.lock

clean:
	rm -rf var/test .pytest_cache .mypy_cache .ruff_cache
