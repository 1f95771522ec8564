"""Losses of HDR-GAN (SPEC §4): μ-law L1 per output branch and the Sphere-GAN terms.

All losses are means over the samples they are given. Under `tf.distribute` each replica sees
its share of the global batch; the training step divides by the number of replicas so that the
summed gradients equal those of the global-batch mean.
"""

import tensorflow as tf

from hdr_gan_tf.imaging import MU, mu_law, to_signed

# The dot product with the pole is clipped away from ±1, where arccos has infinite slope.
_DOT_EPS = 1e-7


def mu_law_l1(output, hdr_target, mu=MU):
    """Reconstruction loss of one branch: `mean |y - (2 T(H_gt) - 1)|` on the [-1, 1] scale.

    Args:
      output: `[B, H, W, 3]` generator branch output (tanh).
      hdr_target: `[B, H, W, 3]` linear ground-truth HDR in [0, 1].
    """
    target = to_signed(mu_law(tf.cast(hdr_target, tf.float32), mu))
    return tf.reduce_mean(tf.abs(tf.cast(output, tf.float32) - target))


def inverse_stereographic(q):
    """Lifts points `q ∈ R^n` (`[B, n]`) onto the unit sphere `S^n ⊂ R^{n+1}`.

    `p = (2q / (|q|² + 1), (|q|² - 1) / (|q|² + 1))`.
    """
    sq = tf.reduce_sum(tf.square(q), axis=-1, keepdims=True)
    return tf.concat([2.0 * q / (sq + 1.0), (sq - 1.0) / (sq + 1.0)], axis=-1)


def sphere_distance(discriminator_map, moments=3):
    """Sphere-GAN distance `Σ_{r=1..R} mean_batch d(p(x)) ** r` to the north pole.

    Args:
      discriminator_map: `[B, ...]` discriminator output; each sample is flattened to `q`.
      moments: R, the number of moments.

    Returns:
      a float32 scalar.
    """
    d = tf.cast(discriminator_map, tf.float32)
    q = tf.reshape(d, [tf.shape(d)[0], -1])
    p = inverse_stereographic(q)
    # <p, N> with N = (0, ..., 0, 1) is p's last coordinate.
    dot = tf.clip_by_value(p[:, -1], -1.0 + _DOT_EPS, 1.0 - _DOT_EPS)
    angle = tf.acos(dot)  # [B]
    return tf.add_n([tf.reduce_mean(tf.pow(angle, float(r))) for r in range(1, moments + 1)])


def sphere_generator_loss(fake_map, moments=3):
    """Generator's adversarial term for one branch: `-dist(fake)`."""
    return -sphere_distance(fake_map, moments)


def sphere_discriminator_loss(real_map, fake_map, moments=3):
    """Discriminator's term for one branch: `dist(fake) - dist(real)`.

    Returns `(loss, dist_real, dist_fake)` so the parts can be logged.
    """
    dist_real = sphere_distance(real_map, moments)
    dist_fake = sphere_distance(fake_map, moments)
    return dist_fake - dist_real, dist_real, dist_fake
