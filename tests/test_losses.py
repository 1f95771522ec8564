import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf import losses


def _numpy_sphere_distance(maps, moments, reference="first_axis"):
    """Independent computation straight from docs/design.md §4."""
    q = maps.reshape(maps.shape[0], -1).astype(np.float64)
    sq = np.sum(q * q, axis=1, keepdims=True)
    p = np.concatenate([2 * q / (sq + 1), (sq - 1) / (sq + 1)], axis=1)
    point = np.zeros(p.shape[1])
    point[0 if reference == "first_axis" else -1] = 1
    angle = np.arccos(np.clip(p @ point, -1 + 1e-7, 1 - 1e-7))
    return sum(np.mean(angle ** r) for r in range(1, moments + 1))


def test_inverse_stereographic_lands_on_the_unit_sphere():
    q = tf.random.stateless_normal((4, 17), (0, 1))
    p = losses.inverse_stereographic(q)
    np.testing.assert_allclose(tf.norm(p, axis=-1).numpy(), 1.0, atol=1e-6)


@pytest.mark.parametrize("reference", losses.SPHERE_REFERENCES)
def test_sphere_terms_match_numpy(reference):
    rng = np.random.default_rng(0)
    for scale in (0.01, 0.3, 3.0):
        real = (rng.standard_normal((2, 26, 26, 1)) * scale).astype(np.float32)
        fake = (rng.standard_normal((2, 26, 26, 1)) * scale).astype(np.float32)
        for moments in (1, 3):
            d_real = _numpy_sphere_distance(real, moments, reference)
            d_fake = _numpy_sphere_distance(fake, moments, reference)
            np.testing.assert_allclose(
                losses.sphere_distance(real, moments, reference).numpy(), d_real, rtol=1e-5,
                atol=1e-5)
            np.testing.assert_allclose(
                losses.sphere_generator_loss(fake, moments, reference).numpy(), -d_fake,
                rtol=1e-5, atol=1e-5)
            loss, dr, df = losses.sphere_discriminator_loss(real, fake, moments, reference)
            np.testing.assert_allclose(loss.numpy(), d_fake - d_real, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose([dr.numpy(), df.numpy()], [d_real, d_fake], rtol=1e-5)


def test_the_two_reference_points():
    """The first axis e₀ is where q = (1, 0, ...) lands; the north pole is |q| -> ∞."""
    first = np.zeros((1, 2, 2, 1), np.float32)
    first[0, 0, 0, 0] = 1.0
    assert losses.sphere_distance(first, 1, "first_axis").numpy() < 1e-3
    np.testing.assert_allclose(losses.sphere_distance(first, 1, "north_pole").numpy(),
                               np.pi / 2, atol=1e-6)
    huge = np.full((1, 4, 4, 1), 1e4, np.float32)
    assert losses.sphere_distance(huge, 1, "north_pole").numpy() < 1e-3
    np.testing.assert_allclose(losses.sphere_distance(huge, 1, "first_axis").numpy(),
                               np.pi / 2, atol=1e-3)
    with pytest.raises(ValueError, match="first_axis, north_pole"):
        losses.sphere_distance(huge, 1, "equator")


def test_sphere_distance_is_finite_with_a_finite_gradient_at_the_south_pole():
    zeros = np.zeros((1, 4, 4, 1), np.float32)  # q = 0 is the south pole
    np.testing.assert_allclose(losses.sphere_distance(zeros, 1, "north_pole").numpy(), np.pi,
                               atol=1e-3)
    for reference in losses.SPHERE_REFERENCES:
        with tf.GradientTape() as tape:
            z = tf.Variable(zeros)
            d = losses.sphere_distance(z, 3, reference)
        assert np.all(np.isfinite(tape.gradient(d, z).numpy()))


def test_l1_is_on_the_signed_scale():
    output = np.zeros((1, 1, 1, 3), np.float32)
    target = np.array([[[[-1.0, 0.25, 1.0]]]], np.float32)
    np.testing.assert_allclose(losses.l1(output, target).numpy(), 0.75, rtol=1e-6)


def test_generator_objective_sums_supervised_l1_and_weighted_adversarial_terms():
    """Hand-computed: target 0, branch outputs 0.5 and -0.25 (L1 0.5 and 0.25); maps with
    q = (1, 0, 0, 0), at the first axis (distance 0), and q = 0 (distance π/2, + π²/4 + π³/8
    with three moments)."""
    target = np.zeros((1, 2, 2, 3), np.float32)
    outputs = [np.full_like(target, 0.5), np.full_like(target, -0.25)]
    at_axis = np.zeros((1, 2, 2, 1), np.float32)
    at_axis[0, 0, 0, 0] = 1.0
    maps = [at_axis, np.zeros_like(at_axis)]
    far = np.pi / 2 + (np.pi / 2) ** 2 + (np.pi / 2) ** 3
    names = ["aux1", "main"]
    loss, parts = losses.generator_objective(outputs, target, maps, branches=names,
                                             supervised=[0, 1], adversarial=[0, 1],
                                             gan_weight=0.1)
    # (The clip keeps the angle at the axis at acos(1 - 1e-7) = 4.5e-4.)
    np.testing.assert_allclose(float(loss), 0.75 - 0.1 * far, atol=1e-4)
    np.testing.assert_allclose(float(parts["l_g_gan/main"]), -far, rtol=1e-5)
    assert abs(float(parts["l_g_gan/aux1"])) < 1e-3
    np.testing.assert_allclose(float(parts["mse_mu/aux1"]), 0.0625, rtol=1e-6)
    loss, parts = losses.generator_objective(outputs, target, maps[1:], branches=names,
                                             supervised=[1], adversarial=[1])
    np.testing.assert_allclose(float(loss), 0.25 - far, rtol=1e-5)
    assert set(parts) == {"l_g_pix/aux1", "l_g_pix/main", "mse_mu/aux1", "mse_mu/main",
                          "l_g_gan/main", "l_g_total"}
    loss, _ = losses.generator_objective(outputs, target, branches=names, supervised=[0, 1])
    np.testing.assert_allclose(float(loss), 0.75, rtol=1e-6)


def test_discriminator_objective_sign_and_value():
    """Sum over branches of dist(fake) - dist(real), dist(real) once per branch: the
    discriminator lowers it by moving fakes towards the reference point and real images away
    from it, while the generator, minimising -dist(fake), moves its outputs away."""
    at_axis = np.zeros((1, 2, 2, 1), np.float32)
    at_axis[0, 0, 0, 0] = 1.0
    far_map = np.zeros_like(at_axis)
    far = np.pi / 2 + (np.pi / 2) ** 2 + (np.pi / 2) ** 3
    loss, parts = losses.discriminator_objective(at_axis, [far_map, at_axis],
                                                 branches=["aux1", "main"], adversarial=[0, 1])
    np.testing.assert_allclose(float(loss), far, atol=2e-3)
    np.testing.assert_allclose(float(parts["l_d_fake/aux1"]), far, rtol=1e-5)
    assert abs(float(parts["l_d_real"])) < 1e-3
    # Real far, fakes at the axis: -2·far (dist(real) subtracted for each branch).
    loss, _ = losses.discriminator_objective(far_map, [at_axis, at_axis],
                                             branches=["aux1", "main"], adversarial=[0, 1])
    np.testing.assert_allclose(float(loss), -2 * far, atol=2e-3)
