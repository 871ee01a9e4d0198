"""Enforcement patches (图斑): change polygons classified against the rule layers.

A patch is what goes to a reviewer and then to a field team: one polygon
with a stable id, a violation class, areas in m² and mu, its location in
CGCS2000 geographic and projected coordinates, the admin unit, and the
permit or approval involved.  The schema is documented in the README and
in :data:`PATCH_FIELDS`.  Ids are admin code, period and a sequence; an id
once issued stays with its place (:mod:`satcheck.patch_ids`), and new
places are numbered north to south, west to east, so the same inputs give
the same ids.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from satcheck.config import M2_PER_MU, PatchConfig, ReviewConfig, RulesConfig
from satcheck.geometry import polygonal_part, touching_groups
from satcheck.patch_ids import Issued, issue
from satcheck.rules import RuleLayers, rule_kind

CLASSES = ("farmland_construction", "illegal_mining", "expired_permit_mining", "out_of_bounds_mining",
           "approved", "other_change")
CLASS_ZH = {
    "farmland_construction": "耕地非农化建设", "illegal_mining": "无证开采", "expired_permit_mining": "过期采矿权开采",
    "out_of_bounds_mining": "越界开采", "approved": "已批建设", "other_change": "其他变化",
}
PRIORITY = {"farmland_construction": 1, "out_of_bounds_mining": 1, "illegal_mining": 1, "expired_permit_mining": 1,
            "other_change": 3, "approved": 4}

# name: (type, English description, Chinese header)
PATCH_FIELDS: dict[str, tuple[str, str, str]] = {
    "patch_id": ("str", "admin code - period (YYYYMM) - 4-digit sequence; an id stays with its place across reruns, "
                 "new places are numbered north to south, west to east", "图斑编号"),
    "period": ("str", "enforcement period, YYYY-MM of the later image", "监测期"),
    "class": ("str", "violation class: " + ", ".join(CLASSES), "图斑类型"),
    "change_type": ("str", "building, hardened, construction (either, where the detector cannot tell) or "
                    "excavation, from the detector", "变化类型"),
    "confidence": ("float", "mean change probability inside the patch, 0..1", "置信度"),
    "area_m2": ("float", "patch area in m²", "面积(平方米)"),
    "area_mu": ("float", "patch area in mu (1 mu = 10000/15 m²)", "面积(亩)"),
    "farmland_area_m2": ("float", "area on farmland (耕地) in m²", "占耕地面积(平方米)"),
    "basic_farmland_area_m2": ("float", "area on permanent basic farmland (永久基本农田) in m²",
                               "占永久基本农田面积(平方米)"),
    "on_basic_farmland": ("bool", "true when the patch lies on permanent basic farmland (at least "
                          "rules.min_overlap_m2 and rules.min_overlap_share of it)", "涉及永久基本农田"),
    "outside_permit_area_m2": ("float", "excavated area outside every valid permit, m²", "超出采矿权范围面积(平方米)"),
    "farmland_class": ("str", "DLBM land-class code covering most of the patch's farmland part", "地类编码"),
    "centroid_lon": ("float", "centroid longitude, CGCS2000 (EPSG:4490)", "中心经度"),
    "centroid_lat": ("float", "centroid latitude, CGCS2000 (EPSG:4490)", "中心纬度"),
    "centroid_x": ("float", "centroid easting in the patches' CRS (output.crs)", "中心X坐标"),
    "centroid_y": ("float", "centroid northing in the patches' CRS (output.crs)", "中心Y坐标"),
    "admin_code": ("str", "6-digit admin code (XZQDM) at the centroid", "行政区代码"),
    "admin_name": ("str", "admin unit name (XZQMC)", "行政区名称"),
    "permit_no": ("str", "mining permit involved, if any", "采矿许可证号"),
    "permit_holder": ("str", "holder of that permit", "采矿权人"),
    "approval_no": ("str", "construction approval involved, if any", "批准文号"),
    "before_date": ("str", "date of the earlier image, YYYY-MM-DD", "前时相日期"),
    "after_date": ("str", "date of the later image, YYYY-MM-DD", "后时相日期"),
    "before_tiles": ("str", "earlier tiles the patch lies on (file names, ';'-separated)", "前时相影像"),
    "after_tiles": ("str", "later tiles the patch lies on (file names, ';'-separated)", "后时相影像"),
    "status": ("str", "review state; 'pending' when exported by a run", "状态"),
}


@dataclass(frozen=True)
class PatchContext:
    before_date: dt.date | None
    after_date: dt.date | None
    before_tiles: tuple[str, ...]
    after_tiles: tuple[str, ...]
    pixel_m: float
    # (date, file name, footprint in the patches' CRS), date 'before' or 'after': a patch lists the tiles it lies
    # on. Without footprints every patch lists every tile.
    footprints: tuple[tuple[str, str, object], ...] = ()

    @property
    def period(self) -> str:
        d = self.after_date or dt.date.today()
        return f"{d:%Y-%m}"


def _merge_fragments(changes: gpd.GeoDataFrame, gap: float) -> gpd.GeoDataFrame:
    """Join change polygons of one kind (construction: building, hardened ground or either; excavation) that lie
    closer than ``gap`` metres; the patch's change type is that of most of its pixels."""
    if len(changes) == 0 or gap <= 0:
        return changes.assign(_n=1)
    rows = []
    kinds = changes["change_type"].map(rule_kind)
    for _, grp in changes.groupby(kinds, sort=True):
        groups = touching_groups(grp.geometry.buffer(gap / 2).values)
        for members in groups:
            sub = grp.iloc[members]
            w = sub["pixels"] if "pixels" in sub else pd.Series(np.ones(len(sub)), index=sub.index)
            by_type = w.groupby(sub["change_type"]).sum()
            kind = sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            rows.append({"change_type": kind, "mean_score": float(np.average(sub["mean_score"], weights=w)),
                         "pixels": int(w.sum()), "_n": len(sub), "geometry": shapely.union_all(sub.geometry.values)})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=changes.crs)


