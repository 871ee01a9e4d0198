"""Change detection: detectors, cleanup and polygonising."""

from __future__ import annotations

import warnings

from satcheck.config import DetectConfig
from satcheck.detect.base import ChangeScores, Detector
from satcheck.errors import ConfigError

DETECTORS = ("auto", "model", "cva")
RUNTIMES = ("torch", "onnxruntime")  # what the learned model can run on


def get_detector(cfg: DetectConfig, bands: int) -> Detector:
    """The detector named in ``cfg`` for imagery with ``bands`` bands.

    ``auto`` is the learned model when weights exist, otherwise the
    classical baseline; tiles whose band count the weights do not take are
    an error either way (a silent switch to the baseline would change the
    results without anyone asking).
    """
    name = cfg.detector
    if name not in DETECTORS:
        raise ConfigError(f"detector '{name}' is unknown; choose one of {', '.join(DETECTORS)}")
    if name in ("auto", "model"):
        from satcheck.detect.learned import ModelDetector, model_available

        if name == "model" or model_available(cfg.model):
            try:
                return ModelDetector(cfg.model, cfg.device, bands)
            except ImportError as e:
                # Only a missing inference runtime is a reason to fall back; any other import failure is a
                # broken install and must not hide behind the baseline.
                if (e.name or "").split(".")[0] not in RUNTIMES:
                    raise
                if name == "model":
                    raise ConfigError(f"detector 'model' needs {e.name}; install it (pip install {e.name})") from None
                warnings.warn(f"{e.name} is not installed: using the classical baseline (cva)", stacklevel=2)
    from satcheck.detect.cva import CvaDetector

    return CvaDetector(cfg.cva)


__all__ = ["ChangeScores", "Detector", "DETECTORS", "get_detector"]
