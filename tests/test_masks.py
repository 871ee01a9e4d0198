"""Cloud and shadow masks that do not hide construction: roofs, pads and bright ground stay in, cloud and its
shadow go, a provider's cloud mask decides where a tile has one, and run.json says how much of a pair was masked."""

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import Window
from shapely.geometry import box
from typer.testing import CliRunner

from satcheck.align import PairReader
from satcheck.cli import app
from satcheck.config import MaskConfig, RunConfig
from satcheck.errors import SatcheckError, TileReadError
from satcheck.masks import cloud_and_shadow
from satcheck.pairs import pair_tiles
from satcheck.provider_masks import provider_files
from satcheck.tiles import open_tile
from tests.mask_scenes import cloud_pair, reflectance, roof_pair

runner = CliRunner()


def _mask(p, cfg=MaskConfig()):
    """The later date's cloud and shadow mask, judged against the earlier date, at full resolution."""
    b, b_ok = reflectance(p.before)
    a, a_ok = reflectance(p.after)
    return cloud_and_shadow(a, a_ok, cfg, 1.0, b, b_ok)


def _read_masked(p, config=RunConfig()):
    pair = pair_tiles([open_tile(p.before)], [open_tile(p.after)])[0]
    with PairReader(pair, config) as r:
        return r.read(Window(0, 0, pair.after.width, pair.after.height)).masked


def _run(p, out, *extra):
    r = runner.invoke(app, ["run", str(p.before.parent), str(p.after.parent), "--out", str(out), "--detector", "cva",
                            "--json", *map(str, extra)])
    assert r.exit_code == 0, r.output
    return json.loads((out / "run.json").read_text(encoding="utf-8")), r.output


def _config(tmp_path, text):
    path = tmp_path / "masks.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_new_white_roofs_pads_and_bright_ground_are_not_cloud(tmp_path):
    p = roof_pair(tmp_path)
    m = _mask(p)
    for r, c, h, w in p.roofs + p.bright_ground:
        assert m[r:r + h, c:c + w].mean() < 0.01, (r, c, h, w)
    assert m.mean() < 0.01


def test_new_white_roof_complex_is_found_by_a_run(tmp_path):
    p = roof_pair(tmp_path)
    # The baseline's automatic threshold is set by the brightest change (the white roofs): the blue ones score
    # about 0.65, under the default floor of a polygon's mean score; what is tested here is that none is masked.
    cfg = _config(tmp_path, "cleanup:\n  min_mean_score: 0.5\n")
    summary, _ = _run(p, tmp_path / "out", "--config", cfg)
    assert summary["masked_share"] < 0.01
    assert not any("masked as cloud" in w for w in summary["warnings"])
    changes = gpd.read_file(tmp_path / "out" / "changes.gpkg", layer="changes").union_all()
    t = p.transform
    roofs = [box(*(t * (c, r + h)), *(t * (c + w, r))) for r, c, h, w in p.roofs]
    for roof in roofs:
        assert changes.intersection(roof).area >= 0.5 * roof.area, roof.bounds
    complex_ = gpd.GeoSeries(roofs).union_all()
    assert changes.intersection(complex_).area >= 0.85 * complex_.area


def test_soft_cloud_and_its_offset_shadow_are_masked(tmp_path):
    p = cloud_pair(tmp_path)
    m = _mask(p)
    assert m[p.cloud > 0.05].mean() > 0.98
    # Its darkest part on bright fields is not dark for the scene, as a field turned dark green is not: some
    # 10 % of it is left, which its 30 m margin does not reach.
    assert m[p.shadow > 0.5].mean() > 0.85
    clear = (p.cloud < 0.01) & (p.shadow < 0.01)
    assert m[clear].mean() < 0.35  # the margin around both, not the whole scene
    # The same through a pair reader (decimated read, both dates).
    assert _read_masked(p)[p.cloud > 0.5].all()


