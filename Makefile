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
	@# The PDF field sheet needs a font with Chinese glyphs; install one where we can (Debian, as root).
	@ls /usr/share/fonts/truetype/wqy/wqy-microhei.ttc >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1)); } || \
	  echo "note: no CJK font installed; PDF sheets will be skipped (apt-get install fonts-wqy-microhei)"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/satcheck run sample_tiles/before sample_tiles/after --rules sample_tiles/rules --out out/demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/satcheck bench

bench-batch: $(STAMP)
	$(BIN)/python benchmarks/batch_bench.py

sample-tiles: $(STAMP)
	rm -rf sample_tiles.new && $(BIN)/python -m satcheck.synth sample_tiles.new
	cp sample_tiles/README.md sample_tiles.new/ && rm -rf sample_tiles && mv sample_tiles.new sample_tiles

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff && $(BIN)/ruff check satcheck tests

clean:
	rm -rf out .pytest_cache
