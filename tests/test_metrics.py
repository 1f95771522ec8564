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
    rng = np.random.default_rng(2)
    gt = rng.random((32, 32, 3)) ** 4
    est = gt * 1.05
    m = metrics.hdr_metrics(est, gt)
    assert m["psnr_l"] == pytest.approx(metrics.psnr(est, gt))
    assert m["psnr_mu"] == pytest.approx(metrics.psnr(metrics.mu_law_np(est),
                                                      metrics.mu_law_np(gt)))
    assert 0 < m["ssim_l"] <= 1 and 0 < m["ssim_mu"] <= 1
