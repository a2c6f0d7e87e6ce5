# Every target does its own set-up: a virtualenv in .venv with the project, its dev tooling
# and its test tools installed (`pip install -e ".[dev,test]"`), and musicnn's own code for
# the tagger's parity tests.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint stack bench clean constraints

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e ".[dev,test]"
	# The tagger's weights ship in the package. musicnn's wheel (its code and original
	# checkpoints) is the parity tests' reference: its metadata pins an ancient numpy and
	# TensorFlow, so it goes in without dependencies; tf_keras runs its TensorFlow graph.
	$(VENV)/bin/pip install -q -c constraints.txt --no-deps "musicnn==0.1.0" "tf_keras>=2.21,<2.22"
	touch $(STAMP)

constraints:             ## re-pin the tested set from a fresh venv (after a dependency change)
	rm -rf .venv-pin && $(PYTHON) -m venv .venv-pin
	.venv-pin/bin/pip install -q -e ".[dev,test]"
	.venv-pin/bin/pip install -q --no-deps "musicnn==0.1.0" "tf_keras>=2.21,<2.22"
	{ sed -n '1,3p' constraints.txt; .venv-pin/bin/pip freeze --exclude-editable | grep -v '^#'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-pin

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
