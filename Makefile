# Two commands: `make run` and `make test`. Both create .venv if missing,
# install the pinned requirements, apply migrations and create the signing key.
VENV    ?= .venv
# The interpreter .venv is made from: the distribution's CPython 3.11 when it
# can make a venv and build extensions (Debian builds it with profile-guided
# and link-time optimisation, which ran deployment checks 10-20 % faster than
# a default pyenv build; docs/performance.md), else python3.
# Choose another with `make ... PYTHON=...` on a fresh .venv.
DISTRO_PY := /usr/bin/python3.11
PYTHON  ?= $(shell $(DISTRO_PY) -c 'import ensurepip, os, sysconfig; \
	assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
	2>/dev/null && echo $(DISTRO_PY) || echo python3)
PY      := $(VENV)/bin/python
PORT    ?= 8000
# The HTTP server of `make run`: granian (HTTP in Rust, keep-alive; as fast
# as gunicorn's sync workers or faster in every phase measured,
# docs/performance.md) or SERVER=gunicorn. WORKERS processes,
# each running the app on THREADS threads (granian: blocking threads;
# gunicorn: THREADS=1 sync workers, above 1 gthread workers).
SERVER  ?= granian
WORKERS ?= 2
THREADS ?= 1
STAMP   := $(VENV)/.requirements-installed
PROJECT := $(VENV)/.project-installed
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test test-postgres test-browser setup install bench bench-http

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

# The project itself, editable (the checkout's code is what runs): the
# commands .venv/bin/mlgov (operator commands, the same as
# `.venv/bin/flask --app app ...`) and .venv/bin/mlgov-gate (the pipeline client).
$(PROJECT): $(STAMP) pyproject.toml setup.py
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(PROJECT)

# The C type walk of the canonical encoder (ledger/_speedups.c); compiles only
# when the source changed. Without gcc and the Python headers it says so and
# the ledger uses the same walk in Python (batched appends ~15 % slower).
install: $(PROJECT)
	$(PY) -m ledger._build

setup: install
	mkdir -p instance
	$(VENV)/bin/alembic -c migrations/alembic.ini upgrade head
	$(VENV)/bin/mlgov ledger init-key

run: setup
ifeq ($(SERVER),gunicorn)
	exec $(VENV)/bin/gunicorn --bind 127.0.0.1:$(PORT) --workers $(WORKERS) --threads $(THREADS) \
		--access-logfile - 'app:create_app()'
else ifeq ($(SERVER),granian)
	exec $(VENV)/bin/granian --interface wsgi --host 127.0.0.1 --port $(PORT) --workers $(WORKERS) \
		--blocking-threads $(THREADS) --respawn-failed-workers --workers-kill-timeout 30 \
		--access-log --factory app:create_app
else
	@echo "SERVER must be granian or gunicorn, not '$(SERVER)'" >&2; exit 2
endif

# tests/browser needs Chromium and is run by test-browser only.
test: setup
	$(PY) -m pytest --ignore=tests/browser $(PYTEST_ARGS)

# The same suite against PostgreSQL (each run makes and drops its own database).
test-postgres: install
	DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest --ignore=tests/browser $(PYTEST_ARGS)

# The web pages in Debian's headless Chromium (installed by .ci/ensure-chromium,
# never by `playwright install`).
test-browser: setup
	.ci/ensure-chromium
	$(PY) -m pytest tests/browser $(PYTEST_ARGS)

bench: install
	$(PY) -m bench.ledger

bench-http: install
	$(PY) -m bench.http_api
