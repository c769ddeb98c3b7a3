# The commands a person types. The README quotes `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WHEELS ?= $(HOME)/.cache/multiturn/wheels
MODEL ?= qwen2.5-coder-0.5b

.PHONY: setup model browser run chat serve test check pytest screenshots bench bench-gateway bench-turns clean

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

# Debian's Chromium for the browser tests (tests/browser: Playwright, from the dev extra, drives it;
# `playwright install` is never run: it downloads browsers). apt installs it when it is missing (as
# root, or with sudo that needs no password); otherwise the browser tests are skipped, except under
# CI=true, where this fails.
CHROMIUM ?= /usr/bin/chromium
browser:
	@[ -x "$(CHROMIUM)" ] || { \
		if [ "$$(id -u)" = 0 ]; then apt=apt-get; \
		elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then apt="sudo apt-get"; \
		else echo "browser: $(CHROMIUM) is missing and cannot be installed here (apt-get install chromium as root)" >&2; \
			[ "$${CI:-}" != "true" ]; exit; fi; \
		$$apt install -y chromium || { $$apt update && $$apt install -y chromium; }; }

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
pytest: model browser
	@dsn="$$(scripts/pg-test-db)" || exit 1; \
	if [ "$${CI:-}" = "true" ] && [ -z "$$dsn" ]; then echo "pytest: no PostgreSQL under CI" >&2; exit 1; fi; \
	MULTITURN_TEST_PG_DSN="$$dsn" $(BIN)/pytest $(PYTEST_ARGS)

test: check pytest

screenshots: model browser  # the browser tests, saving their screenshots where the README and docs/web.md show them
	MULTITURN_SCREENSHOTS=docs/images $(BIN)/pytest tests/browser -q

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
