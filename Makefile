# make demo / make test work on a fresh machine: each (re)creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
DEMO_OUT ?= demo-out
PY_SOURCES := tcia_trials builders tests benchmarks notebooks

.PHONY: install demo test lint bench cards clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is required (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tcia-trials demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)

test: lint
	$(BIN)/pytest -q

cards: $(STAMP)
	$(BIN)/python -m tcia_trials.cards --write dataset_cards

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_volume_read.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
