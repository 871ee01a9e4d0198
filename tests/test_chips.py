"""Issue 18 (9): chips and locators give the reviewer context; the page's map has the same layers."""

import geopandas as gpd
import numpy as np
from PIL import Image
from rasterio.transform import from_origin
from shapely.geometry import box

from satcheck.report.chips import MARGIN_M, chip_grid, write_chips
from satcheck.report.context import LAYER_STYLE
from satcheck.report.locator import lattice_window, write_locator
from satcheck.review.ledger import Ledger
from satcheck.review.server import create_app
from satcheck.tiles import open_tile
from tests.generate import ORIGIN, textured, write
from tests.review_data import X0, Y0, page_client, patch_file


def _tiles(tmp_path, res: float, size: int):
    t = from_origin(*ORIGIN, res, res)
    b = write(tmp_path / "b.tif", textured(1, (size, size), 3), t)
    a = write(tmp_path / "a.tif", textured(2, (size, size), 3), t)
    return open_tile(b), open_tile(a)


def _has_colour(img: Image.Image, rgb, tol=10) -> int:
    arr = np.asarray(img.convert("RGB")).astype(int)
    return int((np.abs(arr - np.asarray(rgb)).max(axis=2) <= tol).sum())


def test_small_patch_on_5m_imagery_is_upsampled_with_100m_around(tmp_path):
    b, a = _tiles(tmp_path, 5.0, 200)  # 1 km of 5 m pixels
    x, y = ORIGIN[0] + 480, ORIGIN[1] - 520
    patch = box(x, y, x + 20, y + 20)  # 4 x 4 pixels
    transform, n, res = chip_grid(patch, 5.0, 80.0, 256)
    assert n >= 256 and n * res >= 20 + 2 * MARGIN_M
    c = write_chips("P", patch, a.crs, [b], [a], tmp_path, 5.0)
    img = Image.open(c.after)
    assert img.size[0] >= 256
    # The patch outline is drawn and no part of the scale bar (black box) covers the patch.
    inv = ~transform
    (c0, r0), (c1, r1) = inv * (x, y + 20), inv * (x + 20, y)
    inside = np.asarray(img)[int(r0) - 2:int(r1) + 3, int(c0) - 2:int(c1) + 3]
    assert (inside.max(axis=2) > 0).all()
    assert _has_colour(img, (255, 230, 0)) > 20


def test_chips_outline_farmland_basic_farmland_and_permits(tmp_path):
    b, a = _tiles(tmp_path, 1.0, 400)
    x, y = ORIGIN[0] + 180, ORIGIN[1] - 220
    patch = box(x, y, x + 30, y + 30)
    crs = a.crs
    farm = box(x - 60, y - 60, x + 10, y + 90)
    layers = {"farmland": gpd.GeoDataFrame({"class_code": ["0101"]}, geometry=[farm], crs=crs),
              "basic_farmland": gpd.GeoDataFrame(geometry=[box(x + 40, y - 50, x + 90, y + 50)], crs=crs),
              "mining_permits": gpd.GeoDataFrame({"permit_no": ["C360821"]}, geometry=[box(x - 90, y + 50, x - 20, y + 100)],
                                                 crs=crs)}
    c = write_chips("P", patch, crs, [b], [a], tmp_path, 1.0, layers=layers)
    img = Image.open(c.before)
    for name in layers:
        assert _has_colour(img, LAYER_STYLE[name][0]) > 30, name


def test_locator_shows_about_2km_with_the_admin_unit(tmp_path):
    b, a = _tiles(tmp_path, 10.0, 400)  # 4 km
    x, y = ORIGIN[0] + 2000, ORIGIN[1] - 2000
    patch = box(x, y, x + 30, y + 30)
    admin = gpd.GeoDataFrame({"code": ["360821"], "name": ["吉安县"]},
                             geometry=[box(x - 700, y - 700, x + 1500, y + 1500)], crs=a.crs)
    path = write_locator(patch, tmp_path / "loc.png", [a], a.crs, rules={"admin": admin})
    img = Image.open(path)
    assert img.size == (256, 256)
    assert _has_colour(img, (255, 0, 0), tol=30) > 20  # the patch, not a 7 px circle on the whole run area
    assert _has_colour(img, (255, 255, 255), tol=5) > 100  # the admin boundary and its name


