#!/usr/bin/env bash
# GPU check for one CUDA GPU (e.g. the `device` tool's H200); about five minutes, most of it drawing the pair.
# 1. benchmarks/gpu_agreement.py: model-alone Mpx/s on the GPU at float32, bfloat16 and float16, and how far each
#    is from the CPU's float32 answer (JSON lines);
# 2. benchmarks/run_stages.py on a generated SIZE x SIZE pair (default 8192) with --device cuda: end-to-end Mpx/s
#    and seconds per stage, with one reader thread and with the default (several);
# 3. the demo on the GPU, keeping its patches.csv for comparison with a CPU run (make demo).
# Packages the GPU machine lacks (rasterio, geopandas, pyogrio, pydantic, ...) travel in .whl/: either as wheels,
# or unpacked into one archive .whl/site.tar.xz when the wheels are over the transfer limit (see README, "GPU").
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -f .whl/site.tar.xz ]; then
  mkdir -p /tmp/site && python3 -c "import tarfile; tarfile.open('.whl/site.tar.xz').extractall('/tmp/site')"
  export PYTHONPATH="/tmp/site:$PWD"
elif ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
out="${OUT:-/tmp}"
SIZE="${SIZE:-8192}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, rasterio, pyogrio; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'rasterio', rasterio.__version__, 'gdal', rasterio.__gdal_version__, 'pyogrio', pyogrio.__version__)" || exit 1
echo "== agreement"
timeout 100 python3 benchmarks/gpu_agreement.py --size 2048 | tee "$out/gpu_agreement.jsonl"
echo "== run stages"
timeout 200 python3 benchmarks/run_stages.py --size "$SIZE" --work /tmp/stages --device cuda --readers 1 \
  | tee "$out/gpu_stages.txt"
timeout 60 python3 benchmarks/run_stages.py --size "$SIZE" --work /tmp/stages --device cuda | tee -a "$out/gpu_stages.txt"
echo "== demo on cuda"
timeout 60 python3 -m satcheck.cli run sample_tiles/before sample_tiles/after --rules sample_tiles/rules \
  --out /tmp/demo_cuda --device cuda && cp /tmp/demo_cuda/patches.csv "$out/demo_cuda_patches.csv"
nvidia-smi --query-gpu=memory.used --format=csv
