# Every target sets up what it needs: a fresh clone runs `make dev` or `make test` directly.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install browser dev test chaos lint format bench dist clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

# The browser test drives Debian's chromium (never a downloaded browser), with a colour emoji
# font. Installed when we can (root, Debian); elsewhere the browser test is skipped with a reason.
browser:
	@{ command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -q "Noto Color Emoji"; } \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	      fonts-noto-color-emoji >/dev/null) \
	  || echo "chromium not installed: the browser test will be skipped"; }

dev: install
	$(VENV)/bin/qbot dev bots.demo:bot

test: install browser
	$(PY) -m pytest

chaos: install
	$(PY) -m pytest -m chaos

lint: install
	$(VENV)/bin/ruff format --check qbot bots tests bench
	$(VENV)/bin/ruff check qbot bots tests bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format qbot bots tests bench
	$(VENV)/bin/ruff check --fix qbot bots tests bench

bench: install
	$(PY) -m bench

# The wheel and sdist in dist/, built with the backend from the dev tools (works offline).
dist: install
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist

clean:
	rm -rf dist $(VENV) .pytest_cache .mypy_cache .ruff_cache
