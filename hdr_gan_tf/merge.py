"""Merging photographs of any size with a trained generator: padding, tiles, bands of rows.

The generator needs sides that are multiples of `2 ** (scales - 1)`; images are reflect-padded
up to that and cropped back. Large images can be processed in overlapping tiles whose outputs are
blended with linear ramps across the overlaps, so memory stays bounded by the tile size, and a
tiled merge can be streamed: `merge_bands` yields the result a band of finished rows at a time
(`hdr-gan-infer` writes each band to its files as it comes).

How the network runs is chosen here, by image (or tile) size (`InferenceOptions`): images of
`lean_from_pixels` or more run in the generator's memory-lean order (`Generator.infer_lean`),
smaller ones in the graph's own order (`Generator.call`), which lets ops overlap; maps of
`strips_from_pixels` or more use border strips instead of padded copies
(`hdr_gan_tf.conv_ops.reflect_conv2d`).
"""

import dataclasses
import weakref

import numpy as np
import tensorflow as tf

from hdr_gan_tf.config import PRECISIONS, ConfigError
from hdr_gan_tf.imaging import inverse_mu_law, network_inputs

# The fixed order of `Generator.infer_lean` costs time and saves memory in proportion to the
# image, so it pays on large images only (docs/performance.md, `bench_infer.py`).
LEAN_FROM_PIXELS = 512 * 512
# Border strips pay on large maps only; below this the padded copy costs little.
STRIPS_FROM_PIXELS = 128 * 128
# Reflect padding needs a pixel to reflect: the smallest side a merge takes.
MIN_SIDE = 2
# The precisions a merge is offered in (float16, a training precision, is not).
MERGE_PRECISIONS = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    """How a merge runs: one record for the programs' flags and the library's mergers.

    Attributes:
      tile: tile side in pixels (rounded up to the generator's multiple); 0 = whole image.
      auto_tile: decide `tile` for each image by the memory it needs and the memory available
        (`decide_tile`, `memory.plan_tile`): whole when that fits, else tiles.
      overlap: overlap between neighbouring tiles in pixels (blended); less than half a tile.
      precision: compute precision of the restored generator (`config.PRECISIONS`).
      jit_compile: compile the network with XLA (one compilation per image or tile size).
      lean_from_pixels: images (or tiles) of at least this many pixels run in the memory-lean
        order (`Generator.infer_lean`); None: never.
      strips_from_pixels: feature maps of at least this many pixels use border strips instead
        of padded copies; None: never.

    Raises:
      ConfigError naming the field (`tile`, `overlap`, `precision`) of a value that cannot be
      used.
    """
    tile: int = 0
    overlap: int = 32
    precision: str = "float32"
    auto_tile: bool = False
    jit_compile: bool = False
    lean_from_pixels: int = LEAN_FROM_PIXELS
    strips_from_pixels: int = STRIPS_FROM_PIXELS

    def __post_init__(self):
        if self.tile < 0:
            raise ConfigError(f"give 0 (the whole image) or a tile side in pixels, not "
                              f"{self.tile}", field="tile")
        if self.overlap < 0:
            raise ConfigError(f"must not be negative, got {self.overlap}", field="overlap")
        if self.tile and 2 * self.overlap >= self.tile:
            raise ConfigError(f"{self.overlap} must be less than half the tile ({self.tile})",
                              field="overlap")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"one of {', '.join(PRECISIONS)}, not {self.precision!r}",
                              field="precision")

    def lean(self, height, width):
        return self.lean_from_pixels is not None and height * width >= self.lean_from_pixels


def tile_setting(value):
    """`(tile, auto)` of a tile setting as a person gives it: "auto" (or empty), or a whole
    number of pixels (0: the whole image). ConfigError naming the field otherwise."""
    text = str(value).strip().lower()
    if text in ("auto", ""):
        return 0, True
    try:
        tile = int(text)
    except ValueError:
        raise ConfigError(f"auto, 0 (the whole image) or a tile side in pixels, not {value!r}",
                          field="tile") from None
    return tile, False


