# The two commands of the README:  `make serve`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# Two workers (the machines have 2 cores); each gets its own database.
PYTEST_ARGS ?= -n 2

.PHONY: serve test install test-deps lint bench lock

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Installs and serves on the embedded PostgreSQL (or AUTHPI_DATABASE_URL when set).
serve: install
	$(VENV)/bin/authpi serve

# What the browser and Node relying-party tests need (idempotent).
test-deps: install
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	@command -v node >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null)
	cd tests/e2e/node && npm ci --no-audit --no-fund --silent

# Installs everything and runs the whole suite on a real PostgreSQL (embedded unless
# AUTHPI_TEST_DATABASE_URL names a server).
test: test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

# The image's dependencies, pinned with hashes (Dockerfile: pip install --require-hashes). Refresh
# after changing pyproject.toml's dependencies, and to take upstream fixes.
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra otel --generate-hashes --upgrade \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command "make lock" -o requirements.lock
