# SpineAI: two commands do all set-up on a fresh machine (Python 3.11, no GPU):
#   make demo   -> creates .venv, installs the engine, runs the demo on a generated phantom
#   make test   -> creates .venv, installs the engine with test tools, runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.spineai-installed
# torch is pinned to the CPU build that installs from the local wheel; an unpinned torch pulls CUDA
TORCH  ?= torch==2.13.0

.PHONY: demo test lint install clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/spineai demo

test: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: treating as a failure"; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check SpineAI SpineAISegmentation SpineAIGrading Testing benchmarks
	$(BIN)/ruff format --check SpineAI SpineAISegmentation SpineAIGrading Testing benchmarks

clean-venv:
	rm -rf $(VENV)
