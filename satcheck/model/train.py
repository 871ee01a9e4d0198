"""Training ChangeNet: typed config, seeded, CPU-friendly."""

from __future__ import annotations

import json
import math
import os
import random
import time
from multiprocessing import get_all_start_methods
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from satcheck.atomic import atomic_path
from satcheck.config import _validate, load_yaml
from satcheck.errors import DatasetError
from satcheck.model.data import NAIP_M, folder_pool, naip_pool, oscd_pool, paste_objects, pixel_range, synthetic_pool
from satcheck.model.losses import POS_WEIGHT, training_loss
from satcheck.model.network import ChangeNet, count_parameters, flops_per_megapixel
from satcheck.model.sampling import BatchPrefetcher, ExampleSampler
from satcheck.model.weights import save_weights


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Zoomed(_Strict):
    # The range a source's crops are zoomed by (log-uniform; None: satcheck.model.data.ZOOM). Below 1 the network
    # sees coarser pixels than the source's: [0.25, 1.6] shows 0.5 m LEVIR-CD at 0.3 to 2 m.
    zoom: tuple[float, float] | None = None

    @field_validator("zoom")
    @classmethod
    def _zoom_range(cls, v):
        if v is not None and not 0.1 <= v[0] <= v[1] <= 4:
            raise ValueError(f"zoom {list(v)}: give [low, high] with 0.1 <= low <= high <= 4")
        return v


class SyntheticSource(_Zoomed):
    scenes: int = Field(160, ge=0)
    size: int = Field(384, ge=128)
    weight: float = Field(0.5, ge=0)


class FolderSource(_Zoomed):
    path: str
    names: list[str] | None = None  # None: every pair in the folder
    weight: float = Field(0.1, ge=0)
    # What the labels mark: buildings only (LEVIR-CD), or construction without telling buildings from hardened
    # ground (DSIFN). The other classes learn nothing from this source.
    supervises: Literal["building", "construction"] = "construction"
    licence: str = ""


class NaipSource(_Strict):
    path: str
    weight: float = Field(0.15, ge=0)
    licence: str = ""


class OscdSource(_Strict):
    path: str
    cities: list[str]
    weight: float = Field(0.15, ge=0)
    licence: str = ""


class TrainConfig(_Strict):
    seed: int = 7
    steps: int = Field(1500, ge=1)
    batch_size: int = Field(8, ge=1)
    crop_px: int = Field(192, ge=64)
    lr: float = Field(4e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    # Weight of changed pixels in the loss's cross-entropy (satcheck.model.losses.POS_WEIGHT unless set).
    pos_weight: float = Field(POS_WEIGHT, gt=0)
    widths: tuple[int, int, int, int] = (16, 32, 64, 96)
    decoder: int = 32
    threads: int | None = None
    # Radiometric normalisation of each training pair. Not necessarily a run's normalise.method: the shipped
    # weights train with histogram and run with meanstd, the better pair measured (models/MODEL_CARD.md).
    normalise: Literal["histogram", "meanstd", "none"] = "histogram"
    # Chance that a synthetic or real-pair example gets 1-3 changed buildings of the real pairs pasted in.
    paste_real: float = Field(0.0, ge=0, le=1)
    # Batches drawn ahead in a separate process (0: drawn in the training process). Same batches either way.
    prefetch: int = Field(4, ge=0)
    # Weights to start from (fine-tuning, or a longer schedule in stages) instead of random ones: same widths and
    # decoder. What they were trained on is added to the new weights' record, so evaluation keeps out both.
    init: str | None = None
    synthetic: SyntheticSource = SyntheticSource()
    datasets: list[FolderSource] = []
    naip: NaipSource | None = None
    oscd: OscdSource | None = None


def load_train_config(path: str | Path | None) -> TrainConfig:
    if path is None:
        return TrainConfig()
    return _validate(TrainConfig, load_yaml(path), str(path))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _existing(path: str) -> Path | None:
    p = Path(path)
    return p if p.exists() else None


def build_sampler(cfg: TrainConfig, log: Callable[[str], None]) -> tuple[ExampleSampler, dict]:
    sources: dict[str, tuple[float, list]] = {}
    sizes: dict[str, list[float]] = {}  # pixel sizes (m) of each source's images
    manifest: dict = {"synthetic": {"scenes": cfg.synthetic.scenes, "size": cfg.synthetic.size, "seed": cfg.seed}}
    zooms: dict[str, tuple[float, float]] = {}
    t = time.perf_counter()
    if cfg.synthetic.scenes and cfg.synthetic.weight:
        sources["synthetic"] = (cfg.synthetic.weight, synthetic_pool(cfg.synthetic.scenes, cfg.seed, cfg.synthetic.size))
        if cfg.synthetic.zoom:
            zooms["synthetic"] = cfg.synthetic.zoom
        log(f"synthetic scenes: {cfg.synthetic.scenes} in {time.perf_counter() - t:.0f} s")
    real = []
    for ds in cfg.datasets:
        root = _existing(ds.path)
        if root is None:
            log(f"skipped (absent): {ds.path}")
            continue
        pool = folder_pool(root, ds.names, ds.supervises)
        real.extend(pool)
        sources[f"folder:{root.name}"] = (ds.weight, pool)
        if ds.zoom:
            zooms[f"folder:{root.name}"] = ds.zoom
        manifest[root.name] = {"names": ds.names or "all", "supervises": ds.supervises, "licence": ds.licence}
    if cfg.naip and _existing(cfg.naip.path):
        sources["naip"] = (cfg.naip.weight, naip_pool(Path(cfg.naip.path)))
        sizes["naip"] = [NAIP_M]
        manifest["naip_series"] = {"names": "all dates (no-change pairs, pasted objects)", "licence": cfg.naip.licence}
    if cfg.oscd and _existing(cfg.oscd.path):
        sources["oscd"] = (cfg.oscd.weight, oscd_pool(Path(cfg.oscd.path), cfg.oscd.cities))
        manifest["oscd"] = {"names": cfg.oscd.cities, "licence": cfg.oscd.licence}
    if not sources:
        raise DatasetError("training has no data: enable synthetic scenes or give an existing dataset path")
    for name, (_, items) in sources.items():
        if name not in sizes:  # NAIP's items are arrays of dates, its size set above
            sizes[name] = sorted({e.gsd for e in items})
    manifest["pixel_size_m"] = pixel_range(sizes, zooms)
    return ExampleSampler(sources, cfg.crop_px, cfg.seed, paste_objects(real), cfg.paste_real,
                         cfg.normalise, zooms), manifest


def train(cfg: TrainConfig, out: str | Path, log: Callable[[str], None] = print, device: str = "auto") -> dict:
    """Train and save weights to ``out``; returns the training record (also saved as JSON beside them)."""
    from satcheck.model.infer import resolve_device

    torch_device = resolve_device(device)  # before drawing minutes of scenes: a missing GPU fails at once
    seed_everything(cfg.seed)
    prefetch = cfg.prefetch > 0 and "fork" in get_all_start_methods()
    # The drawing process keeps one core busy; a second torch thread on it slows both (measured on 2 cores).
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) - prefetch))
    start = _initial_state(cfg)
    sampler, manifest = build_sampler(cfg, log)
    if start is not None:
        manifest = _with_init(manifest, start[1], cfg.init)
    if prefetch:
        with BatchPrefetcher(sampler, cfg.batch_size, cfg.steps, cfg.prefetch) as drawn:
            return _train(cfg, out, log, torch_device, drawn.batch, manifest, start)
    return _train(cfg, out, log, torch_device, lambda: sampler.batch(cfg.batch_size), manifest, start)


