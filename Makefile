# TargetGrid. Quick start: `make run` (serve) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WS_PORT ?= 8001
WORKERS ?= 2
CONCURRENCY ?= 2
# Celery queues by kind (config/settings.py CELERY_TASK_ROUTES): `make worker` scores, `make
# worker-imports` runs file imports, so two big imports never hold the slots scoring needs.
QUEUES ?= scoring,realtime,celery
IMPORT_QUEUES ?= imports
IMPORT_CONCURRENCY ?= 1
# Outbound webhooks wait on receivers: their own queue and worker (`make worker-outbound`); each
# process sends from a pool of TARGETGRID_WEBHOOK_SENDER_THREADS threads.
OUTBOUND_CONCURRENCY ?= 1
# The sender runs at a lower CPU priority: scoring bursts first, deliveries catch up (bench/README.md).
OUTBOUND_NICE ?= 10
# gthread: HTTP keep-alive (the sync worker closes every connection) and overlapped database waits.
WEB_THREADS ?= 4

.PHONY: run test install install-dev install-prod web worker worker-imports worker-outbound beat prod bench bench-pages bench-rescore bench-alerts chaos seed migrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(VENV)/.installed $@

$(VENV)/.installed-prod: requirements.txt requirements-prod.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-prod.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
install-prod: $(VENV)/.installed-prod

migrate: install
	$(BIN)/python manage.py migrate --noinput

## Embedded default: SQLite, in-process queue, in-memory channel layer; HTTP + WebSocket on :$(PORT).
run: migrate
	$(BIN)/python manage.py bootstrap
	@echo "TargetGrid on http://$(HOST):$(PORT)/  (API: /api/, health: /health, WebSocket: /ws/scores/)"
	$(BIN)/daphne -b $(HOST) -p $(PORT) config.asgi:application

## The suite on SQLite; again on MariaDB/MySQL + Redis + a real Celery worker when
## TEST_DATABASE_URL / TEST_REDIS_URL are set.
test: install-dev
	env -u TEST_DATABASE_URL -u TEST_REDIS_URL $(BIN)/pytest -q
	@if [ -n "$$TEST_DATABASE_URL$$TEST_REDIS_URL" ]; then \
		$(MAKE) --no-print-directory install-prod && \
		echo "== again against TEST_DATABASE_URL=$$TEST_DATABASE_URL TEST_REDIS_URL=$$TEST_REDIS_URL" && \
		$(BIN)/pytest -q; \
	fi

## Production processes (DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS, TARGETGRID_ENV=production).
## REST API on WSGI (gunicorn, :$(PORT)); WebSockets on daphne (:$(WS_PORT)); route /ws/ to it.
web: install-prod
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/daphne -b $(HOST) -p $(WS_PORT) config.asgi:application & \
	$(BIN)/gunicorn config.wsgi -b $(HOST):$(PORT) -w $(WORKERS) -k gthread --threads $(WEB_THREADS) --keep-alive 30 --access-logfile - ; \
	kill %1 2>/dev/null || true

## Run each under a supervisor in production (README "Operations"): a worker that exits is restarted.
worker: install-prod
	$(BIN)/celery -A config worker -l info -c $(CONCURRENCY) -Q $(QUEUES)

worker-imports: install-prod
	$(BIN)/celery -A config worker -l info -c $(IMPORT_CONCURRENCY) -Q $(IMPORT_QUEUES) -n imports@%h

worker-outbound: install-prod
	nice -n $(OUTBOUND_NICE) $(BIN)/celery -A config worker -l info -c $(OUTBOUND_CONCURRENCY) -Q outbound -n outbound@%h

beat: install-prod
	$(BIN)/celery -A config beat -l info -s $${TARGETGRID_DATA_DIR:-var}/celerybeat-schedule

## The whole production set under supervisord (deploy/supervisord.conf): gunicorn (API, :$(PORT)),
## daphne (WebSockets, :$(WS_PORT)), $(CELERY_WORKERS) scoring workers, one import worker, one outbound webhook worker, beat; each restarted whenever it exits.
## Needs DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS (TARGETGRID_ENV=production).
## WORKERS is gunicorn's -w (as in `make web`); CELERY_WORKERS the number of Celery worker processes.
CELERY_WORKERS ?= 2
TARGETGRID_RUN_DIR ?= $(CURDIR)/var/run
prod: install-prod
	$(BIN)/python manage.py migrate --noinput
	mkdir -p $(TARGETGRID_RUN_DIR)
	PATH="$(abspath $(BIN)):$$PATH" HOST=$(HOST) PORT=$(PORT) WS_PORT=$(WS_PORT) WEB_WORKERS=$(WORKERS) \
	WEB_THREADS=$(WEB_THREADS) WORKERS=$(CELERY_WORKERS) CONCURRENCY=$(CONCURRENCY) QUEUES=$(QUEUES) \
	IMPORT_QUEUES=$(IMPORT_QUEUES) IMPORT_CONCURRENCY=$(IMPORT_CONCURRENCY) \
	TARGETGRID_RUN_DIR=$(TARGETGRID_RUN_DIR) $(BIN)/supervisord -n -c deploy/supervisord.conf

## Fault injection on the production stack with private MariaDB/Redis (a few minutes; bench/README.md).
chaos: install-dev install-prod
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)

bench: install-dev
	@# the prod stack (DATABASE_URL=mysql://...) needs gunicorn and mysqlclient too
	@if [ -n "$$DATABASE_URL" ]; then $(MAKE) --no-print-directory install-prod; fi
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## Issue #10 acceptance 2: publish a changed rule set over 100,000 seeded leads while events arrive
## at 200/s over HTTP; every lead checked against a from-scratch fold (BENCH_ARGS="--leads 20000").
bench-rescore: install-dev
	@if [ -n "$$DATABASE_URL" ]; then $(MAKE) --no-print-directory install-prod; fi
	$(BIN)/python bench/rescore.py $(BENCH_ARGS)

## Issue #11 acceptance 2 and 4: 10,000 leads cross MQL per mode (no endpoint / a fast one / a hanging
## one) on the prod stack + an outbound worker; scoring rate per mode against none, every delivery
## counted at a real receiver (signatures verified, deduped on webhook-id). Needs DATABASE_URL
## (mysql://.../tg_bench*) and REDIS_URL; BENCH_ARGS="--crossings 2000 --modes none,fast".
bench-alerts: install-dev install-prod
	$(BIN)/python bench/alerts.py $(BENCH_ARGS)

## Render time of the operator pages (default 100,000 leads; BENCH_ARGS="--leads 10000").
bench-pages: install-dev
	$(BIN)/python bench/pages.py $(BENCH_ARGS)

## Demo data for the operator UI (leads + events through the real ingest and scoring).
seed: migrate
	$(BIN)/python manage.py seed_demo --with-rules --leads $${LEADS:-500} --events $${EVENTS:-5000}

clean:
	rm -rf $(VENV) var .pytest_cache
