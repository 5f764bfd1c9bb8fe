# Two commands a fresh machine needs: `make run` (the app on the bundled models) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench setup clean

setup: $(STAMP)

# llama-cpp-python builds from source the first time (about 9 minutes on 2 cores); pip keeps the
# built wheel in its cache, so later set-ups on the same machine take seconds.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e '.[bundled,test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/fastslow demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pytest tests/perf -m perf -s

clean:
	rm -rf $(VENV)
