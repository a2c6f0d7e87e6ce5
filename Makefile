# Every target does its own set-up: a virtualenv in .venv with the project, its dev tooling
# and its test tools installed (`pip install -e ".[dev,test]"`), and musicnn's own code for
# the tagger's parity tests.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint stack bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev,test]"
	# The tagger's weights ship in the package. musicnn's wheel (its code and original
	# checkpoints) is the parity tests' reference: its metadata pins an ancient numpy and
	# TensorFlow, so it goes in without dependencies; tf_keras runs its TensorFlow graph.
	$(VENV)/bin/pip install -q --no-deps "musicnn==0.1.0" "tf_keras>=2.21,<2.22"
	touch $(STAMP)

demo: $(STAMP)           ## the main job: stack + worker + synthetic load + summary
	$(VENV)/bin/python -m workers demo

lint: $(STAMP)           ## ruff (lint + format) and mypy (strict)
	$(VENV)/bin/ruff check workers tests tools
	$(VENV)/bin/ruff format --check workers tests tools
	$(VENV)/bin/mypy

test: lint               ## lint, types, unit and integration tests (real broker, Redis, workers)
	$(VENV)/bin/python -m pytest

stack: $(STAMP)          ## the embedded broker and Redis, until Ctrl-C
	$(VENV)/bin/python -m workers stack

bench: $(STAMP)          ## every benchmark (BENCHMARKS.md says how long each takes)
	$(VENV)/bin/python -m workers bench all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
