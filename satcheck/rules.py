"""Rule layers: farmland, permanent basic farmland, mining permits, approved land, admin units.

Each is read from GeoPackage, Shapefile or GeoJSON in any CRS, found by
name in a folder, reprojected to the pair's CRS, and its attribute names
mapped through the config so a survey export works without renaming
columns.  Invalid geometries are repaired and reported by feature id.
Each layer must overlap the imagery (:func:`check_fit`): one that does not,
such as a layer whose CRS names the wrong Gauss-Krüger zone, is an error
unless ``rules.allow_partial`` (``--allow-partial-rules``) says layers may
cover other parts of the jurisdiction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from satcheck.config import RulesConfig
from satcheck.errors import RuleLayerError
from satcheck.geometry import box_in, polygonal_part

LAYERS = ("farmland", "basic_farmland", "mining_permits", "approved_land", "admin")
SUFFIXES = (".gpkg", ".shp", ".geojson", ".json")
# Change types the construction rules apply to: building, hardened ground (yards, roads, pads), and construction
# where a detector does not tell them apart (the cva baseline, older weights). Excavation follows the mining rules.
CONSTRUCTION_TYPES = ("building", "hardened", "construction")
# Layers of a few scattered features (a permit here, an approval there) may lie beside the imagery without touching
# it, as when the part of a county with the mines is not in this month's tiles: they fit when they come this close.
# A CRS that names the wrong zone puts a layer hundreds of kilometres away.
SPARSE = ("basic_farmland", "mining_permits", "approved_land")
NEAR_M = 20_000.0


def rule_kind(change_type: object) -> str:
    """'construction' for building, hardened and construction, 'excavation' for excavation, else the type itself."""
    t = str(change_type)
    if t in CONSTRUCTION_TYPES:
        return "construction"
    return t


@dataclass
class RuleLayers:
    """Rule layers in one CRS with canonical column names; absent layers are None."""

    farmland: gpd.GeoDataFrame | None = None  # class_code, class_name
    basic_farmland: gpd.GeoDataFrame | None = None
    mining_permits: gpd.GeoDataFrame | None = None  # permit_no, holder, valid_from, valid_to (dates)
    approved_land: gpd.GeoDataFrame | None = None  # approval_no, approved_on
    admin: gpd.GeoDataFrame | None = None  # code, name
    sources: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def present(self) -> list[str]:
        return [n for n in LAYERS if getattr(self, n) is not None]


def find_layer(folder: Path, name: str) -> Path | None:
    for suf in SUFFIXES:
        p = folder / f"{name}{suf}"
        if p.exists():
            return p
    return None


def _read(path: Path, crs) -> gpd.GeoDataFrame:
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise RuleLayerError(f"{path}: cannot be read as a vector layer ({type(exc).__name__}); "
                             "export it as GeoPackage, Shapefile or GeoJSON") from None
    if gdf.crs is None and len(gdf):
        raise RuleLayerError(f"{path}: has no CRS; define it (e.g. a .prj file) so it can be reprojected")
    if len(gdf) and gdf.crs != crs:
        gdf = gdf.to_crs(crs)
    elif gdf.crs is None:
        gdf = gdf.set_crs(crs, allow_override=True)
    return gdf


POLYGONAL = ("Polygon", "MultiPolygon")


def _wrong_geometry(path: Path, name: str, kind: str, example: str = "") -> RuleLayerError:
    return RuleLayerError(f"{path}: the {name} layer holds {kind} geometries{example}, but rule layers are areas: "
                          f"export the {name} outlines as Polygon or MultiPolygon")


def _check_geometry(gdf: gpd.GeoDataFrame, path: Path, name: str) -> None:
    """Refuse a layer of points or lines: each rule is an overlap of areas, and points and lines cover none.
    A geometry collection with areas in it is replaced, in ``gdf``, by those areas."""
    geoms = gdf.geometry[~gdf.geometry.isna() & ~gdf.geometry.is_empty]
    bad = ~geoms.geom_type.isin(POLYGONAL)
    # A collection (what clipping and overlays in GIS tools leave) counts by its areas; stray lines in it do not.
    mixed = geoms.geom_type == "GeometryCollection"
    if mixed.any():
        bad[mixed] = [polygonal_part(g).is_empty for g in geoms[mixed]]
        gdf.loc[geoms.index[mixed & ~bad], gdf.geometry.name] = [polygonal_part(g) for g in geoms[mixed & ~bad]]
    if bad.any():
        kinds = ", ".join(sorted(set(geoms.geom_type[bad])))
        raise _wrong_geometry(path, name, kinds, f" (feature id {geoms.index[bad][0]}"
                                                 f"{f' and {int(bad.sum()) - 1} more' if bad.sum() > 1 else ''})")


def _layer_names(folder: Path) -> str:
    """What a rules folder holds, for an error that found none of the layers."""
    have = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    return (f"it holds {', '.join(have[:8])}{' ...' if len(have) > 8 else ''}" if have
            else "it holds no .gpkg, .shp or .geojson file")


def _no_layers(folder: Path) -> RuleLayerError:
    return RuleLayerError(f"{folder}: no rule layer found ({_layer_names(folder)}); name the layers "
                          f"{', '.join(LAYERS)} (.gpkg, .shp or .geojson), or leave out --rules")


def _admin_codes(codes: pd.Series, path: Path, column: str) -> pd.Series:
    """Admin codes as text: 6 (county), 9 (township) or 12 (village) digits, leading zeros kept.

    A numeric column (a survey exported with XZQDM as a number) is read as the integers it holds; a value that is
    not such a code, or none, would make patch ids such as ``12-202610-0001``: an error naming the feature.
    """
    def one(v) -> str | None:
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return None
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        t = str(v).strip()
        return t if t.isdigit() and len(t) in (6, 9, 12) and t.isascii() else None

    out = codes.map(one)
    bad = out.isna()
    if bad.any():
        i = codes.index[bad][0]
        value = codes[i]
        shown = "empty" if value is None or (isinstance(value, float) and pd.isna(value)) else f"'{value}'"
        numeric = " (the column is numeric: were leading zeros lost? store the codes as text)" \
            if pd.api.types.is_numeric_dtype(codes.dtype) else ""
        raise RuleLayerError(f"{path}: '{column}' of feature id {i} is {shown}, not a 6-, 9- or 12-digit admin code"
                             f"{numeric}; fix the layer, or set rules.admin.code to the column with the codes")
    return out


def _class_codes(codes: pd.Series) -> pd.Series:
    """DLBM land-class codes as text; a numeric column (0101 stored as 101) is zero-padded to 4 digits."""
    def one(v) -> str | None:
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return None
        if isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer()):
            return f"{int(v):04d}"
        t = str(v).strip()
        return t or None
    return codes.map(one)


def _farmland(gdf: gpd.GeoDataFrame, path: Path, cfg: RulesConfig, problems: list[str]) -> gpd.GeoDataFrame:
    """The features of a farmland layer whose land class counts as farmland; no class code at all is an error."""
    column = cfg.farmland.class_code
    gdf["class_code"] = _class_codes(gdf["class_code"])
    empty = gdf["class_code"].isna()
    if len(gdf) and empty.all():
        raise RuleLayerError(f"{path}: '{column}' is empty in every feature, so no land counts as farmland; fill in "
                             "the land-class codes (0101, 0102, 0103), or set rules.farmland.class_code to the column "
                             "that holds them")
    if empty.any():
        problems.append(f"{path.name}: {int(empty.sum())} of {len(gdf)} features have no '{column}'; they do not "
                        "count as farmland")
    kept = gdf[gdf["class_code"].isin(cfg.farmland_codes)]
    if len(gdf) and not len(kept):
        found = ", ".join(sorted(set(gdf["class_code"].dropna()))[:8])
        problems.append(f"{path.name}: no feature has a farmland code ({', '.join(cfg.farmland_codes)}) in "
                        f"'{column}' (it has {found}); no patch is farmland construction: set rules.farmland_codes "
                        "if the layer codes farmland otherwise")
    return kept


def _repair(gdf: gpd.GeoDataFrame, path: Path, problems: list[str]) -> gpd.GeoDataFrame:
    gdf = gdf[~gdf.geometry.isna() & ~gdf.geometry.is_empty].copy()
    bad = ~gdf.geometry.is_valid
    if bad.any():
        ids = [str(i) for i in gdf.index[bad][:10]]
        more = "" if bad.sum() <= 10 else f" and {int(bad.sum()) - 10} more"
        problems.append(f"{path.name}: repaired {int(bad.sum())} invalid geometries (feature ids {', '.join(ids)}{more})")
        fixed = shapely.make_valid(gdf.geometry.values[bad])
        # make_valid can return collections with lines; keep the polygonal part.
        gdf.loc[bad, gdf.geometry.name] = [polygonal_part(g) for g in fixed]
    return gdf[~gdf.geometry.is_empty]


def _columns(gdf: gpd.GeoDataFrame, path: Path, mapping: dict[str, str], section: str,
             required: tuple[str, ...]) -> gpd.GeoDataFrame:
    out = gpd.GeoDataFrame(geometry=gdf.geometry.values, crs=gdf.crs, index=gdf.index)
    for canon, actual in mapping.items():
        if actual in gdf.columns:
            out[canon] = gdf[actual].values
        elif canon in required and len(gdf):
            cols = ", ".join(c for c in gdf.columns if c != gdf.geometry.name)
            raise RuleLayerError(f"{path}: no attribute '{actual}' (has {cols}); set rules.{section}.{canon} "
                                 "in the config to the column that holds it")
        else:
            out[canon] = None
    return out


def _dates(series: pd.Series, path: Path, column: str) -> pd.Series:
    def one(v):
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return None
        if isinstance(v, dt.datetime):
            return v.date()
        if isinstance(v, dt.date):
            return v
        try:
            return pd.Timestamp(str(v)).date()
        except (ValueError, TypeError):
            raise RuleLayerError(f"{path}: '{v}' in '{column}' is not a date; write dates as YYYY-MM-DD") from None
    return series.map(one)


def load_rules(folder: str | Path | None, crs, cfg: RulesConfig) -> RuleLayers:
    """Every rule layer found in ``folder``, in ``crs``; a missing folder is an error, missing layers are not."""
    rules = RuleLayers()
    if folder is None:
        return rules
    folder = Path(folder)
    if not folder.is_dir():
        raise RuleLayerError(f"{folder}: rules folder not found; pass --rules with a folder of layers "
                             f"named {', '.join(LAYERS)}")
    for name in LAYERS:
        path = find_layer(folder, name)
        if path is None:
            continue
        gdf = _read(path, crs)
        _check_geometry(gdf, path, name)
        gdf = _repair(gdf, path, rules.problems)
        rules.sources[name] = str(path)
        setattr(rules, name, _attributes(name, gdf, path, cfg, rules.problems).reset_index(drop=True))
    if not rules.sources:
        raise _no_layers(folder)
    return rules


def _attributes(name: str, gdf: gpd.GeoDataFrame, path: Path, cfg: RulesConfig, problems: list[str]) -> gpd.GeoDataFrame:
    """The layer with its attributes under satcheck's names, codes and dates parsed; bad values are errors."""
    if name == "farmland":
        return _farmland(_columns(gdf, path, cfg.farmland.model_dump(), "farmland", ("class_code",)), path, cfg,
                         problems)
    if name == "admin":
        gdf = _columns(gdf, path, cfg.admin.model_dump(), "admin", ("code",))
        gdf["code"] = _admin_codes(gdf["code"], path, cfg.admin.code)
    elif name == "mining_permits":
        gdf = _columns(gdf, path, cfg.mining_permits.model_dump(), "mining_permits",
                       ("permit_no", "valid_from", "valid_to"))
        gdf["valid_from"] = _dates(gdf["valid_from"], path, cfg.mining_permits.valid_from)
        gdf["valid_to"] = _dates(gdf["valid_to"], path, cfg.mining_permits.valid_to)
    elif name == "approved_land":
        gdf = _columns(gdf, path, cfg.approved_land.model_dump(), "approved_land", ("approval_no",))
    return gdf


