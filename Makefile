# ssl-bench: one-command set-up. Needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ssl-bench-installed
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))

.PHONY: setup run test bench clean-results help

help:
	@echo "make run    # set up .venv, then ssl-bench run --methods all --label-frac 0.01"
	@echo "make test   # set up .venv, then the test suite"
	@echo "make bench  # set up .venv, then the performance suite (benchmarks/perf)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-installs only when pyproject files change; editable installs pick up code changes.
$(STAMP): $(PY) pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PY) -m pip install --quiet -e '.[dev]' $(foreach p,$(PLUGIN_DIRS),-e $(p))
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/ssl-bench run --methods all --label-frac 0.01

test: setup
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) benchmarks/perf/run_all.py

clean-results:
	rm -rf results
