"""Data sets and the tf.data pipelines of HDR-GAN (docs/design.md §5, §6).

Two layouts, told apart scene by scene. Kalantari's (as distributed by Kalantari &
Ramamoorthi, SIGGRAPH 2017)::

    <root>/Training/<scene>/{3 x *.tif, exposure.txt, HDRImg.hdr}
    <root>/Test/<scene>/...            (or nested one level deeper: Test/PAPER/<scene>/)

The three LDRs sort by file name in exposure order (short, reference, long); `exposure.txt` holds
one EV per line ("0 2 4" or "-2 0 2" style); `HDRImg.hdr` is the ground truth aligned to the
reference. The authors' own training code reads (split folders `train` and `test`)::

    <root>/train/<scene>/{input_1.tif, input_2.tif, input_3.tif, input_exp.txt, ref_hdr.hdr}

where other files (their `ref_*.tif`, `ref_exp.txt`) are ignored. The NTIRE 2021/2022
multi-frame HDR challenge's layout keeps every scene of a split in one folder, by number::

    <root>/Training/{NNNN_short.png, NNNN_medium.png, NNNN_long.png, NNNN_exposures.npy,
                     NNNN_gt.png, NNNN_alignratio.npy, ...}

Its LDRs are 8-bit PNGs with gamma 2.24 (`NTIRE_GAMMA`), re-encoded on reading to the gamma
2.2 that the network's LDR-to-HDR step inverts (`reencode_gamma`); `NNNN_exposures.npy` holds
the three EVs; the ground truth is a 16-bit PNG of `H ** (1 / 2.24)` scaled by the factor in
`NNNN_alignratio.npy`, at the medium frame's exposure (`read_ntire_ground_truth`). A scene of
this layout is named by its number and addressed by the path prefix `<split>/NNNN`.

Opening a split decodes and checks every scene once, before any training starts, and
keeps the decoded images (LDRs at their 8/16-bit size) in memory or, for data sets larger than
the memory at hand, in a cache on disk that training patches are read from with bounded memory
(`open_split(cache=...)`, `hdr_gan_tf.scene_cache`).

`ldr_bits=8` reads 16-bit LDRs as the released code did: its loaders used OpenCV's default
flag, which reduces them to 8 bits per channel (`round(v / 257)`), in training and in testing.
"""

import concurrent.futures
import dataclasses
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from hdr_gan_tf.image_io import MAX_PIXELS, read_hdr, read_ldr_raw
from hdr_gan_tf.imaging import (GAMMA, MU, mu_law, network_inputs, parse_exposure_bias,
                                read_exposure_file, to_signed)

TRAIN_SPLIT = "Training"
TEST_SPLIT = "Test"
GROUND_TRUTH = "HDRImg.hdr"
EXPOSURE_FILE = "exposure.txt"
LDR_PATTERN = re.compile(r".*\.tiff?$", re.IGNORECASE)
# The authors' layout: fixed names, short to long.
AUTHORS_LDRS = ("input_1.tif", "input_2.tif", "input_3.tif")
AUTHORS_EXPOSURE_FILE = "input_exp.txt"
AUTHORS_GROUND_TRUTH = "ref_hdr.hdr"
# A split's folder in each layout, tried in this order.
SPLIT_FOLDERS = {TRAIN_SPLIT: (TRAIN_SPLIT, "train"), TEST_SPLIT: (TEST_SPLIT, "test")}
NTIRE_FRAMES = ("short", "medium", "long")
NTIRE_EXPOSURES, NTIRE_GROUND_TRUTH, NTIRE_ALIGN_RATIO = "exposures.npy", "gt.png", "alignratio.npy"
# The challenge's LDRs and ground truth encode linear values as v ** (1 / 2.24).
NTIRE_GAMMA = 2.24
NTIRE_SHORT = re.compile(r"^(.+)_short\.png$")
LAYOUTS = ("kalantari", "authors", "ntire")


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


def ntire_file(prefix, part):
    """The file `<prefix>_<part>` of an NTIRE scene (`part`: a frame name, `NTIRE_EXPOSURES`,
    `NTIRE_GROUND_TRUTH` or `NTIRE_ALIGN_RATIO`)."""
    prefix = Path(prefix)
    return prefix.parent / f"{prefix.name}_{part}{'' if '.' in part else '.png'}"


def ntire_scenes(folder):
    """Path prefixes `<folder>/NNNN` of the NTIRE scenes in `folder` (one per `NNNN_short.png`),
    sorted."""
    return sorted(folder / m.group(1) for m in (NTIRE_SHORT.match(p.name) for p in
                                                 Path(folder).iterdir()) if m)


def scene_layout(path):
    """`"ntire"` for an NTIRE scene's path prefix, `"authors"` for a scene folder with any of the
    authors' fixed file names, else `"kalantari"`."""
    path = Path(path)
    if not path.is_dir() and ntire_file(path, "short").is_file():
        return "ntire"
    names = (*AUTHORS_LDRS, AUTHORS_EXPOSURE_FILE, AUTHORS_GROUND_TRUTH)
    return "authors" if any((path / n).exists() for n in names) else "kalantari"


