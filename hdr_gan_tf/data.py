"""Kalantari-layout data sets and the tf.data pipelines of HDR-GAN (SPEC §5, §6).

Layout (as distributed by Kalantari & Ramamoorthi, SIGGRAPH 2017)::

    <root>/Training/<scene>/{3 x *.tif, exposure.txt, HDRImg.hdr}
    <root>/Test/<scene>/...            (or nested one level deeper: Test/PAPER/<scene>/)

The three LDRs sort by file name in exposure order (short, reference, long); `exposure.txt` holds
one EV per line ("0 2 4" or "-2 0 2" style); `HDRImg.hdr` is the ground truth aligned to the
reference. Opening a split decodes and checks every scene once, before any training starts, and
keeps the decoded images (LDRs at their 8/16-bit size) in memory or, for data sets larger than
the memory at hand, in a cache on disk that training patches are read from with bounded memory
(`open_split(cache=...)`, `DiskScene`).

`ldr_bits=8` reads 16-bit LDRs as the released code did: its loaders used OpenCV's default
flag, which reduces them to 8 bits per channel (`round(v / 257)`), in training and in testing.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from hdr_gan_tf.image_io import (MAX_PIXELS, ImageError, atomic_output, probe, read_hdr,
                                 read_ldr_raw)
from hdr_gan_tf.imaging import GAMMA, MU, mu_law, network_inputs, parse_exposure_bias, to_signed

TRAIN_SPLIT = "Training"
TEST_SPLIT = "Test"
GROUND_TRUTH = "HDRImg.hdr"
EXPOSURE_FILE = "exposure.txt"
_LDR_PATTERN = re.compile(r".*\.tiff?$", re.IGNORECASE)


class DataError(ValueError):
    """A data set that cannot be used; the message names the scene, the file and the problem."""


@dataclasses.dataclass
class Scene:
    """One decoded scene.

    Attributes:
      name: path of the scene folder relative to its split folder (e.g. `001`, `PAPER/Foo`).
      path: the scene folder.
      ldr_paths: the three LDR files, short / reference / long.
      ldrs: `[3, H, W, 3]` uint8 or uint16 RGB, undecoded scale (see `peak`).
      peak: 255 or 65535.
      exposure_bias: `[3]` float32 EVs.
      hdr: `[H, W, 3]` float32 linear ground truth.
    """
    name: str
    path: Path
    ldr_paths: list
    ldrs: np.ndarray
    peak: int
    exposure_bias: np.ndarray
    hdr: np.ndarray

    @property
    def shape(self):
        return self.hdr.shape[:2]

    def ldr_float(self):
        """`[3, H, W, 3]` float32 LDRs in [0, 1]."""
        return self.ldrs.astype(np.float32) / np.float32(self.peak)

    def window(self, top, left, size):
        """A `size`² crop: `([size, size, 9] float32 LDRs in [0, 1], [size, size, 3] HDR)`."""
        rows, cols = slice(top, top + size), slice(left, left + size)
        ldrs = self.ldrs[:, rows, cols].astype(np.float32) / np.float32(self.peak)
        return np.concatenate(list(ldrs), axis=-1), self.hdr[rows, cols]


def read_exposure_file(path):
    """Parses `exposure.txt` (any whitespace, CRLF allowed) into three increasing EVs."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file") from None
    values = text.split()
    if not values:
        raise DataError(f"{path}: empty; expected three exposure values in EV")
    try:
        return parse_exposure_bias(values, source=str(path))
    except ValueError as err:
        raise DataError(str(err)) from None


def _is_scene_dir(path):
    return ((path / GROUND_TRUTH).exists() or (path / EXPOSURE_FILE).exists()
            or any(_LDR_PATTERN.match(p.name) for p in path.iterdir() if p.is_file()))


