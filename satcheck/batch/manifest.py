"""The batch manifest: one YAML file that names everything a monthly run needs."""

from __future__ import annotations

import datetime as dt
import glob
import json
import re
import tempfile
from pathlib import Path
from typing import Literal

import rasterio
from pydantic import BaseModel, ConfigDict, Field, field_validator

from satcheck.config import RunConfig, _validate, load_config, load_yaml
from satcheck.errors import ConfigError, SatcheckError, TileReadError
from satcheck.tiles import TILE_SUFFIXES, date_from_name, date_from_tags, find_tiles


class TileSet(BaseModel):
    """Tiles of one date: a folder, a glob pattern, or a STAC catalog / item collection (JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str
    asset: str | None = Field(None, description="STAC asset key; default: the first GeoTIFF asset of each item.")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    period: str = Field(..., description="YYYY-MM")
    before: TileSet
    after: TileSet
    rules: str | None = None
    ledger: str | None = None
    out: str
    config: str | None = Field(None, description="Run configuration (YAML); default: the built-in defaults.")
    detector: Literal["auto", "model", "cva"] | None = None
    device: Literal["auto", "cpu", "cuda"] | None = None

    @field_validator("period")
    @classmethod
    def _period(cls, v: str) -> str:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", v):
            raise ValueError(f"'{v}' is not a period; write it as YYYY-MM, e.g. 2026-10")
        return v

    @field_validator("before", "after", mode="before")
    @classmethod
    def _tileset(cls, v):
        return {"path": v} if isinstance(v, str) else v


def load_manifest(path: str | Path) -> tuple[Manifest, RunConfig]:
    """The manifest and its run configuration; relative paths are taken from the manifest's folder."""
    path = Path(path)
    raw = load_yaml(path)
    m: Manifest = _validate(Manifest, raw, str(path))
    base = path.resolve().parent

    def rel(p: str | None) -> str | None:
        return None if p is None else str(((base / p) if not Path(p).is_absolute() else Path(p)).resolve())

    m = m.model_copy(update={
        "before": m.before.model_copy(update={"path": rel(m.before.path)}),
        "after": m.after.model_copy(update={"path": rel(m.after.path)}),
        "rules": rel(m.rules), "ledger": rel(m.ledger), "out": rel(m.out), "config": rel(m.config)})
    for name, ts in (("before", m.before), ("after", m.after)):
        p = Path(ts.path)
        if not any(c in ts.path for c in "*?[") and not p.exists():
            raise ConfigError(f"{path}: {name} tiles '{ts.path}' not found; fix '{name}:' in the manifest")
    if m.rules and not Path(m.rules).is_dir():
        raise ConfigError(f"{path}: rules folder '{m.rules}' not found; fix 'rules:' in the manifest")
    cfg = load_config(m.config).with_overrides(**{"detect.detector": m.detector, "detect.device": m.device})
    check_period(m, path)
    if m.ledger:
        check_ledger(Path(m.ledger), path, cfg)
    return m, cfg


def check_ledger(ledger: Path, path: Path, cfg: RunConfig) -> None:
    """Refuse a ledger the batch could not import into, before any tile is read rather than after all of them."""
    from satcheck.review.ledger import Ledger

    if ledger.is_dir():
        raise ConfigError(f"{path}: ledger '{ledger}' is a folder; fix 'ledger:' in the manifest (a file such as "
                          "ledger.sqlite)")
    try:
        ledger.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=ledger.parent).close()  # SQLite writes its journal beside the ledger
    except OSError as exc:
        raise ConfigError(f"{path}: ledger '{ledger}' cannot be written in its folder ({exc.strerror or exc}); fix "
                          "'ledger:' in the manifest, or make the folder writable") from None
    if ledger.exists():
        with Ledger(ledger, cfg.review, create=False):
            pass  # not a ledger, damaged, newer: its own one-line error, now


def check_period(m: Manifest, path: Path) -> None:
    """Refuse a manifest whose period is not the month of its later imagery, before any tile is read.

    Patches take their period (and the YYYYMM of their ids, and their place in the ledger) from the later tiles'
    dates (file name, else TIFF tags), as a run does; a manifest that says another month is either stale or points
    at the wrong imagery, and either way the batch would not be the period it says. Tiles without a date say
    nothing; tiles that cannot be found or opened are left to the batch, which reports each.
    """
    try:
        tiles = resolve_tiles(m.after)
    except SatcheckError:
        return
    dated = [(d, t) for t in tiles if (d := _tile_date(t)) is not None]
    if not dated:
        return
    date, tile = max(dated)
    if f"{date:%Y-%m}" != m.period:
        raise ConfigError(f"{path}: period {m.period}, but the later imagery is of {date:%Y-%m} ({tile.name}, dated "
                          f"{date}), and patches take the period of the later imagery; fix 'period:' or 'after:' in "
                          "the manifest")


def _tile_date(p: Path) -> dt.date | None:
    """A tile's date as :func:`satcheck.tiles.open_tile` reads it: from its name, else its TIFF tags."""
    date = date_from_name(p.name)
    if date is not None:
        return date
    try:
        with rasterio.open(p) as src:
            return date_from_tags(src.tags())
    except rasterio.errors.RasterioError:
        return None


def resolve_tiles(ts: TileSet) -> list[Path]:
    """The GeoTIFFs of a tile set, sorted."""
    p = Path(ts.path)
    if p.suffix.lower() == ".json" and p.is_file():
        return _stac_tiles(p, ts.asset)
    if any(c in ts.path for c in "*?["):
        found = sorted(Path(f) for f in glob.glob(ts.path, recursive=True) if Path(f).suffix.lower() in TILE_SUFFIXES)
        if not found:
            raise TileReadError(f"{ts.path}: the pattern matches no .tif file; fix the glob in the manifest")
        return found
    return find_tiles(p)


def _stac_tiles(path: Path, asset: str | None) -> list[Path]:
    import pystac

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise TileReadError(f"{path}: not UTF-8 text, so not a STAC file; pass a STAC catalog, item or item "
                            "collection (JSON)") from None
    except json.JSONDecodeError as exc:
        raise TileReadError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); the file "
                            "looks truncated or damaged: download or write it again") from None
    try:
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        if data.get("type") == "FeatureCollection":
            items = list(pystac.ItemCollection.from_dict(data))
        else:
            cat = pystac.read_file(str(path))
            items = list(cat.get_items(recursive=True)) if hasattr(cat, "get_items") else [cat]
    except (pystac.STACError, KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise TileReadError(f"{path}: not a STAC catalog, item or item collection ({why}); fix the file or "
                            "'before:' / 'after:' in the manifest") from None
    out = []
    for item in items:
        assets = item.assets
        chosen = assets.get(asset) if asset else next(
            (a for a in assets.values() if (a.media_type or "").startswith("image/tiff") or a.href.lower().endswith(".tif")),
            None)
        if chosen is None:
            raise TileReadError(f"{path}: item '{item.id}' has no {'asset ' + repr(asset) if asset else 'GeoTIFF asset'}; "
                                "set 'asset:' in the manifest")
        href = chosen.get_absolute_href() or chosen.href
        tile = Path(href.removeprefix("file://"))
        tile = tile if tile.is_absolute() else path.parent / tile
        if "://" not in href.removeprefix("file://") and not tile.is_file():
            raise TileReadError(f"{path}: item '{item.id}' points to {tile}, which is not there; fix its href, or "
                                "download the tile")
        out.append(tile)
    if not out:
        raise TileReadError(f"{path}: the STAC file lists no items")
    return sorted(out)
