#!/usr/bin/env bash
# GPU check for one CUDA GPU (e.g. the `device` tool's H200); finishes in well under 5 minutes.
# Prints: model Mpx/s, end-to-end Mpx/s (satcheck run on a generated 8192 x 8192 pair), GPU memory.
# Packages the GPU machine lacks (rasterio, geopandas, pyogrio, pydantic, ...) travel as wheels in .whl/
# (see README, "GPU check"); without .whl/ the machine's own Python must have them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
out="${OUT:-/tmp}"
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv
SIZE="${SIZE:-8192}"
timeout 280 python3 -m satcheck.cli bench --size "$SIZE" --device cuda --json | tee "$out/gpu_bench.json"
nvidia-smi --query-gpu=memory.used --format=csv