def scene_files(path):
    """`(ldr_paths, exposure_file, ground_truth)` of a scene in its layout (`scene_layout`); the
    LDRs short to long. DataError unless there are three LDRs."""
    path = Path(path)
    layout = scene_layout(path)
    if layout == "ntire":
        return ([ntire_file(path, f) for f in NTIRE_FRAMES], ntire_file(path, NTIRE_EXPOSURES),
                ntire_file(path, NTIRE_GROUND_TRUTH))
    if layout == "authors":
        return ([path / n for n in AUTHORS_LDRS], path / AUTHORS_EXPOSURE_FILE,
                path / AUTHORS_GROUND_TRUTH)
    ldr_paths = sorted(p for p in path.iterdir() if p.is_file() and LDR_PATTERN.match(p.name))
    if len(ldr_paths) != 3:
        raise DataError(f"scene '{path.name}': {path} holds {len(ldr_paths)} LDR TIFF files "
                        f"({', '.join(p.name for p in ldr_paths) or 'none'}); expected 3")
    return ldr_paths, path / EXPOSURE_FILE, path / GROUND_TRUTH


def scene_sources(path):
    """Every file a scene is decoded from (what its disk cache must match)."""
    path = Path(path)
    if scene_layout(path) == "ntire":
        ldr_paths, exposure_file, ground_truth = scene_files(path)
        return [*ldr_paths, exposure_file, ground_truth, ntire_file(path, NTIRE_ALIGN_RATIO)]
    return sorted(p for p in path.iterdir() if p.is_file())


def _is_scene_dir(path):
    return (scene_layout(path) == "authors" or (path / GROUND_TRUTH).exists()
            or (path / EXPOSURE_FILE).exists()
            or any(LDR_PATTERN.match(p.name) for p in path.iterdir() if p.is_file()))


def split_folder(root, split):
    """The folder of `split` under `root`: `Training`/`Test` (Kalantari) or `train`/`test`
    (the authors' layout), or the split's own name for any other."""
    for name in SPLIT_FOLDERS.get(split, (split,)):
        if (Path(root) / name).is_dir():
            return Path(root) / name
    raise DataError(f"{Path(root) / split}: split folder not found in data root {root}"
                    + (f" (nor {Path(root) / SPLIT_FOLDERS[split][1]})"
                       if split in SPLIT_FOLDERS else ""))


def find_scene_dirs(root, split):
    """Scene folders of a split, sorted; looks one level deeper for nested test sets."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data root not found (expected {root}/{TRAIN_SPLIT} and "
                        f"{root}/{TEST_SPLIT})")
    split_dir = split_folder(root, split)
    scenes = ntire_scenes(split_dir)
    for child in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if _is_scene_dir(child):
            scenes.append(child)
        else:
            scenes.extend([p for p in child.iterdir() if p.is_dir() and _is_scene_dir(p)]
                          + ntire_scenes(child))
    if not scenes:
        raise DataError(f"{split_dir}: no scenes found (each scene is a folder with three *.tif "
                        f"LDRs, {EXPOSURE_FILE} and {GROUND_TRUTH}; or with "
                        f"{', '.join(AUTHORS_LDRS)}, {AUTHORS_EXPOSURE_FILE} and "
                        f"{AUTHORS_GROUND_TRUTH}; or NNNN_short.png and the other files of "
                        f"an NTIRE scene)")
    return sorted(scenes)


LDR_BITS = (8, 16)


def reduce_to_8_bits(ldrs):
    """16-bit samples as OpenCV's default read reduces them: `round(v / 257)`, uint8.

    (v / 257 never ends in exactly .5, so the rounding rule does not matter.)
    """
    return np.round(ldrs.astype(np.float32) / np.float32(257)).astype(np.uint8)


def reencode_gamma(raw, peak, gamma):
    """8- or 16-bit samples encoded with `gamma`, re-encoded with the network's `GAMMA` as
    uint16 (a table over every possible value; the linear values they stand for are kept)."""
    table = np.arange(peak + 1, dtype=np.float64) / peak
    table = np.round(table ** (gamma / GAMMA) * 65535).astype(np.uint16)
    return table[raw]


def _read_npy(path, what):
    """A small numeric array from a `.npy` file (never a pickle); ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    if path.stat().st_size > 1 << 16:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, too large for {what}")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a NumPy .npy file ({err})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
        raise ValueError(f"{path}: {what} must be numbers")
    return array


def read_ntire_exposures(path):
    """The three EVs of an NTIRE scene (`NNNN_exposures.npy`), increasing."""
    values = _read_npy(path, "exposure values").ravel().tolist()
    return parse_exposure_bias(values, source=str(path))


