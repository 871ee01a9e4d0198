"""Tiled inference without torch: windows and blending, and the ONNX Runtime engine.

Windows overlap and are blended with weights that fall towards their
edges, so there are no seams.  This module does not import torch: a CPU
run whose weights were exported to ONNX once (the graph is cached under
the weights' digest) starts without importing torch, which alone costs
about 2.5 s on two cores — as long as scoring some 10 Mpx takes.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from satcheck.errors import ConfigError
from satcheck.windows import blend_weights, overlapping_windows

IN_CHANNELS = 5  # R, G, B, NIR (or 0), NIR present (1 or 0); the network's input layout
MULTIPLE = 16
# Bump when the exported graph changes for the same weights (export options, opset).
ONNX_EXPORT_VERSION = 1
ONNX_OPSET = 17


def to_input(img: np.ndarray) -> np.ndarray:
    """(bands, h, w) normalised → the network's 5 channels (R, G, B, NIR or 0, NIR present)."""
    h, w = img.shape[1:]
    out = np.empty((IN_CHANNELS, h, w), np.float32)
    out[:3] = img[:3]
    if img.shape[0] >= 4:
        out[3] = img[3]
        out[4] = 1.0
    else:
        out[3:] = 0.0
    return out


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- engine choice

def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _no_nvidia_device() -> bool:
    # Without an NVIDIA driver torch cannot see a GPU either; checking first spares a CPU run the torch import.
    return not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()
                or Path("/dev/dxg").exists())  # WSL exposes GPUs as /dev/dxg


def choose_engine(engine: str, device: str) -> str:
    """'onnx' (ONNX Runtime on the CPU) or 'torch' for a run asking for ``engine`` on ``device``."""
    if engine == "onnx":
        if device == "cuda":
            raise ConfigError("engine 'onnx' runs on the CPU; use engine auto or torch with --device cuda")
        if not onnx_available():
            raise ConfigError("engine 'onnx' needs onnxruntime; pip install onnxruntime, "
                              "or set detect.model.engine: torch")
        return "onnx"
    if engine == "torch" or device == "cuda" or not onnx_available():
        return "torch"
    if device == "cpu" or _no_nvidia_device():
        return "onnx"
    import torch

    return "torch" if torch.cuda.is_available() else "onnx"


# ----------------------------------------------------------------------------- ONNX graph cache

