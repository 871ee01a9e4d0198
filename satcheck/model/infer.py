"""The torch side of inference: eager torch on CPU or GPU, and export of the ONNX graph.

On GPU the batch runs under bf16/fp16 autocast with pinned host memory.
The ONNX graph of a weights file is exported once and cached under the
file's digest (:mod:`satcheck.model.runtime`), so later CPU runs skip
both the export and the torch import.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from satcheck.atomic import atomic_path
from satcheck.errors import ConfigError
from satcheck.model.network import IN_CHANNELS, ChangeNet
from satcheck.model.runtime import ONNX_OPSET, OnnxPredictor, TiledPredictor, cache_record, choose_engine, onnx_cache_path
from satcheck.model.weights import load_weights


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to torch; use --device cpu or auto")
    return torch.device(device)


def export_onnx(model: ChangeNet) -> bytes:
    """The network as an ONNX graph taking any batch size and window size."""
    x = torch.zeros(1, IN_CHANNELS, 64, 64)
    buf = io.BytesIO()
    model = model.cpu().eval().to(memory_format=torch.contiguous_format)
    axes = {0: "n", 2: "h", 3: "w"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's advice is for its developers, not our users
        torch.onnx.export(model, (x, x), buf, input_names=["before", "after"], output_names=["logits"],
                          dynamic_axes={"before": axes, "after": axes, "logits": axes}, opset_version=ONNX_OPSET,
                          dynamo=False)
    return buf.getvalue()


def cache_onnx(weights: Path) -> tuple[Path | bytes, dict]:
    """Export ``weights`` to ONNX and cache the graph; the graph (path, or bytes if the cache is not writable)
    and the weights' metadata."""
    model, meta = load_weights(weights)
    graph = export_onnx(model)
    path = onnx_cache_path(weights)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The record first: it holds the graph's size and digest, so a graph not (or not wholly) written after it
        # is no cache hit, and a reader never takes half an entry (runtime.cached_onnx).
        with atomic_path(path.with_suffix(".json")) as tmp:
            tmp.write_text(cache_record(graph, meta), encoding="utf-8")
        with atomic_path(path) as tmp:
            tmp.write_bytes(graph)
    except OSError:
        return graph, meta
    return path, meta


class TorchPredictor(TiledPredictor):
    engine = "torch"

    def __init__(self, model: ChangeNet, device: str = "auto", threads: int | None = None,
                 gpu_precision: str = "bfloat16", **tiling):
        super().__init__(**tiling)
        self.device = resolve_device(device)
        self.device_type = self.device.type
        self.autocast = None
        if self.device.type == "cuda" and gpu_precision != "float32":
            want = torch.bfloat16 if gpu_precision == "bfloat16" else torch.float16
            self.autocast = want if want != torch.bfloat16 or torch.cuda.is_bf16_supported() else torch.float16
        self.model = model.eval().to(self.device)
        if self.device.type == "cpu":
            torch.set_num_threads(threads or max(1, os.cpu_count() or 1))
            self.model = self.model.to(memory_format=torch.channels_last)

    def _run(self, b: np.ndarray, a: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            tb, ta = torch.from_numpy(b), torch.from_numpy(a)
            if self.device.type == "cuda":
                # Pinned host memory lets the copy run asynchronously with the previous batch's kernels.
                tb = tb.pin_memory().to(self.device, non_blocking=True)
                ta = ta.pin_memory().to(self.device, non_blocking=True)
                with torch.autocast("cuda", dtype=self.autocast) if self.autocast else contextlib.nullcontext():
                    out = self.model(tb, ta)
            else:
                tb = tb.contiguous(memory_format=torch.channels_last)
                ta = ta.contiguous(memory_format=torch.channels_last)
                out = self.model(tb, ta)
            return out.float().cpu().numpy()


def make_predictor(model: ChangeNet, device: str = "auto", engine: str = "auto", threads: int | None = None,
                   **tiling) -> TiledPredictor:
    """A predictor for an in-memory network (no cache): ONNX Runtime or torch, as :func:`choose_engine` says."""
    tiling.setdefault("outputs", model.outputs)
    if choose_engine(engine, device) == "onnx":
        return OnnxPredictor(export_onnx(model), threads, **tiling)
    return TorchPredictor(model, device, threads, **tiling)
