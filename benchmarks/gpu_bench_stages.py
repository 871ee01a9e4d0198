"""`satcheck bench --device cuda`, printing each stage's result as it ends (for a GPU run whose whole bench may
outlast its time limit).

    python3 benchmarks/gpu_bench_stages.py [SIZE]     # default 4096
"""

import json
import sys

from satcheck.batch.bench import run_bench

if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    run_bench(size, "cuda", stage_done=lambda name, result, s: print(name, json.dumps(result, default=str),
                                                                      f"{s:.1f} s", flush=True))