def _initial_state(cfg: TrainConfig) -> tuple[dict, dict] | None:
    """(state dict, metadata) of ``cfg.init``, checked against the recipe's network, or None."""
    if cfg.init is None:
        return None
    from satcheck.errors import ModelError
    from satcheck.model.weights import load_weights

    model, meta = load_weights(cfg.init)
    want = {"widths": list(cfg.widths), "decoder": cfg.decoder}
    have = {k: model.config()[k] for k in want}
    if have != want:
        raise ModelError(f"{cfg.init}: weights of widths {have['widths']} and decoder {have['decoder']} cannot start "
                         f"a recipe of widths {want['widths']} and decoder {want['decoder']}; set widths and decoder "
                         "to theirs, or drop init")
    # Earlier weights' outputs meant change, construction, excavation: the same tensors, retaught as the classes.
    return model.state_dict(), meta


def _union_names(a, b):
    """Images named in either stage's manifest entry. An entry's names are a list, "all", or a description of what
    was drawn (NAIP): the union is taken of lists only, so a description is never split into its letters."""
    if "all" in (a, b):
        return "all"
    if isinstance(a, list) and isinstance(b, list):
        return sorted(set(a) | set(b))
    return b if b is not None else a


def _with_init(manifest: dict, meta: dict, init: str) -> dict:
    merged = dict(manifest)
    for name, entry in meta.get("trained_on", {}).items():
        if name not in merged:
            merged[name] = entry
        elif isinstance(entry, dict) and isinstance(merged[name], dict):
            names = _union_names(entry.get("names"), merged[name].get("names"))
            if names is not None:
                merged[name] = {**merged[name], "names": names}
    merged["initialised_from"] = {"file": Path(init).name, "steps": meta.get("train_config", {}).get("steps"),
                                  "seed": meta.get("train_config", {}).get("seed")}
    lo_hi = [r for r in (manifest.get("pixel_size_m"), meta.get("pixel_size_m")) if r]
    if lo_hi:
        merged["pixel_size_m"] = [min(r[0] for r in lo_hi), max(r[1] for r in lo_hi)]
    return merged


def _train(cfg: TrainConfig, out: str | Path, log: Callable[[str], None], device: torch.device,
           next_batch: Callable[[], tuple], manifest: dict, start: tuple[dict, dict] | None = None) -> dict:
    model = ChangeNet(cfg.widths, cfg.decoder)
    if start is not None:
        model.load_state_dict(start[0], strict=True)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    t0 = time.perf_counter()
    history = []
    running = None
    model.train()
    for step in range(cfg.steps):
        b, a, y, c, g = (torch.from_numpy(x).to(device) for x in next_batch())
        loss = training_loss(model(b, a), y, c, g, cfg.pos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if (step + 1) % 50 == 0 or step == cfg.steps - 1:
            history.append({"step": step + 1, "loss": round(running, 4), "seconds": round(time.perf_counter() - t0, 1)})
            log(f"step {step + 1}/{cfg.steps} loss {running:.4f} ({time.perf_counter() - t0:.0f} s)")
    model = model.cpu().eval()
    trained_on = dict(manifest)
    # Pixel sizes the network saw (after the zoom of the crops): a run warns outside them.
    pixel_size_m = trained_on.pop("pixel_size_m", None)
    record = {
        "architecture": "ChangeNet",
        "config": model.config(),
        "parameters": count_parameters(model),
        "gflops_per_mpx": round(flops_per_megapixel(model) / 1e9, 3),
        "bands": [3, 4],
        "outputs": list(model.outputs),
        "pixel_size_m": pixel_size_m,
        "train_config": cfg.model_dump(mode="json"),
        "trained_on": trained_on,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "final_loss": history[-1]["loss"] if history else None,
        "history": history,
    }
    save_weights(model, out, {k: v for k, v in record.items() if k != "history"})
    with atomic_path(Path(out).with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return record
