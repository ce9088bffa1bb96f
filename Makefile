# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create a virtual environment in .venv (Debian and Raspberry Pi OS refuse
# system-wide pip installs) and install bluezone into it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean results native-wheels

demo: $(VENV)/.installed
	$(BIN)/bluezone demo

# On every core (pytest-xdist; each test isolated: its own temp dirs, ports, PostgreSQL cluster per
# worker, dbus-daemon per test); the 15 slowest named at the end (CONTRIBUTING.md: the suite's time).
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -rs -n auto --durations=15

bench: $(VENV)/.installed
	$(BIN)/bluezone benchmark

# The shipped scenarios at seed 1 and the replay of the real recordings, as in simulations/results/
# (README.md there lists the longer research runs).  DATASETS: where the recordings are.
SCENARIOS := bus classroom clinic market office wall wedding
DATASETS ?= ../shared/datasets

results: $(VENV)/.installed
	@for s in $(SCENARIOS); do \
	  echo "bluezone simulate simulations/$$s.toml --seed 1"; \
	  $(BIN)/bluezone simulate simulations/$$s.toml --seed 1 --out simulations/results/$$s > simulations/results/$$s.txt || exit 1; \
	done
	@for d in mitll_pact ng_rss_smartphone; do \
	  if [ -d $(DATASETS)/$$d ]; then \
	    echo "bluezone evaluate $(DATASETS)/$$d"; \
	    $(BIN)/bluezone evaluate $(DATASETS)/$$d --json > simulations/results/evaluate_$$d.json || exit 1; \
	  else echo "skipped evaluate $$d: no $(DATASETS)/$$d (give DATASETS=DIR)"; fi; \
	done

# bluezone-native's wheels for Linux x86-64 and aarch64 into native/dist/ (native/README.md);
# then `$(BIN)/pip install native/dist/<this machine's wheel>` uses them here.
native-wheels:
	native/build-wheels.sh

lint: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[lint]'
	$(BIN)/python -m pyflakes bluezone tests research benchmarks
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
