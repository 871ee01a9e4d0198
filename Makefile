# Two commands do everything on a fresh clone: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Pinned so that pip takes the CPU wheel on this kind of machine and never a multi-GB CUDA build.
# Elsewhere: make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" demo
TORCH  ?= torch==2.13.0

.PHONY: demo test bench bench-batch sample-tiles lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[test,onnx]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/satcheck run sample_tiles/before sample_tiles/after --rules sample_tiles/rules --out out/demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/satcheck bench

sample-tiles: $(STAMP)
	rm -rf sample_tiles.new && $(BIN)/python -m satcheck.synth sample_tiles.new
	cp sample_tiles/README.md sample_tiles.new/ && rm -rf sample_tiles && mv sample_tiles.new sample_tiles

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff && $(BIN)/ruff check satcheck tests

clean:
	rm -rf out .pytest_cache
