import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf import layers
from hdr_gan_tf.conv_ops import reflect_conv2d
from hdr_gan_tf.layers import MergingBlock, ReflectConv2D, ResidualUnit, UpSample, reflect_padding
from tests.helpers import assert_layer_round_trip, assert_within_float32_noise


def _x(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32))


@pytest.mark.parametrize("k, d, expected", [(3, 1, 1), (3, 2, 2), (1, 1, 0), (4, 1, 1)])
def test_reflect_padding_amount(k, d, expected):
    assert reflect_padding(k, d) == expected


def _padded_then_valid(x, kernel, strides, dilation, padding, symmetric=False):
    padded = tf.pad(x, [[0, 0], [padding] * 2, [padding] * 2, [0, 0]],
                    mode="SYMMETRIC" if symmetric else "REFLECT")
    return tf.nn.convolution(padded, kernel, strides=strides, padding="VALID",
                             dilations=dilation)


# How a convolution runs: (differentiable, strips_from_pixels) of training, of inference with a
# padded copy, and of inference with border strips (on maps of any size).
MODES = [(True, None), (False, None), (False, 0)]


CONV_CASES = [(3, 1, 1, 1), (3, 1, 2, 2), (3, 2, 1, 1), (4, 1, 1, 1), (3, 1, 1, 2), (1, 1, 1, 0)]


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("differentiable, strips", MODES)
@pytest.mark.parametrize("k, stride, dilation, pad", CONV_CASES)
@pytest.mark.parametrize("size", [(3, 5), (7, 6), (9, 12)])
def test_reflect_conv2d_equals_padded_copy(k, stride, dilation, pad, size, differentiable,
                                           strips, symmetric):
    x = _x((2,) + size + (3,), seed=1)
    kernel = _x((k, k, 3, 4), seed=2)
    expected = _padded_then_valid(x, kernel, stride, dilation, pad, symmetric)
    got = reflect_conv2d(x, kernel, stride, dilation, pad, symmetric=symmetric,
                         differentiable=differentiable, strips_from_pixels=strips)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=2e-5)


@pytest.mark.parametrize("differentiable, strips", MODES)
@pytest.mark.parametrize("k, stride, dilation, pad", CONV_CASES[:4])
def test_reflect_conv2d_gradients_and_unknown_shapes(k, stride, dilation, pad, differentiable,
                                                     strips):
    x = _x((2, 9, 10, 3), seed=3)
    kernel = _x((k, k, 3, 4), seed=4)
    weights = _x(tuple(_padded_then_valid(x, kernel, stride, dilation, pad).shape), seed=5)

    def grads(conv):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            loss = tf.reduce_sum(conv(x, kernel, stride, dilation, pad) * weights)
        return tape.gradient(loss, [x, kernel])

    ours = functools.partial(reflect_conv2d, differentiable=differentiable,
                             strips_from_pixels=strips)
    for got, expected in zip(grads(ours), grads(_padded_then_valid)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4)
    # Any size through one graph, and under XLA.
    spec = tf.TensorSpec([None, None, None, 3])
    graph = tf.function(lambda t: ours(t, kernel, stride, dilation, pad), [spec])
    xla = tf.function(lambda t: ours(t, kernel, stride, dilation, pad), jit_compile=True)
    for size in [(5, 7), (9, 10)]:
        t = _x((1,) + size + (3,), seed=6)
        expected = _padded_then_valid(t, kernel, stride, dilation, pad).numpy()
        np.testing.assert_allclose(graph(t).numpy(), expected, atol=2e-5)
        np.testing.assert_allclose(xla(t).numpy(), expected, atol=2e-5)


@pytest.mark.parametrize("differentiable, strips", MODES)
def test_reflect_conv2d_of_a_list_is_the_conv_of_its_concatenation(differentiable, strips):
    parts = [_x((1, 7, 9, c), seed=c) for c in (2, 3, 4)]
    kernel = _x((3, 3, 9, 5), seed=11)
    expected = _padded_then_valid(tf.concat(parts, -1), kernel, 1, 2, 2)
    got = reflect_conv2d(parts, kernel, 1, 2, 2, differentiable=differentiable,
                         strips_from_pixels=strips)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=2e-5)
    layer = ReflectConv2D(5, 3)
    assert layer(parts).shape == (1, 7, 9, 5)
    assert layer.conv2d.kernel.shape == (3, 3, 9, 5)


