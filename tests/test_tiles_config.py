import datetime as dt

import pytest

from satcheck.config import RunConfig, load_config
from satcheck.errors import ConfigError, TileGeoreferenceError, TileReadError
from satcheck.tiles import date_from_name, find_tiles, inspect_tile, open_tile
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
