"""Convolution ops behind the HDR-GAN layers: reflect-padded, dilated and sub-pixel convolutions.

Every convolution of the model pads by reflection and then convolves with VALID padding
(`reflect_conv2d`). Built literally, that copies the input once more per convolution, which
costs a CPU about a fifth of the convolution time on full-resolution maps. For inference on
maps whose size is known when the graph is built, border strips avoid the copy: the whole map
is convolved with zero padding and only the border rows and columns, the ones whose window
reaches into the padding, are recomputed exactly from thin reflect-padded strips. Callers ask
for them with `strips_from_pixels`, the smallest map (H·W) worth them: on small maps the copy
costs little and the strips would multiply the graph's size for nothing. The inference code
(`hdr_gan_tf.merge`) asks for them; training does not (the strips' gradients add full-size
maps, which makes an iteration slower).

A convolution over a channel concatenation takes the parts as a list and never builds the
concatenated map. The up-sampling convolution runs on the small map (`subpixel_kernel`).
"""

import numpy as np
import tensorflow as tf


def reflect_index(index, size, symmetric=False):
    """Source index of position `index` of a padded axis of length `size`.

    Reflect: `-1 -> 1`, `size -> size - 2`; symmetric (edge repeated): `-1 -> 0`,
    `size -> size - 1`.
    """
    if symmetric:
        index = np.where(index < 0, -1 - index, index)
        return np.where(index > size - 1, 2 * size - 1 - index, index)
    return (size - 1) - np.abs((size - 1) - np.abs(index))


def dilated_conv2d(x, kernel, dilation_rate, padding):
    """Stride-1 dilated convolution by TensorFlow's dilated kernel (no copy of the input).

    TensorFlow has no gradient for that kernel on CPUs; a gradient, if asked for, is computed
    through `tf.nn.convolution` (space-to-batch), which is what training uses directly.
    """
    @tf.custom_gradient
    def conv(x, kernel):
        def grad(dy):
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                y = tf.nn.convolution(x, kernel, padding=padding, dilations=dilation_rate)
            return tape.gradient(y, [x, kernel], output_gradients=dy)
        return tf.nn.conv2d(x, kernel, 1, padding, dilations=dilation_rate), grad
    return conv(x, kernel)


