# Development and CI entry points. `make test` is what CI runs (README "Run the tests").
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
FLYTE ?= 1.16
ENV_SH := .dev/env.sh
PYTEST_ARGS ?=

.PHONY: help venv env env-down env-status sandbox sandbox-down test unit demo bench clean goagent

help:
	@echo "make venv        install the package and its test extras into $(VENV)"
	@echo "make env         start Docker Engine, registry 127.0.0.1:30000, helm 3+4, kwok cluster, base image"
	@echo "make env-down    stop exactly what 'make env' started"
	@echo "make sandbox     apply the Flyte sandbox stand-in (FLYTE=1.15|1.16, default $(FLYTE))"
	@echo "make test        venv + env + the whole test suite"
	@echo "make unit        the tests that need no component"
	@echo "make demo        sandbox stand-in + flyte-agents deploy --sandbox end to end, verified"
	@echo "make goagent     build the Go agent server the conformance tests run (tests/servers/goagent)"
	@echo "make bench       deploy loop vs the manual script, CLI start-up, no-op build+push (BENCH_ARGS=...)"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

env:
	$(PYTHON) hack/devenv.py up

env-down:
	$(PYTHON) hack/devenv.py down

env-status:
	$(PYTHON) hack/devenv.py status

sandbox: env
	. $(ENV_SH) && $(PYTHON) hack/standin.py up --flyte $(FLYTE)

sandbox-down:
	. $(ENV_SH) && $(PYTHON) hack/standin.py down

test: venv env
	. $(ENV_SH) && $(VENV)/bin/pytest $(PYTEST_ARGS)

unit: venv
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

demo: venv sandbox
	hack/demo.sh

clean:
	rm -rf $(VENV) .dev build *.egg-info

bench: venv env
	. $(ENV_SH) && $(VENV)/bin/python bench/run.py $(BENCH_ARGS)

goagent: venv
	$(VENV)/bin/python -m tests.servers.goagent
