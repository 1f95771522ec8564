"""Merging photographs of any size with a trained generator: padding, tiles, bands of rows.

The generator needs sides that are multiples of `2 ** (scales - 1)`; images are reflect-padded
up to that and cropped back. Large images can be processed in overlapping tiles whose outputs are
blended with linear ramps across the overlaps, so memory stays bounded by the tile size, and a
tiled merge can be streamed: `merge_bands` yields the result a band of finished rows at a time
(`hdr-gan-infer` writes each band to its files as it comes).

`Merger` is what every merge method offers (the generator's here, the exported model's and the
classical ones in their modules; `hdr_gan_tf.methods` chooses among them).

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

from hdr_gan_tf.arrays import MIN_SIDE, as_unit_float, row_reader
from hdr_gan_tf.imaging import inverse_mu_law, network_inputs
from hdr_gan_tf.memory import (MEASURED_BASE_FILTERS, TilePlan, classical_plan, merge_bytes,
                               plan_tile)
from hdr_gan_tf.settings import PRECISIONS, ConfigError, setting

# The fixed order of `Generator.infer_lean` costs time and saves memory in proportion to the
# image, so it pays on large images only (docs/performance.md, `bench_infer.py`).
LEAN_FROM_PIXELS = 512 * 512
# Border strips pay on large maps only; below this the padded copy costs little.
STRIPS_FROM_PIXELS = 128 * 128
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
    tile: int = setting(0, "auto: merge each image whole when the memory available allows, "
                        "else in the tiles that fit and compute the fewest pixels (the choice is "
                        "printed and recorded); 0: always whole; a side in pixels: tiles of that "
                        "side, bounding memory.")
    overlap: int = setting(32, "Tile overlap in pixels (blended).", at_least=0)
    precision: str = setting("float32", "Compute precision.", choices=MERGE_PRECISIONS)
    auto_tile: bool = False
    jit_compile: bool = setting(False, "Compile the network with XLA (faster on CPUs; one "
                                "compilation per image or tile size).")
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
    if not options.auto_tile:
        return options, None
    base_filters = base_filters or MEASURED_BASE_FILTERS
    if merger == "network":
        plan = plan_tile(height, width, options.precision, options.overlap, multiple,
                         base_filters)
    elif merger in ("classical", "fusion"):
        plan = classical_plan(height, width, bands=merger == "classical")
    else:
        needed = merge_bytes(height, width, options.precision, 0, base_filters)
        plan = TilePlan(0, needed, 0, f"whole image (this merger has no tiles): about "
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


class Merger:
    """A merge method ready to run: `merger(ldrs, exposure_bias)` -> `{branch: image}`.

    Every method (`hdr_gan_tf.methods.METHODS`) makes one. Subclasses set the attributes and
    define `__call__`; those that can stream define `bands`.

    Attributes:
      options: the `InferenceOptions` it runs with.
      branches: names of the images it can return, the main result last.
      description: what it runs (a checkpoint, a folder, a method), for logs and sidecars.
      display_referred: True if it returns a picture to look at rather than radiance, so that
        no HDR file is written.
      streams: True if `bands` yields the result in bands of rows without holding it whole.
      tile_kind: how its memory is estimated (`decide_tile`'s `merger`).
    """
    display_referred = False
    streams = False
    tile_kind = "network"

    def __init__(self, options, branches, description):
        self.options, self.branches, self.description = options, list(branches), description

    def __call__(self, ldrs, exposure_bias, progress=None, wanted=None, decided=None):
        """Args:
          ldrs: `[3, H, W, 3]` photos (short, reference, long), float in [0, 1] or 8-/16-bit
            integers, or a `SpooledImages`.
          exposure_bias: `[3]` EVs.
          progress: called with (tiles done, tiles in all).
          wanted: the branches to compute (default: all).
          decided: the options `plan` decided for this image (default: decided here).

        Returns:
          `{branch: [H, W, 3] float32}`: linear HDR in [0, 1] on the network's scale, or a
          display-referred picture where `display_referred`.
        """
        raise NotImplementedError

    def bands(self, ldrs, exposure_bias, progress=None, wanted=None, decided=None):
        """Yields `(first_row, {branch: rows})` top to bottom; by default the whole result as
        one band."""
        yield 0, self(ldrs, exposure_bias, progress, wanted, decided)

    def plan(self, height, width):
        """`(options, memory.TilePlan or None)` for one `height` x `width` image."""
        return decide_tile(self.options, height, width, merger=self.tile_kind)


class GeneratorMerger(Merger):
    """A Keras generator's merge, run as `options` say, whole or in tiles (`merge_exposures`,
    `merge_bands`); its branches are the generator's outputs (`generator.branch_names`).
    `mu`: the generator's μ unless given."""
    streams = True

    def __init__(self, generator, branches, mu=None, options=InferenceOptions(),
                 description="generator"):
        super().__init__(options, branches, description)
        self.generator = generator
        self.mu = generator.mu if mu is None else mu

    def plan(self, height, width):
        return decide_tile(self.options, height, width, 2 ** (self.generator.scales - 1),
                           self.generator.base_filters)

    def _decided(self, ldrs, wanted, decided):
        names = list(self.branches) if wanted is None else list(wanted)
        decided = decided or self.plan(*row_reader(ldrs)[0][1:3])[0]
        return names, [self.branches.index(n) for n in names], decided

    def __call__(self, ldrs, exposure_bias, progress=None, wanted=None, decided=None):
        names, indices, decided = self._decided(ldrs, wanted, decided)
        outputs = merge_exposures(self.generator, ldrs, exposure_bias, self.mu, progress,
                                  indices, decided)
        return dict(zip(names, outputs_to_linear(outputs, self.mu)))

    def bands(self, ldrs, exposure_bias, progress=None, wanted=None, decided=None):
        names, indices, decided = self._decided(ldrs, wanted, decided)
        for first, rows in merge_bands(self.generator, ldrs, exposure_bias, self.mu, progress,
                                       indices, decided):
            yield first, dict(zip(names, outputs_to_linear(rows, self.mu)))