def cache_dir() -> Path:
    env = os.environ.get("SATCHECK_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "satcheck"


def onnx_cache_path(weights: Path) -> Path:
    return cache_dir() / "onnx" / f"{weights.stem}-{file_digest(weights)}-v{ONNX_EXPORT_VERSION}.onnx"


def cached_onnx(weights: Path) -> tuple[Path, dict] | None:
    """The exported graph of ``weights`` and their metadata, if an earlier run cached them whole.

    The entry's record (``.json``) holds the graph's size and digest: a graph cut short (a full disk, a copy
    that stopped) or damaged is no hit, so the caller exports it again and the entry heals itself. Entries of
    before the record held them are exported again once.
    """
    graph = onnx_cache_path(weights)
    record = graph.with_suffix(".json")
    if not (graph.is_file() and record.is_file()):
        return None
    try:
        entry = json.loads(record.read_text(encoding="utf-8"))
        if not (isinstance(entry, dict) and isinstance(entry.get("meta"), dict)):
            return None
        if graph.stat().st_size != entry.get("graph_bytes") or graph_digest(graph.read_bytes()) != entry.get("graph_sha256"):
            return None
        return graph, entry["meta"]
    except (OSError, ValueError):
        return None


def graph_digest(graph: bytes) -> str:
    return hashlib.sha256(graph).hexdigest()


def cache_record(graph: bytes, meta: dict) -> str:
    """The ``.json`` of a cache entry: the weights' metadata, and the graph's size and digest to check it by."""
    return json.dumps({"meta": meta, "graph_bytes": len(graph), "graph_sha256": graph_digest(graph)},
                      ensure_ascii=False)


# ----------------------------------------------------------------------------- tiling

# What the network's three output channels mean. Weights without the record are the earlier kind.
TYPED_OUTPUTS = ("building", "hardened", "excavation")  # one sigmoid per class: change of that class
LEGACY_OUTPUTS = ("change", "construction", "excavation")  # change, then a softmax of its type


def output_classes(meta: dict) -> tuple[str, str, str]:
    """The change classes of the three class probabilities :meth:`TiledPredictor.predict` returns."""
    if tuple(meta.get("outputs", LEGACY_OUTPUTS)) == TYPED_OUTPUTS:
        return TYPED_OUTPUTS
    return ("construction", "hardened", "excavation")  # older weights never score hardened on its own


def class_probabilities(logits: np.ndarray, outputs: tuple[str, ...]) -> np.ndarray:
    """(n, 3, h, w) logits → (n, 3, h, w) probabilities of change of each class of :func:`output_classes`."""
    if tuple(outputs) == TYPED_OUTPUTS:
        return _sigmoid(logits)
    change = _sigmoid(logits[:, 0])
    # The whole change probability goes to its more likely type, so that the maximum over classes a detector
    # takes is the change probability these weights give.
    dug = _sigmoid(logits[:, 2] - logits[:, 1]) > 0.5  # softmax share of excavation
    zero = np.zeros_like(change)
    return np.stack([np.where(dug, zero, change), zero, np.where(dug, change, zero)], 1)


class TiledPredictor:
    """Runs the network over whole arrays: the probability of change of each class per pixel."""

    engine = "?"
    device_type = "cpu"

    def __init__(self, tile_px: int = 512, overlap_px: int = 64, batch_size: int = 4,
                 outputs: tuple[str, ...] = TYPED_OUTPUTS):
        self.tile = max(MULTIPLE, tile_px - tile_px % MULTIPLE)
        self.overlap = min(overlap_px, self.tile // 2)
        self.batch_size = batch_size
        self.outputs = tuple(outputs)

    def _run(self, b: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Logits (n, 3, h, w) of a batch of inputs (n, 5, h, w)."""
        raise NotImplementedError

    def predict(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Inputs: (5, h, w) float32 each. Returns (3, h, w) probabilities, classes of :func:`output_classes`."""
        _, h, w = after.shape
        if h <= self.tile and w <= self.tile:
            # One window covers it: the network takes any size, so no padding and no blending.
            logits = self._run(np.ascontiguousarray(before[None]), np.ascontiguousarray(after[None]))
            return class_probabilities(logits, self.outputs)[0]
        th, tw = min(self.tile, h), min(self.tile, w)
        acc = np.zeros((3, h, w), np.float32)
        wsum = np.zeros((h, w), np.float32)
        weights = _blend(th, tw, self.overlap)
        wins = list(overlapping_windows(w, h, th, self.overlap)) if th == tw else \
            list(_rect_windows(w, h, th, tw, self.overlap))
        for i in range(0, len(wins), self.batch_size):
            chunk = wins[i: i + self.batch_size]
            sl = [(slice(int(v.row_off), int(v.row_off + v.height)), slice(int(v.col_off), int(v.col_off + v.width)))
                  for v in chunk]
            logits = self._run(np.stack([before[:, r, c] for r, c in sl]), np.stack([after[:, r, c] for r, c in sl]))
            probs = class_probabilities(logits, self.outputs)
            for k, (r, c) in enumerate(sl):
                acc[:, r, c] += probs[k] * weights
                wsum[r, c] += weights
        acc /= wsum
        return acc


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.negative(x, dtype=np.float32)
    np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


@lru_cache(maxsize=8)
def _blend(th: int, tw: int, overlap: int) -> np.ndarray:
    w = blend_weights(th, tw, overlap)
    w.setflags(write=False)
    return w


def _rect_windows(W: int, H: int, th: int, tw: int, overlap: int):
    from rasterio.windows import Window

    def starts(n: int, size: int) -> list[int]:
        if n <= size:
            return [0]
        s = list(range(0, n - size, size - overlap))
        return s + [n - size]

    for r in starts(H, th):
        for c in starts(W, tw):
            yield Window(c, r, tw, th)


class OnnxPredictor(TiledPredictor):
    """ONNX Runtime on the CPU: about three times eager torch on two cores (``satcheck bench``)."""

    engine = "onnx"

    def __init__(self, graph: Path | bytes, threads: int | None = None, **tiling):
        super().__init__(**tiling)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or max(1, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        src = str(graph) if isinstance(graph, Path) else graph
        self._session = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])

    def _run(self, b: np.ndarray, a: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"before": b, "after": a})[0]
