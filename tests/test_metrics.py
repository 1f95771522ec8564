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
