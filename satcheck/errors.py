"""Error types.

Every error satcheck raises on purpose derives from :class:`SatcheckError`
and also from the builtin that best describes it, so callers can catch
either.  The message of each is one line that names the file involved and
what to do about it; the CLI prints it as is.
"""

from __future__ import annotations


class SatcheckError(Exception):
    """Root of all satcheck errors."""


class TileReadError(SatcheckError, OSError):
    """A tile is missing, unreadable or not a raster."""


class TileGeoreferenceError(SatcheckError, ValueError):
    """A tile lacks a CRS or a usable geotransform."""


class NoOverlapError(SatcheckError, ValueError):
    """The two dates do not cover a common area."""


class DateOrderError(SatcheckError, ValueError):
    """An earlier-date tile is dated after the later-date tile it pairs with (the dates look swapped)."""


class TileNameError(SatcheckError, ValueError):
    """Two later-date tiles share a name (and their folders theirs), under which their results are kept."""


class BandMismatchError(SatcheckError, ValueError):
    """The two dates have different band counts, or no weights fit them."""


class ConfigError(SatcheckError, ValueError):
    """A configuration or manifest file is invalid."""


class ModelError(SatcheckError, ValueError):
    """A weights file is missing or does not fit the network."""


class DatasetError(SatcheckError, ValueError):
    """A training or evaluation dataset folder is malformed."""


class RuleLayerError(SatcheckError, ValueError):
    """A rule layer cannot be read or lacks a required attribute."""


class PatchFileError(SatcheckError, ValueError):
    """A patches file is not one satcheck wrote, or lost what each patch needs (id, period, class)."""


class OutputError(SatcheckError, OSError):
    """An output cannot be written."""
