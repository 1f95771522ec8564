"""Helpers shared by the benchmark scripts: the machine's convolution rate and peak memory."""

import resource
import time

import tensorflow as tf


def peak_rss_mb():
    """Peak resident memory of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_time(fn, repeats=3, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def convolution_rate(height=500, width=750, channels=64, dtype=tf.float32):
    """GFLOP/s of one large 3x3 convolution (the bulk of HDR-GAN's work), best of 3."""
    x = tf.random.normal([1, height, width, channels], dtype=dtype)
    k = tf.random.normal([3, 3, channels, channels], dtype=dtype)
    conv = tf.function(lambda: tf.nn.conv2d(x, k, 1, "SAME"))
    seconds = best_time(lambda: conv().numpy(), repeats=3, warmup=2)
    return 2 * height * width * channels * channels * 9 / seconds / 1e9


def training_convolution_rates(batch=2, size=256, channels=64):
    """GFLOP/s of the three passes of one 3x3 convolution at training size: forward, gradient
    with respect to the input, gradient with respect to the kernel (best of 3 each)."""
    x = tf.random.normal([batch, size, size, channels])
    k = tf.random.normal([3, 3, channels, channels])
    dy = tf.random.normal([batch, size, size, channels])
    passes = {
        "forward": lambda: tf.nn.conv2d(x, k, 1, "SAME"),
        "input gradient": lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=k, out_backprop=dy, strides=[1, 1, 1, 1],
            padding="SAME"),
        "kernel gradient": lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=tf.shape(k), out_backprop=dy, strides=[1, 1, 1, 1],
            padding="SAME"),
    }
    gflop = 2 * batch * size * size * channels * channels * 9 / 1e9
    rates = {}
    for name, fn in passes.items():
        graph = tf.function(lambda fn=fn: tf.reduce_sum(fn()))
        rates[name] = gflop / best_time(lambda: graph().numpy(), repeats=3, warmup=2)
    return rates
