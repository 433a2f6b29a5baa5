# One entry point for humans and CI. `make up` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: up test check lint typecheck unit bench lock clean

$(STAMP): pyproject.toml requirements-lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements-lock.txt -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)  ## set up and serve the gateway on the embedded defaults
	$(BIN)/llmplane up

test: check  ## set up, then lint, type-check and run the whole test suite

check: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)  ## every test (store tests on SQLite and PostgreSQL), then the gateway and CLI tests again with the shared gateway on PostgreSQL
	$(BIN)/pytest
	LLMPLANE_TEST_STORE=postgresql $(BIN)/pytest -q tests/gateway tests/cli

bench: $(STAMP)  ## see bench/README.md
	$(BIN)/python bench/run.py

lock:  ## refresh requirements-lock.txt from the current venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements-lock.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
