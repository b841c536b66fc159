# ClawDirector: `make run` to try it, `make test` to test it. Both install what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
EMULATOR_PORT ?= 8765
PGPORT ?= 54329
export PGPORT

.PHONY: help install run emulator test test-sqlite bench check lint clean

help:
	@echo "make run      install, migrate, start the Sprites emulator + web app on $(HOST):$(PORT)"
	@echo "make test     install, start a throwaway PostgreSQL, run the whole suite on it"
	@echo "make bench    heartbeat sweep, provisioning and admin benchmarks (prints figures)"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed

# With no SPRITES_API_TOKEN and DEBUG on, the app talks to the local emulator (banner below).
run: export DEBUG ?= 1
run: export SPRITES_EMULATOR_PORT = $(EMULATOR_PORT)
run: install
	$(PY) manage.py migrate --noinput -v0
	@mkdir -p .run
	@if [ -z "$$SPRITES_API_TOKEN" ]; then \
	  echo "==> Starting the Sprites emulator on 127.0.0.1:$(EMULATOR_PORT) (no SPRITES_API_TOKEN set)"; \
	  $(PY) manage.py sprites_emulator --port $(EMULATOR_PORT) > .run/emulator.log 2>&1 & echo $$! > .run/emulator.pid; \
	  for i in $$(seq 50); do curl -fs http://127.0.0.1:$(EMULATOR_PORT)/_emulator/state >/dev/null 2>&1 && break; sleep 0.1; done; \
	  $(PY) manage.py bootstrap_demo; \
	fi
	@echo "==> ClawDirector on http://$(HOST):$(PORT)/admin/   (API: http://$(HOST):$(PORT)/api/docs/)"
	@trap 'test -f .run/emulator.pid && kill $$(cat .run/emulator.pid) 2>/dev/null; rm -f .run/emulator.pid' EXIT INT TERM; \
	  $(PY) manage.py runserver $(HOST):$(PORT) --noreload

emulator: install
	$(PY) manage.py sprites_emulator --port $(EMULATOR_PORT)

# The whole suite on a real PostgreSQL server that this target starts and stops.
test: install
	@DATABASE_URL=$$(scripts/pg.sh start) || exit 1; \
	  trap 'scripts/pg.sh stop' EXIT; \
	  echo "==> Running the suite on $${DATABASE_URL%%:*}://127.0.0.1:$(PGPORT) (PostgreSQL)"; \
	  DATABASE_URL=$$DATABASE_URL $(PY) -m pytest $(PYTEST_ARGS)

# Quick local loop on SQLite (PostgreSQL-only tests skip themselves).
test-sqlite: install
	DATABASE_URL=sqlite:///:memory: $(PY) -m pytest $(PYTEST_ARGS)

bench: install
	@URL=$$(scripts/pg.sh start) || exit 1; \
	  trap 'scripts/pg.sh stop' EXIT; \
	  BENCH_URL=$${URL%/*}/bench_clawdirector; \
	  scripts/pg.sh createdb bench_clawdirector >/dev/null; \
	  DATABASE_URL=$$BENCH_URL $(PY) manage.py migrate --noinput -v0 && \
	  DATABASE_URL=$$BENCH_URL $(PY) manage.py bench_heartbeat $(BENCH_ARGS) && \
	  DATABASE_URL=$$BENCH_URL $(PY) manage.py bench_provision && \
	  DATABASE_URL=$$BENCH_URL $(PY) manage.py bench_admin

check: install
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) .run .pytest_cache staticfiles
