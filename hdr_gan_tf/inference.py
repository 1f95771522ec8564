"""Running a trained generator on whole photographs of any size (SPEC §2, issue: inference).

The generator needs sides that are multiples of `2 ** (scales - 1)`; images are reflect-padded
up to that and cropped back. Large images can be processed in overlapping tiles whose outputs are
blended with linear ramps across the overlaps, so memory stays bounded by the tile size.
"""

import weakref

import numpy as np
import tensorflow as tf

from hdr_gan_tf.imaging import MU, network_inputs, output_to_hdr


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
        if min(h, w) < 2:
            raise ValueError(f"images must be at least 2 pixels on each side, got {h}x{w}")
        ph, pw = max((-h) % multiple, smallest - h), max((-w) % multiple, smallest - w)
        while ph or pw:
            sh, sw = min(ph, x.shape[1] - 1), min(pw, x.shape[2] - 1)
            x = tf.pad(x, [[0, 0], [0, sh], [0, sw], [0, 0]], mode="REFLECT")
            ph, pw = ph - sh, pw - sw
        return x, (h, w)
    shape = tf.shape(x)
    h, w = shape[1], shape[2]
    ph = tf.maximum((-h) % multiple, smallest - h)
    pw = tf.maximum((-w) % multiple, smallest - w)
    tf.debugging.assert_greater_equal(tf.minimum(h, w), 2,
                                      message="images must be at least 2 pixels on each side")
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


def compiled_runner(generator, mu=MU, jit_compile=False):
    """`run_generator` for this generator as one graph per input size.

    Eager execution keeps every intermediate alive until Python drops it and runs each op
    alone; as a graph the same computation is about 1.7x faster and needs a third less memory
    on a CPU. The graph is traced for each input size (a tiled merge has one tile size), so
    that the convolutions can pad without copying (see `hdr_gan_tf.layers.reflect_conv2d`).
    `jit_compile=True` compiles it with XLA.
    """
    key = (float(mu), bool(jit_compile))
    runners = _COMPILED.setdefault(generator, {})
    if key not in runners:
        runners[key] = tf.function(
            lambda s, m, l, ev: run_generator(generator, (s, m, l), ev, mu),
            jit_compile=jit_compile, reduce_retracing=False)
    return runners[key]


def run_generator(generator, ldrs, exposure_bias, mu=MU):
    """Generator branch outputs for LDR batches of any size.

    Args:
      ldrs: `(short, mid, long)` each `[B, H, W, 3]` in [0, 1].
      exposure_bias: `[B, 3]` EVs.

    Returns:
      list of `[B, H, W, 3]` float32 tanh outputs, auxiliary branches first, main last.
    """
    multiple = 2 ** (generator.scales - 1)
    x = network_inputs(*ldrs, exposure_bias, mu=mu)
    stacked, (h, w) = pad_reflect(tf.concat(x, axis=-1), multiple)
    outputs = generator([stacked[..., 0:6], stacked[..., 6:12], stacked[..., 12:18]],
                        training=False)
    return [tf.cast(y[:, :h, :w, :], tf.float32) for y in outputs]


def _tile_starts(size, tile, overlap):
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


def _as_unit_float(window):
    """An LDR window as float32 in [0, 1]: floats as they are, 8-/16-bit integers scaled."""
    if window.dtype == np.uint8:
        return window.astype(np.float32) / np.float32(255)
    if window.dtype == np.uint16:
        return window.astype(np.float32) / np.float32(65535)
    return window.astype(np.float32, copy=False)


def _row_reader(ldrs):
    """`(shape, read)` of a bracket given as an array (or array-like) or a `SpooledImages`:
    `read(first, last)` returns rows `first .. last - 1`, `[3, last - first, W, 3]`."""
    if hasattr(ldrs, "rows"):
        return ldrs.shape, ldrs.rows
    ldrs = np.asarray(ldrs)
    return ldrs.shape, lambda first, last: ldrs[:, first:last]


def merge_exposures(generator, ldrs, exposure_bias, tile=0, overlap=32, mu=MU, progress=None,
                    jit_compile=False, branches=None):
    """Merges one set of three LDRs into HDR, whole or in tiles.

    Memory for a tiled merge is the tile's working set plus the image-sized arrays: the inputs as
    given (pass 8- or 16-bit photos as uint8 / uint16: they are converted tile by tile) and one
    float32 `[H, W, 3]` per returned branch. `merge_bands` does the same without holding either.

    Args:
      ldrs: `[3, H, W, 3]` (short, reference, long), float in [0, 1], or uint8 / uint16; or a
        `hdr_gan_tf.image_io.SpooledImages` holding the three.
      exposure_bias: `[3]` EVs.
      tile: tile side in pixels (rounded up to the generator's multiple); 0 = whole image.
      overlap: overlap between neighbouring tiles in pixels.
      jit_compile: compile with XLA (see `compiled_runner`).
      branches: indices of the branches to return (default: all).

    Returns:
      list over `branches` (default: auxiliary first, main last) of `[H, W, 3]` float32 tanh
      outputs.
    """
    shape, read = _row_reader(ldrs)
    height, width = shape[1:3]
    if not tile or (height <= tile and width <= tile):
        run_window = _window_runner(generator, exposure_bias, mu, jit_compile, branches)
        return run_window(read(0, height))
    outputs = None
    for first, rows in merge_bands(generator, ldrs, exposure_bias, tile, overlap, mu, progress,
                                   jit_compile, branches):
        if outputs is None:
            outputs = [np.empty((height, width, 3), np.float32) for _ in rows]
        for out, band in zip(outputs, rows):
            out[first:first + len(band)] = band
    return outputs


