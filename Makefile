# The two commands of the README: `make demo` and `make test`. Both set the workspace up first
# (idempotent: a fresh machine installs everything, a set-up one skips to what changed).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eo pipefail -c
ENV := . tools/env.sh
PYTEST_ARGS ?=

.PHONY: setup build demo test test-unit test-graph lint clean

setup:
	bash tools/setup.sh

build: setup

demo: setup
	$(ENV)
	bash tools/demo.sh

test: setup
	$(ENV)
	flake8 src tests tools launch
	python -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(ENV)
	python -m pytest -m "not graph" $(PYTEST_ARGS)

test-graph: setup
	$(ENV)
	python -m pytest -m graph $(PYTEST_ARGS)

lint: setup
	$(ENV)
	flake8 src tests tools launch

clean:
	rm -rf build install log out
