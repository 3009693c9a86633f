# The two commands of the quick start. Each bootstraps .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint

$(BIN)/onrecord: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# Bytecode now, so no server start compiles our modules (a read-only install could not save it).
	$(BIN)/python -m compileall -q common servers clients
	touch $@

demo: $(BIN)/onrecord
	$(BIN)/onrecord demo

# PYRIGHT_PYTHON_IGNORE_WARNINGS=1: the pyright wrapper would otherwise ask PyPI for a newer version on every run.
lint: $(BIN)/onrecord
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYRIGHT_PYTHON_IGNORE_WARNINGS=1 $(BIN)/pyright

# -X warn_default_encoding makes Python emit EncodingWarning, which pyproject turns into an error:
# every text file we open names its encoding.
test: lint
	$(BIN)/python -X warn_default_encoding -m pytest -q
