# Quick start: `make demo` refines the example file, `make test` runs the test suite.
# Both create .venv on first use (pins: constraints.txt).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/sips refine examples/noisy.wav -o out/

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check sips tests benchmarks && $(BIN)/ruff format --check sips tests benchmarks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/speed.py