def _area_in(geom, layer: gpd.GeoDataFrame | None) -> float:
    if layer is None or len(layer) == 0:
        return 0.0
    idx = layer.sindex.query(geom, predicate="intersects")
    if len(idx) == 0:
        return 0.0
    return float(shapely.union_all(layer.geometry.values[idx]).intersection(geom).area)


def _biggest_overlap(geom, layer: gpd.GeoDataFrame | None):
    """The row of ``layer`` that overlaps ``geom`` most, with the overlap area."""
    if layer is None or len(layer) == 0:
        return None, 0.0
    idx = layer.sindex.query(geom, predicate="intersects")
    best, best_a = None, 0.0
    for i in idx:
        a = layer.geometry.values[i].intersection(geom).area
        if a > best_a:
            best, best_a = layer.iloc[i], a
    return best, best_a


def _valid_on(permits: gpd.GeoDataFrame, day: dt.date | None) -> np.ndarray:
    if day is None:
        return np.ones(len(permits), bool)
    vf = permits["valid_from"].map(lambda d: d is None or d <= day)
    vt = permits["valid_to"].map(lambda d: d is None or d >= day)
    return (vf & vt).to_numpy(bool)


def counts(part: float, area: float, cfg: RulesConfig) -> bool:
    """Whether ``part`` m² of a patch of ``area`` m² on a rule layer counts: at least ``rules.min_overlap_m2`` and
    ``rules.min_overlap_share`` of the patch, so that a sliver along a boundary (simplification, digitising)
    does not set on_basic_farmland, make a building on farmland or put a pit inside or outside a permit."""
    return part > 0 and part >= cfg.min_overlap_m2 and part >= cfg.min_overlap_share * area


