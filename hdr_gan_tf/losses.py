"""Losses of HDR-GAN (docs/design.md §4): μ-law L1 per output branch, the Sphere-GAN terms,
and the two objectives the training step minimises.

Everything is on the networks' [-1, 1] scale, as the released code trained: the target of a
branch is `2·T(H_gt) - 1` (`hdr_gan_tf.data.training_dataset` yields it), and the
discriminator scores tonemapped images on that scale. All losses are means over the samples
they are given. Under `tf.distribute` each replica sees its share of the global batch; the
training step divides by the number of replicas so that the summed gradients equal those of
the global-batch mean.
"""

import tensorflow as tf

# The dot product with the reference point is clipped away from ±1, where arccos has infinite
# slope. (The released code did not clip; the values it met stay well inside.)
_DOT_EPS = 1e-7

# Where the Sphere-GAN distance is measured from (`--sphere_reference`):
# `first_axis`: e₀ = (1, 0, ..., 0), what the released code used, so what produced the released
#   checkpoint and the paper's numbers;
# `north_pole`: N = (0, ..., 0, 1), what the paper's text names.
SPHERE_REFERENCES = ("first_axis", "north_pole")


def l1(output, target):
    """Reconstruction loss of one branch: `mean |y - target|`.

    Args:
      output: `[B, H, W, 3]` generator branch output (tanh, [-1, 1]).
      target: `[B, H, W, 3]` tonemapped ground truth on the same scale, `2·T(H_gt) - 1`.
    """
    return tf.reduce_mean(tf.abs(tf.cast(output, tf.float32) - tf.cast(target, tf.float32)))


def inverse_stereographic(q):
    """Lifts points `q ∈ R^n` (`[B, n]`) onto the unit sphere `S^n ⊂ R^{n+1}`.

    `p = (2q / (|q|² + 1), (|q|² - 1) / (|q|² + 1))`.
    """
    sq = tf.reduce_sum(tf.square(q), axis=-1, keepdims=True)
    return tf.concat([2.0 * q / (sq + 1.0), (sq - 1.0) / (sq + 1.0)], axis=-1)


def sphere_distance(discriminator_map, moments=3, reference="first_axis"):
    """Sphere-GAN distance `Σ_{r=1..R} mean_batch d(p(x)) ** r` to a reference point.

    Args:
      discriminator_map: `[B, ...]` discriminator output; each sample is flattened to `q`
        (row-major, so `q₀` is the top-left patch score).
      moments: R, the number of moments.
      reference: `first_axis` (`<p, e₀> = 2q₀ / (|q|² + 1)`) or `north_pole`
        (`<p, N> = (|q|² - 1) / (|q|² + 1)`); see `SPHERE_REFERENCES`.

    Returns:
      a float32 scalar.
    """
    if reference not in SPHERE_REFERENCES:
        raise ValueError(f"sphere reference must be one of {', '.join(SPHERE_REFERENCES)}, "
                         f"got {reference!r}")
    d = tf.cast(discriminator_map, tf.float32)
    q = tf.reshape(d, [tf.shape(d)[0], -1])
    p = inverse_stereographic(q)  # [B, n + 1]
    dot = p[:, 0] if reference == "first_axis" else p[:, -1]
    angle = tf.acos(tf.clip_by_value(dot, -1.0 + _DOT_EPS, 1.0 - _DOT_EPS))  # [B]
    return tf.add_n([tf.reduce_mean(tf.pow(angle, float(r))) for r in range(1, moments + 1)])


def sphere_generator_loss(fake_map, moments=3, reference="first_axis"):
    """Generator's adversarial term for one branch: `-dist(fake)`."""
    return -sphere_distance(fake_map, moments, reference)


def sphere_discriminator_loss(real_map, fake_map, moments=3, reference="first_axis"):
    """Discriminator's term for one branch: `dist(fake) - dist(real)`.

    Returns `(loss, dist_real, dist_fake)` so the parts can be logged.
    """
    dist_real = sphere_distance(real_map, moments, reference)
    dist_fake = sphere_distance(fake_map, moments, reference)
    return dist_fake - dist_real, dist_real, dist_fake


def generator_objective(outputs, target, fake_maps=(), *, branches, supervised, adversarial=(),
                        gan_weight=1.0, moments=3, reference="first_axis"):
    """The generator's loss: `Σ_{k supervised} L1_k + λ · Σ_{k adversarial} (-dist(fake_k))`.

    Args:
      outputs: every branch's output, `[B, H, W, 3]` each, auxiliary branches first.
      target: `[B, H, W, 3]`, `2·T(H_gt) - 1`.
      fake_maps: the discriminator's maps of the `adversarial` branches' outputs, in that order.
      branches: the branches' names (`aux1`, ..., `main`).
      supervised: indices of the branches with an L1 term.
      adversarial: indices of the branches the discriminator scores.
      gan_weight: λ.
      moments, reference: of the Sphere-GAN distance (`sphere_distance`).

    Returns:
      `(loss, parts)`: `parts` holds `l_g_pix/<branch>` for every branch, `l_g_gan/<branch>`
      for each adversarial one, `l_g_total` (the loss), and `mse_mu/<branch>`, the mean
      squared error in the μ-law domain on [0, 1] (a diagnostic, not part of the loss).
    """
    parts = {}
    for name, y in zip(branches, outputs):
        parts[f"l_g_pix/{name}"] = l1(y, target)
        parts[f"mse_mu/{name}"] = tf.reduce_mean(
            tf.square((tf.cast(y, tf.float32) - tf.cast(target, tf.float32)) / 2.0))
    loss = tf.add_n([parts[f"l_g_pix/{branches[k]}"] for k in supervised])
    if len(adversarial):
        for k, fake_map in zip(adversarial, fake_maps):
            parts[f"l_g_gan/{branches[k]}"] = sphere_generator_loss(fake_map, moments, reference)
        loss += gan_weight * tf.add_n([parts[f"l_g_gan/{branches[k]}"] for k in adversarial])
    parts["l_g_total"] = loss
    return loss, parts


def discriminator_objective(real_map, fake_maps, *, branches, adversarial, moments=3,
                            reference="first_axis"):
    """The discriminator's loss: `Σ_{k adversarial} (dist(fake_k) - dist(real))`.

    dist(real) is counted once per branch, as the released code did.

    Args:
      real_map: the discriminator's map of the real (ground-truth) images.
      fake_maps: its maps of the `adversarial` branches' outputs, in that order.
      branches, adversarial, moments, reference: as for `generator_objective`.

    Returns:
      `(loss, parts)` with `l_d_real` (dist(real)), `l_d_fake/<branch>` (dist(fake_k)) and
      `l_d_total` (the loss).
    """
    dist_real = sphere_distance(real_map, moments, reference)
    parts = {"l_d_real": dist_real}
    for k, fake_map in zip(adversarial, fake_maps):
        parts[f"l_d_fake/{branches[k]}"] = sphere_distance(fake_map, moments, reference)
    loss = tf.add_n([parts[f"l_d_fake/{branches[k]}"] - dist_real for k in adversarial])
    parts["l_d_total"] = loss
    return loss, parts
