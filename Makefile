# One-command set-up: `make run` starts the hub on the shipped simulator config,
# `make test` runs the test suite, `make bench` the benchmark (docs/perf.md). All create .venv and install the project first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test bench check-config dist clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/smartanom run $(ARGS)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) bench/run.py $(ARGS)

check-config: install
	$(VENV)/bin/smartanom check-config config/smartanom.yaml

# The release: dist/smartanom-VERSION-py3-none-any.whl (docs/install-pi.md installs it on a Pi).
dist: install
	rm -rf build
	$(PY) -m pip wheel --no-deps --no-build-isolation -w dist .

clean:
	rm -rf $(VENV) build dist *.egg-info