@pytest.mark.parametrize("strips", [None, 0])
@pytest.mark.parametrize("strides, dilation", [(1, 1), (1, 2), (2, 1)])
def test_parts_added_one_by_one_give_the_call_on_the_concatenation(strides, dilation, strips):
    layer = ReflectConv2D(5, 3, strides=strides, dilation_rate=dilation, activation="relu")
    parts = [_x((1, 8, 10, c), seed=c) for c in (2, 3, 4)]
    layer(parts)
    layer.conv2d.bias.assign(_x((5,), seed=3))
    summed = None
    for part, start in reversed(list(zip(parts, (0, 2, 5)))):  # any order
        share = layer.part(part, start, strips_from_pixels=strips)
        summed = share if summed is None else summed + share
    np.testing.assert_allclose(layer.activate(summed).numpy(), layer(parts).numpy(), atol=1e-5)


def test_residual_unit_finish_from_part_sums_equals_its_call():
    unit = ResidualUnit(6)
    parts = [_x((1, 9, 7, 4), seed=i) for i in range(3)]
    expected = unit(parts)
    sums = [sum(conv.part(p, 4 * i) for i, p in enumerate(parts))
            for conv in (unit.conv_a, unit.shortcut)]
    np.testing.assert_allclose(unit.finish(*sums).numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("filters", [4, 256])
def test_merging_block_finish_from_exposure_parts_equals_its_call(filters):
    block = MergingBlock(filters)  # 256: each exposure through its bottleneck first
    xs = [tf.abs(_x((1, 6, 6, filters), seed=i)) for i in range(3)]
    expected = block(xs)
    summed = sum(block.part(x, i * filters) for i, x in enumerate(xs))
    np.testing.assert_allclose(block.finish(summed, xs[1]).numpy(), expected.numpy(),
                               atol=1e-4)


def test_reflect_conv_equals_explicit_reflect_pad_then_valid_conv():
    layer = ReflectConv2D(5, 3, dilation_rate=2, spectral_norm=False)
    x = _x((2, 12, 10, 4))
    y = layer(x)
    assert y.shape == (2, 12, 10, 5)
    padded = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
    ref = tf.nn.conv2d(padded, layer.conv2d.kernel, 1, "VALID", dilations=2) + layer.conv2d.bias
    np.testing.assert_allclose(y.numpy(), ref.numpy(), atol=1e-5)


def test_spectral_norm_wraps_only_requested_convolutions():
    sn = ReflectConv2D(4, 3)
    plain = ReflectConv2D(4, 3, spectral_norm=False)
    x = _x((1, 8, 8, 2))
    sn(x)
    plain(x)
    assert [w.name for w in sn.non_trainable_weights] == ["vector_u"]
    assert plain.non_trainable_weights == []
    assert sum(int(np.prod(w.shape)) for w in sn.trainable_weights) == 3 * 3 * 2 * 4 + 4


def _power_iteration(kernel, u):
    """One TF1-style power iteration in float64: `(σ, u', v)` for `kernel` reshaped to 2-D."""
    w = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1])
    v = u.astype(np.float64) @ w.T
    v /= np.linalg.norm(v)
    u_new = v @ w
    u_new /= np.linalg.norm(u_new)
    return (v @ w @ u_new.T).item(), u_new, v


def test_spectral_norm_keeps_the_raw_kernel_and_divides_by_sigma_in_every_pass():
    keras.utils.set_random_seed(0)
    layer = ReflectConv2D(8, 3)
    x = _x((1, 8, 8, 8))
    layer(x)
    kernel = layer.conv2d.kernel.numpy()
    u = layer.conv.vector_u.numpy()
    sigma, u_new, _ = _power_iteration(kernel, u)
    np.testing.assert_allclose(layer.effective_kernel().numpy(), kernel / sigma, rtol=1e-5)
    layer(x)  # inference: the same u again
    np.testing.assert_array_equal(layer.conv.vector_u.numpy(), u)
    layer(x, training=True)  # training stores u'
    np.testing.assert_allclose(layer.conv.vector_u.numpy(), u_new, rtol=1e-5, atol=1e-6)
    for _ in range(100):  # one power iteration per pass; they converge over passes
        layer(x, training=True)
    np.testing.assert_array_equal(layer.conv2d.kernel.numpy(), kernel)  # never overwritten
    effective = layer.effective_kernel().numpy().reshape(-1, 8)
    assert abs(np.linalg.svd(effective, compute_uv=False)[0] - 1.0) < 1e-3
    assert np.linalg.svd(kernel.reshape(-1, 8), compute_uv=False)[0] > 1.2