def decide_tile(options, height, width, multiple=4, base_filters=None, merger="network"):
    """`(options, plan)` for merging one `height` x `width` image: with `options.auto_tile`,
    the tile decided for it and the `memory.TilePlan` saying why; otherwise `options` as they
    are and None. `merger`: "network" (`memory.plan_tile`), "classical" (Debevec's merge,
    whole or in bands of rows), "fusion" (Mertens', whole), "whole" (an exported model, whole:
    the network's estimate)."""
    from hdr_gan_tf import memory

    if not options.auto_tile:
        return options, None
    base_filters = base_filters or memory.MEASURED_BASE_FILTERS
    if merger == "network":
        plan = memory.plan_tile(height, width, options.precision, options.overlap, multiple,
                                base_filters)
    elif merger in ("classical", "fusion"):
        plan = memory.classical_plan(height, width, bands=merger == "classical")
    else:
        needed = memory.merge_bytes(height, width, options.precision, 0, base_filters)
        plan = memory.TilePlan(0, needed, 0, f"whole image (this merger has no tiles): about "
                                             f"{needed / 2 ** 30:.1f} GB")
    return dataclasses.replace(options, tile=plan.tile), plan


def pad_reflect(x, multiple):
    """Reflect-pads `[B, H, W, C]` at the bottom/right to multiples of `multiple` (tf ops).

    Sides are also brought up to at least `3 * multiple`, so that the coarsest scale is 3 pixels
    or more, the least a dilated merging convolution can reflect-pad.
    Returns the padded tensor and the original `(H, W)`.
    """
    smallest = 3 * multiple
    if x.shape[1] is not None and x.shape[2] is not None:
        # Static sizes (e.g. under XLA): plain pads, in rounds no larger than the image.
        h, w = x.shape[1], x.shape[2]
        if min(h, w) < MIN_SIDE:
            raise ValueError(f"images must be at least {MIN_SIDE} pixels on each side, got "
                             f"{h}x{w}")
        ph, pw = max((-h) % multiple, smallest - h), max((-w) % multiple, smallest - w)
        while ph or pw:
            sh, sw = min(ph, x.shape[1] - 1), min(pw, x.shape[2] - 1)
            x = tf.pad(x, [[0, 0], [0, sh], [0, sw], [0, 0]], mode="REFLECT")
            ph, pw = ph - sh, pw - sw
        return x, (h, w)
    shape = tf.shape(x)
    h, w = shape[1], shape[2]
    # (m - h % m) % m rather than (-h) % m: the same in TensorFlow, and it keeps the modulo of
    # negative numbers, which ONNX runtimes take differently, out of an exported graph.
    ph = tf.maximum((multiple - h % multiple) % multiple, smallest - h)
    pw = tf.maximum((multiple - w % multiple) % multiple, smallest - w)
    tf.debugging.assert_greater_equal(
        tf.minimum(h, w), MIN_SIDE,
        message=f"images must be at least {MIN_SIDE} pixels on each side")
    # Reflection cannot reach further than the image: small inputs are padded in rounds.

    def body(t, rh, rw):
        s = tf.shape(t)
        sh = tf.minimum(rh, s[1] - 1)
        sw = tf.minimum(rw, s[2] - 1)
        return tf.pad(t, [[0, 0], [0, sh], [0, sw], [0, 0]], mode="REFLECT"), rh - sh, rw - sw

    padded, _, _ = tf.while_loop(
        lambda t, rh, rw: tf.logical_or(rh > 0, rw > 0), body, [x, ph, pw],
        shape_invariants=[tf.TensorShape([None, None, None, x.shape[-1]]), tf.TensorShape([]),
                          tf.TensorShape([])])
    return padded, (h, w)


_COMPILED = weakref.WeakKeyDictionary()


def compiled_runner(generator, mu=None, jit_compile=False, lean=False, strips_from_pixels=None):
    """`run_generator` for this generator as one graph per input size.

    Eager execution keeps every intermediate alive until Python drops it and runs each op
    alone; as a graph the same computation is faster and needs less memory. The graph is
    traced for each input size (a tiled merge has one tile size), so that the convolutions can
    use border strips. `jit_compile=True` compiles it with XLA. `mu`: the generator's μ unless
    given.
    """
    mu = generator.mu if mu is None else mu
    key = (float(mu), bool(jit_compile), bool(lean), strips_from_pixels)
    runners = _COMPILED.setdefault(generator, {})
    if key not in runners:
        runners[key] = tf.function(
            lambda short, mid, long, ev: run_generator(generator, (short, mid, long), ev, mu,
                                                       lean, strips_from_pixels),
            jit_compile=jit_compile, reduce_retracing=False)
    return runners[key]


