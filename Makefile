# Every target bootstraps itself on a fresh machine that has only Python >= 3.10.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint typecheck unit nox demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e "$$($(PYTHON) .ci/extras.py)" --group dev
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

# The suite on every supported Python (3.10-3.13) against the built wheel; see noxfile.py.
nox: $(STAMP)
	$(BIN)/nox --non-interactive

demo: $(STAMP)
	mkdir -p demo-output
	$(BIN)/asr-resilience demo --plot demo-output/demo.png --json demo-output/demo.json \
		--log demo-output/events.log

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .nox .mypy_cache .pytest_cache .ruff_cache .hypothesis
