# ssl-bench: one-command set-up. Needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ssl-bench-installed
LOCK := requirements-lock.txt
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))

.PHONY: setup run test bench lock clean-results help

help:
	@echo "make run    # set up .venv, then ssl-bench run --methods all --label-frac 0.01"
	@echo "make test   # set up .venv, then ruff, mypy and the test suite"
	@echo "make bench  # set up .venv, then the performance suite (benchmarks/perf)"
	@echo "make lock   # refresh $(LOCK) (the pinned reference environment) from the index"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Installs from the lock (the reference environment: the versions that made leaderboards/);
# re-installs only when the lock or a pyproject changes; editable installs pick up code changes.
# pip byte-compiles one file at a time (85 s of CPU here); compileall -j 0 does the same on
# every core (51 s on 2). A file written for another Python version does not compile (pip
# skips those too, e.g. torch's py312_intrinsics.py), so compileall's exit status is ignored.
# The editable packages build with the venv's setuptools (--no-build-isolation): an isolated
# build sets up a fresh setuptools for each of them, about 5 s apiece here. setuptools >= 77
# reads the pyprojects' SPDX `license` strings (PEP 639).
$(STAMP): $(PY) $(LOCK) pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PY) -m pip install --quiet --no-compile 'setuptools>=77'
	$(PY) -m pip install --quiet --no-compile --no-build-isolation -c $(LOCK) -e '.[dev]' $(foreach p,$(PLUGIN_DIRS),-e $(p))
	-$(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/ssl-bench run --methods all --label-frac 0.01

# Lint (ruff, with import sorting) and type-check (mypy: ssl_bench and every plugin package,
# the `files` of [tool.mypy] in pyproject.toml) before the tests.
test: setup
	$(VENV)/bin/ruff check ssl_bench plugins tests benchmarks scripts conftest.py
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) benchmarks/perf/run_all.py

lock:
	PYTHON=$(PYTHON) bash scripts/refresh-lock.sh

clean-results:
	rm -rf results