def test_a_fairly_sharp_cloud_is_cloud_where_its_shadow_lies_at_an_offset_and_a_crisp_blob_never():
    """A thick cloud with a fairly sharp outline (seen coarsely) reads almost like a concrete pad: the copy of its
    outline lying dark some way off, where the other date was not dark, is what makes it a cloud. A blob as crisp
    as a roof is not cloud, shadow or not."""
    from scipy import ndimage

    yy, xx = np.mgrid[0:200, 0:200]
    earlier = np.full((4, 200, 200), 0.2, np.float32)
    disc = ((yy - 60) ** 2 + (xx - 60) ** 2 < 45**2).astype(np.float32)
    shadow = ((yy - 130) ** 2 + (xx - 140) ** 2 < 40**2) & (disc == 0)
    ok = np.ones((200, 200), bool)
    for blur, cloud in ((1.3, True), (0.0, False)):
        alpha = ndimage.gaussian_filter(disc, blur) if blur else disc
        later = earlier * (1 - alpha) + 0.85 * alpha
        assert not cloud_and_shadow(later, ok, MaskConfig(), 1.0, earlier, ok).any()  # no shadow: a pad
        later[:, shadow] *= 0.4
        m = cloud_and_shadow(later, ok, MaskConfig(), 1.0, earlier, ok)
        assert m[alpha > 0.5].all() == cloud and (m[shadow].mean() > 0.95) == cloud


def test_bright_ground_bright_on_both_dates_is_not_cloud():
    """Without the brightening the old rule is stricter too: a bright colourless blob there on both dates stays."""
    yy, xx = np.mgrid[0:200, 0:200]
    img = np.full((4, 200, 200), 0.2, np.float32)
    blob = (yy - 100) ** 2 + (xx - 100) ** 2 < 60**2
    img[:, blob] = 0.85
    ok = np.ones((200, 200), bool)
    assert not cloud_and_shadow(img, ok, MaskConfig(), 1.0, img.copy(), ok).any()


def _provider_raster(path, p, rows, cols, crs="EPSG:4326"):
    """A provider mask (1 = cloud) over ``rows`` x ``cols`` of the later grid, written in another CRS and grid."""
    src = np.zeros((1, 320, 320), np.uint8)
    src[0, rows, cols] = 1
    dst_crs = CRS.from_user_input(crs)
    left, top = p.transform.c, p.transform.f
    t, w, h = calculate_default_transform("EPSG:4547", dst_crs, 320, 320, left, top - 320, left + 320, top)
    out = np.zeros((1, h, w), np.uint8)
    reproject(src, out, src_transform=p.transform, src_crs="EPSG:4547", dst_transform=t, dst_crs=dst_crs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=dst_crs,
                       transform=t) as dst:
        dst.write(out)
    return path


def test_provider_raster_and_vector_masks_are_honoured(tmp_path):
    p = roof_pair(tmp_path)
    # The later tile's provider raster (degrees, its own grid) marks a block of its north-east.
    _provider_raster(p.after.parent / "cloud" / f"{p.after.stem}.tif", p, slice(0, 20), slice(270, 320))
    # The earlier tile's provider polygons (GeoJSON in WGS 84) mark a block in the south-west.
    t = p.transform
    poly = box(*(t * (0, 320)), *(t * (40, 280)))
    (p.before.parent / "cloud").mkdir()
    gpd.GeoDataFrame(geometry=[poly], crs="EPSG:4547").to_crs("EPSG:4326").to_file(
        p.before.parent / "cloud" / f"{p.before.stem}.geojson", driver="GeoJSON")
    cfg = RunConfig().model_copy(update={"masks": MaskConfig(cloud_mask="cloud/{stem}.*")})
    assert [f.suffix for f in provider_files(p.after, "cloud/{stem}.*")] == [".tif"]
    m = _read_masked(p, cfg)
    assert m[2:18, 272:318].all() and m[282:318, 2:38].all()
    for r, c, h, w in p.roofs:
        assert not m[r:r + h, c:c + w].any()
    assert m.mean() < 0.15  # the two blocks and their margins, no more


