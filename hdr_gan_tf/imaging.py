"""Image conventions of HDR-GAN (docs/design.md §1).

LDR images are RGB float32 in [0, 1], sorted short / reference / long exposure. Linear HDR values
are relative to the shortest exposure (`t = 1`). The networks see and produce tensors scaled to
[-1, 1]. The functions take NumPy arrays and TensorFlow tensors alike; `mu_law` and
`inverse_mu_law` compute a float NumPy array in NumPy (keeping its dtype, for metrics on
full-resolution images), everything else in TensorFlow, which returns tensors.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

GAMMA = 2.2
MU = 5000.0


def exposure_times(exposure_bias):
    """Exposure times `t_i = 2 ** (e_i - min_j e_j)` from exposure biases in EV.

    Args:
      exposure_bias: `[..., 3]` EVs, e.g. `[-2, 0, 2]` or `[0, 2, 4]` (both give `[1, 4, 16]`).

    Returns:
      float32 tensor of the same shape; the shortest exposure is 1.
    """
    ev = tf.convert_to_tensor(exposure_bias, tf.float32)
    return tf.pow(2.0, ev - tf.reduce_min(ev, axis=-1, keepdims=True))


def ldr_to_hdr(ldr, exposure_time, gamma=GAMMA):
    """Linearises an LDR image: `H = I ** gamma / t`; `exposure_time` broadcasts
    (`[B, 1, 1, 1]`)."""
    ldr = tf.convert_to_tensor(ldr, tf.float32)
    return tf.pow(ldr, gamma) / tf.cast(exposure_time, tf.float32)


def _math(x, mu):
    """`(math module, x, mu)`: NumPy for a float NumPy array (its dtype kept), else TensorFlow."""
    if isinstance(x, np.ndarray):
        return np, x, x.dtype.type(mu)
    x = tf.convert_to_tensor(x)
    return tf.math, x, tf.cast(mu, x.dtype)


def mu_law(hdr, mu=MU):
    """μ-law tonemapper `T(H) = log(1 + μH) / log(1 + μ)`; maps [0, 1] onto [0, 1]."""
    math, hdr, mu = _math(hdr, mu)
    return math.log1p(mu * hdr) / math.log1p(mu)


def inverse_mu_law(tonemapped, mu=MU):
    """Inverse of `mu_law`: `((1 + μ) ** y - 1) / μ`."""
    math, tonemapped, mu = _math(tonemapped, mu)
    return math.expm1(tonemapped * math.log1p(mu)) / mu


def to_signed(x):
    """[0, 1] -> [-1, 1], the scale the networks work on."""
    return 2.0 * x - 1.0


def to_unit(y):
    """[-1, 1] -> [0, 1]."""
    return (y + 1.0) / 2.0


def network_inputs(ldr_short, ldr_mid, ldr_long, exposure_bias, gamma=GAMMA, mu=MU):
    """Builds the generator's three inputs `X_i = concat(2 I_i - 1, 2 T(H_i) - 1)`.

    Args:
      ldr_short, ldr_mid, ldr_long: `[B, H, W, 3]` LDR images in [0, 1].
      exposure_bias: `[B, 3]` EVs of the three images.

    Returns:
      list of three `[B, H, W, 6]` float32 tensors in [-1, 1]: short, reference, long.
    """
    times = exposure_times(exposure_bias)  # [B, 3]
    inputs = []
    for i, ldr in enumerate((ldr_short, ldr_mid, ldr_long)):
        ldr = tf.convert_to_tensor(ldr, tf.float32)
        t = tf.reshape(times[:, i], [-1, 1, 1, 1])
        hdr = ldr_to_hdr(ldr, t, gamma)
        inputs.append(tf.concat([to_signed(ldr), to_signed(mu_law(hdr, mu))], axis=-1))
    return inputs


def output_to_hdr(output, mu=MU):
    """Generator output (tanh, [-1, 1]) -> (linear HDR in [0, 1], μ-law tonemapped in [0, 1])."""
    tonemapped = tf.clip_by_value(to_unit(tf.cast(output, tf.float32)), 0.0, 1.0)
    return inverse_mu_law(tonemapped, mu), tonemapped


# The largest exposure value (in magnitude) taken: a ratio of a billion between exposure times,
# far beyond any camera's, while 2^EV times any radiance stays well inside float32.
MAX_EV = 30.0


def parse_exposure_bias(values, source="exposure values", count=3):
    """Validates `count` exposure biases in EV, strictly increasing; returns a float32 array.

    Raises ValueError naming `source` when the count is wrong, a value is not finite or beyond
    `MAX_EV`, or the values do not increase.
    """
    try:
        ev = np.asarray([float(v) for v in values], np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: exposure values must be numbers ({err})") from None
    if ev.shape != (count,):
        raise ValueError(f"{source}: expected {count} exposure values, got {ev.size}")
    if not np.all(np.isfinite(ev)):
        raise ValueError(f"{source}: exposure values must be finite, got {ev.tolist()}")
    if np.any(np.abs(ev) > MAX_EV):
        raise ValueError(f"{source}: exposure values must lie within ±{MAX_EV:g} EV (2^EV must "
                         f"stay a finite float32 with room for the radiance), got {ev.tolist()}")
    if not np.all(np.diff(ev) > 0):
        raise ValueError(
            f"{source}: exposure values must increase strictly (short, reference, long), "
            f"got {ev.tolist()}")
    return ev


def read_exposure_file(path, count=3):
    """Parses `exposure.txt` (any whitespace, CRLF allowed) into `count` increasing EVs."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file") from None
    values = text.split()
    if not values:
        raise ValueError(f"{path}: empty; expected three exposure values in EV")
    return parse_exposure_bias(values, source=str(path), count=count)
