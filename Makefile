# The commands a person types. The README quotes `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WHEELS ?= $(HOME)/.cache/multiturn/wheels
MODEL ?= qwen2.5-coder-0.5b

.PHONY: setup model run chat serve test check pytest bench bench-gateway bench-turns clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml scripts/llama-wheel
	$(BIN)/python -m pip install --quiet --find-links "$$(scripts/llama-wheel $(BIN)/python $(WHEELS))" \
		--only-binary llama-cpp-python -e '.[embedded,postgres,qwen,memory,bench,dev]'
	touch $@

setup: $(VENV)/.installed

model: setup
	$(BIN)/multiturn models pull $(MODEL)

run: serve

serve: model
	$(BIN)/multiturn serve

chat: model
	$(BIN)/multiturn chat

check: setup
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

# `dsn=$$(...) || exit 1` keeps the exit status of pg-test-db (an assignment prefix would discard it):
# under CI=true a PostgreSQL that cannot be started fails the run instead of skipping its tests.
pytest: model
	@dsn="$$(scripts/pg-test-db)" || exit 1; \
	if [ "$${CI:-}" = "true" ] && [ -z "$$dsn" ]; then echo "pytest: no PostgreSQL under CI" >&2; exit 1; fi; \
	MULTITURN_TEST_PG_DSN="$$dsn" $(BIN)/pytest $(PYTEST_ARGS)

test: check pytest

bench: model
	$(BIN)/python bench/embedded_speed.py

bench-gateway: setup
	$(BIN)/python bench/gateway_overhead.py --rounds 3 --rt 10 --json bench/results/gateway_overhead.json \
		--report bench/results/gateway_overhead.md

bench-turns: setup
	@dsn="$$(scripts/pg-test-db)" || exit 1; \
	MULTITURN_TEST_PG_DSN="$$dsn" $(BIN)/python bench/stored_turns.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