def test_page_map_gets_rule_layers_around_the_patch(tmp_path):
    f = patch_file(tmp_path / "p.gpkg", "2026-10", [("0001", "farmland_construction", (0, 0, 20, 20))])
    rules = tmp_path / "rules"
    rules.mkdir()
    gpd.GeoDataFrame({"DLBM": ["0101"], "DLMC": ["水田"]}, geometry=[box(X0 - 50, Y0 - 50, X0 + 60, Y0 + 60)],
                     crs="EPSG:4547").to_file(rules / "farmland.gpkg")
    gpd.GeoDataFrame({"XZQDM": ["360821"], "XZQMC": ["吉安县"]}, geometry=[box(X0 - 5000, Y0 - 5000, X0 + 5000, Y0 + 5000)],
                     crs="EPSG:4547").to_file(rules / "admin.gpkg")
    with Ledger(tmp_path / "l.sqlite") as lg:
        lg.import_patches(f)
    client = page_client(create_app(tmp_path / "l.sqlite", rules=rules))
    fc = client.get("/api/patches/360821-202610-0001/layers.geojson").json()
    layers = {feat["properties"]["layer"] for feat in fc["features"]}
    assert layers == {"farmland", "admin"}
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0][:2]
    assert 100 < lon < 130 and 20 < lat < 40
    bare = page_client(create_app(tmp_path / "l.sqlite"))
    assert bare.get("/api/patches/360821-202610-0001/layers.geojson").json()["features"] == []


def test_patch_images_for_a_run_with_rules_and_progress(tmp_path):
    """What a run calls: chips with rule outlines, a located locator, one progress call per patch."""
    from satcheck.report.chips import write_patch_images

    b, a = _tiles(tmp_path, 2.0, 300)
    x, y = ORIGIN[0] + 200, ORIGIN[1] - 300
    patches = gpd.GeoDataFrame({"patch_id": ["360821-202610-0001", "360821-202610-0002"], "admin_name": ["吉安县", None],
                                "admin_code": ["360821", None]},
                               geometry=[box(x, y, x + 20, y + 20), box(x + 150, y, x + 170, y + 40)], crs=a.crs)
    rules = {"farmland": gpd.GeoDataFrame(geometry=[box(x - 40, y - 40, x + 60, y + 60)], crs=a.crs)}
    calls = []
    out = write_patch_images(patches, [b], [a], tmp_path / "chips", 2.0, rules=rules,
                             progress=lambda *p: calls.append(p))
    assert calls == [("chips", 1, 2), ("chips", 2, 2)]
    before, after, loc = out["360821-202610-0001"]
    assert _has_colour(Image.open(before), LAYER_STYLE["farmland"][0]) > 30
    assert Image.open(loc).size == (256, 256) and Image.open(after).size[0] >= 256


def test_a_locator_cut_from_the_mosaic_matches_its_own_warp(tmp_path):
    """The mosaic (later tile averaged once at the locators' scale) gives a locator's pixels as a warp of that
    locator alone does, on the same grid; the locator drawn from it shows the patch where the one drawn without
    it does, within the half pixel its square is snapped by."""
    from rasterio.windows import transform as window_transform

    from satcheck.report.draw import read_rgb, stretch_pair
    from satcheck.report.locator import lattice, plan_mosaics, read_mosaic

    b, a = _tiles(tmp_path, 2.0, 1500)  # 3 km
    x, y = ORIGIN[0] + 1300, ORIGIN[1] - 1600
    patch = box(x, y, x + 30, y + 30)
    (win, members), = plan_mosaics([patch])
    assert members == [0]
    mosaic = read_mosaic(win, [a], a.crs)
    grid = window_transform(lattice_window(patch), lattice())
    col, row = ~grid * (patch.centroid.x, patch.centroid.y)
    assert abs(col - 128) <= 0.5 and abs(row - 128) <= 0.5
    cut = mosaic.cut(lattice_window(patch))
    rgb, ok = read_rgb([a], a.crs, grid, 256, 256)
    assert cut is not None and (cut[1] == ok).mean() > 0.99
    both = ok & cut[1]
    # Differences are a small part of the texture's spread, which the stretch then widens to 0..255.
    assert np.abs(cut[0][:, both] - rgb[:, both]).mean() < 0.1 * rgb[:, both].std(axis=1).min()
    shown, _ = stretch_pair(cut[0], cut[0], cut[1], cut[1])
    alone, _ = stretch_pair(rgb, rgb, ok, ok)
    assert np.abs(shown.astype(int) - alone.astype(int))[both].mean() < 8  # of 0..255
    red = []
    for m in (mosaic, None):
        img = np.asarray(Image.open(write_locator(patch, tmp_path / "loc.png", [a], a.crs, label="x", mosaic=m)))
        near = (np.abs(img.astype(int) - (255, 0, 0)).max(axis=2) <= 30)[108:148, 108:148]  # the circled patch
        red.append(int(near.sum()))
    assert red[0] > 100 and abs(red[0] - red[1]) <= 0.1 * red[1]


