# The two commands of the README: `make demo` and `make test`. Both set the workspace up first
# (idempotent: a fresh machine installs everything, a set-up one skips to what changed).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eo pipefail -c
ENV := . tools/env.sh
PYTEST_ARGS ?=

.PHONY: setup build demo review test test-unit test-graph lint clean

setup:
	bash tools/setup.sh

build: setup

# make demo [CAMERAS=0] [CONSOLE_PORT=8080] [CAMERA_PORT=...] [KEEP_CONSOLE=0]: see tools/demo.sh
demo: setup
	$(ENV)
	bash tools/demo.sh

# make review [RUN_DIR=out/demo] [CONSOLE_PORT=8080]: the review console of a finished run, on
# its own; decisions correct the run's receipts (its cart database) at once
RUN_DIR ?= out/demo
CONSOLE_PORT ?= 8080
review:
	$(ENV)
	review_console --db $(RUN_DIR)/review.sqlite --store config/stores/demo.yaml \
	  --cart-db $(RUN_DIR)/carts.sqlite --port $(CONSOLE_PORT)

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
