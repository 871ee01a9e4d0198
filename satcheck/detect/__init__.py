"""Change detection: detectors, cleanup and polygonising."""

from __future__ import annotations

from satcheck.config import DetectConfig
from satcheck.detect.base import ChangeScores, Detector
from satcheck.errors import ConfigError

DETECTORS = ("auto", "model", "cva")


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
            except ImportError:
                if name == "model":
                    raise ConfigError("detector 'model' needs torch; install it (pip install torch)") from None
    from satcheck.detect.cva import CvaDetector

    return CvaDetector(cfg.cva)


__all__ = ["ChangeScores", "Detector", "DETECTORS", "get_detector"]