def check_attributes(folder: str | Path | None, cfg: RulesConfig) -> None:
    """The checks :func:`load_rules` makes of attributes (missing columns, land-class and admin codes, dates),
    made from the attribute tables alone, so a bad layer fails before any tile is read rather than after."""
    import pyogrio

    if folder is None:
        return
    if not Path(folder).is_dir():
        raise RuleLayerError(f"{folder}: rules folder not found; pass --rules with a folder of layers "
                             f"named {', '.join(LAYERS)}")
    for name in LAYERS:
        path = find_layer(Path(folder), name)
        if path is None:
            continue
        try:
            table = pyogrio.read_dataframe(path, read_geometry=False)
        except Exception as exc:  # pyogrio raises DataSourceError and friends
            raise RuleLayerError(f"{path}: cannot be read as a vector layer ({type(exc).__name__}); "
                                 "export it as GeoPackage, Shapefile or GeoJSON") from None
        _attributes(name, gpd.GeoDataFrame(table, geometry=[None] * len(table)), path, cfg, [])


def check_fit(folder: str | Path | None, footprint, crs, imagery_crs, allow_partial: bool = False) -> list[str]:
    """Check that each rule layer in ``folder`` overlaps the imagery; returns warnings (with ``allow_partial``).

    ``footprint``: the later tiles' outline in ``crs`` (the patches' CRS, metres); ``imagery_crs``: the tiles' CRS,
    named in messages. Only each layer's extent is read. A layer whose extent, reprojected, misses the footprint
    (farmland, admin), or lies more than :data:`NEAR_M` from it (the :data:`SPARSE` layers), is a one-line
    :class:`RuleLayerError` naming the layer, its CRS and the imagery's, and saying when its CRS is another zone
    or its coordinates would fit the imagery in the imagery's CRS (the file names the wrong CRS); with
    ``allow_partial`` (a layer that legitimately covers another part of the jurisdiction) it is a warning.
    """
    if folder is None or footprint is None or not Path(folder).is_dir():
        return []
    warnings = []
    img = CRS.from_user_input(imagery_crs)
    near = footprint.buffer(NEAR_M)
    if not any(find_layer(Path(folder), name) for name in LAYERS):
        raise _no_layers(Path(folder))
    for name in LAYERS:
        path = find_layer(Path(folder), name)
        if path is None:
            continue
        layer_crs, bounds = _extent(path, name)
        if bounds is None:
            continue  # an empty layer covers nothing, and says so by having no features
        if (near if name in SPARSE else footprint).intersects(box_in(bounds, layer_crs, crs)):
            continue
        where = f"is not within {NEAR_M / 1000:.0f} km of" if name in SPARSE else "does not overlap"
        msg = (f"{path}: the {name} layer in {_name(layer_crs)} {where} the imagery "
               f"(in {_name(img)}){_why(bounds, layer_crs, img, footprint, crs)}")
        if not allow_partial:
            raise RuleLayerError(f"{msg}; fix the layer's CRS, or pass --allow-partial-rules "
                                 "(rules.allow_partial) if it covers another part of the jurisdiction")
        warnings.append(f"{msg}; used anyway (--allow-partial-rules), it decides nothing here")
    return warnings


