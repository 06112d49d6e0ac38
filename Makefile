# Quick start: `make demo` refines the example file, `make test` runs the test suite.
# Both create .venv on first use (pins: constraints.txt).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The built-in predictor adapters, each its own distribution (installed editable next to the core).
ADAPTERS := -e adapters/semamba -e adapters/flexio -e adapters/asteroid -e adapters/ncsnpp

.PHONY: demo test lint bench

$(VENV)/.installed: pyproject.toml constraints.txt $(wildcard adapters/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -c constraints.txt -e '.[dev]' $(ADAPTERS)
	# NISQA's code (its weights stay local, see README); its own pins would replace torch, hence --no-deps
	$(BIN)/pip install -c constraints.txt --no-deps nisqa
	touch $@

demo: $(VENV)/.installed
	$(BIN)/sips refine examples/noisy.wav -o out/

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check sips tests benchmarks adapters && $(BIN)/ruff format --check sips tests benchmarks adapters

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/speed.py
