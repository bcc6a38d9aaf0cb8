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
	$(PY) bench/agent.py
	flock /tmp/netlab.lock $(PY) bench/probe_memory.py

# The real-cluster suite. An existing cluster, images already where it pulls them:
#   make e2e HOPSCOPE_E2E_KUBECONFIG=~/.kube/config \
#     HOPSCOPE_E2E_OPERATOR_IMAGE=<registry>/hopscope-operator:dev HOPSCOPE_E2E_PROBE_IMAGE=<registry>/hopscope-probe:dev
# or a kind cluster it creates and deletes (needs Docker and kind):  make e2e HOPSCOPE_E2E_KIND=1
# Neither: the cluster tests skip, saying what to set (-rs prints why).
export HOPSCOPE_E2E_KUBECONFIG HOPSCOPE_E2E_KIND HOPSCOPE_E2E_OPERATOR_IMAGE HOPSCOPE_E2E_PROBE_IMAGE
e2e: setup
	$(PY) -m pytest -q -rs tests/e2e

clean:
	rm -rf .venv .pytest_cache .ruff_cache