def test_spectral_norm_gradient_reaches_the_kernel_through_sigma():
    """d loss / d W of `conv(x, W / σ(W))` with u, v held constant (Miyato): with G the
    gradient with respect to the normalised kernel K = W / σ and σ = v W u'ᵀ,
    `dW = G / σ - <G, W> / σ² · vᵀ u'`. Keras' in-place normalisation would give G itself.
    The loss ½|y|² makes the σ term large: <G, K> = 2·loss for a loss of degree 2 in K."""
    keras.utils.set_random_seed(1)
    layer = ReflectConv2D(4, 3, padding=0)
    x = _x((2, 7, 6, 3), seed=1)
    layer(x)
    kernel = layer.conv2d.kernel
    sigma, u_new, v = _power_iteration(kernel.numpy(), layer.conv.vector_u.numpy())
    with tf.GradientTape() as tape:
        loss = 0.5 * tf.reduce_sum(tf.square(layer(x, training=True)))
    ours = tape.gradient(loss, kernel).numpy().astype(np.float64)

    normalised = tf.Variable(kernel.numpy() / sigma)
    with tf.GradientTape() as tape:
        y = tf.nn.conv2d(x, normalised, 1, "VALID") + layer.conv2d.bias
        loss = 0.5 * tf.reduce_sum(tf.square(y))
    g = tape.gradient(loss, normalised).numpy().astype(np.float64)
    w = kernel.numpy().astype(np.float64)
    analytic = g / sigma - (np.sum(g * w) / sigma ** 2) * (v.T @ u_new).reshape(w.shape)
    np.testing.assert_allclose(ours, analytic, rtol=1e-4, atol=1e-5 * np.abs(analytic).max())
    for in_place in (g, g / sigma):  # the normalised kernel's gradient, with or without 1/σ
        assert np.abs(ours - in_place).max() > 0.3 * np.abs(analytic).max()


