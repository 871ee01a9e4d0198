"""Weights part of the way from one set to another, tensor by tensor (weight-space interpolation, WiSE-FT).

    .venv/bin/python benchmarks/blend_weights.py START.pt END.pt --alpha 0.5 --out BLEND.pt

Every floating-point tensor, BatchNorm statistics included, becomes (1 - alpha) * START + alpha * END; counters
and the record of what the outputs mean come from END. Meant for END fine-tuned from START (Wortsman et al. 2022,
"Robust fine-tuning of zero-shot models"): the model card's "shipped + levir-zoom" rows were made with it. The
result is scored like any weights file (real_eval.py, naip_farmland.py, ...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from satcheck.errors import SatcheckError
from satcheck.model.weights import load_weights, save_weights


def blend(start: Path, end: Path, alpha: float, out: Path) -> None:
    a, meta_a = load_weights(start)
    b, meta_b = load_weights(end)
    if a.config() | {"outputs": None} != b.config() | {"outputs": None}:
        sys.exit(f"{end}: its network ({b.config()}) is not that of {start} ({a.config()}); blend weights of one network")
    sa, sb = a.state_dict(), b.state_dict()
    b.load_state_dict({k: (1 - alpha) * sa[k] + alpha * sb[k] if sa[k].is_floating_point() else sb[k] for k in sa})
    meta = dict(meta_b)
    meta["blended"] = {"start": start.name, "start_seed": meta_a.get("train_config", {}).get("seed"),
                       "end": end.name, "end_seed": meta_b.get("train_config", {}).get("seed"), "alpha": alpha}
    save_weights(b, out, meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("start", type=Path)
    ap.add_argument("end", type=Path)
    ap.add_argument("--alpha", type=float, required=True, help="0 gives START, 1 gives END")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    if not 0 <= a.alpha <= 1:
        sys.exit(f"--alpha {a.alpha}: give a share between 0 and 1")
    try:
        blend(a.start, a.end, a.alpha, a.out)
    except SatcheckError as exc:
        sys.exit(str(exc))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