def find_scene_dirs(root, split):
    """Scene folders of a split, sorted; looks one level deeper for nested test sets."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data root not found (expected {root}/{TRAIN_SPLIT} and "
                        f"{root}/{TEST_SPLIT})")
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: split folder not found in data root {root}")
    scenes = []
    for child in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if _is_scene_dir(child):
            scenes.append(child)
        else:
            scenes.extend(sorted(p for p in child.iterdir() if p.is_dir() and _is_scene_dir(p)))
    if not scenes:
        raise DataError(f"{split_dir}: no scenes found (each scene is a folder with three *.tif "
                        f"LDRs, {EXPOSURE_FILE} and {GROUND_TRUTH})")
    return scenes


LDR_BITS = (8, 16)


def reduce_to_8_bits(ldrs):
    """16-bit samples as OpenCV's default read reduces them: `round(v / 257)`, uint8.

    (v / 257 never ends in exactly .5, so the rounding rule does not matter.)
    """
    return np.round(ldrs.astype(np.float32) / np.float32(257)).astype(np.uint8)


def check_patch_fits(name, shape, size):
    """DataError unless images of `shape` (H, W) hold a `size` x `size` patch."""
    if min(shape) < size:
        raise DataError(f"scene '{name}': images are {shape[1]}x{shape[0]}, smaller than the "
                        f"{size}x{size} patch size")


def load_scene(path, name=None, min_size=0, ldr_bits=16, max_pixels=MAX_PIXELS):
    """Decodes and checks one scene folder; raises DataError naming scene, file and problem.

    `ldr_bits=8` reduces 16-bit LDRs to 8 bits per channel (`reduce_to_8_bits`); 8-bit files
    are kept as they are either way.
    """
    if ldr_bits not in LDR_BITS:
        raise DataError(f"ldr_bits must be 8 or 16, got {ldr_bits}")
    path = Path(path)
    name = name or path.name
    where = f"scene '{name}'"
    ldr_paths = sorted(p for p in path.iterdir() if p.is_file() and _LDR_PATTERN.match(p.name))
    if len(ldr_paths) != 3:
        raise DataError(f"{where}: {path} holds {len(ldr_paths)} LDR TIFF files "
                        f"({', '.join(p.name for p in ldr_paths) or 'none'}); expected 3")
    try:
        exposure_bias = read_exposure_file(path / EXPOSURE_FILE)
        raws = [read_ldr_raw(p, max_pixels) for p in ldr_paths]
        hdr = read_hdr(path / GROUND_TRUTH, max_pixels)
    except (DataError, ImageError) as err:
        raise DataError(f"{where}: {err}") from None
    shapes = [r.shape for r, _ in raws]
    if len(set(shapes)) != 1:
        sizes = ", ".join(f"{p.name} {s[1]}x{s[0]}" for p, s in zip(ldr_paths, shapes))
        raise DataError(f"{where}: LDR images differ in size ({sizes})")
    if len({peak for _, peak in raws}) != 1:
        raise DataError(f"{where}: LDR images mix 8- and 16-bit files")
    if hdr.shape != shapes[0]:
        raise DataError(f"{where}: {path / GROUND_TRUTH} is {hdr.shape[1]}x{hdr.shape[0]} but "
                        f"the LDRs are {shapes[0][1]}x{shapes[0][0]}")
    check_patch_fits(name, shapes[0][:2], min_size)
    ldrs, peak = np.stack([r for r, _ in raws]), raws[0][1]
    if ldr_bits == 8 and peak == 65535:
        ldrs, peak = reduce_to_8_bits(ldrs), 255
    return Scene(name=name, path=path, ldr_paths=ldr_paths, ldrs=ldrs, peak=peak,
                 exposure_bias=exposure_bias, hdr=hdr)


CACHE_MODES = ("auto", "memory", "disk")
# `cache="auto"` keeps a split in memory while its decoded size stays under this share of the
# memory available to the process (what is left serves TensorFlow and the networks).
AUTO_MEMORY_SHARE = 0.5
CACHE_VERSION = 1


def open_split(root, split, min_size=0, names=None, workers=4, ldr_bits=16,
               max_pixels=MAX_PIXELS, cache="memory", cache_dir=None, log=None):
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

    Returns:
      list of `Scene` or `DiskScene`.
    """
    if cache not in CACHE_MODES:
        raise DataError(f"cache must be one of {', '.join(CACHE_MODES)}, got {cache!r}")
    dirs = find_scene_dirs(root, split)
    split_dir = Path(root) / split
    named = {p.relative_to(split_dir).as_posix(): p for p in dirs}
    if names is not None:
        unknown = [n for n in names if n not in named]
        if unknown:
            raise DataError(f"{split_dir}: no such scenes: {', '.join(unknown)}")
        named = {n: named[n] for n in names}
    if cache == "auto":
        needed, available = decoded_size(named.values(), ldr_bits, max_pixels), available_memory()
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