def test_a_provider_mask_replaces_the_image_test_for_its_tile(tmp_path):
    """The provider's word is final for its tile: its clear sky is clear, even where the image test sees cloud."""
    p = cloud_pair(tmp_path)
    folder = p.after.parent / "cloud"
    folder.mkdir()
    gpd.GeoDataFrame(geometry=[], crs="EPSG:4547").to_file(folder / f"{p.after.stem}.gpkg", driver="GPKG")
    cfg = RunConfig().model_copy(update={"masks": MaskConfig(cloud_mask="cloud/{stem}.gpkg")})
    assert not _read_masked(p, cfg).any()
    # No file for a tile: no provider mask there, the image test decides.
    cfg = RunConfig().model_copy(update={"masks": MaskConfig(cloud_mask="cloud/{stem}_none.gpkg")})
    assert _read_masked(p, cfg)[p.cloud > 0.5].all()


def test_an_unreadable_provider_mask_is_one_line_naming_it(tmp_path):
    p = roof_pair(tmp_path)
    bad = p.after.parent / "cloud" / f"{p.after.stem}.tif"
    bad.parent.mkdir()
    bad.write_bytes(b"not a raster")
    cfg = RunConfig().model_copy(update={"masks": MaskConfig(cloud_mask="cloud/{stem}.tif")})
    with pytest.raises(TileReadError) as e:
        _read_masked(p, cfg)
    assert isinstance(e.value, SatcheckError) and isinstance(e.value, OSError)
    assert str(bad) in str(e.value) and "masks.cloud_mask" in str(e.value) and "\n" not in str(e.value)
    cfg_file = _config(tmp_path, "masks:\n  cloud_mask: cloud/{stem}.tif\n")
    r = runner.invoke(app, ["run", str(p.before.parent), str(p.after.parent), "--out", str(tmp_path / "out"),
                            "--detector", "cva", "--config", str(cfg_file)])
    assert r.exit_code == 2 and bad.name in r.output


def test_masked_share_per_pair_in_run_json_and_a_warning_above_20_percent(tmp_path):
    p = cloud_pair(tmp_path / "cloud")
    summary, output = _run(p, tmp_path / "out")
    tile = summary["tiles"][0]
    assert tile["masked"]["cloud_shadow"] > 0.2 and tile["masked"]["nodata"] == 0
    assert tile["masked"]["cloud_shadow"] == pytest.approx(summary["masked_share"], abs=1e-3)
    warning = next(w for w in summary["warnings"] if "masked as cloud" in w)
    assert p.after.name in warning and "masks.cloud: false" in warning and "masks.cloud_mask" in warning
    assert "masked as cloud" in output  # also on the terminal
    # Cloud-free imagery with nodata in a collar: no warning, the nodata share reported on its own.
    q = roof_pair(tmp_path / "roofs", nodata_cols=32)
    summary, _ = _run(q, tmp_path / "out2")
    tile = summary["tiles"][0]
    assert tile["masked"]["cloud_shadow"] < 0.01 and tile["masked"]["nodata"] == pytest.approx(0.1, abs=0.01)
    assert not any("masked as cloud" in w for w in summary["warnings"])


def test_batch_reports_masked_share_and_redoes_a_tile_whose_provider_mask_changed(tmp_path):
    import yaml

    p = roof_pair(tmp_path)
    _config(tmp_path, "masks:\n  cloud_mask: cloud/{stem}.tif\n")
    m = tmp_path / "batch.yaml"
    m.write_text(yaml.safe_dump({"period": "2026-10", "before": "before", "after": "after", "out": "out",
                                 "detector": "cva", "config": "masks.yaml"}), encoding="utf-8")
    r = runner.invoke(app, ["batch", str(m), "--json"])
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    assert run["tiles"][0]["masked"]["cloud_shadow"] < 0.01 and not any("masked as" in w for w in run["warnings"])
    # The provider delivers a mask of the later tile afterwards: a third of it cloud. The tile is done again.
    _provider_raster(p.after.parent / "cloud" / f"{p.after.stem}.tif", p, slice(0, 110), slice(0, 320))
    r = runner.invoke(app, ["batch", str(m), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["processed"] == 1
    run = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    assert run["tiles"][0]["masked"]["cloud_shadow"] > 0.3
    assert any("masked as cloud" in w and p.after.name in w for w in run["warnings"])
