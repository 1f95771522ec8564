import numpy as np
import tensorflow as tf

from hdr_gan_tf import losses


def _numpy_sphere_distance(maps, moments):
    """Independent computation straight from SPEC §4."""
    q = maps.reshape(maps.shape[0], -1).astype(np.float64)
    sq = np.sum(q * q, axis=1, keepdims=True)
    p = np.concatenate([2 * q / (sq + 1), (sq - 1) / (sq + 1)], axis=1)
    north = np.zeros(p.shape[1])
    north[-1] = 1
    angle = np.arccos(np.clip(p @ north, -1 + 1e-7, 1 - 1e-7))
    return sum(np.mean(angle ** r) for r in range(1, moments + 1))


def test_inverse_stereographic_lands_on_the_unit_sphere():
    q = tf.random.stateless_normal((4, 17), (0, 1))
    p = losses.inverse_stereographic(q)
    np.testing.assert_allclose(tf.norm(p, axis=-1).numpy(), 1.0, atol=1e-6)


def test_sphere_terms_match_numpy():
    rng = np.random.default_rng(0)
    for scale in (0.01, 0.3, 3.0):
        real = (rng.standard_normal((2, 26, 26, 1)) * scale).astype(np.float32)
        fake = (rng.standard_normal((2, 26, 26, 1)) * scale).astype(np.float32)
        for moments in (1, 3):
            d_real = _numpy_sphere_distance(real, moments)
            d_fake = _numpy_sphere_distance(fake, moments)
            np.testing.assert_allclose(losses.sphere_distance(real, moments).numpy(), d_real,
                                       rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(losses.sphere_generator_loss(fake, moments).numpy(),
                                       -d_fake, rtol=1e-5, atol=1e-5)
            loss, dr, df = losses.sphere_discriminator_loss(real, fake, moments)
            np.testing.assert_allclose(loss.numpy(), d_fake - d_real, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose([dr.numpy(), df.numpy()], [d_real, d_fake], rtol=1e-5)


def test_sphere_distance_is_zero_at_the_north_pole_and_finite_at_the_south():
    huge = np.full((1, 4, 4, 1), 1e4, np.float32)  # |q| -> inf maps to the north pole
    assert losses.sphere_distance(huge, 1).numpy() < 1e-3
    zeros = np.zeros((1, 4, 4, 1), np.float32)  # q = 0 is the south pole, angle pi
    np.testing.assert_allclose(losses.sphere_distance(zeros, 1).numpy(), np.pi, atol=1e-3)
    with tf.GradientTape() as tape:
        z = tf.Variable(zeros)
        d = losses.sphere_distance(z, 3)
    assert np.all(np.isfinite(tape.gradient(d, z).numpy()))


def test_mu_law_l1_is_on_the_signed_scale():
    hdr = np.array([[[[0.0, 0.01, 1.0]]]], np.float32)
    target = 2 * np.log1p(5000 * hdr) / np.log1p(5000) - 1
    output = np.zeros_like(hdr)
    np.testing.assert_allclose(losses.mu_law_l1(output, hdr).numpy(), np.mean(np.abs(target)),
                               rtol=1e-6)
    assert losses.mu_law_l1(target, hdr).numpy() < 1e-6
