import pathlib

import numpy as np
import pytest

from hdr_gan_tf import steerable_pyramid


def _reflected(image, reach):
    # Reflection about the edge pixels, as numpy names it.
    return np.pad(image, reach, mode="reflect")


def _correlated(image, taps):
    """Correlation written out tap by tap on the reflected image."""
    ry, rx = taps.shape[0] // 2, taps.shape[1] // 2
    padded = _reflected(image, max(ry, rx))[max(ry, rx) - ry:, max(ry, rx) - rx:]
    out = np.zeros(image.shape)
    for dy in range(taps.shape[0]):
        for dx in range(taps.shape[1]):
            out += taps[dy, dx] * padded[dy:dy + image.shape[0], dx:dx + image.shape[1]]
    return out


@pytest.mark.parametrize("step", [1, 2])
def test_correlate_down_against_taps_written_out(step):
    image = np.random.default_rng(0).standard_normal((37, 30))
    taps = steerable_pyramid.filters()["bands"][1]
    expected = _correlated(image, taps)[::step, ::step]
    np.testing.assert_allclose(steerable_pyramid.correlate_down(image, taps, step), expected,
                               atol=1e-12)


@pytest.mark.parametrize("shape", [(40, 30), (37, 29)])
def test_convolve_up_is_spreading_then_convolving(shape):
    taps = steerable_pyramid.filters()["lowpass"]
    small = np.random.default_rng(1).standard_normal((-(-shape[0] // 2), -(-shape[1] // 2)))
    spread = np.zeros(shape)
    spread[::2, ::2] = small
    expected = _correlated(spread, taps[::-1, ::-1])
    np.testing.assert_allclose(steerable_pyramid.convolve_up(small, taps, shape, step=2),
                               expected, atol=1e-12)
    with pytest.raises(ValueError, match="does not expand"):
        steerable_pyramid.convolve_up(small[1:], taps, shape, step=2)


def test_sides_as_long_as_the_taps_expand_as_the_reference_does():
    """The reference implementation's own outputs (its compiled upConv, tests/data/hdrvdp2)
    where a side equals the taps' side: 15 for the high-pass taps, 17 for the low-pass ones."""
    with np.load(pathlib.Path(__file__).parent / "data" / "hdrvdp2" / "pyramid_edges.npz") as s:
        cases = {k: s[k] for k in s.files}
    taps = steerable_pyramid.filters()
    for name, kind, step in (("hi", "highpass0", 1), ("lo", "lowpass", 2), ("mid", "lowpass", 2)):
        got = steerable_pyramid.convolve_up(cases[f"in_{name}"], taps[kind],
                                            cases[f"out_{name}"].shape, step)
        np.testing.assert_allclose(got, cases[f"out_{name}"], atol=1e-12, err_msg=name)


def test_layout_follows_height():
    image = np.zeros((70, 140))
    bands = steerable_pyramid.build(image)
    assert steerable_pyramid.height(image.shape) == 3   # 70 -> 35 -> 17 -> 8
    assert [len(band) for band in bands] == [1, 4, 4, 4, 1]
    assert [band[0].shape for band in bands] == [(70, 140), (70, 140), (35, 70), (18, 35),
                                                 (9, 18)]


def test_a_smooth_image_comes_back():
    rows, cols = np.mgrid[0:96, 0:128]
    image = np.sin(rows / 9.0) + np.cos(cols / 13.0) + 0.002 * rows * cols / 10
    back = steerable_pyramid.reconstruct(steerable_pyramid.build(image))
    inner = (slice(16, -16), slice(16, -16))
    assert np.max(np.abs(back - image)[inner]) < 0.01 * np.ptp(image)
    # The bands carry the detail: dropping the oriented bands changes the image.
    bands = steerable_pyramid.build(image)
    flat = [bands[0]] + [[np.zeros_like(b) for b in level] for level in bands[1:-1]] + [bands[-1]]
    assert np.max(np.abs(steerable_pyramid.reconstruct(flat) - image)[inner]) > 0.05
