"""Evaluation metrics on datasets with known answers."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from satcheck.cli import app
from satcheck.evaluate import count

runner = CliRunner()


def test_counts_known_answer():
    truth = np.zeros((20, 20), bool)
    truth[2:6, 2:6] = True       # 16 px, found exactly
    truth[10:14, 10:14] = True   # 16 px, missed
    pred = np.zeros((20, 20), bool)
    pred[2:6, 2:6] = True
    pred[15:19, 0:4] = True      # 16 px false object
    c = count(pred, truth, min_object_px=4)
    assert (c.tp, c.fp, c.fn) == (16, 16, 16)
    m = c.metrics()
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5 and m["iou"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["object_recall"] == 0.5 and m["object_precision"] == 0.5


def test_object_match_needs_iou_03():
    truth = np.zeros((20, 20), bool)
    truth[0:10, 0:10] = True
    pred = np.zeros((20, 20), bool)
    pred[0:10, 0:2] = True  # IoU 0.2
    assert count(pred, truth, 4).truth_found == 0
    pred[0:10, 0:4] = True  # IoU 0.4
    assert count(pred, truth, 4).truth_found == 1


def _dataset(root, pairs):
    for sub in ("A", "B", "label"):
        (root / sub).mkdir(parents=True)
    for name, (a, b, lab) in pairs.items():
        Image.fromarray(a).save(root / "A" / f"{name}.png")
        Image.fromarray(b).save(root / "B" / f"{name}.png")
        Image.fromarray(lab).save(root / "label" / f"{name}.png")


def test_eval_cli_json_on_tiny_dataset(tmp_path):
    """A bright square on a flat field: the baseline finds it; the metrics come back with the agreed keys."""
    rng = np.random.default_rng(0)
    a = (90 + rng.integers(0, 3, (64, 64, 3))).astype(np.uint8)
    b = a.copy()
    b[20:36, 20:36] = 230
    lab = np.zeros((64, 64), np.uint8)
    lab[20:36, 20:36] = 255
    empty = np.zeros((64, 64), np.uint8)
    _dataset(tmp_path / "ds", {"one": (a, b, lab), "none": (a, a.copy(), empty)})
    r = runner.invoke(app, ["eval", str(tmp_path / "ds"), "--detector", "cva", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    for k in ("precision", "recall", "f1", "iou", "object_recall", "object_precision", "images"):
        assert k in d
    assert [i["name"] for i in d["images"]] == ["none", "one"]
    assert d["object_recall"] == 1.0 and d["recall"] > 0.9


@pytest.mark.parametrize("args, enlarged", [([], False), (["--pixel-size", "10"], True),
                                             (["--pixel-size", "0.5"], False)])
def test_eval_pixel_size_of_png_datasets(tmp_path, args, enlarged):
    """PNGs do not say their pixel size; with --pixel-size 10 the model sees them enlarged, as a 10 m run would."""
    from satcheck.model.weights import shipped_weights

    if shipped_weights() is None:
        pytest.skip("no shipped weights in models/")
    a = np.random.default_rng(1).integers(60, 120, (48, 48, 3)).astype(np.uint8)
    _dataset(tmp_path / "ds", {"one": (a, a.copy(), np.zeros((48, 48), np.uint8))})
    r = runner.invoke(app, ["eval", str(tmp_path / "ds"), "--detector", "model", "--json", *args])
    assert r.exit_code == 0, r.output
    assert ("enlarged 1.5x" in json.loads(r.output)["detector"]) == enlarged


def test_eval_bad_dataset(tmp_path):
    (tmp_path / "A").mkdir()
    r = runner.invoke(app, ["eval", str(tmp_path)])
    assert r.exit_code == 2 and "no 'B' folder" in r.output


def test_object_scores_on_known_polygons():
    import geopandas as gpd
    from shapely.geometry import box

    from satcheck.scoring import score_objects

    truth = gpd.GeoDataFrame({"class": ["construction", "excavation", "construction"]},
                             geometry=[box(0, 0, 20, 20), box(100, 0, 120, 20), box(200, 0, 220, 20)], crs=4547)
    pred = gpd.GeoDataFrame({"change_type": ["construction", "construction", "construction"]},
                            geometry=[box(0, 0, 20, 20), box(100, 0, 110, 20), box(500, 500, 520, 520)], crs=4547)
    s = score_objects(pred, truth, area_km2=2.0, min_truth_m2=100, iou=0.3)
    assert s.best_iou == (1.0, 0.5, 0.0)
    assert (s.truths, s.found, s.false_objects, s.false_per_km2) == (3, 2, 1, 0.5)
    assert s.type_correct == 0.5  # the pit was taken for construction


def test_eval_rgb_against_rgb_nir_geotiffs(tmp_path):
    """An RGB earlier date and an R, G, B, NIR later date are scored on red, green, blue, as a run compares them."""
    import rasterio

    rng = np.random.default_rng(0)
    a = (90 + rng.integers(0, 3, (4, 64, 64))).astype(np.uint8)
    b = a.copy()
    b[:, 20:36, 20:36] = 230
    lab = np.zeros((1, 64, 64), np.uint8)
    lab[:, 20:36, 20:36] = 1
    for sub, data in (("A", a[:3]), ("B", b), ("label", lab)):
        (tmp_path / "ds" / sub).mkdir(parents=True)
        with rasterio.open(tmp_path / "ds" / sub / "one.tif", "w", driver="GTiff", width=64, height=64,
                           count=len(data), dtype="uint8") as dst:
            dst.write(data)
    r = runner.invoke(app, ["eval", str(tmp_path / "ds"), "--detector", "cva", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["object_recall"] == 1.0


class _Fixed:
    """A detector whose scores are given: a building, hardened ground and a pit, each a 4 × 4 square."""

    name, halo, threshold, needs_sample = "fixed", 0, 0.5, False

    def prepare(self, sample, px_m):
        pass

    def imagery_warning(self):
        return None

    def score(self, pw):
        from satcheck.detect.base import BUILDING, EXCAVATION, HARDENED, ChangeScores

        prob = np.zeros((20, 20), np.float32)
        kind = np.zeros((20, 20), np.uint8)
        for (r, c), k in zip(((2, 2), (2, 12), (12, 2)), (BUILDING, HARDENED, EXCAVATION)):
            prob[r:r + 4, c:c + 4] = 0.9
            kind[r:r + 4, c:c + 4] = k
        return ChangeScores(prob, kind)


@pytest.mark.parametrize("classes, tp, fp, fn", [("any", 32, 16, 16), ("building", 16, 0, 32),
                                                 ("hardened", 16, 0, 32), ("excavation", 0, 16, 48)])
def test_eval_classes_scores_what_a_run_would_report_as_that_class(classes, tp, fp, fn):
    """Truth marks the building, the yard and a missed building: --classes building counts only the pixels typed
    building, so the yard is neither found nor false."""
    from satcheck.datasets import LabelledPair
    from satcheck.evaluate import evaluate

    label = np.zeros((20, 20), np.uint8)
    label[2:6, 2:6] = label[2:6, 12:16] = label[14:18, 14:18] = 1
    if classes in ("building", "hardened", "excavation"):
        # A dataset of that class labels only it: the building (or yard) plus the missed object.
        label = np.zeros((20, 20), np.uint8)
        label[14:18, 14:18] = label[14:18, 8:12] = 1
        where = {"building": (2, 2), "hardened": (2, 12), "excavation": None}[classes]
        if where:
            label[where[0]:where[0] + 4, where[1]:where[1] + 4] = 1
        else:
            label[8:12, 8:12] = 1
    img = np.full((3, 20, 20), 0.3, np.float32)
    res = evaluate(_Fixed(), [LabelledPair("p", img, img.copy(), label, None)], min_object_px=4, classes=classes)
    assert (res.total.tp, res.total.fp, res.total.fn) == (tp, fp, fn)


def test_eval_classes_refuses_an_unknown_class(tmp_path):
    r = runner.invoke(app, ["eval", str(tmp_path), "--classes", "roads"])
    assert r.exit_code == 2 and "'roads' is not one of building" in " ".join(r.output.split())
