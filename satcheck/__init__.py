"""satcheck: satellite-image land enforcement."""

__version__ = "0.1.0"