def reflect_conv2d(x, kernel, strides=1, dilation_rate=1, padding=1, symmetric=False,
                   differentiable=True, strips_from_pixels=None):
    """`conv2d(reflect_pad(x, padding), kernel, VALID)`.

    `x` may also be a list of tensors: the convolution of their channel concatenation is then
    computed as the sum of one convolution per part (with the matching slice of the kernel),
    which needs no concatenated copy.

    On maps of `strips_from_pixels` pixels or more the input is not padded by a copy: the whole
    map is convolved with zero padding (TensorFlow pads inside the convolution kernel) and the
    output rows and columns whose window reaches into the padding (`ceil(p / s)` at the top/left,
    `(p - 1) // s + 1` at the bottom/right) are recomputed from thin reflect-padded strips and
    written over the zero-padded result in place. Exact for any stride and dilation with
    `padding < min(H, W)`, and still differentiable. It needs H and W known when the graph is
    built and pays only on large maps; for an unknown size, or a dilated convolution whose
    zero-padded output would not line up (stride > 1, or padding other than half its span),
    the input is padded by a copy after all.

    Args:
      x: `[B, H, W, C]`, or a list of `[B, H, W, C_i]` with `sum(C_i) = C`.
      kernel: `[k, k, C, F]` (square).
      strides, dilation_rate: ints; a dilated convolution must have stride 1 (as in TensorFlow).
      padding: reflect padding on each side.
      symmetric: pad by repeating the edge (`SYMMETRIC`) instead of reflecting about it.
      differentiable: a dilated convolution goes through space-to-batch, whose gradient
        TensorFlow has on CPUs (training); False uses TensorFlow's dilated kernel, which has
        none there but copies nothing (inference; a gradient is still available, computed the
        other way).
      strips_from_pixels: border strips instead of the padded copy for maps of at least this
        many pixels (see above); None: never.

    Returns `[B, H', W', F]`, `H' = (H + 2p - d(k-1) - 1) // s + 1`.
    """
    kernel = tf.convert_to_tensor(kernel)
    if isinstance(x, (list, tuple)):
        out, start = None, 0
        for part in x:
            channels = part.shape[-1]
            # One part after the other: a graph would otherwise run all the parts' convolutions
            # first (or fuse the sums into one AddN) and hold every partial result at once.
            with tf.control_dependencies([] if out is None else [out]):
                y = reflect_conv2d(part, kernel[:, :, start:start + channels], strides,
                                   dilation_rate, padding, symmetric, differentiable,
                                   strips_from_pixels)
            out = y if out is None else out + y
            start += channels
        return out
    s, d, p = int(strides), int(dilation_rate), int(padding)
    span = (int(kernel.shape[0]) - 1) * d

    def conv(t, pad):
        if d == 1:
            return tf.nn.conv2d(t, kernel, s, pad)
        if differentiable:
            return tf.nn.convolution(t, kernel, strides=s, padding=pad, dilations=d)
        return dilated_conv2d(t, kernel, d, pad)

    if p == 0:
        return conv(x, "VALID")
    height, width = x.shape[1], x.shape[2]
    if (strips_from_pixels is None or height is None or width is None
            or height * width < strips_from_pixels or (d > 1 and (s > 1 or 2 * p != span))):
        mode = "SYMMETRIC" if symmetric else "REFLECT"
        return conv(tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode=mode), "VALID")
    out = conv(x, "SAME" if d > 1 else [[0, 0], [p, p], [p, p], [0, 0]])
    out_h, out_w = (height + 2 * p - span - 1) // s + 1, (width + 2 * p - span - 1) // s + 1

    def sources(first, count, size):
        """Input positions (reflected) read by outputs `first .. first + count - 1`."""
        return reflect_index(np.arange(first * s - p, (first + count - 1) * s - p + span + 1),
                             size, symmetric)

    all_rows, all_cols = sources(0, out_h, height), sources(0, out_w, width)

    def rows(first, count):  # exact output rows [first, first + count), full width
        strip = tf.gather(tf.gather(x, sources(first, count, height), axis=1), all_cols, axis=2)
        return conv(strip, "VALID")

    def cols(first, count):  # exact output columns [first, first + count), full height
        strip = tf.gather(tf.gather(x, sources(first, count, width), axis=2), all_rows, axis=1)
        return conv(strip, "VALID")

    def overwrite(t, axis, first, last, value):
        # t[:, first:last] (axis 1) or t[:, :, first:last] (axis 2) = value; `last` None = to
        # the end. In place when nothing else holds `t` (the fresh convolution output).
        begin, end = [0, 0, 0, 0], [0, 0, 0, 0]
        begin[axis], end[axis] = first, last or 0
        full = 0b1111 ^ (1 << axis)
        return tf.raw_ops.TensorStridedSliceUpdate(
            input=t, begin=begin, end=end, strides=[1, 1, 1, 1], value=value,
            begin_mask=full, end_mask=full | ((1 << axis) if last is None else 0))

    top, bottom = -(-p // s), (p - 1) // s + 1
    out = overwrite(out, 1, 0, top, rows(0, top))
    out = overwrite(out, 1, -bottom, None, rows(out_h - bottom, bottom))
    out = overwrite(out, 2, 0, top, cols(0, top))
    return overwrite(out, 2, -bottom, None, cols(out_w - bottom, bottom))


# Which 3x3 taps of a convolution over the nearest-neighbour x2 up-sampled map fall on which
# pixel of the small map, for output rows (or columns) of even (phase 0) and odd (phase 1) index:
# [phase, tap position on the small map (-1, 0, +1), kernel row]. Output row 2i reads up-sampled
# rows 2i-1, 2i, 2i+1 = small rows i-1, i, i; output row 2i+1 reads small rows i, i, i+1.
_PHASE_TAPS = [[[1, 0, 0], [0, 1, 1], [0, 0, 0]],
               [[0, 0, 0], [1, 1, 0], [0, 0, 1]]]


def subpixel_kernel(kernel):
    """`[3, 3, C, F]` kernel for the up-sampled map -> `[3, 3, C, 4F]` kernel for the small map.

    Convolving the small map with it (symmetric padding 1) and `depth_to_space(2)` equals
    reflect-padding the nearest-neighbour x2 map and convolving it with `kernel`, at the same
    number of multiply-adds, without building the 4x larger up-sampled map.
    """
    taps = tf.constant(_PHASE_TAPS, kernel.dtype)
    k4 = tf.einsum("aur,bvc,rcio->uviabo", taps, taps, kernel)
    return tf.reshape(k4, [3, 3, kernel.shape[2], 4 * kernel.shape[3]])
