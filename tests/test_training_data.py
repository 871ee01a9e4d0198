"""Training batches: drawn ahead in another process without changing them, real objects pasted in, a date seen twice."""

import time

import numpy as np
import pytest

from satcheck.errors import DatasetError
from satcheck.model.data import BatchPrefetcher, Example, ExampleSampler, synthetic_pool


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


def test_pasted_object_is_labelled_construction_and_matched_to_the_scene():
    s = _sampler(paste=_one_object(0.8, 0.4))
    a = np.full((4, 64, 64), 0.1, np.float32)
    y = np.zeros((64, 64), np.uint8)
    c = np.zeros((64, 64), np.uint8)
    s._paste(a, y, c, (1.0, 1.0), match=True)
    assert y.sum() == 100 and (c[y == 1] == 1).all()
    # 0.8 × (scene median 0.1 / source median 0.4); NIR takes red's value.
    np.testing.assert_allclose(a[:, y == 1], 0.2, rtol=1e-6)
    assert (a[:, y == 0] == 0.1).all()


def test_paste_real_puts_labelled_objects_into_unchanged_examples():
    still = np.full((3, 128, 128), 0.1, np.float32)
    unchanged = Example(still, still.copy(), np.zeros((128, 128), np.uint8), np.zeros((128, 128), np.uint8))

    def changed_examples(paste_real: float) -> int:
        s = ExampleSampler({"pairs": (1.0, [unchanged])}, crop=64, seed=5, paste_objects=_one_object(0.8, 0.4),
                           paste_real=paste_real)
        _, _, y, c = s.batch(8)
        assert ((y == 1) == (c == 1)).all()
        return int(((y == 1).sum(axis=(1, 2)) > 0).sum())

    assert changed_examples(0.0) == 0
    assert changed_examples(1.0) >= 5  # all 8 but the few drawn with the dates swapped (label emptied)
    assert unchanged.label.sum() == 0  # the pool itself is never written to


def test_same_date_shows_one_date_of_a_real_pair_twice_as_unchanged():
    rng = np.random.default_rng(0)
    # Fields of 16 px, so a shift of two pixels between the copies keeps them alike.
    before = np.kron(rng.uniform(0.05, 0.3, (3, 6, 6)), np.ones((1, 16, 16))).astype(np.float32)
    after = before.copy()
    after[:, 20:60, 20:60] = 0.9  # a new roof
    label = np.zeros((96, 96), np.uint8)
    label[20:60, 20:60] = 1
    pair = Example(before, after, label, label.copy())

    def draw(same_date: float):
        s = ExampleSampler({"folder:pairs": (1.0, [pair])}, crop=96, seed=2, same_date=same_date,
                           paste_objects=_one_object(0.8, 0.4), paste_real=1.0)
        return [s._draw("folder:pairs") for _ in range(12)]

    assert sum(int((y == 1).any()) for _, _, y, _ in draw(0.0)) >= 6
    for b, a, y, c in draw(1.0):
        assert (y == 0).all() and (c == 0).all()  # and nothing pasted in
        # Both dates are the same image under their own radiometry: strongly correlated, not identical.
        r = np.corrcoef(b[:3].ravel(), a[:3].ravel())[0, 1]
        assert r > 0.5 and not np.array_equal(b, a)
    assert (pair.label == label).all()
