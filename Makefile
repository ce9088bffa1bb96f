# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create a virtual environment in .venv (Debian and Raspberry Pi OS refuse
# system-wide pip installs) and install bluezone into it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

demo: $(VENV)/.installed
	$(BIN)/bluezone demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -rs

bench: $(VENV)/.installed
	$(BIN)/bluezone benchmark

lint: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[lint]'
	$(BIN)/python -m pyflakes bluezone tests simulations benchmarks
	$(BIN)/python -m mypy bluezone

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "bluezone needs Python 3.11 or newer"'
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian/Ubuntu/Raspberry Pi OS run: sudo apt install python3-venv" >&2; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(VENV)/.installed $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