def test_a_patch_larger_than_the_locator_square_is_warped_on_its_own(tmp_path, monkeypatch):
    from satcheck.report import locator
    from satcheck.report.chips import write_patch_images

    b, a = _tiles(tmp_path, 10.0, 600)  # 6 km
    x, y = ORIGIN[0] + 1000, ORIGIN[1] - 2000
    small, large = box(x, y, x + 30, y + 30), box(x + 1500, y - 1500, x + 4500, y + 1500)  # 3 km: a coarser scale
    assert lattice_window(large) is None
    plan = locator.plan_mosaics([small, large])
    assert [(w is None, m) for w, m in plan] == [(False, [0]), (True, [1])]
    reads = []
    plain = locator.read_rgb

    def spy(tiles, crs, transform, width, height, *args, **kw):
        reads.append((width, height, round(transform.a, 3)))
        return plain(tiles, crs, transform, width, height, *args, **kw)

    monkeypatch.setattr(locator, "read_rgb", spy)
    patches = gpd.GeoDataFrame({"patch_id": ["S", "L"]}, geometry=[small, large], crs=a.crs)
    out = write_patch_images(patches, [b], [a], tmp_path / "chips", 10.0)
    mosaic_read, alone = reads
    assert mosaic_read[2] == round(2000 / 256, 3) and alone == (256, 256, round(2 * 0.75 * 3000 / 256, 3))
    assert all(Image.open(out[p][2]).size == (256, 256) for p in ("S", "L"))


def test_mosaics_stay_within_their_cap_and_read_less_than_a_warp_per_patch():
    from satcheck.report.locator import LOCATOR_PX, MOSAIC_MAX_PX, plan_mosaics

    rng = np.random.default_rng(1)
    x0, y0 = ORIGIN
    # A cluster of 6 patches every 10 km over 60 km (two to a block of the lattice), and two lone patches.
    dense = [box(x0 + cx + dx, y0 - cy - dy, x0 + cx + dx + 20, y0 - cy - dy + 20)
             for cx in range(0, 60000, 10000) for cy in range(0, 60000, 10000)
             for dx, dy in rng.uniform(0, 1500, (6, 2))]
    lone = [box(x0 + 4000, y0 - 100000, x0 + 4020, y0 - 99980), box(x0 + 15000, y0 - 110000, x0 + 15020, y0 - 109980)]
    plan = plan_mosaics(dense + lone)
    assert sorted(i for _, m in plan for i in m) == list(range(len(dense) + len(lone)))
    assert all(w is not None for w, _ in plan)  # none larger than the locator's square
    for win, members in plan:
        assert win.width <= MOSAIC_MAX_PX and win.height <= MOSAIC_MAX_PX
        assert len(members) * LOCATOR_PX ** 2 >= win.width * win.height
    by_patch = {i: (w, m) for w, m in plan for i in m}
    for i in (len(dense), len(dense) + 1):
        w, m = by_patch[i]
        assert m == [i] and (w.width, w.height) == (LOCATOR_PX, LOCATOR_PX)
    assert sum(len(m) > 1 for _, m in plan) >= 36  # each cluster read once, not once per patch


def test_the_mosaic_reads_overviews_fine_enough_for_it(tmp_path, monkeypatch):
    """A tile with overviews is read from the coarsest one whose pixels are no larger than the mosaic's."""
    import rasterio
    from rasterio.enums import Resampling

    from satcheck.report import draw
    from satcheck.report.locator import plan_mosaics, read_mosaic

    b, a = _tiles(tmp_path, 1.0, 1024)
    x, y = ORIGIN[0] + 500, ORIGIN[1] - 500
    (win, _), = plan_mosaics([box(x, y, x + 20, y + 20)])
    plain = read_mosaic(win, [a], a.crs)
    with rasterio.open(a.path, "r+") as dst:
        dst.build_overviews([2, 4, 8, 16], Resampling.average)  # 7.8 m wanted: the 4 m one
    opened = []
    real = draw.rasterio.open
    monkeypatch.setattr(draw.rasterio, "open", lambda p, *k, **kw: opened.append(kw) or real(p, *k, **kw))
    fast = read_mosaic(win, [a], a.crs)
    assert {"overview_level": 1} in opened
    both = plain.ok & fast.ok
    assert (plain.ok == fast.ok).mean() > 0.99 and np.abs(plain.rgb[:, both] - fast.rgb[:, both]).mean() < 0.002


