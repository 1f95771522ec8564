"""Data sets and the tf.data pipelines of HDR-GAN (docs/design.md §5, §6).

A data root holds a `Training` and a `Test` split of scenes in any of the layouts of
`hdr_gan_tf.layouts` (Kalantari's, the authors', NTIRE's), told apart scene by scene.

Opening a split (`open_split`) decodes and checks every scene once, before any training starts,
and keeps the decoded images (LDRs at their 8/16-bit size) in memory or, for data sets larger
than the memory at hand, in a cache on disk that training patches are read from with bounded
memory (`hdr_gan_tf.scene_cache`): the choice between the two is made here, above both.
"""

import concurrent.futures
from pathlib import Path

import numpy as np
import tensorflow as tf

from hdr_gan_tf.image_io import MAX_PIXELS
from hdr_gan_tf.imaging import GAMMA, MU, mu_law, network_inputs, to_signed
# The splits, the scene record and its error are the data sets' vocabulary: offered here too.
from hdr_gan_tf.layouts import (TEST_SPLIT, TRAIN_SPLIT, DataError, Scene,  # noqa: F401
                                check_patch_fits, find_scene_dirs, load_scene, split_folder)
from hdr_gan_tf.memory import available_memory
from hdr_gan_tf.scene_cache import AUTO_MEMORY_SHARE, CACHE_MODES, DiskScene, decoded_size


def open_split(root, split, min_size=0, names=None, workers=4, ldr_bits=16,
               max_pixels=MAX_PIXELS, cache="memory", cache_dir=None, log=None,
               available=None):
    """Decodes and checks every scene of a split (in parallel threads; OpenCV drops the GIL).

    Args:
      root: data root holding `Training/` and `Test/`.
      split: `"Training"` or `"Test"`.
      min_size: smallest allowed image side (the patch size for training).
      names: if given, only these scene names (relative paths), in this order.
      ldr_bits: 16 keeps the LDRs as stored; 8 reduces 16-bit ones as the released code read
        them (`load_scene`).
      max_pixels: images whose headers say they are larger are refused before decoding.
      cache: where the decoded scenes live: `"memory"`; `"disk"` (each scene decoded once into
        `cache_dir`, later runs reuse it; `DiskScene`); `"auto"`: disk when the size the image
        headers announce exceeds `AUTO_MEMORY_SHARE` of the available memory.
      cache_dir: folder of the disk cache (required unless `cache="memory"`).
      log: callable taking a progress line, or None.
      available: bytes of memory `"auto"` compares with (default: what the system and the
        container have available, `memory.available_memory`).

    Returns:
      list of `Scene` or `DiskScene`.
    """
    if cache not in CACHE_MODES:
        raise DataError(f"cache must be one of {', '.join(CACHE_MODES)}, got {cache!r}")
    dirs = find_scene_dirs(root, split)
    split_dir = split_folder(root, split)
    named = {p.relative_to(split_dir).as_posix(): p for p in dirs}
    if names is not None:
        unknown = [n for n in names if n not in named]
        if unknown:
            raise DataError(f"{split_dir}: no such scenes: {', '.join(unknown)}")
        named = {n: named[n] for n in names}
    if cache == "auto":
        needed = decoded_size(named.values(), ldr_bits, max_pixels)
        available = available_memory() if available is None else available
        cache = "disk" if needed > AUTO_MEMORY_SHARE * available else "memory"
        if log and cache == "disk":
            log(f"Data: {split_dir} decodes to about {needed / 2**30:.1f} GiB, more than "
                f"{AUTO_MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB available; "
                f"training reads its patches from a disk cache in {cache_dir}")
    if cache == "memory":
        load = lambda item: load_scene(item[1], item[0], min_size, ldr_bits, max_pixels)
    else:
        if not cache_dir:
            raise DataError("a disk cache needs a cache folder (cache_dir)")
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        # One scene decoded at a time: what this holds is one scene, however many there are.
        workers = 1
        load = lambda item: DiskScene.open(item[1], item[0], cache_dir, min_size, ldr_bits,
                                           max_pixels)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(load, named.items()))


