# Two commands for a fresh machine: `make demo` and `make test`.
# The virtualenv is built on the system Python when there is one, so that the sandbox backend's
# unprivileged user can read it.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.codeflow-installed
# jlpm (yarn) takes its registry from npm's own configuration: no host is written anywhere.
export YARN_NPM_REGISTRY_SERVER ?= $(shell npm config get registry 2>/dev/null | sed 's:/*$$::')
export PATH := $(BIN):$(PATH)

.PHONY: setup demo test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml labextension/package.json labextension/yarn.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	cd labextension && jlpm install --immutable >/dev/null
	$(BIN)/jupyter labextension develop --overwrite . >/dev/null
	$(BIN)/python -m compileall -q codeflow_magic >/dev/null
	touch $(STAMP)

demo: setup
	env -u ANTHROPIC_API_KEY CODEFLOW_CACHE=replay $(BIN)/codeflow run notebooks/quickstart.ipynb \
	    -o reports/quickstart.out.ipynb --report reports/quickstart.html
	@echo "demo report: $(CURDIR)/reports/quickstart.html"

test: setup
	$(BIN)/python -m pytest
	env -u ANTHROPIC_API_KEY CODEFLOW_CACHE=replay $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax notebooks/
	cd labextension && jlpm test

test-fast: setup
	$(BIN)/python -m pytest -m "not browser and not docker and not sandbox and not gateway and not slow"

lint: setup
	$(BIN)/ruff check codeflow_magic tests benchmarks
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m compileall -q codeflow_magic >/dev/null  # as an installed wheel would be
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) reports test-artifacts codeflow_magic/labextension \
	    labextension/lib labextension/node_modules labextension/.yarn
