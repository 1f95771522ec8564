import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf import data
from hdr_gan_tf.config import build_generator
from hdr_gan_tf.image_io import SpooledImages
from hdr_gan_tf.merge import (InferenceOptions, merge_bands, merge_exposures, pad_reflect,
                              run_generator, tile_starts)
from hdr_gan_tf.metrics import psnr
from hdr_gan_tf.tf1_checkpoint import load_tf1_weights


@pytest.fixture(scope="module")
def generator(golden_checkpoint):
    g = build_generator()
    load_tf1_weights(golden_checkpoint, g)
    return g


def test_pad_reflect_reaches_multiples_and_a_minimum_size():
    x = tf.reshape(tf.range(2 * 3 * 5, dtype=tf.float32), [2, 3, 5, 1])
    padded, (h, w) = pad_reflect(x, 4)
    assert padded.shape == (2, 12, 12, 1) and (int(h), int(w)) == (3, 5)
    np.testing.assert_array_equal(padded[:, :3, :5].numpy(), x.numpy())
    padded, _ = pad_reflect(tf.zeros([1, 61, 93, 2]), 4)
    assert padded.shape == (1, 64, 96, 2)


def test_any_size_is_padded_and_cropped_back(generator, golden):
    ldrs = [golden[k][:, :61, :93] for k in ("ldr_short", "ldr_mid", "ldr_long")]
    outputs = run_generator(generator, ldrs, golden["exposure_bias"])
    assert [tuple(o.shape) for o in outputs] == [(1, 61, 93, 3)] * 2
    # Away from the padded border, the crop agrees with the full-size computation.
    full = run_generator(generator, [golden[k] for k in ("ldr_short", "ldr_mid", "ldr_long")],
                         golden["exposure_bias"])
    assert psnr((outputs[1][0, :30, :40] + 1) / 2, (full[1][0, :30, :40] + 1) / 2) > 40


@pytest.mark.parametrize("options", [
    InferenceOptions(lean_from_pixels=0, strips_from_pixels=0),
    InferenceOptions(lean_from_pixels=None, strips_from_pixels=0),
    InferenceOptions(lean_from_pixels=0, strips_from_pixels=None)])
def test_the_merge_chooses_how_the_network_runs_and_each_way_agrees(generator, golden, options):
    """Lean order or graph order, border strips or padded copies: the options pick, and the
    outputs are those of the plain forward pass with padded copies."""
    ldrs = np.concatenate([golden[k] for k in ("ldr_short", "ldr_mid", "ldr_long")])
    plain = merge_exposures(generator, ldrs, golden["exposure_bias"][0],
                            options=InferenceOptions(lean_from_pixels=None,
                                                     strips_from_pixels=None))
    chosen = merge_exposures(generator, ldrs, golden["exposure_bias"][0], options=options)
    for a, b in zip(plain, chosen):
        np.testing.assert_allclose(b, a, atol=2e-5)
    assert options.lean(64, 96) == (options.lean_from_pixels == 0)


def testtile_starts_cover_the_image():
    for size, tile, overlap in [(1000, 256, 32), (300, 128, 64), (100, 128, 32)]:
        starts = tile_starts(size, tile, overlap)
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s:s + tile] = True
        assert covered.all() and starts[-1] + min(tile, size) == size


def test_tiled_inference_agrees_with_whole_image_inference(generator, tiny_data):
    scene = data.open_split(tiny_data, data.TEST_SPLIT)[0]
    ldrs = np.concatenate([scene.ldr_float()] * 2, axis=2)[:, :, :200]  # 96 x 200
    whole = merge_exposures(generator, ldrs, scene.exposure_bias)
    tiled = merge_exposures(generator, ldrs, scene.exposure_bias,
                            options=InferenceOptions(tile=64, overlap=24))
    for a, b in zip(whole, tiled):
        assert a.shape == b.shape == (96, 200, 3)
        assert psnr((a + 1) / 2, (b + 1) / 2) >= 50


def test_16_bit_photos_merge_like_their_float_values_and_branches_can_be_picked(generator,
                                                                               tiny_data):
    scene = data.open_split(tiny_data, data.TEST_SPLIT)[0]
    ldrs16 = (np.random.default_rng(0).random((3, 40, 72, 3)) * 65535).astype(np.uint16)
    as_float = ldrs16.astype(np.float32) / 65535
    tiles = InferenceOptions(tile=32, overlap=12)
    tiled16 = merge_exposures(generator, ldrs16, scene.exposure_bias, options=tiles,
                              branches=[1])
    tiled = merge_exposures(generator, as_float, scene.exposure_bias, options=tiles)
    assert len(tiled16) == 1 and len(tiled) == 2
    np.testing.assert_allclose(tiled16[0], tiled[1], atol=1e-5)
    whole8 = merge_exposures(generator, (as_float * 255).round().astype(np.uint8),
                             scene.exposure_bias, branches=[-1])[0]
    whole = merge_exposures(generator, (as_float * 255).round() / 255, scene.exposure_bias)[-1]
    np.testing.assert_allclose(whole8, whole, atol=1e-5)



def test_banded_merge_blends_tiles_with_linear_ramps_and_streams_rows_in_order(generator,
                                                                            tmp_path):
    rng = np.random.default_rng(2)
    ldrs = (rng.random((3, 72, 100, 3)) * 65535).astype(np.uint16)
    ev, tile, overlap = np.array([-2.0, 0.0, 2.0]), 32, 12
    firsts, bands = [], []
    tiles = InferenceOptions(tile=tile, overlap=overlap)
    for first, rows in merge_bands(generator, ldrs, ev, branches=[1], options=tiles):
        firsts.append(first)
        bands.append(rows[0])
    assert firsts == [0] + list(np.cumsum([len(b) for b in bands])[:-1])
    banded = np.concatenate(bands)
    assert banded.shape == (72, 100, 3) and len(bands) > 2
    # Independent reference: every tile merged on its own, weighted by the product of linear
    # ramps over its overlaps (none at the image border), normalised by the summed weights.
    total, weight = np.zeros((72, 100, 3)), np.zeros((72, 100, 1))

    def ramp(start, size):
        pos = np.arange(tile) + 0.5
        w = np.minimum(1, np.minimum(pos, tile - pos) / overlap)
        w[:overlap] = 1 if start == 0 else w[:overlap]
        w[-overlap:] = 1 if start + tile == size else w[-overlap:]
        return w

    for y in tile_starts(72, tile, overlap):
        for x in tile_starts(100, tile, overlap):
            out = merge_exposures(generator, ldrs[:, y:y + tile, x:x + tile], ev, branches=[1])
            w = np.outer(ramp(y, 72), ramp(x, 100))[..., None]
            total[y:y + tile, x:x + tile] += out[0] * w
            weight[y:y + tile, x:x + tile] += w
    np.testing.assert_allclose(banded, total / weight, atol=1e-5)
    # A spooled bracket gives the same result; merge_exposures assembles the same bands.
    with SpooledImages(tmp_path) as spooled:
        for image in ldrs:
            spooled.append(image)
        tiled = merge_exposures(generator, spooled, ev, branches=[1], options=tiles)[0]
    np.testing.assert_array_equal(tiled, banded)
