# cryptoapp: `make run` starts everything, `make test` proves it. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVICES := scripts/services.sh

.PHONY: install services stop status logs run test bench demo chaos clean

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

run: services
	@$(SERVICES) status

test: services
	$(BIN)/pytest

clean: stop
	rm -rf .local
