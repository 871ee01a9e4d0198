"""Does the GPU path (torch on CUDA, float32 or bf16/fp16 autocast) give the CPU's answer, and how fast is each?

Scores one generated pair with the shipped weights on the CPU (float32) and on the GPU at each precision, and
prints one JSON line per precision: model-alone Mpx/s on the GPU (the pair's windows scored three times after a
warm-up), largest and mean difference in change probability from the CPU's, the share of pixels on opposite
sides of the threshold, the IoU of the two change masks, and whether a constant pair gives a constant output
across the GPU's window borders (no seams). Needs a CUDA GPU; ``benchmarks/gpu_check.sh`` runs it.

    python benchmarks/gpu_agreement.py [--size 2048] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
from rasterio.windows import Window

from satcheck.align import PairReader
from satcheck.config import RunConfig
from satcheck.detect.learned import ModelDetector
from satcheck.model.runtime import to_input
from satcheck.pairs import pair_tiles
from satcheck.synth.write import write_large_pair
from satcheck.tiles import open_tile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--device", default="cuda", help="the device compared with the CPU (cpu: a dry run of this script)")
    args = ap.parse_args()
    cfg = RunConfig()
    with tempfile.TemporaryDirectory() as tmp:
        b, a = write_large_pair(tmp, args.size, seed=11)
        pair = pair_tiles([open_tile(b)], [open_tile(a)])[0]
        with PairReader(pair, cfg) as r:
            pw = r.read(Window(0, 0, pair.after.width, pair.after.height))
    on_cpu = ModelDetector(cfg.detect.model.model_copy(update={"engine": "torch"}), "cpu", pair.after.count)
    p_cpu = on_cpu.score(pw)
    m_cpu = p_cpu.probability >= cfg.detect.model.threshold
    flat = to_input(np.full((4, 1500, 1500), 0.4, np.float32))
    for precision in ("float32", "bfloat16", "float16"):
        det = ModelDetector(cfg.detect.model.model_copy(update={"gpu_precision": precision}), args.device,
                            pair.after.count)
        det.score(pw)  # warm-up: CUDA context, kernels
        t = time.perf_counter()
        for _ in range(3):
            p_gpu = det.score(pw)
        mpx_s = 3 * pw.valid.size / 1e6 / (time.perf_counter() - t)
        diff = np.abs(p_cpu.probability - p_gpu.probability)
        m_gpu = p_gpu.probability >= cfg.detect.model.threshold
        union, both = np.logical_or(m_cpu, m_gpu).sum(), m_cpu & m_gpu
        prob = det.predictor.predict(flat, flat.copy()).max(0)
        print(json.dumps({
            "size": args.size,
            "precision": precision,
            "detector": det.name,
            "model_mpx_s": round(mpx_s, 2),
            "max_abs_diff": round(float(diff.max()), 4),
            "mean_abs_diff": round(float(diff.mean()), 6),
            "threshold_flips": round(float((m_cpu != m_gpu).mean()), 6),
            "changed_share_cpu": round(float(m_cpu.mean()), 5),
            "mask_iou": round(float(both.sum() / union), 4) if union else 1.0,
            "type_agreement": round(float((p_cpu.change_type == p_gpu.change_type)[both].mean()), 4)
            if both.any() else None,
            "constant_pair_output_range": round(float(prob.max() - prob.min()), 6),
        }), flush=True)


if __name__ == "__main__":
    main()
