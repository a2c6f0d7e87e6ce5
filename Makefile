# Every target does its own set-up: a virtualenv in .venv with the project installed.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint stack bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)           ## the main job: stack + worker + synthetic load + summary
	$(VENV)/bin/python -m workers demo

test: $(STAMP)           ## lint, types, unit and integration tests (real broker, Redis, workers)
	$(VENV)/bin/ruff check workers tests tools
	$(VENV)/bin/ruff format --check workers tests tools
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest

stack: $(STAMP)
	$(VENV)/bin/python -m workers stack

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
