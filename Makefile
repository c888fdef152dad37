# Every target sets up what it needs: a fresh clone runs `make dev` or `make test` directly.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install dev test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

dev: install
	$(VENV)/bin/qbot dev bots.demo:bot

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff format --check qbot bots tests bench
	$(VENV)/bin/ruff check qbot bots tests bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format qbot bots tests bench
	$(VENV)/bin/ruff check --fix qbot bots tests bench

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
