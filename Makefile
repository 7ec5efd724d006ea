# Herald: `make run` starts everything on a fresh machine, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
RECEIVER_PORT ?= 8001

.PHONY: run test test-embedded lint format bench soak mutate stop clean

# Quiet, labelled like everything `make run` prints.
$(BIN)/python:
	@echo "setup | creating $(VENV)"
	@$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "setup | installing Herald and its dependencies into $(VENV)"
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# Herald on the embedded defaults (SQLite, bundled redis-server) unless
# DATABASE_URL / REDIS_URL say otherwise, with a demo organization whose
# webhooks point at a bundled local receiver. config/run_local.py migrates,
# seeds the demo and runs Procfile.demo; exec'd, so that make's SIGTERM (and
# Ctrl-C) reach it, and it stops every process and the bundled redis-server.
run: $(VENV)/.installed
	@exec $(BIN)/python -m config.run_local --host $(HOST) --port $(PORT) --receiver-port $(RECEIVER_PORT)

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest

# The checks that only mean something on the embedded defaults (SQLite, the
# bundled redis-server), whatever DATABASE_URL and REDIS_URL say: CI's second pass.
test-embedded: $(VENV)/.installed
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest -m embedded; status=$$?; \
		env -u REDIS_URL $(BIN)/python -m config.embedded_redis stop; exit $$status

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python bench/run.py

$(VENV)/.mutate-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,mutate]'
	touch $@

# Mutation testing of the engine's critical modules with mutmut (outside CI;
# about two hours on 2 cores, less when run again: results are cached in
# mutants/ per function). Prints the figures, then every mutant that survived.
# Each child gets a test database and a Redis database of its own
# (tests/conftest.py); give it a database apart from your usual tests', e.g.
# DATABASE_URL=postgres://postgres@127.0.0.1:5432/herald_mut HERALD_MUTANT_REDIS_DBS=10,11
# More children than cores pay off (the tests wait on the network): name a
# Redis database for each, e.g. MUTATE_CHILDREN=4 HERALD_MUTANT_REDIS_DBS=8,9,10,11.
MUTATE_CHILDREN ?= 2
mutate: $(VENV)/.mutate-installed
	$(BIN)/mutmut run --max-children $(MUTATE_CHILDREN)
	@echo; echo "Surviving and timed-out mutants (mutmut show NAME for the diff):"
	$(BIN)/mutmut results

# A few minutes of events under faults (workers SIGKILLed, Redis and PostgreSQL
# restarted) on a private PostgreSQL cluster and redis-server, then a
# reconciliation; exits non-zero on any lost or stuck delivery. SOAK_ARGS="--rate 30 --seed 7"
soak: $(VENV)/.installed
	$(BIN)/python scripts/soak.py $(SOAK_ARGS)

# Stop the bundled redis-server started for the embedded defaults.
stop: $(VENV)/.installed
	$(BIN)/python -m config.embedded_redis stop

clean: stop
	rm -rf var $(VENV)
