import numpy as np

from hdr_gan_tf.classical import DebevecMerger, debevec_merge, mertens_fusion
from hdr_gan_tf.merge import InferenceOptions


def _bracket(radiance, ev, gamma=2.2):
    """Exact (unquantised) photos of `radiance` at EVs `ev`: `I = clip((H t) ** (1/γ))`."""
    times = 2.0 ** (np.asarray(ev) - min(ev))
    return np.stack([np.clip((radiance * t) ** (1 / gamma), 0, 1) for t in times]).astype(
        np.float32)


def test_debevec_recovers_the_radiance_the_photos_were_made_from():
    rng = np.random.default_rng(0)
    radiance = (10.0 ** rng.uniform(-4.5, 0, (40, 56, 3))).astype(np.float32)
    ev = [-2.0, 0.0, 2.0]
    merged = debevec_merge(_bracket(radiance, ev), ev)
    # Every pixel has at least one photo neither black nor clipped: its radiance comes back.
    np.testing.assert_allclose(merged, radiance, rtol=2e-5, atol=1e-9)
    # EVs written from 0 mean the same times.
    np.testing.assert_array_equal(debevec_merge(_bracket(radiance, ev), [0, 2, 4]), merged)
    # Radiance beyond what the short photo holds is clipped where every photo is: 1.
    bright = np.full((4, 4, 3), 3.0, np.float32)
    np.testing.assert_array_equal(debevec_merge(_bracket(bright, ev), ev), 1.0)


def test_16_bit_photos_and_banded_merges_agree_with_the_whole_float_merge():
    rng = np.random.default_rng(1)
    radiance = (10.0 ** rng.uniform(-3, 0, (70, 30, 3))).astype(np.float32)
    ev = [-3.0, 0.0, 3.0]
    photos16 = np.round(_bracket(radiance, ev) * 65535).astype(np.uint16)
    merge = DebevecMerger(InferenceOptions(tile=64, overlap=16), band_rows=32)
    whole = merge(photos16, ev)["main"]
    np.testing.assert_allclose(whole, debevec_merge(photos16.astype(np.float32) / 65535, ev),
                               rtol=1e-6)
    bands = list(merge.bands(photos16, ev))
    assert [first for first, _ in bands] == [0, 32, 64]
    np.testing.assert_array_equal(np.concatenate([rows["main"] for _, rows in bands]), whole)
    assert merge.branches == ["main"]


def test_mertens_fusion_keeps_a_picture_that_all_three_agree_on_and_brightens_shadows():
    """Three identical photos fuse to that photo (the weights sum to one, the pyramids
    collapse back); a bracket fuses to a picture between its darkest and brightest photo,
    showing the shadows the short photo hides and the sky the long one clips."""
    rng = np.random.default_rng(2)
    photo = rng.uniform(0.2, 0.8, (32, 48, 3)).astype(np.float32)
    np.testing.assert_allclose(mertens_fusion(np.stack([photo] * 3)), photo, atol=1e-5)
    radiance = np.concatenate([np.full((32, 24, 3), 0.004), np.full((32, 24, 3), 0.8)],
                              axis=1).astype(np.float32)
    bracket = _bracket(radiance, [-2.0, 0.0, 2.0])
    fused = mertens_fusion(bracket)
    shadow, sky = fused[8:24, 4:16].mean(), fused[8:24, 32:44].mean()
    assert bracket[0][8:24, 4:16].mean() < shadow < bracket[2][8:24, 4:16].mean()
    assert sky < bracket[2][8:24, 32:44].mean() and sky > shadow