def run_generator(generator, ldrs, exposure_bias, mu=None, lean=False, strips_from_pixels=None):
    """Generator branch outputs for LDR batches of any size.

    Args:
      ldrs: `(short, mid, long)` each `[B, H, W, 3]` in [0, 1].
      exposure_bias: `[B, 3]` EVs.
      lean: run `Generator.infer_lean` instead of the plain forward pass.
      strips_from_pixels: see `InferenceOptions`.

    Returns:
      list of `[B, H, W, 3]` float32 tanh outputs, auxiliary branches first, main last.
    """
    multiple = 2 ** (generator.scales - 1)
    x = network_inputs(*ldrs, exposure_bias, mu=generator.mu if mu is None else mu)
    stacked, (h, w) = pad_reflect(tf.concat(x, axis=-1), multiple)
    inputs = [stacked[..., 0:6], stacked[..., 6:12], stacked[..., 12:18]]
    if lean:
        outputs = generator.infer_lean(inputs, strips_from_pixels=strips_from_pixels)
    else:
        outputs = generator(inputs, training=False, strips_from_pixels=strips_from_pixels)
    return [tf.cast(y[:, :h, :w, :], tf.float32) for y in outputs]


def tile_starts(size, tile, overlap):
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def _ramp(length, start, size, overlap):
    """1-D blending weight of one tile: rises over the overlap unless at the image border."""
    w = np.ones(length, np.float32)
    if overlap <= 0:
        return w
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    if start > 0:
        w[:overlap] = np.minimum(w[:overlap], ramp)
    if start + length < size:
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


def as_unit_float(window):
    """An LDR window as float32 in [0, 1]: floats as they are, 8-/16-bit integers scaled."""
    if window.dtype == np.uint8:
        return window.astype(np.float32) / np.float32(255)
    if window.dtype == np.uint16:
        return window.astype(np.float32) / np.float32(65535)
    return window.astype(np.float32, copy=False)


def row_reader(ldrs):
    """`(shape, read)` of a bracket given as an array (or array-like) or a `SpooledImages`:
    `read(first, last)` returns rows `first .. last - 1`, `[3, last - first, W, 3]`."""
    if hasattr(ldrs, "rows"):
        return ldrs.shape, ldrs.rows
    ldrs = np.asarray(ldrs)
    return ldrs.shape, lambda first, last: ldrs[:, first:last]


def merge_exposures(generator, ldrs, exposure_bias, mu=None, progress=None, branches=None,
                    options=InferenceOptions()):
    """Merges one set of three LDRs into HDR, whole or in tiles.

    Memory for a tiled merge is the tile's working set plus the image-sized arrays: the inputs as
    given (pass 8- or 16-bit photos as uint8 / uint16: they are converted tile by tile) and one
    float32 `[H, W, 3]` per returned branch. `merge_bands` does the same without holding either.

    Args:
      ldrs: `[3, H, W, 3]` (short, reference, long), float in [0, 1], or uint8 / uint16; or a
        `hdr_gan_tf.image_io.SpooledImages` holding the three.
      exposure_bias: `[3]` EVs.
      mu: μ of the network's inputs and outputs; the generator's unless given.
      progress: called with (tiles done, tiles in all) after each tile.
      branches: indices of the branches to return (default: all).
      options: tiles and how the network runs (`InferenceOptions`).

    Returns:
      list over `branches` (default: auxiliary first, main last) of `[H, W, 3]` float32 tanh
      outputs.
    """
    shape, read = row_reader(ldrs)
    height, width = shape[1:3]
    tile = options.tile
    if not tile or (height <= tile and width <= tile):
        run_window = _window_runner(generator, exposure_bias, mu, branches, options)
        return run_window(read(0, height))
    outputs = None
    for first, rows in merge_bands(generator, ldrs, exposure_bias, mu, progress, branches,
                                   options):
        if outputs is None:
            outputs = [np.empty((height, width, 3), np.float32) for _ in rows]
        for out, band in zip(outputs, rows):
            out[first:first + len(band)] = band
    return outputs


