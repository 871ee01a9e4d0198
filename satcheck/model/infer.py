"""Tiled inference of ChangeNet on arrays of any size, on CPU (torch or ONNX Runtime) or GPU.

Windows overlap and are blended with weights that fall towards their
edges, so there are no seams.  On GPU the batch runs under bf16/fp16
autocast; on CPU, ONNX Runtime is used when installed (it measured about
three times faster than eager torch on two cores; see ``satcheck bench``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from satcheck.errors import ConfigError
from satcheck.model.network import IN_CHANNELS, ChangeNet
from satcheck.windows import blend_weights, overlapping_windows

MULTIPLE = 16


def to_input(img: np.ndarray) -> np.ndarray:
    """(bands, h, w) normalised → the network's 5 channels (R, G, B, NIR or 0, NIR present)."""
    h, w = img.shape[1:]
    out = np.zeros((IN_CHANNELS, h, w), np.float32)
    out[:3] = img[:3]
    if img.shape[0] >= 4:
        out[3] = img[3]
        out[4] = 1.0
    return out


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to torch; use --device cpu or auto")
    return torch.device(device)


def _onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class Predictor:
    """Runs a ChangeNet over whole arrays: returns change probability and change type per pixel."""

    def __init__(self, model: ChangeNet, device: str = "auto", engine: str = "auto", tile_px: int = 512,
                 overlap_px: int = 64, batch_size: int = 4, threads: int | None = None,
                 weights_path: Path | None = None):
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.tile = max(MULTIPLE, tile_px - tile_px % MULTIPLE)
        self.overlap = min(overlap_px, self.tile // 2)
        self.batch_size = batch_size
        if self.device.type == "cpu":
            torch.set_num_threads(threads or max(1, os.cpu_count() or 1))
            self.model = self.model.to(memory_format=torch.channels_last)
        use_onnx = engine == "onnx" or (engine == "auto" and self.device.type == "cpu" and _onnx_available())
        if engine == "onnx" and not _onnx_available():
            raise ConfigError("engine 'onnx' needs onnxruntime; pip install onnxruntime, or set detect.model.engine: torch")
        self.engine = "onnx" if use_onnx else "torch"
        self._session = self._onnx_session(threads) if use_onnx else None

    # ------------------------------------------------------------------ engines
    def _onnx_session(self, threads: int | None):
        import io

        import onnxruntime as ort

        x = torch.zeros(1, IN_CHANNELS, 64, 64)
        buf = io.BytesIO()
        model = self.model.to(memory_format=torch.contiguous_format)
        axes = {0: "n", 2: "h", 3: "w"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's advice is for its developers, not our users
            torch.onnx.export(model, (x, x), buf, input_names=["before", "after"], output_names=["logits"],
                              dynamic_axes={"before": axes, "after": axes, "logits": axes}, opset_version=17,
                              dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or max(1, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])

    def _run(self, b: np.ndarray, a: np.ndarray) -> np.ndarray:
        if self._session is not None:
            return self._session.run(None, {"before": b, "after": a})[0]
        with torch.inference_mode():
            tb, ta = torch.from_numpy(b), torch.from_numpy(a)
            if self.device.type == "cuda":
                # Pinned host memory lets the copy run asynchronously with the previous batch's kernels.
                tb, ta = tb.pin_memory(), ta.pin_memory()
            tb = tb.to(self.device, non_blocking=True)
            ta = ta.to(self.device, non_blocking=True)
            if self.device.type == "cuda":
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
                with torch.autocast("cuda", dtype=dtype):
                    out = self.model(tb, ta)
            else:
                tb = tb.contiguous(memory_format=torch.channels_last)
                ta = ta.contiguous(memory_format=torch.channels_last)
                out = self.model(tb, ta)
            return out.float().cpu().numpy()

    # ------------------------------------------------------------------ public
    def predict(self, before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inputs: (5, h, w) float32 each. Returns (probability (h, w), excavation share (h, w))."""
        _, h, w = after.shape
        th, tw = min(self.tile, _ceil(h)), min(self.tile, _ceil(w))
        if h < th or w < tw:
            pad = ((0, 0), (0, th - h if h < th else 0), (0, tw - w if w < tw else 0))
            before, after = np.pad(before, pad, mode="edge"), np.pad(after, pad, mode="edge")
        H, W = after.shape[1:]
        acc = np.zeros((2, H, W), np.float32)
        wsum = np.zeros((H, W), np.float32)
        weights = blend_weights(th, tw, self.overlap)
        wins = list(overlapping_windows(W, H, max(th, tw), self.overlap)) if th == tw else \
            list(_rect_windows(W, H, th, tw, self.overlap))
        for i in range(0, len(wins), self.batch_size):
            chunk = wins[i: i + self.batch_size]
            sl = [(slice(int(v.row_off), int(v.row_off + v.height)), slice(int(v.col_off), int(v.col_off + v.width)))
                  for v in chunk]
            b = np.stack([before[:, r, c] for r, c in sl])
            a = np.stack([after[:, r, c] for r, c in sl])
            logits = self._run(np.ascontiguousarray(b), np.ascontiguousarray(a))
            change = 1 / (1 + np.exp(-logits[:, 0]))
            exc = 1 / (1 + np.exp(logits[:, 1] - logits[:, 2]))  # softmax share of excavation
            for k, (r, c) in enumerate(sl):
                wk = weights[: r.stop - r.start, : c.stop - c.start]
                acc[0, r, c] += change[k] * wk
                acc[1, r, c] += exc[k] * wk
                wsum[r, c] += wk
        acc /= wsum
        return acc[0, :h, :w], acc[1, :h, :w]


def _ceil(n: int) -> int:
    return -(-n // MULTIPLE) * MULTIPLE


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