def test_the_mosaic_of_a_tile_without_overviews_leaves_its_nodata_out(tmp_path):
    """Averaged at the locators' scale as it is decoded, a tile's nodata neither darkens the pixels beside it nor
    counts as imagery; the same tile read once through a warp of its full resolution gives the same mosaic."""
    import rasterio
    from rasterio.enums import Resampling

    from satcheck.report.draw import read_rgb
    from satcheck.report.locator import plan_mosaics, read_mosaic

    t = from_origin(*ORIGIN, 1.0, 1.0)
    dn = np.full((3, 1024, 1024), 200, np.uint8)
    dn[:, :, 600:] = 0  # nodata east of 600 m
    a = open_tile(write(tmp_path / "a.tif", dn, t))
    (win, _), = plan_mosaics([box(ORIGIN[0] + 500, ORIGIN[1] - 520, ORIGIN[0] + 520, ORIGIN[1] - 500)])
    mosaic = read_mosaic(win, [a], a.crs)
    inv = ~mosaic.transform
    (west, north), (edge, south) = inv * ORIGIN, inv * (ORIGIN[0] + 600, ORIGIN[1] - 1024)
    ok = mosaic.ok[int(north) + 2:int(south) - 1]  # the tile's rows
    assert ok[:, int(west) + 2:int(edge) - 1].all() and not ok[:, int(edge) + 2:].any()
    assert np.allclose(mosaic.rgb[:, mosaic.ok], 200 / 255, atol=1e-3)  # no pixel darkened by the nodata
    with rasterio.open(a.path) as src:
        assert src.overviews(1) == []
    warped = read_rgb([a], a.crs, mosaic.transform, *mosaic.ok.shape[::-1], Resampling.average)
    assert (warped[1] == mosaic.ok).mean() > 0.99


def test_a_chip_inside_its_tile_is_read_without_a_warp_and_gives_the_warps_pixels(tmp_path, monkeypatch):
    """A chip's grid in the tile's CRS and inside it is a windowed read: the same pixels as a warp; a chip over the
    tile's edge is still warped."""
    import rasterio
    from rasterio.enums import Resampling

    from satcheck.report import draw

    b, a = _tiles(tmp_path, 1.0, 512)
    inside, edge = from_origin(ORIGIN[0] + 100.3, ORIGIN[1] - 80.6, 0.7, 0.7), from_origin(ORIGIN[0] + 400,
                                                                                       ORIGIN[1] - 80, 0.7, 0.7)
    fast = draw.read_rgb([a], a.crs, inside, 256, 256)
    warps = []
    plain = draw.WarpedVRT

    def spy(*args, **kw):
        warps.append(kw["transform"])
        return plain(*args, **kw)

    monkeypatch.setattr(draw, "WarpedVRT", spy)
    assert draw.read_rgb([a], a.crs, edge, 256, 256)[1][:, :100].all() and warps == [edge]

    with rasterio.open(a.path) as src, plain(src, crs=a.crs, transform=inside, width=256, height=256,
                                             resampling=Resampling.bilinear) as vrt:
        want = vrt.read([1, 2, 3]).astype(np.float32) / 255
    diff = np.abs(fast[0] - want)
    assert fast[1].all() and diff.max() <= 1 / 255 + 1e-6 and diff.mean() < 1e-3  # a rounding of 1 DN at most


def test_tiles_held_open_are_opened_once_per_thread_and_closed_together(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from satcheck.report.draw import TileHandles, read_rgb

    b, a = _tiles(tmp_path, 1.0, 512)
    grids = [from_origin(ORIGIN[0] + 50 + 30 * i, ORIGIN[1] - 60, 0.8, 0.8) for i in range(6)]
    alone = [read_rgb([b, a], a.crs, g, 128, 128) for g in grids]
    with TileHandles() as handles:
        with ThreadPoolExecutor(2) as pool:
            held = list(pool.map(lambda g: read_rgb([b, a], a.crs, g, 128, 128, handles=handles), grids))
        opened = list(handles._all)
        assert 1 <= len(opened) <= 2 and len({id(s) for s in opened}) == len(opened)  # b.tif once per thread
        assert not any(s.closed for s in opened)
    assert all(s.closed for s in opened)
    for (rgb, ok), (rgb2, ok2) in zip(alone, held):
        assert (ok == ok2).all() and np.array_equal(rgb, rgb2)
