"""Training batches: drawn ahead in another process without changing them, and real objects pasted in."""

import time

import numpy as np
import pytest

from satcheck.errors import DatasetError
from satcheck.model.data import BUILDING, Example, synthetic_pool
from satcheck.model.sampling import BatchPrefetcher, ExampleSampler


def _sampler(seed: int = 3, paste=None, paste_real: float = 0.0) -> ExampleSampler:
    pool = synthetic_pool(2, seed=1, size=128, workers=1)
    return ExampleSampler({"synthetic": (1.0, pool)}, crop=64, seed=seed, paste_objects=paste, paste_real=paste_real)


def test_prefetched_batches_are_the_batches_drawn_in_process():
    direct = _sampler()
    expected = [direct.batch(2) for _ in range(3)]
    with BatchPrefetcher(_sampler(), n=2, count=3, ahead=2) as drawn:
        got = [drawn.batch() for _ in range(3)]
    for want, have in zip(expected, got):
        for w, h in zip(want, have):
            np.testing.assert_array_equal(w, h)


class _Failing:
    def batch(self, n):
        raise ValueError("bad crop")


class _Stuck:
    def batch(self, n):
        time.sleep(60)


def test_an_error_while_drawing_is_raised_in_the_training_process():
    with BatchPrefetcher(_Failing(), n=2, count=3) as drawn, pytest.raises(ValueError, match="bad crop"):
        drawn.batch()


def test_a_drawing_process_that_died_is_an_error_not_a_hang():
    drawn = BatchPrefetcher(_Stuck(), n=2, count=3)
    drawn.poll_s = 0.2
    drawn._process.kill()
    with pytest.raises(DatasetError, match="prefetch: 0"):
        drawn.batch()
    drawn.close()


def _one_object(value: float, median: float):
    return [(np.full((3, 10, 10), value, np.float32), np.ones((10, 10), bool), np.full(3, median, np.float32))]


def test_pasted_object_is_labelled_building_and_matched_to_the_scene():
    s = _sampler(paste=_one_object(0.8, 0.4))
    a = np.full((4, 64, 64), 0.1, np.float32)
    y = np.zeros((64, 64), np.uint8)
    c = np.zeros((64, 64), np.uint8)
    s._paste(a, y, c, (1.0, 1.0), match=True)
    assert y.sum() == 100 and (c[y == 1] == BUILDING).all()
    # 0.8 × (scene median 0.1 / source median 0.4); NIR takes red's value.
    np.testing.assert_allclose(a[:, y == 1], 0.2, rtol=1e-6)
    assert (a[:, y == 0] == 0.1).all()


def test_paste_real_puts_labelled_objects_into_unchanged_examples():
    still = np.full((3, 128, 128), 0.1, np.float32)
    unchanged = Example(still, still.copy(), np.zeros((128, 128), np.uint8), np.zeros((128, 128), np.uint8))

    def changed_examples(paste_real: float) -> int:
        s = ExampleSampler({"pairs": (1.0, [unchanged])}, crop=64, seed=5, paste_objects=_one_object(0.8, 0.4),
                           paste_real=paste_real)
        _, _, y, c, _ = s.batch(8)
        assert ((y == 1) == (c == BUILDING)).all()
        return int(((y == 1).sum(axis=(1, 2)) > 0).sum())

    assert changed_examples(0.0) == 0
    assert changed_examples(1.0) >= 5  # all 8 but the few drawn with the dates swapped (label emptied)
    assert unchanged.label.sum() == 0  # the pool itself is never written to


def test_each_source_says_what_its_labels_speak_of():
    """Synthetic scenes know each class (a yard's core is a roof); an A/B/label folder says building or
    construction as its recipe says."""
    pool = synthetic_pool(3, seed=2, size=256, workers=1)
    assert all(e.supervises == "all" for e in pool)
    classes = set(np.unique(np.concatenate([e.change_class[e.label == 1] for e in pool])).tolist())
    assert classes <= {1, 2, 3} and len(classes) >= 2
    assert all((e.change_class[e.label == 0] == 0).all() for e in pool)
    levir = Example(pool[0].before, pool[0].after, pool[0].label, np.zeros_like(pool[0].label), 0.5, "building")
    s = ExampleSampler({"levir": (1.0, [levir])}, crop=64, seed=1)
    *_, g = s.batch(4)
    assert (g == 1).all()  # SUPERVISES.index("building")


def test_a_source_zoomed_out_shows_the_network_coarser_pixels():
    """A recipe's ``zoom`` below 1 shrinks a source's objects in its crops (0.5 m LEVIR-CD seen as 2 m pixels), and
    the weights' pixel range says so; a zoom outside 0.1..4 is refused."""
    from pydantic import ValidationError
    from scipy import ndimage

    from satcheck.model.data import pixel_range
    from satcheck.model.train import FolderSource

    h = w = 512
    label = np.zeros((h, w), np.uint8)
    for r in range(0, h, 48):
        for c in range(0, w, 48):
            label[r + 8:r + 20, c + 8:c + 20] = 1  # 12 px houses every 48 px
    img = np.random.default_rng(0).random((3, h, w), np.float32)
    pair = Example(img, img, label, np.zeros_like(label), 0.5, "building")
    houses = {}
    for zoom in ((1.0, 1.0), (0.25, 0.25)):
        s = ExampleSampler({"levir": (1.0, [pair])}, crop=64, seed=1, zooms={"levir": zoom})
        _, _, y, _, _ = s.batch(6)
        houses[zoom[0]] = np.mean([ndimage.label(crop == 1)[1] for crop in y])
    assert houses[1.0] <= 4 and houses[0.25] >= 12  # a crop of 64 px holds 256 px of the scene at 0.25
    assert pixel_range({"folder:levir_cd_scenes": [0.5]}, {"folder:levir_cd_scenes": (0.25, 1.6)}) == [0.31, 2.0]
    assert pixel_range({"oscd": [10.0]}, {"oscd": (0.25, 1.6)}) == [5.0, 10.0]  # 10 m is never made coarser
    with pytest.raises(ValidationError, match="0.1 <= low <= high <= 4"):
        FolderSource(path="x", zoom=(2.0, 1.0))