def read_ntire_ground_truth(path, ratio_path, max_pixels=MAX_PIXELS):
    """Linear ground truth of an NTIRE scene: `(png / ratio) ** NTIRE_GAMMA`, float32, at the
    exposure the PNG was scaled for (the medium frame's)."""
    raw, peak = read_ldr_raw(path, max_pixels)
    if peak != 65535:
        raise ValueError(f"{path}: an 8-bit image; the NTIRE ground truth is a 16-bit PNG")
    ratio = _read_npy(ratio_path, "the align ratio")
    if ratio.size != 1 or not np.isfinite(ratio).all() or float(ratio.ravel()[0]) <= 0:
        raise ValueError(f"{ratio_path}: the align ratio must be one positive number, got "
                         f"{ratio.ravel()[:4].tolist()}")
    given = ratio.ravel()[0]
    ratio = np.float32(given)
    with np.errstate(over="ignore", divide="ignore"):
        usable = ratio > 0 and np.isfinite(np.float32(65535) / ratio)
    if not usable:
        raise ValueError(f"{ratio_path}: the align ratio {float(given):g} is not a usable float32 scale "
                         f"(it becomes {float(ratio):g} in float32)")
    return (raw.astype(np.float32) / ratio) ** np.float32(NTIRE_GAMMA)


def encode_ntire_ground_truth(hdr):
    """Inverse of `read_ntire_ground_truth`: `(uint16 RGB, ratio)` with the brightest sample of
    `hdr ** (1 / NTIRE_GAMMA)` at 65535."""
    encoded = np.asarray(hdr, np.float32) ** np.float32(1 / NTIRE_GAMMA)
    ratio = np.float32(65535 / encoded.max())
    return np.round(encoded * ratio).astype(np.uint16), ratio


def check_ground_truth(hdr, where):
    """DataError naming `where` unless a decoded ground truth can be scored: finite, not
    negative, not black everywhere."""
    if not np.all(np.isfinite(hdr)):
        raise DataError(f"{where}: the ground truth holds NaN or Inf values")
    if hdr.size and (hdr.min() < 0 or not hdr.max() > 0):
        raise DataError(f"{where}: the ground truth must be at least 0 and not black everywhere "
                        f"(its values span {float(hdr.min()):g} to {float(hdr.max()):g})")


def check_patch_fits(name, shape, size):
    """DataError unless images of `shape` (H, W) hold a `size` x `size` patch."""
    if min(shape) < size:
        raise DataError(f"scene '{name}': images are {shape[1]}x{shape[0]}, smaller than the "
                        f"{size}x{size} patch size")


def load_scene(path, name=None, min_size=0, ldr_bits=16, max_pixels=MAX_PIXELS):
    """Decodes and checks one scene folder; raises DataError naming scene, file and problem.

    `ldr_bits=8` reduces 16-bit LDRs to 8 bits per channel (`reduce_to_8_bits`); 8-bit files
    are kept as they are either way (an NTIRE scene's too, with their 16-bit re-encoding).
    """
    if ldr_bits not in LDR_BITS:
        raise DataError(f"ldr_bits must be 8 or 16, got {ldr_bits}")
    path = Path(path)
    name = name or path.name
    where = f"scene '{name}'"
    ldr_paths, exposure_file, ground_truth = scene_files(path)
    ntire = scene_layout(path) == "ntire"
    try:
        if ntire:
            exposure_bias = read_ntire_exposures(exposure_file)
            hdr = read_ntire_ground_truth(ground_truth, ntire_file(path, NTIRE_ALIGN_RATIO),
                                          max_pixels)
            # From the medium frame's exposure to ours, where the shortest exposure time is 1.
            hdr *= np.float32(2.0 ** (exposure_bias[0] - exposure_bias[1]))
        else:
            exposure_bias = read_exposure_file(exposure_file)
            hdr = read_hdr(ground_truth, max_pixels)
        raws = [read_ldr_raw(p, max_pixels) for p in ldr_paths]
    except (ValueError, OSError) as err:  # ImageError and the exposure file's ValueError
        raise DataError(f"{where}: {err}") from None
    shapes = [r.shape for r, _ in raws]
    if len(set(shapes)) != 1:
        sizes = ", ".join(f"{p.name} {s[1]}x{s[0]}" for p, s in zip(ldr_paths, shapes))
        raise DataError(f"{where}: LDR images differ in size ({sizes})")
    if len({peak for _, peak in raws}) != 1:
        raise DataError(f"{where}: LDR images mix 8- and 16-bit files")
    if hdr.shape != shapes[0]:
        raise DataError(f"{where}: {ground_truth} is {hdr.shape[1]}x{hdr.shape[0]} but "
                        f"the LDRs are {shapes[0][1]}x{shapes[0][0]}")
    check_ground_truth(hdr, f"{where}: {ground_truth}")
    check_patch_fits(name, shapes[0][:2], min_size)
    ldrs, peak = np.stack([r for r, _ in raws]), raws[0][1]
    if ntire:
        ldrs, peak = reencode_gamma(ldrs, peak, NTIRE_GAMMA), 65535
    elif ldr_bits == 8 and peak == 65535:
        ldrs, peak = reduce_to_8_bits(ldrs), 255
    return Scene(name=name, path=path, ldr_paths=ldr_paths, ldrs=ldrs, peak=peak,
                 exposure_bias=exposure_bias, hdr=hdr)


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
    from hdr_gan_tf.memory import available_memory
    from hdr_gan_tf.scene_cache import AUTO_MEMORY_SHARE, CACHE_MODES, DiskScene, decoded_size

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