def _window_runner(generator, exposure_bias, mu, branches, options):
    ev = tf.constant(np.asarray(exposure_bias, np.float32)[None])
    keep = list(range(generator.scales - 1)) if branches is None else list(branches)

    def run_window(window):
        window = as_unit_float(window)
        run = compiled_runner(generator, mu, options.jit_compile,
                              options.lean(*window.shape[1:3]), options.strips_from_pixels)
        outputs = run(*[tf.constant(window[i][None]) for i in range(3)], ev)
        return [outputs[b][0].numpy() for b in keep]

    return run_window


def merge_bands(generator, ldrs, exposure_bias, mu=None, progress=None, branches=None,
                options=InferenceOptions(tile=512)):
    """Tiled merge that yields the result a band of finished rows at a time, top to bottom.

    Tiles are run row of tiles by row of tiles; once a row of tiles is done, every output row
    above the next row of tiles is final and is yielded, so nothing image-sized is held: memory
    is the tile's working set, one row of tiles of input and two of output. Tiles overlap by
    `options.overlap` pixels and are blended with linear ramps; the weights are separable
    (`H + W` floats). Arguments as `merge_exposures`; `options.tile` must not be 0.

    Yields:
      `(first_row, rows)`: `rows` a list over `branches` of `[n, W, 3]` float32 tanh outputs
      for image rows `first_row .. first_row + n - 1`.
    """
    shape, read = row_reader(ldrs)
    height, width = shape[1:3]
    run_window = _window_runner(generator, exposure_bias, mu, branches, options)
    multiple = 2 ** (generator.scales - 1)
    if not options.tile:
        raise ConfigError("a banded merge needs tiles (a side in pixels)", field="tile")
    tile, overlap = -(-options.tile // multiple) * multiple, options.overlap
    tile_h, tile_w = min(tile, height), min(tile, width)
    rows, cols = tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap)
    # The weight of pixel (y, x) summed over the tile grid is (sum of row ramps)(y) times
    # (sum of column ramps)(x).
    row_weight, col_weight = np.zeros(height, np.float32), np.zeros(width, np.float32)
    for y in rows:
        row_weight[y:y + tile_h] += _ramp(tile_h, y, height, overlap)
    for x in cols:
        col_weight[x:x + tile_w] += _ramp(tile_w, x, width, overlap)
    count = generator.scales - 1 if branches is None else len(branches)
    done = 0  # rows above this one have been yielded; `pending` sums the rows from here on
    pending = [np.zeros((0, width, 3), np.float32) for _ in range(count)]
    for r, y in enumerate(rows):
        band = read(y, y + tile_h)  # [3, tile_h, W, 3]
        grow = y + tile_h - done - len(pending[0])
        pending = [np.concatenate([acc, np.zeros((grow, width, 3), np.float32)])
                   for acc in pending]
        for c, x in enumerate(cols):
            w = (_ramp(tile_h, y, height, overlap)[:, None, None]
                 * _ramp(tile_w, x, width, overlap)[None, :, None])
            for acc, out in zip(pending, run_window(band[:, :, x:x + tile_w])):
                acc[y - done:y - done + tile_h, x:x + tile_w] += out * w
            if progress:
                progress(r * len(cols) + c + 1, len(rows) * len(cols))
        # Rows above the next row of tiles receive nothing more.
        final = (rows[r + 1] if r + 1 < len(rows) else height) - done
        finished = [acc[:final] / row_weight[done:done + final, None, None] for acc in pending]
        for out in finished:
            out /= col_weight[None, :, None]
        yield done, finished
        pending = [acc[final:] for acc in pending]
        done += final


def outputs_to_linear(outputs, mu):
    """Branch outputs (NumPy, tanh scale) -> linear HDR in [0, 1] (`T⁻¹((y + 1) / 2)`)."""
    return [inverse_mu_law(np.clip((y + 1) / 2, 0, 1), mu) for y in outputs]