def _extent(path: Path, name: str = "rule") -> tuple[CRS, tuple | None]:
    """A layer's CRS and extent from its header; a layer the header says is points or lines is refused here,
    before any tile is read (a layer of mixed or unknown type is checked feature by feature in :func:`load_rules`)."""
    import pyogrio

    try:
        info = pyogrio.read_info(path, force_total_bounds=True)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise RuleLayerError(f"{path}: cannot be read as a vector layer ({type(exc).__name__}); "
                             "export it as GeoPackage, Shapefile or GeoJSON") from None
    kind = (info.get("geometry_type") or "Unknown").split(" ")[0]  # "Point Z" -> "Point"
    if info.get("features") and kind in ("Point", "MultiPoint", "LineString", "MultiLineString"):
        raise _wrong_geometry(path, name, kind)
    bounds = info.get("total_bounds")
    if not info.get("features") or bounds is None or not np.all(np.isfinite(bounds)):
        return None, None
    if not info.get("crs"):
        raise RuleLayerError(f"{path}: has no CRS; define it (e.g. a .prj file) so it can be reprojected")
    return CRS.from_user_input(info["crs"]), tuple(float(b) for b in bounds)


def _name(crs: CRS | None) -> str:
    if crs is None:
        return "no CRS"
    code = crs.to_epsg()
    return f"EPSG:{code}" if code else crs.name


def _central_meridian(crs: CRS) -> float | None:
    op = crs.coordinate_operation if crs.is_projected else None
    if op is None or "Transverse Mercator" not in op.method_name:
        return None
    for p in op.params:
        if p.name == "Longitude of natural origin":
            return float(p.value)
    return None


def _why(bounds: tuple, layer_crs: CRS, img: CRS, footprint, crs) -> str:
    """Why a layer may miss the imagery: its CRS is another zone; its coordinates are the imagery CRS's."""
    if layer_crs == img:
        return ""
    parts = []
    a, b = _central_meridian(layer_crs), _central_meridian(img)
    if a is not None and b is not None and a != b:
        parts.append(f"its CRS puts it in another zone (central meridian {a:g}°E, the imagery's {b:g}°E)")
    if footprint.intersects(box_in(bounds, img, crs)):
        parts.append(f"its coordinates fall on the imagery when read in {_name(img)}, so the file's CRS is "
                     f"probably wrong ({_name(layer_crs)} where {_name(img)} was meant)")
    return (": " + "; ".join(parts)) if parts else ""
