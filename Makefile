# Two commands a fresh machine needs: `make run` (the app on the bundled models) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check bench setup clean xvfb

setup: $(STAMP)

# llama-cpp-python builds from source the first time (about 9 minutes on 2 cores) for the llama.cpp
# backend packaging/llama_backend.py picks for this machine (metal, cuda, hip, vulkan or cpu; it says
# which and why). LLAMA_BACKEND=cuda|vulkan|hip|metal|cpu overrides it, and re-runs set-up when it
# differs from the backend the venv has (.venv/.llama-backend). A GPU build is kept per backend in
# ~/.cache/fastslow/llama-wheels; the CPU build comes from the editable install and pip's cache, so
# later set-ups on the same machine take seconds.
LLAMA_BACKEND ?=
LLAMA_BACKEND_BUILT := $(shell cat $(VENV)/.llama-backend 2>/dev/null)
$(STAMP): pyproject.toml $(if $(filter-out $(LLAMA_BACKEND_BUILT),$(LLAMA_BACKEND)),FORCE)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PYTHON) packaging/llama_backend.py --python $(BIN)/python $(if $(LLAMA_BACKEND),--backend $(LLAMA_BACKEND))
	$(BIN)/python -m pip install -e '.[bundled,gui,hub,mlx,test]'
	touch $(STAMP)
FORCE:

run: $(STAMP)
	$(BIN)/fastslow-app

test: $(STAMP) xvfb
	$(BIN)/python -m pytest

# One GUI test starts the app in a real X server and saves a screenshot. Install Xvfb where we can
# (Debian/Ubuntu as root, as on CI); elsewhere that one test says why it skipped.
XVFB_PACKAGES := xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 libegl1
xvfb:
	@command -v Xvfb >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  { apt-get install -y -q $(XVFB_PACKAGES) >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(XVFB_PACKAGES) >/dev/null 2>&1; }; }; } || \
	  echo "note: Xvfb could not be installed; the screenshot test will be skipped"

# The edit-test loop: every test that needs no model, no worker and no benchmark, in well under a
# minute. CI runs `make test`, the whole suite.
check: $(STAMP)
	$(BIN)/python -m pytest -m "not model and not perf" -q -x

bench: $(STAMP)
	$(BIN)/python -m pytest tests/perf -m perf -s

clean:
	rm -rf $(VENV)
