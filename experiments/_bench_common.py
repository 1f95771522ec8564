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
