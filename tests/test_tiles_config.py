import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from satcheck.config import RunConfig, load_config, parse_settings
from satcheck.errors import ConfigError, TileGeoreferenceError, TileReadError
from satcheck.tiles import band_order_warning, date_from_name, find_tiles, inspect_tile, open_tile
from tests.generate import square_pair, textured, write


@pytest.mark.parametrize("name, date", [
    ("GF2_20260918_r0c0.tif", dt.date(2026, 9, 18)),
    ("tile_2026-10-01.tif", dt.date(2026, 10, 1)),
    ("x_99999999_y.tif", None),
    ("no_date.tif", None),
])
def test_date_from_name(name, date):
    assert date_from_name(name) == date


def test_open_and_inspect(tmp_path):
    b, a, _ = square_pair(tmp_path)
    info = open_tile(a)
    assert info.count == 4 and info.crs.to_epsg() == 4547 and info.date == dt.date(2026, 10, 1)
    d = inspect_tile(a)
    assert d["crs"] == "EPSG:4547" and d["width"] == 256 and d["nodata_share"] == 0


def test_tile_errors(tmp_path):
    with pytest.raises(TileReadError, match="not found"):
        open_tile(tmp_path / "missing.tif")
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    with pytest.raises(TileReadError, match="bad.tif"):
        open_tile(bad)
    with pytest.raises(TileReadError, match="no .tif"):
        find_tiles(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else None)
    nocrs = write(tmp_path / "nocrs.tif", textured(1, (32, 32)), transform=None, crs=None)
    with pytest.raises(TileGeoreferenceError, match="nocrs.tif"):
        open_tile(nocrs)


def test_config_defaults_and_unknown_key(tmp_path):
    assert load_config(None) == RunConfig()
    good = tmp_path / "c.yaml"
    good.write_text("window:\n  size: 256\n")
    assert load_config(good).window.size == 256
    bad = tmp_path / "bad.yaml"
    bad.write_text("window:\n  sise: 256\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'window.sise'"):
        load_config(bad)


def test_shipped_default_config_matches_code():
    from pathlib import Path

    shipped = load_config(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")
    assert shipped == RunConfig()


def test_default_yaml_documents_every_key():
    from pathlib import Path

    import yaml

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, prefix + k + ".")
        return out

    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "default.yaml").read_text())
    assert keys(shipped) == keys(RunConfig().model_dump())


@pytest.mark.parametrize("crs, lon, lat, expected", [
    ("EPSG:4490", 115.9, 28.7, 4548),   # Nanchang: the CGCS2000 3-degree Gauss-Krüger zone of CM 117E
    ("EPSG:4490", 114.2, 27.1, 4547),   # CM 114E
    ("EPSG:4326", 114.2, 22.3, 32650),  # WGS 84 lat/lon: the UTM zone
    ("EPSG:4326", -47.9, -15.8, 32723),  # southern hemisphere
    ("EPSG:4490", 10.0, 45.0, 32632),   # CGCS2000 outside China's zones: UTM
])
def test_vector_crs_of_tiles_in_degrees(crs, lon, lat, expected):
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from satcheck.tiles import TileInfo

    tile = TileInfo(Path("t.tif"), CRS.from_user_input(crs), from_origin(lon, lat, 1e-5, 1e-5), 100, 100, 3,
                    "uint8", None, None, ())
    assert tile.vector_crs.to_epsg() == expected
    # 1e-5 degrees: about 1.11 m north-south, and east-west shrunk by the cosine of the latitude.
    assert tile.pixel_area_m2 == pytest.approx(1.11320 ** 2 * np.cos(np.radians(lat)), rel=1e-3)


def test_vector_crs_of_a_tile_in_feet_is_in_metres():
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from satcheck.tiles import TileInfo

    # California zone 3 (US survey feet), near San Francisco: the WGS 84 UTM zone 10N.
    tile = TileInfo(Path("t.tif"), CRS.from_epsg(2227), from_origin(6000000, 2100000, 3, 3), 10, 10, 3, "uint8",
                    None, None, ())
    assert tile.vector_crs.to_epsg() == 32610
    assert tile.pixel_area_m2 == pytest.approx((3 * 1200 / 3937) ** 2)


def test_vector_crs_of_a_projected_tile_is_its_own():
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from satcheck.tiles import TileInfo

    tile = TileInfo(Path("t.tif"), CRS.from_epsg(4548), from_origin(500000, 3000000, 2, 2), 10, 10, 3, "uint8", None,
                    None, ())
    assert tile.vector_crs == tile.crs and tile.pixel_m == 2 and tile.pixel_area_m2 == 4