def classify(geom, change_type: str, rules: RuleLayers, ctx: PatchContext, cfg: RulesConfig) -> dict:
    """Violation class and the areas and documents that decide it, for one change polygon.

    Building, hardened ground and construction (a detector that does not tell them apart) follow the
    construction rules, excavation the mining rules (:func:`satcheck.rules.rule_kind`); any other change type
    is other_change.
    """
    area = geom.area
    out = {"class": "other_change", "farmland_area_m2": _area_in(geom, rules.farmland),
           "basic_farmland_area_m2": _area_in(geom, rules.basic_farmland), "outside_permit_area_m2": 0.0,
           "permit_no": None, "permit_holder": None, "approval_no": None, "farmland_class": None}
    on_farmland = counts(out["farmland_area_m2"], area, cfg)
    out["on_basic_farmland"] = counts(out["basic_farmland_area_m2"], area, cfg)
    if on_farmland:
        row, _ = _biggest_overlap(geom, rules.farmland)
        out["farmland_class"] = None if row is None else str(row["class_code"])
    approval, a_area = _biggest_overlap(geom, rules.approved_land)
    if approval is not None and _area_in(geom, rules.approved_land) >= cfg.approved_share * area:
        out.update({"class": "approved", "approval_no": approval["approval_no"]})
        return out
    kind = rule_kind(change_type)
    if kind == "construction":
        if on_farmland:
            out["class"] = "farmland_construction"
        return out
    if kind != "excavation":
        return out
    permits = rules.mining_permits
    if permits is None or len(permits) == 0:
        out.update({"class": "illegal_mining", "outside_permit_area_m2": area})
        return out
    valid = _valid_on(permits, ctx.after_date)
    valid_layer, stale_layer = permits[valid], permits[~valid]
    in_valid = _area_in(geom, valid_layer)
    if counts(in_valid, area, cfg):
        row, _ = _biggest_overlap(geom, valid_layer)
        outside = area - in_valid
        out.update({"permit_no": row["permit_no"], "permit_holder": row["holder"], "outside_permit_area_m2": outside})
        out["class"] = "out_of_bounds_mining" if counts(outside, area, cfg) else "other_change"
        return out
    row, in_stale = _biggest_overlap(geom, stale_layer)
    if row is not None and in_stale >= 0.5 * area:
        out.update({"class": "expired_permit_mining", "permit_no": row["permit_no"], "permit_holder": row["holder"],
                    "outside_permit_area_m2": area})
        return out
    out.update({"class": "illegal_mining", "outside_permit_area_m2": area})
    return out


def _mmu_area(rec: dict, area: float) -> float:
    """The area the minimum mapping unit is applied to: the part that makes the violation."""
    if rec["class"] == "farmland_construction":
        return rec["farmland_area_m2"]
    if rec["class"] == "out_of_bounds_mining":
        return rec["outside_permit_area_m2"]
    return area


def make_patches(changes: gpd.GeoDataFrame, rules: RuleLayers, ctx: PatchContext, rules_cfg: RulesConfig,
                 cfg: PatchConfig, issued: Sequence[Issued] = (), review: ReviewConfig = ReviewConfig()
                 ) -> gpd.GeoDataFrame:
    """Patches from change polygons: merge fragments, classify, apply the MMU, attribute, number.

    ``issued``: ids already issued (the registry of the output folder, the ledger); a patch that is the same place
    as one of them keeps its id, by the ledger's overlap rule (``review.match_iou``, ``review.match_share``);
    see :mod:`satcheck.patch_ids`. Patches come sorted by id.
    """
    crs = changes.crs
    merged = _merge_fragments(changes, cfg.merge_gap_m)
    tol = cfg.simplify_px * ctx.pixel_m
    records = []
    for _, ch in merged.iterrows():
        # Douglas-Peucker keeps every vertex within `tol` of the original outline.
        geom = shapely.make_valid(ch.geometry.simplify(tol, preserve_topology=True)) if tol > 0 else ch.geometry
        geom = polygonal_part(geom)
        if geom.is_empty:
            continue
        rec = classify(geom, ch["change_type"], rules, ctx, rules_cfg)
        if _mmu_area(rec, geom.area) < getattr(cfg.mmu_m2, rec["class"]):
            continue
        rec.update({"change_type": ch["change_type"], "confidence": round(float(ch["mean_score"]), 4), "geometry": geom})
        records.append(rec)
    return _attribute(records, rules, ctx, crs, issued, review)