def decoded_size(scene_dirs, ldr_bits=16, max_pixels=MAX_PIXELS):
    """Bytes the scenes take once decoded, from their image headers alone (16-bit LDRs unless
    `ldr_bits=8`; 4 bytes per ground-truth sample). Damaged headers count as nothing here:
    decoding reports them."""
    total = 0
    for folder in scene_dirs:
        for path in Path(folder).iterdir():
            try:
                if _LDR_PATTERN.match(path.name):
                    _, width, height = probe(path, max_pixels)
                    total += width * height * 3 * (1 if ldr_bits == 8 else 2)
                elif path.name == GROUND_TRUTH:
                    _, width, height = probe(path, max_pixels)
                    total += width * height * 3 * 4
            except ImageError:
                pass
    return total


def available_memory():
    """Bytes this process can still use: the system's available memory, or the cgroup's limit
    less its usage where that is smaller (containers)."""
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        usage = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            available = min(available, int(limit) - usage)
    except (OSError, ValueError):
        pass
    return max(available, 0)


class DiskScene:
    """A scene decoded once into a cache file and read from it a window at a time.

    The file holds the LDRs `[3, H, W, 3]` (uint8 or uint16) followed by the ground truth
    `[H, W, 3]` float32, raw and row-major; a JSON file beside it records the shapes and what
    the scene was decoded from (paths, sizes, modification times, `ldr_bits`), so that a
    changed scene is decoded again. `window` reads one crop's rows with `os.preadv` straight
    into its result: no mapping of the file, so the process's memory holds only the crops in
    flight, however large the data set. `ldrs`, `hdr` and `ldr_float()` read the whole scene
    (validation and testing), as `Scene` holds it.
    """

    def __init__(self, name, path, ldr_paths, peak, exposure_bias, shape, file):
        self.name, self.path, self.ldr_paths = name, Path(path), list(ldr_paths)
        self.peak, self.exposure_bias = int(peak), np.asarray(exposure_bias, np.float32)
        self.shape, self.file = tuple(shape), Path(file)
        self._ldr_dtype = np.dtype(np.uint8 if self.peak == 255 else np.uint16)
        self._fd = os.open(self.file, os.O_RDONLY)
        height, width = self.shape
        self._hdr_offset = 3 * height * width * 3 * self._ldr_dtype.itemsize

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def cache_key(path, ldr_bits):
        """What identifies a decoded scene: its files' paths, sizes and modification times."""
        path = Path(path).resolve()
        entries = [[str(p), p.stat().st_size, p.stat().st_mtime_ns]
                   for p in sorted(path.iterdir()) if p.is_file()]
        return {"version": CACHE_VERSION, "scene": str(path), "ldr_bits": ldr_bits,
                "files": entries}

    @classmethod
    def open(cls, path, name, cache_dir, min_size=0, ldr_bits=16, max_pixels=MAX_PIXELS):
        """The cached scene of folder `path`, decoding it (`load_scene`) into `cache_dir` first
        unless an up-to-date copy is there."""
        key = cls.cache_key(path, ldr_bits)
        stem = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        meta_path, data_path = Path(cache_dir) / f"{stem}.json", Path(cache_dir) / f"{stem}.bin"
        meta = None
        if meta_path.is_file() and data_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                meta = None
        if not meta or meta.get("key") != key or data_path.stat().st_size != meta.get("bytes"):
            scene = load_scene(path, name, min_size, ldr_bits, max_pixels)
            meta = {"key": key, "name": name, "ldr_paths": [str(p) for p in scene.ldr_paths],
                    "peak": scene.peak, "exposure_bias": scene.exposure_bias.tolist(),
                    "shape": list(scene.shape), "bytes": scene.ldrs.nbytes + scene.hdr.nbytes}
            with atomic_output(data_path) as tmp, open(tmp, "wb") as f:
                f.write(np.ascontiguousarray(scene.ldrs).data)
                f.write(np.ascontiguousarray(scene.hdr, np.float32).data)
            del scene
            with atomic_output(meta_path) as tmp:
                Path(tmp).write_text(json.dumps(meta))
        check_patch_fits(name, meta["shape"], min_size)
        return cls(name, path, [Path(p) for p in meta["ldr_paths"]], meta["peak"],
                   meta["exposure_bias"], meta["shape"], data_path)

    def _pread_into(self, buffer, offset):
        """Fills the byte view `buffer` from the cache file at `offset`."""
        if os.preadv(self._fd, [buffer], offset) != len(buffer):
            raise DataError(f"scene '{self.name}': cache file {self.file} is truncated")

    def _read(self, offset, shape, dtype):
        out = np.empty(shape, dtype)
        self._pread_into(memoryview(out).cast("B"), offset)
        return out

    def _read_rows(self, offset, dtype, top, left, size):
        """`[size, size, 3]` of a row-major `[H, W, 3]` array starting at byte `offset`."""
        width, itemsize = self.shape[1], np.dtype(dtype).itemsize
        out = np.empty((size, size, 3), dtype)
        rows = memoryview(out).cast("B")
        row_bytes = size * 3 * itemsize
        for r in range(size):
            self._pread_into(rows[r * row_bytes:(r + 1) * row_bytes],
                             offset + ((top + r) * width + left) * 3 * itemsize)
        return out

    def window(self, top, left, size):
        """As `Scene.window`, read from the cache file."""
        height, width = self.shape
        plane = height * width * 3 * self._ldr_dtype.itemsize
        ldrs = [self._read_rows(k * plane, self._ldr_dtype, top, left, size)
                for k in range(3)]
        ldrs = np.concatenate(ldrs, axis=-1).astype(np.float32) / np.float32(self.peak)
        return ldrs, self._read_rows(self._hdr_offset, np.float32, top, left, size)

    @property
    def ldrs(self):
        return self._read(0, (3,) + self.shape + (3,), self._ldr_dtype)

    @property
    def hdr(self):
        return self._read(self._hdr_offset, self.shape + (3,), np.float32)

    ldr_float = Scene.ldr_float


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
    """Same rotation by `rotation`·90° and optional horizontal flip for all channels of `stack`."""
    stack = tf.image.rot90(stack, rotation)
    return tf.cond(flip > 0, lambda: tf.image.flip_left_right(stack), lambda: stack)


def training_dataset(scenes, patch_size=256, batch_size=2, seed=0, start=0, gamma=GAMMA, mu=MU,
                     augment=True):
    """Endless, deterministic stream of augmented training patches.

    Sample `i` (counting from `start`, so a resumed run continues the stream) draws its scene,
    crop position, rotation and flip from a stateless generator keyed by `(seed, i)`; the result
    therefore does not depend on parallelism or on where the stream was restarted.

    Yields:
      `((x_short, x_ref, x_long), target)` batches: inputs `[B, P, P, 6]` in [-1, 1] (SPEC §1)
      and the tonemapped ground truth on the same scale, `target = 2·T(H) - 1`, `[B, P, P, 3]`:
      the tensors the training step compares, as the released pipeline built them.
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
