"""The learned detector: ChangeNet behind the Detector interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from satcheck.align import PairWindow
from satcheck.config import ModelConfig
from satcheck.detect.base import CODES, ChangeScores
from satcheck.errors import BandMismatchError, ModelError
from satcheck.model.runtime import OnnxPredictor, TiledPredictor, cached_onnx, choose_engine, output_classes, to_input
from satcheck.model.weights import existing_weights, load_weights, shipped_weights

SUPPORTED_BANDS = (3, 4)
LEGACY_PIXEL_RANGE = (0.31, 10.0)


def weights_path(cfg: ModelConfig) -> Path | None:
    return Path(cfg.weights) if cfg.weights else shipped_weights()


def model_available(cfg: ModelConfig) -> bool:
    return weights_path(cfg) is not None


def build_predictor(cfg: ModelConfig, device: str, path: Path) -> tuple[TiledPredictor, dict]:
    """The inference engine for ``path`` and the weights' metadata; torch is imported only when needed."""
    tiling = {"tile_px": cfg.tile_px, "overlap_px": cfg.overlap_px, "batch_size": cfg.batch_size}
    if choose_engine(cfg.engine, device) == "onnx":
        hit = cached_onnx(path)
        if hit is None:
            from satcheck.model.infer import cache_onnx

            hit = cache_onnx(path)
        graph, meta = hit
        return OnnxPredictor(graph, cfg.threads, **tiling, outputs=meta.get("outputs", ())), meta
    from satcheck.model.infer import TorchPredictor

    model, meta = load_weights(path)
    return TorchPredictor(model, device, cfg.threads, cfg.gpu_precision, **tiling,
                          outputs=meta.get("outputs", ())), meta


class ModelDetector:
    halo = 32
    needs_sample = False

    def __init__(self, cfg: ModelConfig, device: str, bands: int):
        path = weights_path(cfg)
        if path is None:
            raise ModelError("models/changenet.pt: no shipped weights found; run 'satcheck train' or pass weights "
                             "in detect.model.weights")
        self.predictor, meta = build_predictor(cfg, device, existing_weights(path))
        fits = tuple(meta.get("bands", SUPPORTED_BANDS))
        if bands not in fits:
            raise BandMismatchError(
                f"{path}: these weights take {' or '.join(map(str, fits))} bands (R,G,B[,NIR]) but the tiles have "
                f"{bands}; list the R,G,B(,NIR) band numbers in bands.before / bands.after of the run configuration, "
                "or use --detector cva")
        self.meta = meta
        self.path = path
        self._codes = np.asarray([CODES[c] for c in output_classes(meta)], np.uint8)
        # Weights saved before their pixel sizes were recorded: the range of the recipe they all come from.
        self.pixel_range = tuple(meta.get("pixel_size_m") or LEGACY_PIXEL_RANGE)
        self.threshold = cfg.threshold
        self.enlarge_above_m, self.enlarge_by = cfg.enlarge_above_m, cfg.enlarge_by
        self.zoom, self.px_m = 1.0, None
        self._engine = f"{self.predictor.engine} on {self.predictor.device_type}"

    @property
    def name(self) -> str:
        enlarged = f", {self.px_m:.3g} m pixels enlarged {self.zoom:g}x" if self.zoom != 1.0 else ""
        return f"model ({self.path.name}, {self._engine}{enlarged})"

    def prepare(self, sample: PairWindow | None, px_m: float | None) -> None:
        coarse = px_m is not None and px_m > self.enlarge_above_m and self.enlarge_by > 1
        self.zoom, self.px_m = (self.enlarge_by if coarse else 1.0), px_m

    def imagery_warning(self) -> str | None:
        if self.px_m is None:
            return None
        seen = self.px_m / self.zoom
        lo, hi = self.pixel_range
        if lo / 1.5 <= seen <= hi * 1.5:  # the network's tolerance of scale reaches a little past what it saw
            return None
        size = f"{self.px_m:.3g} m pixels" + (f" (enlarged {self.zoom:g}x)" if self.zoom != 1 else "")
        return (f"{size} are outside the {lo:g}-{hi:g} m the model ({self.path.name}) was trained on: expect missed "
                "and false changes; resample the tiles into that range or use --detector cva")

    def score(self, pw: PairWindow) -> ChangeScores:
        before, after = to_input(pw.before), to_input(pw.after)
        masked = ~pw.valid
        if masked.any():
            # Where either date has no data (or cloud), both dates show the same pixels: otherwise the edge of a
            # nodata collar or of a cloud reads as change, and the network's response spreads into valid pixels.
            before[:, masked] = after[:, masked]
        if self.zoom == 1.0:
            classes = self.predictor.predict(before, after)
        else:
            classes = self._predict_enlarged(before, after)
        # A pixel has changed as much as its most likely class has; the class says into what.
        prob = np.where(pw.valid, classes.max(0), 0).astype(np.float32, copy=False)
        return ChangeScores(prob, self._codes[classes.argmax(0)])

    def _predict_enlarged(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """The predictor on both dates enlarged by ``zoom`` (bilinear), its outputs brought back to the window."""
        h, w = after.shape[1:]
        big = (max(1, round(h * self.zoom)), max(1, round(w * self.zoom)))
        return _resized(self.predictor.predict(_resized(before, big), _resized(after, big)), (h, w))


def _resized(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(bands, h, w) float32 resampled bilinearly to (bands, *shape), edges replicated."""
    from skimage.transform import resize

    return resize(img, (img.shape[0], *shape), order=1, mode="edge", anti_aliasing=False,
                  preserve_range=True).astype(np.float32, copy=False)
