"""The default detector (shipped model) on generated scenes, through the CLI."""

import json

import geopandas as gpd
import pytest
from typer.testing import CliRunner

from satcheck.cli import app
from satcheck.model.weights import shipped_weights

runner = CliRunner()
pytestmark = pytest.mark.skipif(shipped_weights() is None, reason="no shipped weights in models/")


def _run(scene, out, *extra):
    r = runner.invoke(app, ["run", str(scene / "before"), str(scene / "after"), "--out", str(out), "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.output), gpd.read_file(out / "changes.gpkg", layer="changes")


def test_default_detector_is_the_model(small_scene, tmp_path):
    summary, _ = _run(small_scene, tmp_path)
    assert summary["detector"].startswith("model")


def test_planted_changes_are_found(small_scene, tmp_path):
    _, changes = _run(small_scene, tmp_path)
    truth = gpd.read_file(small_scene / "truth" / "changes.gpkg")
    big = truth[truth.area >= 400]
    assert len(big) >= 3
    for _, t in big.iterrows():
        hits = changes[changes.intersects(t.geometry)]
        assert len(hits), f"{t['label']} not found"
        best = max(h.intersection(t.geometry).area / h.union(t.geometry).area for h in hits.geometry)
        assert best >= 0.5, f"{t['label']}: IoU {best:.2f}"


def test_nuisance_only_gives_no_polygon_over_400_m2(nuisance_scene, tmp_path):
    _, changes = _run(nuisance_scene, tmp_path)
    assert (changes["area_m2"] <= 400).all(), changes[["change_type", "area_m2", "mean_score"]]


@pytest.mark.parametrize("rgb_dates", [("before", "after"), ("before",)])
def test_rgb_only_tiles_use_the_same_weights(small_scene, tmp_path, rgb_dates):
    """Three-band tiles (no NIR) run with the shipped weights too, also against a later date with NIR."""
    import shutil

    import rasterio

    for date in ("before", "after"):
        for src_path in (small_scene / date).glob("*.tif"):
            dst_path = tmp_path / "rgb" / date / src_path.name
            dst_path.parent.mkdir(parents=True, exist_ok=True)
            if date not in rgb_dates:
                shutil.copy(src_path, dst_path)
                continue
            with rasterio.open(src_path) as src:
                prof = src.profile | {"count": 3}
                with rasterio.open(dst_path, "w", **prof) as dst:
                    dst.write(src.read([1, 2, 3]))
    summary, changes = _run(tmp_path / "rgb", tmp_path / "out")
    assert summary["detector"].startswith("model") and len(changes) >= 1
    mixed = len(rgb_dates) == 1
    # The scene's cloud covers much of one pair, which is warned about too (masks.warn_share).
    bands = [w for w in summary["warnings"] if "masked as cloud" not in w]
    assert len(bands) == (summary["pairs"] if mixed else 0)
    assert all("compared on the first 3 (red, green, blue)" in w for w in bands)


def test_band_count_without_weights_is_a_clear_error(tmp_path):
    import numpy as np
    from rasterio.transform import from_origin

    from tests.generate import ORIGIN, textured, write

    t = from_origin(*ORIGIN, 1, 1)
    img = np.concatenate([textured(1, (64, 64)), textured(2, (64, 64))])  # 8 bands
    b = write(tmp_path / "b" / "B_20260901.tif", img, t)
    a = write(tmp_path / "a" / "A_20261001.tif", img, t)
    r = runner.invoke(app, ["run", str(b), str(a), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "take 3 or 4 bands" in r.output and "--detector cva" in r.output


class _Recorder:
    """Stands in for the inference engine: records the window sizes it is given."""

    def __init__(self):
        self.shapes = []

    def predict(self, before, after):
        import numpy as np

        self.shapes.append(after.shape[1:])
        probs = np.zeros((3, *after.shape[1:]), np.float32)
        probs[0] = 0.9  # change of the first class
        return probs


@pytest.mark.parametrize("px_m, enlarge_by, seen", [(10.0, 1.5, (150, 96)), (2.0, 1.5, (100, 64)),
                                                     (None, 1.5, (100, 64)), (10.0, 1.0, (100, 64))])
def test_coarse_imagery_is_enlarged_for_the_model(px_m, enlarge_by, seen):
    """10 m pairs were trained enlarged 1-2x: a run enlarges them 1.5x and brings the scores back to the window."""
    import numpy as np
    from rasterio.windows import Window

    from satcheck.align import PairWindow
    from satcheck.config import ModelConfig
    from satcheck.detect.learned import ModelDetector

    det = ModelDetector(ModelConfig(enlarge_by=enlarge_by), "cpu", 4)
    det.predictor = _Recorder()
    det.prepare(None, px_m)
    img = np.full((4, 100, 64), 0.3, np.float32)
    ok = np.ones((100, 64), bool)
    ok[:10] = False
    scores = det.score(PairWindow(Window(0, 0, 64, 100), img, img, ok, ~ok))
    assert det.predictor.shapes == [seen]
    assert scores.probability.shape == (100, 64)
    assert np.allclose(scores.probability[10:], 0.9) and not scores.probability[:10].any()
    assert ("enlarged 1.5x" in det.name) == (seen != (100, 64))


def test_masked_pixels_do_not_spread_change_into_clear_ones(nuisance_scene):
    """A cloud on the later date, masked without a margin: the network sees the same pixels on both dates under
    the mask, so nothing beside it scores as change (without that, pixels up to 15 px away scored up to 1.0)."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    from satcheck.align import PairWindow
    from satcheck.config import ModelConfig
    from satcheck.detect.learned import ModelDetector
    from satcheck.radiometry import normalise_pair

    with rasterio.open(next((nuisance_scene / "before").glob("*.tif"))) as src:
        img = src.read().astype(np.float32) / 255
    h, w = img.shape[1:]
    yy, xx = np.mgrid[:h, :w]
    r2 = (yy - h / 2) ** 2 + (xx - w / 2) ** 2
    cloud, ring = r2 < 60 ** 2, (r2 >= 60 ** 2) & (r2 < 75 ** 2)
    before, after = normalise_pair(img, img, ~cloud, "meanstd")
    after = after.copy()
    after[:, cloud] = 2.5  # brighter than anything on the ground after the stretch
    det = ModelDetector(ModelConfig(), "cpu", 4)
    det.prepare(None, 1.0)
    prob = det.score(PairWindow(Window(0, 0, w, h), before, after, ~cloud, cloud)).probability
    assert prob[ring].max() < 0.5 and not prob[cloud].any()


@pytest.mark.parametrize("px_m, warned", [(40.0, True), (1.0, False)])
def test_imagery_coarser_than_the_model_knows_is_warned_about(tmp_path, px_m, warned):
    """40 m pixels (enlarged 1.5x: 27 m) are far past the 0.3-10 m the weights saw; the run says so, once."""
    import rasterio
    from affine import Affine

    from tests.generate import square_pair

    b, a, _ = square_pair(tmp_path)
    for path in (b, a):
        with rasterio.open(path, "r+") as dst:
            t = dst.transform
            dst.transform = Affine(px_m, 0, t.c, 0, -px_m, t.f)
    summary, _ = _run(tmp_path, tmp_path / "out")
    assert len(summary["warnings"]) == warned
    if warned:
        assert "40 m pixels" in summary["warnings"][0] and "0.31-10 m" in summary["warnings"][0]
    r = runner.invoke(app, ["run", str(b), str(a), "--out", str(tmp_path / "out2")])
    assert r.exit_code == 0 and ("trained on" in r.output) == warned


def test_the_pixel_range_of_older_weights_is_that_of_their_recipe():
    """Weights saved before the pixel sizes were recorded fall back to what the shipped recipe computes."""
    from satcheck.detect.learned import LEGACY_PIXEL_RANGE
    from satcheck.model.data import NAIP_M, OSCD_M, pixel_range

    recipe = {"synthetic": [0.5, 0.8, 1.0, 1.5, 2.0], "folder:levir_cd_samples": [0.5], "naip": [NAIP_M],
              "oscd": [OSCD_M]}
    assert tuple(pixel_range(recipe)) == LEGACY_PIXEL_RANGE


def test_harvested_and_ploughed_fields_are_not_excavation(tmp_path):
    """A 2 m scene where nothing is built or dug, but fields are harvested, ploughed, flooded and left fallow
    between the dates: no change of 400 m² (the mining minimum mapping unit) or more is typed excavation."""
    from satcheck.synth.write import SceneSpec, write_scene

    write_scene(tmp_path / "scene", SceneSpec(seed=13, size=768, gsd=2.0, after_tiles=1, changes=False, cloud=False))
    _, changes = _run(tmp_path / "scene", tmp_path / "out")
    dug = changes[(changes["change_type"] == "excavation") & (changes["area_m2"] >= 400)]
    assert dug.empty, dug[["area_m2", "mean_score"]]