def test_spectral_norm_computes_sigma_in_float32_under_mixed_precision():
    keras.utils.set_random_seed(2)
    x = _x((1, 8, 8, 6))
    float32 = ReflectConv2D(16, 3)
    float32(x)
    mixed = ReflectConv2D(16, 3, dtype="mixed_bfloat16")
    mixed(tf.cast(x, tf.bfloat16))
    mixed.set_weights(float32.get_weights())
    assert mixed.conv.vector_u.dtype == "float32"
    y = mixed(tf.cast(x, tf.bfloat16), training=True)
    assert y.dtype == tf.bfloat16
    float32(x, training=True)
    # The same σ and u' as in float32, although the convolution ran in bfloat16.
    np.testing.assert_allclose(mixed.conv.vector_u.numpy(), float32.conv.vector_u.numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(mixed.effective_kernel().numpy(),
                               float32.effective_kernel().numpy(), rtol=1e-6)


def test_spectral_norm_wrapper_round_trips_its_configuration():
    conv = layers.ReflectPaddedConv(5, 3, reflect_padding=1)
    wrapper = layers.SpectralNorm(conv, power_iterations=2)
    x = _x((1, 6, 6, 3))
    expected = wrapper(x)
    clone = keras.layers.deserialize(keras.layers.serialize(wrapper))
    clone(x)
    clone.set_weights(wrapper.get_weights())
    assert isinstance(clone, layers.SpectralNorm) and clone.power_iterations == 2
    assert isinstance(clone.layer, layers.ReflectPaddedConv) and clone.layer.reflect_padding == 1
    np.testing.assert_array_equal(clone(x).numpy(), expected.numpy())


def test_stride_two_halves_even_sizes():
    assert ReflectConv2D(3, 3, strides=2)(_x((1, 64, 96, 2))).shape == (1, 32, 48, 3)


def test_residual_unit_shortcut_only_when_channels_change(tmp_path):
    widen = ResidualUnit(8)
    same = ResidualUnit(4)
    x = _x((1, 8, 8, 4))
    y = assert_layer_round_trip(widen, x, tmp_path)
    assert y.shape == (1, 8, 8, 8) and float(tf.reduce_min(y)) >= 0
    same(x)
    assert widen.shortcut is not None and same.shortcut is None


def test_residual_unit_identity_shortcut_adds_the_input():
    unit = ResidualUnit(4)
    x = tf.abs(_x((1, 6, 6, 4)))
    unit(x)
    for w in unit.conv_b.trainable_weights:
        w.assign(tf.zeros_like(w))
    np.testing.assert_allclose(unit(x).numpy(), x.numpy(), atol=1e-6)


def test_upsample_equals_tf1_nearest_resize_then_reflect_conv(tmp_path):
    """UP(c) in TF1 terms: resize_nearest_neighbor(align_corners=True) to exactly x2 (plain
    duplication), reflect pad 1, VALID 3x3 convolution, ReLU; values and gradients, odd and
    even sizes, with border strips and without."""
    up = UpSample(4)
    up(_x((1, 4, 4, 3)))
    conv = up.conv.conv2d
    conv.bias.assign(_x((4,), seed=9) * 0.1)

    def reference(x, kernel, bias):
        h, w = x.shape[1], x.shape[2]
        big = tf.raw_ops.ResizeNearestNeighbor(images=x, size=[2 * h, 2 * w],
                                               align_corners=True, half_pixel_centers=False)
        padded = tf.pad(big, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
        return tf.nn.relu(tf.nn.conv2d(padded, kernel, 1, "VALID") + bias)

    def values_and_gradients(fn, x, weights, kernel):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * weights)
        return [y] + tape.gradient(loss, [x, kernel])

    for h, w in [(2, 2), (3, 5), (8, 12), (31, 47)]:
        x = _x((2, h, w, 3), seed=h)
        weights = _x((2, 2 * h, 2 * w, 4), seed=w)
        # The reference in float32 and in float64: its own rounding noise sets the tolerance.
        expected = {dtype: values_and_gradients(
            lambda t, d=dtype: reference(t, tf.cast(conv.kernel, d), tf.cast(conv.bias, d)),
            tf.cast(x, dtype), tf.cast(weights, dtype), conv.kernel)
            for dtype in (tf.float32, tf.float64)}
        for fn in (up, lambda t: up(t, strips_from_pixels=0)):
            for got, ref32, ref64 in zip(values_and_gradients(fn, x, weights, conv.kernel),
                                         expected[tf.float32], expected[tf.float64]):
                assert_within_float32_noise(got, ref32, ref64)
    y = assert_layer_round_trip(up, _x((1, 5, 6, 3)), tmp_path)
    assert y.shape == (1, 10, 12, 4)
    assert up.conv.spectral_norm is False


def test_merging_block_is_a_residual_on_the_reference(tmp_path):
    block = MergingBlock(4)
    xs = [tf.abs(_x((1, 8, 8, 4), seed=i)) for i in range(3)]
    y = assert_layer_round_trip(block, xs, tmp_path)
    assert y.shape == (1, 8, 8, 4)
    assert block.bottlenecks is None
    assert block.convs[0].conv2d.kernel.shape == (3, 3, 12, 4)
    assert [c.dilation_rate for c in block.convs] == [2, 2, 2, 2]
    for w in block.convs[-1].trainable_weights:
        w.assign(tf.zeros_like(w))
    np.testing.assert_allclose(block(xs).numpy(), xs[1].numpy(), atol=1e-6)


def test_merging_block_bottlenecks_only_past_512_channels():
    block = MergingBlock(256)
    block([_x((1, 4, 4, 256), seed=i) for i in range(3)])
    assert len(block.bottlenecks) == 3
    assert block.bottlenecks[0].conv2d.kernel.shape == (1, 1, 256, 170)
    assert block.convs[0].conv2d.kernel.shape == (3, 3, 510, 256)
