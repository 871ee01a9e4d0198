"""Labelled change datasets on disk: A/B/label folders (PNG or GeoTIFF).

Layout (LEVIR-CD, DSIFN, OSCD previews and many others)::

    DATASET/A/<name>.png      earlier date
    DATASET/B/<name>.png      later date
    DATASET/label/<name>.png  0 = no change, 255 (or 1) = change
    DATASET/class/<name>.png  optional: 1 = construction, 2 = excavation

No torch here: evaluation and training both read through this module.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.errors import NotGeoreferencedWarning

from satcheck.errors import DatasetError, TileGeoreferenceError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass
class LabelledPair:
    name: str
    before: np.ndarray  # float32 (bands, h, w), about 0..1
    after: np.ndarray
    label: np.ndarray  # uint8 (h, w): 0 / 1
    change_class: np.ndarray | None  # uint8 (h, w): 0 unknown, 1 construction, 2 excavation
    px_m: float | None = None  # pixel size in metres: from a georeferenced GeoTIFF, else unknown


def read_image(path: Path) -> np.ndarray:
    """An image as float32 (bands, h, w) scaled to about 0..1."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        from satcheck.tiles import image_bands

        with warnings.catch_warnings():
            # Labelled pairs are often plain TIFFs without georeference; that is fine here.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                data = src.read(image_bands(src))
    else:
        from PIL import Image

        with Image.open(path) as im:
            data = np.asarray(im)
        data = data[None] if data.ndim == 2 else np.moveaxis(data[..., :3] if data.shape[-1] == 4 else data, -1, 0)
    from satcheck.masks import dn_scale

    return data.astype(np.float32) / dn_scale(str(data.dtype), data)


def pixel_size(path: Path) -> float | None:
    """Pixel width in metres of a georeferenced GeoTIFF; None for other images."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    from satcheck.tiles import open_tile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            return open_tile(path).pixel_m
        except TileGeoreferenceError:
            return None


def read_label(path: Path) -> np.ndarray:
    img = read_image(path)
    return (img[0] > 0).astype(np.uint8)


def _find(folder: Path, stem: str) -> Path | None:
    for suf in IMAGE_SUFFIXES:
        p = folder / f"{stem}{suf}"
        if p.exists():
            return p
    return None


def list_pairs(root: str | Path) -> list[str]:
    root = Path(root)
    for sub in ("A", "B", "label"):
        if not (root / sub).is_dir():
            raise DatasetError(f"{root}: no '{sub}' folder; a dataset needs A/, B/ and label/ folders")
    names = sorted(p.stem for p in (root / "A").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise DatasetError(f"{root / 'A'}: no images; put the earlier date's images there")
    for n in names:
        for sub in ("B", "label"):
            if _find(root / sub, n) is None:
                raise DatasetError(f"{root / sub}: no image named '{n}' to go with A/{n}; each pair needs all three")
    return names


def load_pair(root: str | Path, name: str) -> LabelledPair:
    root = Path(root)
    a_path = _find(root / "A", name)
    a = read_image(a_path)
    b = read_image(_find(root / "B", name))
    lab = read_label(_find(root / "label", name))
    if min(len(a), len(b)) >= 3:  # RGB against R, G, B, NIR: compared on red, green and blue, as in a run
        a, b = a[: len(b)], b[: len(a)]
    if a.shape != b.shape or a.shape[1:] != lab.shape:
        raise DatasetError(f"{root}: '{name}' has A {a.shape}, B {b.shape}, label {lab.shape}; sizes must match")
    cls_path = _find(root / "class", name) if (root / "class").is_dir() else None
    cls = None
    if cls_path is not None:
        cls = np.round(read_image(cls_path)[0] * (255 if cls_path.suffix == ".png" else 1)).astype(np.uint8)
        cls = np.where(cls > 2, 1, cls).astype(np.uint8)
    return LabelledPair(name, a, b, lab, cls, pixel_size(a_path))


def load_dataset(root: str | Path, names: list[str] | None = None) -> list[LabelledPair]:
    return [load_pair(root, n) for n in (names or list_pairs(root))]
