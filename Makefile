# Quick start: `make demo` refines the example file, `make test` runs the test suite.
# Both create .venv on first use, with the pins of constraints.txt (the one place of versions).
# `make demo` installs the runtime only: the core and the built-in adapters. `make test` adds the
# development extras (test tools, metrics, plots, the notebook kernel, the local Hub server).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The built-in predictor adapters, each its own distribution (installed editable next to the core).
ADAPTERS := -e adapters/semamba -e adapters/flexio -e adapters/asteroid -e adapters/ncsnpp

.PHONY: demo test test-slow lint bench

# Stamps: .runtime = core + adapters; .dev = .runtime + the dev extras, so `make test` after
# `make demo` installs what the tests need, and a changed pyproject or constraints redoes both.
$(VENV)/.runtime: pyproject.toml constraints.txt $(wildcard adapters/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -c constraints.txt -e . $(ADAPTERS)
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/pip install -c constraints.txt -e '.[dev]' $(ADAPTERS)
	# NISQA's code (its weights stay local, see README); its own pins would replace torch, hence --no-deps
	$(BIN)/pip install -c constraints.txt --no-deps nisqa
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/sips refine examples/noisy.wav -o out/

# The default test run leaves out the tests marked slow; CI runs them too (test-slow).
test: $(VENV)/.dev
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(VENV)/.dev
	$(BIN)/python -m pytest -q -m slow

lint: $(VENV)/.dev
	$(BIN)/ruff check sips tests benchmarks adapters && $(BIN)/ruff format --check sips tests benchmarks adapters

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/speed.py
