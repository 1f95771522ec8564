import cv2
import numpy as np
import pytest

from hdr_gan_tf.display import TONEMAPPERS, PreviewImage, tonemap_for_display


def _image(height, width):
    return np.random.default_rng(0).random((height, width, 3)).astype(np.float32)


@pytest.mark.parametrize("band", [1, 17, 103])
def test_preview_reduces_by_a_whole_factor_band_by_band(band):
    image = _image(103, 150)
    preview = PreviewImage(103, 150, max_pixels=2000)
    factor, (width, height) = preview.factor, preview.size
    assert factor == 3 and (width, height) == (50, 35) and width * height <= 2000
    for first in range(0, 103, band):
        preview.add(image[first:first + band])
    reduced = preview.image()
    blocks = 103 // factor  # whole 3x3 blocks are their means; the last row averages 1 row
    expected = image[:blocks * factor].reshape(blocks, factor, width, factor, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(reduced[:blocks], expected, atol=1e-6)
    np.testing.assert_allclose(reduced[blocks], image[blocks * factor:].reshape(
        width, factor, 3).mean(axis=1), atol=1e-6)


def test_small_preview_is_the_image_and_missing_rows_are_an_error():
    image = _image(40, 30)
    preview = PreviewImage(40, 30)
    preview.add(image[:25])
    with pytest.raises(ValueError, match="rows missing"):
        preview.image()
    preview.add(image[25:])
    np.testing.assert_array_equal(preview.image(), image)


@pytest.mark.parametrize("method", list(TONEMAPPERS))
def test_display_tonemappers_give_screen_values_in_the_order_of_the_hdr(method):
    # A grey ramp over four decades, beyond 1 at the end: screen values in [0, 1] that keep
    # brighter pixels brighter.
    ramp = np.logspace(-3, 0.5, 64, dtype=np.float32)
    hdr = np.repeat(np.tile(ramp, (8, 1))[..., None], 3, axis=-1)
    out = tonemap_for_display(hdr, method)
    assert out.shape == hdr.shape and out.min() >= 0 and out.max() <= 1
    luma = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[4]
    assert np.all(np.diff(luma) >= -1e-6) and luma[-1] - luma[0] > 0.5


@pytest.mark.parametrize("method", list(TONEMAPPERS))
def test_a_tonemapper_that_says_it_normalises_maps_a_scaled_image_to_the_same_picture(method):
    rng = np.random.default_rng(3)
    hdr = (rng.random((16, 16, 3)) ** 4 * 0.5).astype(np.float32)
    same = np.abs(tonemap_for_display(hdr * 0.25, method) - tonemap_for_display(hdr, method))
    assert (same.max() < 0.02) == TONEMAPPERS[method].normalises, same.max()


def test_an_unknown_tonemapper_is_refused_naming_the_setting():
    from hdr_gan_tf.settings import ConfigError

    with pytest.raises(ConfigError, match="unknown tonemapper 'filmic'") as err:
        tonemap_for_display(np.ones((2, 2, 3), np.float32), "filmic")
    assert err.value.field == "tonemap"