def _window_runner(generator, exposure_bias, mu, jit_compile, branches):
    ev = tf.constant(np.asarray(exposure_bias, np.float32)[None])
    run = compiled_runner(generator, mu, jit_compile)
    keep = list(range(generator.scales - 1)) if branches is None else list(branches)

    def run_window(window):
        window = _as_unit_float(window)
        outputs = run(*[tf.constant(window[i][None]) for i in range(3)], ev)
        return [outputs[b][0].numpy() for b in keep]

    return run_window


def merge_bands(generator, ldrs, exposure_bias, tile, overlap=32, mu=MU, progress=None,
                jit_compile=False, branches=None):
    """Tiled merge that yields the result a band of finished rows at a time, top to bottom.

    Tiles are run row of tiles by row of tiles; once a row of tiles is done, every output row
    above the next row of tiles is final and is yielded, so nothing image-sized is held: memory
    is the tile's working set, one row of tiles of input and two of output. Tiles overlap by
    `overlap` pixels and are blended with linear ramps; the weights are separable (`H + W`
    floats). Arguments as `merge_exposures` (`tile` > 0).

    Yields:
      `(first_row, rows)`: `rows` a list over `branches` of `[n, W, 3]` float32 tanh outputs
      for image rows `first_row .. first_row + n - 1`.
    """
    shape, read = _row_reader(ldrs)
    height, width = shape[1:3]
    run_window = _window_runner(generator, exposure_bias, mu, jit_compile, branches)
    multiple = 2 ** (generator.scales - 1)
    tile = -(-tile // multiple) * multiple
    overlap = min(overlap, tile // 2)
    tile_h, tile_w = min(tile, height), min(tile, width)
    rows, cols = _tile_starts(height, tile_h, overlap), _tile_starts(width, tile_w, overlap)
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


def outputs_to_linear(outputs, mu=MU):
    """Branch outputs (NumPy, tanh scale) -> linear HDR in [0, 1], converted in place."""
    for y in outputs:
        y += 1
        y *= 0.5
        np.clip(y, 0, 1, out=y)
        y *= np.float32(np.log1p(mu))
        np.expm1(y, out=y)
        y /= np.float32(mu)
    return outputs


class ServingModule(tf.Module):
    """What `hdr-gan-export` saves: LDRs + EVs in, linear and tonemapped HDR out, any size.

    Signature `serving_default(ldr_short, ldr_mid, ldr_long, exposure_bias)`: LDRs float32
    `[B, H, W, 3]` in [0, 1], EVs float32 `[B, 3]`. Returns `hdr` (linear, main branch),
    `tonemapped` (μ-law of `hdr`, in [0, 1]) and `hdr_aux` (linear, first auxiliary branch; the
    main branch again for a 2-scale model). Padding to the network's multiple and cropping back
    happen inside.
    """

    def __init__(self, generator, mu=MU):
        super().__init__(name="hdr_gan")
        self.generator = generator
        self.mu = float(mu)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=n)
                                  for n in ("ldr_short", "ldr_mid", "ldr_long")]
                 + [tf.TensorSpec([None, 3], tf.float32, name="exposure_bias")])
    def serve(self, ldr_short, ldr_mid, ldr_long, exposure_bias):
        outputs = run_generator(self.generator, (ldr_short, ldr_mid, ldr_long), exposure_bias,
                                self.mu)
        hdr, tonemapped = output_to_hdr(outputs[-1], self.mu)
        hdr_aux, _ = output_to_hdr(outputs[0], self.mu)
        return {"hdr": hdr, "tonemapped": tonemapped, "hdr_aux": hdr_aux}


def saved_model_merger(path):
    """A `merge(ldrs [3, H, W, 3], ev [3]) -> {branch: linear HDR}` from an exported SavedModel."""
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]

    def merge(ldrs, exposure_bias, **_):
        ldrs = tf.constant(_as_unit_float(np.asarray(ldrs)))
        out = serve(ldr_short=ldrs[0:1], ldr_mid=ldrs[1:2], ldr_long=ldrs[2:3],
                    exposure_bias=tf.constant(np.asarray(exposure_bias, np.float32)[None]))
        return {"aux1": out["hdr_aux"][0].numpy(), "main": out["hdr"][0].numpy()}

    return merge


def generator_merger(generator, branches, mu=MU, jit_compile=False):
    """The same `merge` function for a Keras generator (supports `tile` and `overlap`).

    `merge(..., wanted=names)` computes only the named branches (all by default);
    `merge.bands(...)` is the tiled merge that yields the result a band of rows at a time.
    """
    def merge(ldrs, exposure_bias, tile=0, overlap=32, progress=None, wanted=None):
        names = list(branches) if wanted is None else list(wanted)
        outputs = merge_exposures(generator, ldrs, exposure_bias, tile, overlap, mu, progress,
                                  jit_compile, [branches.index(n) for n in names])
        return dict(zip(names, outputs_to_linear(outputs, mu)))

    def bands(ldrs, exposure_bias, tile, overlap=32, progress=None, wanted=None):
        """Tiled merge as `merge_bands`: yields `(first_row, {branch: linear HDR rows})`."""
        names = list(branches) if wanted is None else list(wanted)
        for first, rows in merge_bands(generator, ldrs, exposure_bias, tile, overlap, mu,
                                       progress, jit_compile,
                                       [branches.index(n) for n in names]):
            yield first, dict(zip(names, outputs_to_linear(rows, mu)))

    merge.bands = bands
    return merge
