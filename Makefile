# cryptoapp: `make run` starts everything, `make test` proves it. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVICES := scripts/services.sh

.PHONY: install services stop status logs run test drills bench demo chaos clean screenshots analytics

install: $(STAMP)

$(STAMP): requirements.txt setup.cfg
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: install it and run make PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -e .
	@touch $@

services: install
	@$(SERVICES) up

stop:
	@$(SERVICES) down

status:
	@$(SERVICES) status

logs:
	@$(SERVICES) logs

# The worker and the dashboard run in the background; logs in .local/logs/, `make stop` ends all.
run: services
	@$(SERVICES) up worker $(if $(wildcard dashboard/app.py),dashboard)
	@echo
	@$(SERVICES) status
	@echo
	@echo "Latest prices:  http://localhost:$${WEB_PORT:-6066}/prices/"
	@echo "Dashboard:      http://localhost:$${DASHBOARD_PORT:-8501}"
	@echo "Logs:           .local/logs/worker.log, .local/logs/dashboard.log    Stop: make stop"

# Offline demonstration: simulated prices (every tick labelled source=simulated) every 2 s.
demo: export CRYPTO_SOURCES = simulated
demo: export CRYPTO_SOURCE = simulated
demo: export CRYPTO_INTERVAL ?= 2
demo: run

test: services
	$(BIN)/pytest

# The slow drills, kept out of `make test` (about 15 min): `python -m bench --quick` (every benchmark end to end, so
# the bench code never rots), the short fault drill (`make chaos CHAOS_ARGS=--short`), two workers through a kill
# (tests/integration/test_scale.py), a late Kafka's hard kill (test_faults_kafka.py) and MongoDB
# stopped twice under an open dashboard (tests/e2e/test_mongodb_outage.py). CI runs them after the tests.
drills: services
	$(BIN)/pytest -m drill

# The README's pictures in docs/img/ (about 5 min): the browser tests' close-ups (a card with bid and ask), then all
# four tabs from make demo's data, with make analytics run on it (scripts/screenshots.py).
screenshots: services
	CRYPTOAPP_SCREENSHOTS=docs/img $(BIN)/pytest tests/e2e/test_browser.py
	PYTHONPATH=. $(BIN)/python scripts/screenshots.py

clean: stop
	rm -rf .local

# Benchmarks against the real services; prints a table and writes bench/results.json (docs/benchmarks.md).
bench: services
	$(BIN)/python -m bench $(BENCH_ARGS)

# Fault drill: bounces Kafka, MongoDB and the worker under load, then counts lost and doubled ticks
# (docs/reliability.md). Runs on its own Kafka and MongoDB instances, so nothing else is disturbed.
chaos: install
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

# Batch analytics (docs/analytics.md): the archive as Parquet, the Spark jobs over it (spark-submit, command
# line printed), their results into MongoDB for the dashboard. SPARK_MASTER=spark://host:7077 (yarn, k8s://...)
# runs the same jobs on a cluster; SPARK_SUBMIT_ARGS passes spark-submit options through (--deploy-mode, --conf).
ANALYTICS_DIR ?= .local/analytics
ANALYTICS_DAYS ?= 90
analytics: export SPARK_MASTER ?= local[*]
analytics: export SPARK_SUBMIT_ARGS ?=
analytics: install
	@$(SERVICES) up mongo
	$(BIN)/cryptoapp export parquet --out $(ANALYTICS_DIR)/parquet
	$(BIN)/python -m cryptoapp.analytics.submit --in $(ANALYTICS_DIR)/parquet --out $(ANALYTICS_DIR)/results --days $(ANALYTICS_DAYS)
	$(BIN)/cryptoapp analytics load --results $(ANALYTICS_DIR)/results