def _four_band(path, descriptions=None):
    import rasterio
    from rasterio.transform import from_origin

    from tests.generate import ORIGIN

    write(path, textured(3, (32, 32)), from_origin(*ORIGIN, 1, 1))
    with rasterio.open(path, "r+") as dst:
        if descriptions:
            for i, d in enumerate(descriptions, 1):
                dst.set_band_description(i, d)
    return path


@pytest.mark.parametrize("names, order, expected", [
    (None, None, (1, 2, 3, 4)),                                       # nothing said: the file's order
    (("Blue", "Green", "Red", "NIR"), None, (3, 2, 1, 4)),             # named bands
    (("nir", "red", "green", "blue"), None, (2, 3, 4, 1)),
    (None, [3, 2, 1, 4], (3, 2, 1, 4)),                               # bands.before/after: GF-1/2/6 BGRN
    (("red", "green", "blue", "nir"), [3, 2, 1], (3, 2, 1)),          # the config wins; NIR left out
])
def test_band_order(tmp_path, names, order, expected):
    tile = open_tile(_four_band(tmp_path / "t_20261001.tif", names), order)
    assert tile.indexes == expected and tile.count == len(expected)
    if order is None:
        assert inspect_tile(tile.path)["band_order"] == list(expected)


@pytest.mark.parametrize("name, names, order, source, warned", [
    ("GF2_PMS1_E115.5_N28.3_20261001_L1A0001.tif", None, None, "file order", True),
    ("gf6_pms_20261001.tif", None, None, "file order", True),
    ("GF2_PMS1_E115.5_N28.3_20261001_L1A0001.tif", ("Blue", "Green", "Red", "NIR"), None,
     "colour interpretation or band names", False),
    ("GF2_PMS1_E115.5_N28.3_20261001_L1A0001.tif", None, [3, 2, 1, 4], "bands.before/after", False),
    ("JX_20261001.tif", None, None, "file order", False),
])
def test_gf_named_tiles_without_band_colours_are_warned_about(tmp_path, name, names, order, source, warned):
    """GF-1/2/6 and ZY-3 products store blue first; read in file order, the user is told how to say so."""
    tile = open_tile(_four_band(tmp_path / name, names), order)
    assert tile.band_order_from == source
    assert (band_order_warning(tile) is not None) == warned
    if order is None:
        info = inspect_tile(tile.path)
        assert info["band_order_from"] == source and len(info["warnings"]) == warned
        if warned:
            assert "[3, 2, 1, 4]" in info["warnings"][0] and info["warnings"][0].startswith(name)


def test_band_order_that_does_not_fit_is_a_clear_error(tmp_path):
    path = _four_band(tmp_path / "t_20261001.tif")
    with pytest.raises(TileReadError, match=r"t_20261001.tif: band order \[3, 2, 5\] does not fit its 4 bands; set bands"):
        open_tile(path, [3, 2, 5])


def test_band_order_from_the_config_reaches_the_model_input(tmp_path):
    """A blue-green-red-NIR pair with bands.before/after [3, 2, 1, 4] reads as the same pair stored in RGBN."""
    import rasterio

    from satcheck.align import PairReader
    from satcheck.pairs import pair_tiles

    b, a, _ = square_pair(tmp_path / "rgbn")
    swapped = []
    for path in (b, a):
        with rasterio.open(path) as src:
            data, profile = src.read(), src.profile
        out = tmp_path / "bgrn" / path.parent.name / path.name
        out.parent.mkdir(parents=True)
        with rasterio.open(out, "w", **profile, photometric="minisblack") as dst:  # 4 bytes would default to RGBA
            dst.write(data[[2, 1, 0, 3]])
        swapped.append(out)
    cfg = RunConfig().with_overrides(**{"bands.before": [3, 2, 1, 4], "bands.after": [3, 2, 1, 4]})
    reads = []
    for (pb, pa), c in (((b, a), RunConfig()), (tuple(swapped), cfg)):
        pair = pair_tiles([open_tile(pb, c.bands.before)], [open_tile(pa, c.bands.after)])[0]
        with PairReader(pair, c) as r:
            reads.append(r.read(pair.window))
    assert np.array_equal(reads[0].after, reads[1].after) and np.array_equal(reads[0].before, reads[1].before)


@pytest.mark.parametrize("key", ["cleanp.building_max_old_outline", "cleanup.no_such_key"])
def test_override_of_an_unknown_key_names_it(key):
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        RunConfig().with_overrides(**{key: 0.6})


def test_settings_are_parsed_as_typed_values():
    settings = parse_settings(["cleanup.building_max_old_outline=0.6", "bands.before=[3, 2, 1]", "masks.cloud=false"])
    assert settings == {"cleanup.building_max_old_outline": 0.6, "bands.before": [3, 2, 1], "masks.cloud": False}
    with pytest.raises(ConfigError, match="write it as KEY=VALUE"):
        parse_settings(["cleanup.building_max_old_outline"])