def empty_patches(crs) -> gpd.GeoDataFrame:
    cols = {k: pd.Series(dtype="object") for k in PATCH_FIELDS}
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _attribute(records: list[dict], rules: RuleLayers, ctx: PatchContext, crs, issued: Sequence[Issued],
               review: ReviewConfig) -> gpd.GeoDataFrame:
    if not records:
        return empty_patches(crs)
    gdf = gpd.GeoDataFrame(records, geometry="geometry", crs=crs)
    cent = gdf.geometry.centroid
    to_geo = Transformer.from_crs(crs, "EPSG:4490", always_xy=True)
    lon, lat = to_geo.transform(cent.x.to_numpy(), cent.y.to_numpy())
    gdf["centroid_x"], gdf["centroid_y"] = cent.x.round(2), cent.y.round(2)
    gdf["centroid_lon"], gdf["centroid_lat"] = np.round(lon, 7), np.round(lat, 7)
    gdf["area_m2"] = gdf.geometry.area.round(2)
    gdf["area_mu"] = (gdf.geometry.area / M2_PER_MU).round(3)
    for col in ("farmland_area_m2", "basic_farmland_area_m2", "outside_permit_area_m2"):
        gdf[col] = gdf[col].astype(float).round(2)
    gdf["on_basic_farmland"] = gdf["on_basic_farmland"].astype(bool)
    codes, names = [], []
    for c in cent:
        row = None
        if rules.admin is not None and len(rules.admin):
            hit = rules.admin.sindex.query(c, predicate="intersects")
            row = rules.admin.iloc[hit[0]] if len(hit) else None
        codes.append(str(row["code"]) if row is not None else "000000")
        names.append(str(row["name"]) if row is not None and row["name"] is not None else "")
    gdf["admin_code"], gdf["admin_name"] = codes, names
    gdf["period"] = ctx.period
    gdf["before_date"] = ctx.before_date.isoformat() if ctx.before_date else ""
    gdf["after_date"] = ctx.after_date.isoformat() if ctx.after_date else ""
    gdf["before_tiles"], gdf["after_tiles"] = _tiles_under(gdf.geometry.values, ctx)
    gdf["status"] = "pending"
    gdf["patch_id"] = issue(gdf["admin_code"].tolist(), gdf["centroid_x"].tolist(), gdf["centroid_y"].tolist(),
                            list(gdf.geometry.values), ctx.period, issued, review.match_iou, review.match_share)
    gdf = gdf.sort_values("patch_id", kind="mergesort").reset_index(drop=True)
    for col in ("permit_no", "permit_holder", "approval_no", "farmland_class"):
        gdf[col] = gdf[col].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return gdf[list(PATCH_FIELDS) + ["geometry"]]


def _tiles_under(geoms, ctx: PatchContext) -> tuple[list[str], list[str]]:
    """Per patch, the earlier and the later tiles it lies on (';'-separated file names)."""
    if not ctx.footprints:
        return [";".join(ctx.before_tiles)] * len(geoms), [";".join(ctx.after_tiles)] * len(geoms)
    roles = [f[0] for f in ctx.footprints]
    names = [f[1] for f in ctx.footprints]
    tree = shapely.STRtree([f[2] for f in ctx.footprints])
    before, after = [], []
    for g in geoms:
        hits = [j for j in tree.query(g, predicate="intersects") if g.intersection(ctx.footprints[j][2]).area > 0]
        before.append(";".join(sorted({names[j] for j in hits if roles[j] == "before"})))
        after.append(";".join(sorted({names[j] for j in hits if roles[j] == "after"})))
    return before, after


def outside_admin(patches: gpd.GeoDataFrame, rules: RuleLayers) -> str | None:
    """A warning line when patches lie outside every admin unit (their ids start with 000000), else None."""
    lost = patches[patches["admin_code"] == "000000"] if len(patches) else patches
    if not len(lost):
        return None
    ids = ", ".join(lost["patch_id"].head(3)) + (f" and {len(lost) - 3} more" if len(lost) > 3 else "")
    n = f"{len(lost)} patch{'es' if len(lost) > 1 else ''}"
    if rules.admin is None:
        return (f"{n} numbered 000000 ({ids}): the rules have no admin layer; add admin.gpkg (XZQDM, XZQMC) "
                "to number patches by admin unit")
    return (f"{n} outside every admin unit of {rules.sources.get('admin', 'the admin layer')}, numbered 000000 "
            f"({ids}); check that the admin layer covers the imagery")
