# Two commands for a fresh machine: `make demo` and `make test`.
# The virtualenv is built on the system Python when there is one, so that the sandbox backend's
# unprivileged user can read it.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.codeflow-installed
# Every Python package `make setup` installs, pinned with hashes (`make lock` refreshes it).
LOCK   := requirements/dev.lock
# semgrep, which the scanner benchmark compares against: its pins (mcp 1.x among them) conflict
# with the project's, so it gets a virtualenv of its own, from its own lock.
TOOLS  := .venv-tools
TOOLS_LOCK := requirements/tools.lock
# jlpm (yarn) takes its registry from npm's own configuration: no host is written anywhere.
export YARN_NPM_REGISTRY_SERVER ?= $(shell npm config get registry 2>/dev/null | sed 's:/*$$::')
export PATH := $(BIN):$(PATH)

.PHONY: setup demo test test-fast test-latest lint lock tools schema bench clean

setup: $(STAMP)

# Exactly the lock (hashes required), then the package itself with no dependency resolution
# and no build isolation: its build backend is in the lock too, so nothing unpinned comes in.
$(STAMP): pyproject.toml $(LOCK) labextension/package.json labextension/yarn.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing the locked environment: $(LOCK) ($$(grep -c '^[A-Za-z0-9]' $(LOCK)) pinned packages, hashes required)"
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	cd labextension && jlpm install --immutable >/dev/null
	$(BIN)/jupyter labextension develop --overwrite . >/dev/null
	$(BIN)/python -m compileall -q codeflow_magic >/dev/null
	touch $(STAMP)

demo: setup
	env -u ANTHROPIC_API_KEY CODEFLOW_CACHE=replay $(BIN)/codeflow run notebooks/quickstart.ipynb \
	    -o reports/quickstart.out.ipynb --report reports/quickstart.html
	@echo "demo report: $(CURDIR)/reports/quickstart.html"

# Test files run side by side on JOBS workers (most of a test's time is a kernel starting or a
# process waiting on another); a file stays on one worker, so its module-scoped kernels,
# servers and browser are shared by its tests as in a serial run. JOBS=0 runs serially.
JOBS ?= 3

test: setup tools
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile
	env -u ANTHROPIC_API_KEY CODEFLOW_CACHE=replay $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax notebooks/
	cd labextension && jlpm test

FAST := not browser and not docker and not sandbox and not gateway and not slow

test-fast: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile -m "$(FAST)"

# The newest versions the package allows, in a throwaway virtualenv, against the fast suite:
# an upstream release that breaks codeflow shows up here, on purpose, not in CI (which keeps
# installing the lock). The extension is not rebuilt there; the fast suite does not use it.
LATEST := $(or $(TMPDIR),/tmp)/codeflow-latest
test-latest:
	rm -rf $(LATEST) && $(PYTHON) -m venv $(LATEST)
	SKIP_JUPYTER_BUILDER=1 $(LATEST)/bin/python -m pip install --quiet --upgrade -e '.[dev]'
	$(LATEST)/bin/python -m pip list --format=freeze | grep -iE '^(anthropic|openai|ipykernel|jupyter.client|nbclient|nbformat|pytest)=='
	$(LATEST)/bin/python -m pytest -p no:cacheprovider -n $(JOBS) --dist loadfile -m "$(FAST)"
	rm -rf $(LATEST)

# Refresh the lock on purpose: newest allowed versions of the dev extras and the build
# backend, every platform, with hashes (uv keeps the current pins unless asked to upgrade:
# `make lock LOCK_FLAGS=--upgrade`). Review the diff, run `make test`, commit.
lock:
	test -x $(BIN)/uv || { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); $(BIN)/python -m pip install --quiet uv; }
	$(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires'], sep='\n')" > $(VENV)/build-requirements.in
	echo editables >> $(VENV)/build-requirements.in  # what hatchling asks for an editable install
	$(BIN)/uv pip compile pyproject.toml $(VENV)/build-requirements.in --extra dev --universal \
	    --python-version 3.10 --generate-hashes --no-header --quiet $(LOCK_FLAGS) -o $(LOCK)
	$(BIN)/uv pip compile requirements/tools.in --universal --python-version 3.11 \
	    --generate-hashes --no-header --quiet $(LOCK_FLAGS) -o $(TOOLS_LOCK)

tools: $(TOOLS)/.installed

$(TOOLS)/.installed: $(TOOLS_LOCK)
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes --no-deps -r $(TOOLS_LOCK)
	touch $@

lint: setup
	$(BIN)/ruff check codeflow_magic tests benchmarks
	$(BIN)/mypy
	cd labextension && jlpm lint:check

# The JupyterLab settings schema comes from the option table (`codeflow_magic/options.py`);
# a test fails when the committed file differs from it.
schema: setup
	$(BIN)/python -m codeflow_magic.options > labextension/schema/plugin.json
	cd labextension && PATH=$(BIN):$$PATH jlpm prettier --write schema/plugin.json

bench: setup tools
	$(BIN)/python -m compileall -q codeflow_magic >/dev/null  # as an installed wheel would be
	$(BIN)/python -m benchmarks; speed=$$?; $(BIN)/python -m benchmarks.scanner; exit $$((speed | $$?))

clean:
	rm -rf $(VENV) $(TOOLS) reports test-artifacts codeflow_magic/labextension \
	    labextension/lib labextension/node_modules labextension/.yarn
