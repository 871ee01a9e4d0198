"""python -m satcheck.synth OUT [--seed N] [--size N] [--large N]: generate sample tiles."""

from __future__ import annotations

import argparse
import json

from satcheck.synth.write import SceneSpec, write_large_pair, write_scene


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m satcheck.synth", description=__doc__)
    ap.add_argument("out", help="output folder")
    ap.add_argument("--seed", type=int, default=SceneSpec.seed)
    ap.add_argument("--size", type=int, default=SceneSpec.size, help="scene side in pixels")
    ap.add_argument("--gsd", type=float, default=1.0, help="metres per pixel")
    ap.add_argument("--tiles", type=int, default=2, help="the later date is split into N×N tiles")
    ap.add_argument("--no-changes", action="store_true", help="nuisance only: nothing is built or dug")
    ap.add_argument("--large", type=int, default=0, help="write one large N×N benchmark pair instead")
    a = ap.parse_args(argv)
    if a.large:
        b, af = write_large_pair(a.out, a.large, seed=a.seed)
        print(json.dumps({"before": str(b), "after": str(af)}))
        return
    spec = SceneSpec(seed=a.seed, size=a.size, gsd=a.gsd, after_tiles=a.tiles, changes=not a.no_changes)
    print(json.dumps(write_scene(a.out, spec), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
