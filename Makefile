# The two commands of the README:
#   make run   - set up everything on a fresh machine and run Tandem
#   make test  - set up everything and run the whole test suite (lint included)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DEPS := pyproject.toml scripts/system-deps.sh web/package-lock.json
STAMP := $(VENV)/.installed-$(shell cat $(DEPS) | sha1sum | cut -c1-12)

.PHONY: run test lint install system-deps demo

run: $(STAMP)
	$(VENV)/bin/tandem up

# With `make run` going in another terminal: a scripted operator drives the robot.
demo: $(STAMP)
	$(VENV)/bin/tandem demo-operator

test: $(STAMP) lint
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	# The layers and the no-cycle rule (pyproject.toml, [tool.importlinter]).
	$(VENV)/bin/lint-imports

install: $(STAMP)

$(STAMP): $(DEPS)
	bash scripts/system-deps.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch, pinned first so nothing pulls a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# robomimic, only to read our HDF5 export back in a test: its dataset code needs six and
	# termcolor (pinned in dev); its declared deps (torchvision, egl_probe) are for training.
	$(PY) -m pip install --quiet --no-deps robomimic==0.3.0
	# The dashboard's JavaScript libraries (uPlot, IWER) from the npm registry.
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	rm -f $(VENV)/.installed-*
	touch $(STAMP)
