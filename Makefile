# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
PY := .venv/bin/python

.PHONY: setup demo test lint bench e2e clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) scripts/demo.py

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/run.py
	$(PY) bench/operator.py
	$(PY) bench/policy.py

e2e: setup
	$(PY) -m pytest -q -rs tests/e2e

clean:
	rm -rf .venv .pytest_cache .ruff_cache
