import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

from satcheck.windows import blend_weights, intersect, overlapping_windows, window_grid, with_halo

dims = st.integers(1, 700)


@given(dims, dims, st.integers(1, 300))
@settings(max_examples=60, deadline=None)
def test_window_grid_covers_each_pixel_once(w, h, size):
    cover = np.zeros((h, w), np.int32)
    for win in window_grid(w, h, size):
        assert win.width <= size and win.height <= size
        cover[int(win.row_off):int(win.row_off + win.height), int(win.col_off):int(win.col_off + win.width)] += 1
    assert (cover == 1).all()


@given(dims, dims, st.integers(1, 200), st.integers(0, 64), st.data())
@settings(max_examples=60, deadline=None)
def test_halo_slices_cut_the_core_back_out(w, h, size, halo, data):
    wins = window_grid(w, h, size)
    core = data.draw(st.sampled_from(wins))
    grown, (rows, cols) = with_halo(core, halo, w, h)
    assert 0 <= grown.col_off and grown.col_off + grown.width <= w
    assert 0 <= grown.row_off and grown.row_off + grown.height <= h
    img = np.arange(w * h).reshape(h, w)
    read = img[int(grown.row_off):int(grown.row_off + grown.height), int(grown.col_off):int(grown.col_off + grown.width)]
    expect = img[int(core.row_off):int(core.row_off + core.height), int(core.col_off):int(core.col_off + core.width)]
    assert np.array_equal(read[rows, cols], expect)


@given(dims, dims, st.integers(16, 256), st.data())
@settings(max_examples=60, deadline=None)
def test_overlapping_windows_cover_everything(w, h, size, data):
    overlap = data.draw(st.integers(0, size - 1))
    cover = np.zeros((h, w), bool)
    for win in overlapping_windows(w, h, size, overlap):
        assert win.col_off >= 0 and win.row_off >= 0
        assert win.col_off + win.width <= w and win.row_off + win.height <= h
        cover[int(win.row_off):int(win.row_off + win.height), int(win.col_off):int(win.col_off + win.width)] = True
    assert cover.all()


def test_blend_weights_positive_and_symmetric():
    wgt = blend_weights(64, 80, 16)
    assert wgt.min() > 0 and wgt.max() == 1
    assert np.allclose(wgt, wgt[::-1, ::-1])


def test_intersect():
    assert intersect(Window(0, 0, 10, 10), Window(5, 5, 10, 10)) == Window(5, 5, 5, 5)
    assert intersect(Window(0, 0, 10, 10), Window(10, 0, 5, 5)) is None
