# The two commands a new user needs: `make demo` and `make test`. Both set up first.
VENV := .venv
PY := $(VENV)/bin/python
DURATION ?= 30
PYTEST_ARGS ?=

.PHONY: setup demo test bench lint typecheck clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/tradeguard demo --duration $(DURATION)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench.run_all $(BENCH)

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) run build dist .pytest_cache .mypy_cache .ruff_cache
