import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf import metrics


def test_psnr_on_known_arrays():
    a = np.zeros((4, 4, 3))
    assert metrics.psnr(a, a + 0.1) == pytest.approx(20.0)
    assert metrics.psnr(a, a + 0.01) == pytest.approx(40.0)
    assert metrics.psnr(a, a) == float("inf")


@pytest.mark.parametrize("noise", [0.02, 0.2])
def test_ssim_matches_tf_image_ssim(noise):
    rng = np.random.default_rng(1)
    a = rng.random((48, 64, 3))
    b = np.clip(a + noise * rng.standard_normal(a.shape), 0, 1)
    expected = tf.image.ssim(tf.constant(a), tf.constant(b), max_val=1.0, filter_size=11,
                             filter_sigma=1.5, k1=0.01, k2=0.03).numpy()
    assert metrics.ssim(a, b) == pytest.approx(float(expected), abs=1e-5)
    assert metrics.ssim(a, a) == pytest.approx(1.0)


def test_hdr_metrics_domains():
    """By hand: a constant 0.01 against 0.02 gives PSNR-L 40 dB; in the μ-law domain the
    difference is T(0.02) - T(0.01) = log(101/51) / log(5001), so PSNR-μ is
    -20 log10(log(101/51) / log(5001)) = 21.9 dB. A ten times darker pair with the same ratio
    scores 20 dB more PSNR-L but only 1 dB more PSNR-μ (23.0 dB): on the μ-law curve ratios
    count, not differences."""
    gt, est = np.full((16, 16, 3), 0.01), np.full((16, 16, 3), 0.02)
    m = metrics.hdr_metrics(est, gt)
    assert m["psnr_l"] == pytest.approx(40.0)
    assert m["psnr_mu"] == pytest.approx(-20 * np.log10(np.log(101 / 51) / np.log(5001)))
    assert m["psnr_mu"] == pytest.approx(21.91, abs=0.01)
    darker = metrics.hdr_metrics(est / 10, gt / 10)
    assert darker["psnr_l"] == pytest.approx(60.0)
    assert darker["psnr_mu"] == pytest.approx(-20 * np.log10(np.log(11 / 6) / np.log(5001)))
    # SSIM of constant images: (2ab + c1) / (a² + b² + c1), c1 = 0.01²
    assert m["ssim_l"] == pytest.approx((2 * 0.02 * 0.01 + 1e-4) / (0.02 ** 2 + 0.01 ** 2 + 1e-4))


# PU21's "banding + glare" parameters as its authors publish them, written out again here so
# that the test computes the encoding independently of the module.
_P = (0.353487901, 0.3734658629, 8.277049286e-05, 0.9062562627, 0.09150303166, 0.9099517204,
      596.3148142)


def _pu21_by_hand(luminance):
    import math

    y = min(max(luminance, 0.005), 10000.0)
    ratio = (_P[0] + _P[1] * math.exp(_P[3] * math.log(y))) / (
        1 + _P[2] * math.exp(_P[3] * math.log(y)))
    return max(_P[6] * (math.exp(_P[4] * math.log(ratio)) - _P[5]), 0.0)


def test_pu21_encoding_follows_the_papers_equation_and_its_anchor_points():
    luminances = [0.001, 0.005, 0.1, 1.0, 10.0, 100.0, 1000.0, 4000.0, 10000.0, 20000.0]
    encoded = metrics.pu21_encode(luminances)
    for y, v in zip(luminances, encoded):
        assert v == pytest.approx(_pu21_by_hand(y), rel=1e-4, abs=1e-6), y
    # What PU21's authors say of it: 100 cd/m² encodes to about 256 (like an SDR signal), the
    # range ends near 600, and luminances outside 0.005..10000 are clamped.
    assert encoded[5] == pytest.approx(256, rel=0.005)
    assert 580 < encoded[-2] < 620 and encoded[-1] == encoded[-2] and encoded[0] == encoded[1]
    assert np.all(np.diff(encoded[1:-1]) > 0)


def test_pu21_psnr_and_ssim_of_a_known_pair():
    """Grey constants: the ground truth's peak (0.5) is shown at 4000 cd/m², the estimate (0.25)
    at 2000, so PU21-PSNR is 20 log10(256 / |V(4000) - V(2000)|) and PU21-SSIM, with no
    variance, (2 a b + c1) / (a² + b² + c1) with c1 = (0.01 · 256)²."""
    gt, est = np.full((16, 16, 3), 0.5), np.full((16, 16, 3), 0.25)
    a, b = _pu21_by_hand(2000.0), _pu21_by_hand(4000.0)
    m = metrics.hdr_metrics(est, gt)
    assert m["pu21_psnr"] == pytest.approx(20 * np.log10(256 / abs(a - b)), rel=1e-4)
    c1 = (0.01 * 256) ** 2
    assert m["pu21_ssim"] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-4)
    # Relative images: scaling both changes nothing; another display peak does.
    assert metrics.hdr_metrics(est * 7, gt * 7)["pu21_psnr"] == pytest.approx(m["pu21_psnr"])
    dim = metrics.hdr_metrics(est, gt, display_peak=100.0)
    assert dim["pu21_psnr"] == pytest.approx(
        20 * np.log10(256 / abs(_pu21_by_hand(50.0) - _pu21_by_hand(100.0))), rel=1e-4)


def test_pu21_ssim_is_the_ssim_of_the_encoded_luminance():
    """On a textured pair the luminance (Rec. 709 weights) is encoded, then scored by the
    same SSIM as the other metrics with data range 256."""
    rng = np.random.default_rng(3)
    gt = rng.random((40, 48, 3)) ** 3
    est = np.clip(gt * (1 + 0.1 * rng.standard_normal(gt.shape)), 0, None)
    scale = 4000 / gt.max()
    lum = [np.einsum("hwc,c->hw", x * scale, [0.212656, 0.715158, 0.072186]) for x in (est, gt)]
    by_hand = [np.vectorize(_pu21_by_hand)(x)[..., None] for x in lum]
    expected = tf.image.ssim(tf.constant(by_hand[0]), tf.constant(by_hand[1]), max_val=256.0,
                             filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03).numpy()
    assert metrics.pu21_ssim(est, gt) == pytest.approx(float(expected), rel=1e-4)
    assert metrics.pu21_ssim(gt, gt) == pytest.approx(1.0)


def test_every_metric_of_the_table_is_scored_and_an_unknown_name_refused():
    rng = np.random.default_rng(5)
    gt = rng.random((24, 24, 3)).astype(np.float32)
    scores = metrics.hdr_metrics(gt * 0.9, gt)
    assert list(scores) == list(metrics.METRICS) == list(metrics.METRIC_TABLE)
    assert all(np.isfinite(v) for v in scores.values())
    with pytest.raises(ValueError, match="unknown metrics 'lpips_mu'"):
        metrics.hdr_metrics(gt, gt, names=("psnr_mu", "lpips_mu"))