def split_validation(scenes, validation):
    """Holds validation scenes out of the training scenes.

    Args:
      validation: a count (scenes spread evenly over the sorted list, so that the choice is
        fixed by the data alone) or a list of scene names.

    Returns:
      `(training, validation)` lists of scenes.
    """
    if isinstance(validation, int):
        if validation < 0 or validation >= len(scenes):
            raise DataError(f"cannot hold out {validation} of {len(scenes)} training scenes")
        picks = set() if validation == 0 else {
            int(i) for i in np.linspace(0, len(scenes) - 1, validation).round()}
        names = {scenes[i].name for i in picks}
    else:
        names = set(validation)
        unknown = names - {s.name for s in scenes}
        if unknown:
            raise DataError(f"validation scenes not among the training scenes: "
                            f"{', '.join(sorted(unknown))}")
    return ([s for s in scenes if s.name not in names], [s for s in scenes if s.name in names])


def _augment(stack, rotation, flip):
    """The same rotation by `rotation`·90° and optional horizontal flip for all of `stack`."""
    stack = tf.image.rot90(stack, rotation)
    return tf.cond(flip > 0, lambda: tf.image.flip_left_right(stack), lambda: stack)


def training_dataset(scenes, patch_size=256, batch_size=2, seed=0, start=0, gamma=GAMMA, mu=MU,
                     augment=True):
    """Endless, deterministic stream of augmented training patches.

    Sample `i` (counting from `start`, so a resumed run continues the stream) draws its scene,
    crop position, rotation and flip from a stateless generator keyed by `(seed, i)`; the result
    therefore does not depend on parallelism or on where the stream was restarted.

    Yields:
      `((x_short, x_ref, x_long), target)` batches: inputs `[B, P, P, 6]` in [-1, 1]
      (docs/design.md §1) and the tonemapped ground truth on the same scale,
      `target = 2·T(H) - 1`, `[B, P, P, 3]`: the tensors the training step compares, as the
      released pipeline built them.
    """
    if not scenes:
        raise DataError("no training scenes")
    for s in scenes:
        check_patch_fits(s.name, s.shape, patch_size)
    heights = tf.constant([s.shape[0] for s in scenes], tf.int32)
    widths = tf.constant([s.shape[1] for s in scenes], tf.int32)
    biases = tf.constant(np.stack([s.exposure_bias for s in scenes]), tf.float32)

    def crop(index, top, left):
        return scenes[int(index)].window(int(top), int(left), patch_size)

    def sample(i):
        key = tf.random.experimental.stateless_split(tf.stack([tf.cast(seed, tf.int64), i]), 5)
        index = tf.random.stateless_uniform([], key[0], 0, len(scenes), tf.int32)
        top = tf.random.stateless_uniform([], key[1], 0, heights[index] - patch_size + 1,
                                          tf.int32)
        left = tf.random.stateless_uniform([], key[2], 0, widths[index] - patch_size + 1,
                                           tf.int32)
        ldrs, hdr = tf.numpy_function(crop, [index, top, left], [tf.float32, tf.float32],
                                      stateful=False)
        stack = tf.concat([tf.reshape(ldrs, [patch_size, patch_size, 9]),
                           tf.reshape(hdr, [patch_size, patch_size, 3])], axis=-1)
        if augment:
            stack = _augment(stack,
                             tf.random.stateless_uniform([], key[3], 0, 4, tf.int32),
                             tf.random.stateless_uniform([], key[4], 0, 2, tf.int32))
        bias = biases[index]
        x = network_inputs(stack[None, ..., 0:3], stack[None, ..., 3:6], stack[None, ..., 6:9],
                           bias[None], gamma, mu)
        return tuple(t[0] for t in x), to_signed(mu_law(stack[..., 9:12], mu))

    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return (tf.data.Dataset.counter(start, dtype=tf.int64)
            .map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(options))


def iterate_scenes(scenes):
    """Full-resolution test scenes one at a time: `(name, ldrs [3, H, W, 3] float, ev, hdr)`."""
    for scene in scenes:
        yield scene.name, scene.ldr_float(), scene.exposure_bias, scene.hdr


def test_dataset(scenes):
    """`iterate_scenes` as a tf.data pipeline (one full-resolution scene per element)."""
    signature = (tf.TensorSpec([], tf.string), tf.TensorSpec([3, None, None, 3], tf.float32),
                 tf.TensorSpec([3], tf.float32), tf.TensorSpec([None, None, 3], tf.float32))
    return tf.data.Dataset.from_generator(lambda: iterate_scenes(scenes),
                                          output_signature=signature)