def generator_merger(generator, branches, mu=None, options=InferenceOptions()):
    """A `merge(ldrs [3, H, W, 3], ev [3]) -> {branch: linear HDR}` for a Keras generator, run
    as `options` say (`hdr_gan_tf.serving.saved_model_merger` is the same for an exported
    model; `load_merger` picks one).

    `merge(..., wanted=names)` computes only the named branches (all by default);
    `merge.bands(...)` is the tiled merge that yields the result a band of rows at a time;
    `merge.options` and `merge.branches` say how it runs and what it gives; `merge.plan(H, W)`
    decides the tile of one image (`decide_tile`), and `decided=` (its options) makes a call
    run with them.
    `mu`: the generator's μ unless given.
    """
    mu = generator.mu if mu is None else mu
    multiple = 2 ** (generator.scales - 1)

    def plan(height, width):
        return decide_tile(options, height, width, multiple, generator.base_filters)

    def merge(ldrs, exposure_bias, progress=None, wanted=None, decided=None):
        names = list(branches) if wanted is None else list(wanted)
        decided = decided or plan(*row_reader(ldrs)[0][1:3])[0]
        outputs = merge_exposures(generator, ldrs, exposure_bias, mu, progress,
                                  [branches.index(n) for n in names], decided)
        return dict(zip(names, outputs_to_linear(outputs, mu)))

    def bands(ldrs, exposure_bias, progress=None, wanted=None, decided=None):
        """Tiled merge as `merge_bands`: yields `(first_row, {branch: linear HDR rows})`."""
        names = list(branches) if wanted is None else list(wanted)
        decided = decided or plan(*row_reader(ldrs)[0][1:3])[0]
        for first, rows in merge_bands(generator, ldrs, exposure_bias, mu, progress,
                                       [branches.index(n) for n in names], decided):
            yield first, dict(zip(names, outputs_to_linear(rows, mu)))

    merge.bands, merge.options, merge.branches, merge.plan = bands, options, list(branches), plan
    return merge


METHODS = ("network", "debevec", "mertens")


def check_method(method, checkpoint=None, saved_model=None):
    """ConfigError unless `method` is one of `METHODS` and has what it needs: the network
    exactly one of a checkpoint and a SavedModel, a classical merge neither."""
    if method not in METHODS:
        raise ConfigError(f"one of {', '.join(METHODS)}, not {method!r}", field="method")
    if method != "network" and (checkpoint or saved_model):
        raise ConfigError(f"{method} is a classical merge and takes no model; give no "
                          f"checkpoint or SavedModel with it", field="method")
    if method == "network" and not (checkpoint or saved_model):
        raise ConfigError("the network needs a trained model (a log dir or checkpoint)",
                          field="checkpoint")
    if method == "network" and checkpoint and saved_model:
        raise ConfigError("give one of a checkpoint and a SavedModel, not both",
                          field="saved_model")


def load_merger(options, checkpoint=None, saved_model=None, method="network", log=print):
    """The merge of a log dir's (or checkpoint's) generator, restored in `options.precision`,
    or of an exported SavedModel: exactly one of `checkpoint` and `saved_model`; or, with
    `method="debevec"` and neither, the classical radiance merge (`classical.debevec_merger`),
    with `method="mertens"` exposure fusion (`classical.mertens_merger`, display-referred).

    Returns `(merge, description)`: the merge as `generator_merger` makes it and the checkpoint
    prefix, SavedModel folder or method it runs.
    """
    from hdr_gan_tf.checkpoints import restore_generator
    from hdr_gan_tf.generator import branch_names
    from hdr_gan_tf.serving import saved_model_merger

    check_method(method, checkpoint, saved_model)
    if method == "debevec":
        from hdr_gan_tf.classical import debevec_merger
        return debevec_merger(options), "Debevec's radiance merge"
    if method == "mertens":
        from hdr_gan_tf.classical import mertens_merger
        return mertens_merger(options), "Mertens' exposure fusion (display-referred)"
    if saved_model:
        return saved_model_merger(saved_model, options), str(saved_model)
    generator, _, prefix = restore_generator(checkpoint, options.precision, log=log)
    return generator_merger(generator, branch_names(generator.scales), options=options), prefix
