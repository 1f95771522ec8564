"""Helpers shared by the benchmark scripts: the machine's convolution rate and peak memory."""

import math
import resource
import time

import tensorflow as tf


def accelerator():
    """`"GPU:0"` when TensorFlow sees a GPU, else None."""
    return "GPU:0" if tf.config.list_physical_devices("GPU") else None


def reset_device_peak():
    if accelerator():
        tf.config.experimental.reset_memory_stats(accelerator())


def device_peak_mb():
    """Peak memory TensorFlow allocated on the GPU since the last reset, MB (None on a CPU)."""
    if not accelerator():
        return None
    return tf.config.experimental.get_memory_info(accelerator())["peak"] / 2 ** 20


def write_json(path, data):
    """Writes benchmark results as JSON (for experiments/gpu_check.sh), atomically."""
    import json
    import os
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


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


def recorded_convolutions(trace):
    """The convolutions that `trace()` builds, as `(input shape, kernel shape, strides, padding,
    dilations)` tuples (one per call), recorded by wrapping `tf.nn.conv2d`."""
    calls = []
    original = tf.nn.conv2d

    def conv2d(x, kernel, strides, padding, data_format="NHWC", dilations=None, name=None):
        calls.append((tuple(x.shape), tuple(kernel.shape), strides, padding, dilations))
        return original(x, kernel, strides, padding, data_format, dilations, name)

    tf.nn.conv2d = conv2d
    try:
        trace()
    finally:
        tf.nn.conv2d = original
    return calls


def convolution_seconds(call):
    """`(seconds, GFLOP)` of one recorded convolution run by itself (best of 3)."""
    x_shape, k_shape, strides, padding, dilations = call
    x, k = tf.random.normal(x_shape), tf.random.normal(k_shape)
    graph = tf.function(lambda: tf.nn.conv2d(x, k, strides, padding, dilations=dilations))
    out_shape = graph().shape
    seconds = best_time(lambda: graph().numpy(), repeats=3, warmup=1)
    # Each output position of each image does one multiply-add per kernel weight.
    return seconds, 2 * math.prod(out_shape[:3]) * math.prod(k_shape) / 1e9


CONVOLUTION_OPS = ("Conv2D", "_FusedConv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter",
                   "DepthwiseConv2dNative")


def op_seconds(fn):
    """Seconds spent in each TensorFlow op type during `fn()`, from TensorFlow's profiler.

    Run with one inter-op thread (`tf.config.threading.set_inter_op_parallelism_threads(1)`,
    before anything runs) so that ops do not overlap and their times add up to the wall time.
    """
    import collections
    import glob
    import tempfile as _tempfile

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = _tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    try:
        fn()
    finally:
        tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
        space.ParseFromString(f.read())
    seconds = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name  # "node/name:OpType"
                if ":" in name:
                    seconds[name.rsplit(":", 1)[1]] += event.duration_ps / 1e12
    return seconds
