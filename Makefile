# Two commands on a fresh machine:
#   make run    sets up .venv and starts the app
#   make test   sets up .venv and runs lint + the whole test suite (offline, headless)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint setup bench screenshots mutation smoke clean

$(STAMP): pyproject.toml
	@echo "Setting up $(VENV): the app, torch, diffusers and PySide6 (a few GB on first install; minutes)"
	$(PYTHON) -m venv $(VENV)
	@# -qq: errors only. A machine's pip config may name index folders that are not there; pip
	@# then warns once per package (about 150 lines) though nothing is wrong with the install.
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev]'
	touch $(STAMP)
	@echo "Installed: $(BIN)/stylealigned-desktop (the window), $(BIN)/stylealigned (the command line)"

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/stylealigned-desktop

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QT_QPA_PLATFORM=offscreen $(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_sets.py

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python scripts/screenshots.py

# Mutation testing of the modules listed in docs/testing.md (not run by CI; hours on two cores
# with mutmut alone, minutes a target with MUTATION_SCREEN=1). MUTATION_TARGETS=request norms runs some of them (scripts/mutation.py --list).
# MUTATION_SCREEN=1: mutmut generates, scripts/mutation_screen.py runs every mutant in one pytest
# session, mutmut runs what it left by name (scripts/mutation.py --screen; torch targets).
# mutmut comes with the dev extra (the tests check scripts/mutation.py with it).
mutation: $(STAMP)
	$(BIN)/python scripts/mutation.py $(if $(MUTATION_SCREEN),--screen) $(MUTATION_TARGETS)

# The frozen build from packaging/requirements-lock-linux.txt, then the frozen programs used as
# a person would (packaging/README.md): after every dependency, lock or spec change.
smoke:
	packaging/smoke.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
