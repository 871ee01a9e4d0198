"""Saving and loading ChangeNet weights without unpickling arbitrary objects."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from satcheck.atomic import atomic_path
from satcheck.errors import ModelError

if TYPE_CHECKING:
    from satcheck.model.network import ChangeNet

# torch is imported inside the functions that need it: finding the shipped weights must not cost a torch import.

FORMAT = "satcheck-changenet"
FORMAT_VERSION = 1
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
SHIPPED = "changenet.pt"


def existing_weights(path: str | Path) -> Path:
    """``path``, or a one-line error when no file is there (before a load, or an ONNX cache lookup by its hash)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: weights file not found; set detect.model.weights in the run "
                         "configuration (--model for 'satcheck eval') to a file made by 'satcheck train'")
    return path


def save_weights(model: ChangeNet, path: str | Path, meta: dict) -> Path:
    import torch

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config_json": json.dumps(model.config()),
        "meta_json": json.dumps(meta, ensure_ascii=False),
        "state_dict": state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def shipped_weights() -> Path | None:
    """The default weights: $SATCHECK_WEIGHTS, else models/changenet.pt of the source checkout."""
    env = os.environ.get("SATCHECK_WEIGHTS")
    for cand in ((Path(env),) if env else ()) + (MODELS_DIR / SHIPPED, Path(__file__).resolve().parent / SHIPPED):
        if cand.is_file():
            return cand
    return None


def load_weights(path: str | Path) -> tuple[ChangeNet, dict]:
    """A ChangeNet with the weights of ``path`` and the metadata saved with them."""
    import torch

    from satcheck.model.network import ChangeNet
    from satcheck.model.runtime import LEGACY_OUTPUTS

    path = existing_weights(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelError(f"{path}: not a satcheck weights file ({type(exc).__name__}); retrain or re-download it") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not a satcheck weights file; pass weights made by 'satcheck train'")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: weights format {payload.get('format_version')} is not {FORMAT_VERSION}; "
                         "upgrade satcheck or retrain")
    try:
        cfg = json.loads(payload["config_json"])
        model = ChangeNet(tuple(cfg["widths"]), cfg["decoder"], tuple(cfg.get("outputs", LEGACY_OUTPUTS)))
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:160]
        raise ModelError(f"{path}: weights do not fit the network ({first}); retrain with this satcheck version") from None
    broken = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:  # such a network scores every pixel NaN, which no threshold passes: "no change" everywhere
        held = f"{len(broken)} weight tensors hold" if len(broken) > 1 else "a weight tensor holds"
        raise ModelError(f"{path}: {held} NaN or infinity (first '{broken[0]}'): the training diverged; retrain "
                         "(e.g. with a lower learning rate) or use other weights")
    model.eval()
    try:
        meta = json.loads(payload.get("meta_json", "{}"))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: the weights' record (meta_json) is not valid JSON ({str(exc)[:120]}); the file is "
                         "damaged: retrain or re-download it") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: the weights' record (meta_json) is a JSON {type(meta).__name__}, not an object; "
                         "the file is damaged: retrain or re-download it")
    meta["outputs"] = list(model.outputs)  # what the logits mean, for engines that never see the network
    return model, meta
