# Two commands on a fresh machine: `make demo` runs the system, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-unit test-integration lint bench clean faults

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/toogreen demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/agents

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

# Fault injection: kill -9 of each process of a running system, the demo's broker, Ctrl-C (prints the counts)
faults: $(STAMP)
	$(BIN)/python -m pytest -q -s -m faults tests/faults

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
