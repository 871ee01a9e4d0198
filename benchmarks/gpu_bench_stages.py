"""satcheck bench's stages one by one, each timed as it ends (for a GPU run whose whole bench outlasts its limit)."""

import json
import sys
import tempfile
import time
from pathlib import Path

from satcheck.batch import bench

if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        b, a = bench._in_process(bench._stage_generate, tmp, size)
        print(f"generate {size}: {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        print("model", json.dumps(bench._in_process(bench._stage_model, b, a, "cuda")),
              f"{time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        print("end to end", json.dumps(bench._in_process(bench._stage_run, b, a, str(Path(tmp) / "m"), "model", "cuda")),
              f"{time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        print("baseline", json.dumps(bench._in_process(bench._stage_run, b, a, str(Path(tmp) / "c"), "cva", "cuda")),
              f"{time.perf_counter() - t:.1f} s", flush=True)
