"""hdr-gan-infer: merges your own bracketed photos into an HDR image.

Examples:
  hdr-gan-infer --checkpoint=runs/paper --inputs=a.tif,b.tif,c.tif --exposure_bias=-2,0,2 \
      --output=out.hdr
  hdr-gan-infer --checkpoint=runs/paper --inputs=1.jpg,2.jpg,3.jpg --output=out.exr   # EXIF times
  hdr-gan-infer --checkpoint=runs/paper --input_dir=shoots/ --output_dir=merged/       # batch

Photos may come in any order; they are sorted by exposure. Exposures come from
`--exposure_bias` (EV, in the order of --inputs), else from an `exposure.txt` beside the photos
(or `--exposure_file`; one EV per photo, in file-name order), else from the files' EXIF
ExposureTime. The reference (output-aligned) frame is the middle exposure. Besides the HDR file,
a PNG preview is written with a display tonemapper (Reinhard by default), since a flat μ-law or a
dark linear rendering is easily mistaken for a failure. Previews of images over 4 megapixels
are reduced by a whole factor.

Memory: `--tile` bounds the network's working set. A tiled merge to a `.hdr` file (without
`--exr`) is also streamed: the photos are read one at a time into a temporary file and read
back by bands of rows, and each band of the result is written as soon as it is final, so memory
does not grow with the image (a 24-megapixel bracket of 16-bit photos merges in about 1 GB; see
the README). `.exr` outputs need the whole result in memory.
"""

import math
from pathlib import Path

from absl import app, flags

from hdr_gan_tf.cli import check_output_free, fail, guarded, say

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Training log dir (latest checkpoint) or checkpoint path.",
                    required=True)
flags.DEFINE_list("inputs", [], "Three photos (TIFF/PNG/JPEG, 8- or 16-bit), any order.")
flags.DEFINE_list("exposure_bias", [], "EV of each photo, in the order of --inputs.")
flags.DEFINE_string("exposure_file", None, "exposure.txt with one EV per photo (file-name order).")
flags.DEFINE_string("output", None, "HDR output (.hdr or .exr).")
flags.DEFINE_bool("exr", False, "Also write an OpenEXR copy beside a .hdr output.")
flags.DEFINE_string("preview", None, "Preview PNG (default: the output with .png).")
flags.DEFINE_enum("tonemap", "reinhard", ["reinhard", "drago", "mu_law"], "Preview tonemapper.")
flags.DEFINE_string("input_dir", None, "Batch mode: folder of scene folders (three photos each).")
flags.DEFINE_string("output_dir", None, "Batch mode: where <scene>.hdr and <scene>.png go.")
flags.DEFINE_integer("tile", 0, "Process in tiles of this side, bounding memory (0: whole); "
                     "with a .hdr output the photos and the result are streamed too.")
flags.DEFINE_integer("overlap", 32, "Tile overlap in pixels (blended).")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute precision.")
flags.DEFINE_bool("jit_compile", False, "Compile the network with XLA (faster on CPUs; one "
                  "compilation per image or tile size).")
flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")

_EXIF_IFD = 0x8769
_EXPOSURE_TIME = 0x829A


def exif_exposure_time(path):
    """ExposureTime in seconds from a photo's EXIF, or None."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            value = exif.get_ifd(_EXIF_IFD).get(_EXPOSURE_TIME) or exif.get(_EXPOSURE_TIME)
    except Exception:  # noqa: BLE001 - any unreadable metadata means "no EXIF time"
        return None
    try:
        return float(value) if value is not None and float(value) > 0 else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def exposures_for(paths, given=None, exposure_file=None):
    """EV of each path (in the given order), from flags, an exposure file or EXIF."""
    from hdr_gan_tf.data import read_exposure_file

    if given:
        try:
            values = [float(v) for v in given]
        except ValueError:
            raise ValueError(f"--exposure_bias={','.join(given)}: values must be numbers") from None
        if len(values) != len(paths):
            raise ValueError(f"--exposure_bias has {len(values)} values for {len(paths)} photos")
        return values
    candidates = [Path(exposure_file)] if exposure_file else sorted(
        {Path(p).parent / "exposure.txt" for p in paths})
    for candidate in candidates:
        if candidate.is_file() or exposure_file:
            ev = read_exposure_file(candidate)  # three increasing values, in file-name order
            by_name = sorted(paths, key=lambda p: Path(p).name)
            return [float(ev[by_name.index(p)]) for p in paths]
    times = [exif_exposure_time(p) for p in paths]
    missing = [str(p) for p, t in zip(paths, times) if t is None]
    if missing:
        raise ValueError(f"no exposures given: pass --exposure_bias, an exposure.txt, or photos "
                         f"with EXIF ExposureTime (missing in {', '.join(missing)})")
    shortest = min(times)
    return [math.log2(t / shortest) for t in times]


def load_bracket(paths, given=None, exposure_file=None, spool=False):
    """Reads three photos, sorts them by exposure; returns `(ldrs [3, H, W, 3], ev [3])`.

    The photos stay 8- or 16-bit (uint8 / uint16; float32 in [0, 1] if their depths differ) so
    that a large bracket is not held as float32; the merge converts it tile by tile. With
    `spool`, they go one at a time into a `SpooledImages` file instead (as uint16: an 8-bit
    value v is stored as 257 v, the same fraction of full scale), for a merge by bands.
    """
    import numpy as np

    from hdr_gan_tf.image_io import SpooledImages, read_ldr_raw
    from hdr_gan_tf.imaging import parse_exposure_bias

    paths = [str(p) for p in paths]
    if len(paths) != 3:
        raise ValueError(f"HDR-GAN merges exactly 3 photos, got {len(paths)}: {', '.join(paths)}")
    ev = exposures_for(paths, given, exposure_file)
    order = sorted(range(3), key=lambda i: ev[i])
    sorted_ev = parse_exposure_bias([ev[i] for i in order],
                                    source="exposures of " + ", ".join(paths))
    if spool:
        spooled = SpooledImages()
        try:
            for i in order:
                image, peak = read_ldr_raw(paths[i])
                if spooled.count and image.shape != spooled.image_shape:
                    h, w = spooled.image_shape[:2]
                    raise ValueError(f"photos differ in size: {paths[order[0]]} {w}x{h}, "
                                     f"{paths[i]} {image.shape[1]}x{image.shape[0]}")
                spooled.append(image.astype(np.uint16) * np.uint16(257) if peak == 255
                               else image, paths[i])
                del image
        except BaseException:
            spooled.close()
            raise
        return spooled, sorted_ev
    raw = [read_ldr_raw(p) for p in paths]
    images = [image for image, _ in raw]
    if len({image.dtype for image in images}) > 1:
        images = [image.astype(np.float32) / np.float32(peak) for image, peak in raw]
    sizes = {p: im.shape[:2] for p, im in zip(paths, images)}
    if len(set(sizes.values())) != 1:
        raise ValueError("photos differ in size: " + ", ".join(
            f"{p} {s[1]}x{s[0]}" for p, s in sizes.items()))
    return np.stack([images[i] for i in order]), sorted_ev


def streams(output, tile, exr=False):
    """Whether a merge is written band by band: tiled, to a Radiance file, without an EXR copy
    (OpenCV writes EXR from a whole image only)."""
    return bool(tile) and not exr and Path(output).suffix.lower() == ".hdr"


def merge_and_write(merge, bracket, output, preview, exr=False, tonemap="reinhard", tile=0,
                    overlap=32):
    """Merges a loaded bracket `(ldrs, ev)` and writes the HDR file(s) and the preview.

    A tiled merge to a `.hdr` file (`streams`) writes each band of rows as soon as it is
    final, so neither the photos (pass them spooled) nor the result is ever held whole. The
    preview is made from a copy reduced to at most `display.PREVIEW_MAX_PIXELS`.
    """
    from hdr_gan_tf.display import PreviewImage, tonemap_for_display
    from hdr_gan_tf.image_io import radiance_rows, write_hdr, write_ldr

    ldrs, ev = bracket
    height, width = ldrs.shape[1:3]
    say(f"Merging {width}x{height} photos at EV {ev.tolist()}"
        + (f" in {tile}-pixel tiles" if tile else ""))
    progress = _progress_printer()
    reduced = PreviewImage(height, width)
    if streams(output, tile, exr):
        with radiance_rows(output, height, width) as write:
            for _, rows in merge.bands(ldrs, ev, tile, overlap, progress, wanted=["main"]):
                write(rows["main"])
                reduced.add(rows["main"])
    else:
        if hasattr(ldrs, "rows"):
            ldrs = ldrs.rows(0, height)
        hdr = merge(ldrs, ev, tile=tile, overlap=overlap, progress=progress,
                    wanted=["main"])["main"]
        write_hdr(output, hdr)
        if exr:
            write_hdr(Path(output).with_suffix(".exr"), hdr)
        reduced.add(hdr)
        del hdr
    write_ldr(preview, tonemap_for_display(reduced.image(), tonemap))
    say(f"Wrote {output} and preview {preview}")


def _progress_printer():
    """`progress(i, n)` that prints the tile count, the rate and the time left."""
    import time

    start = time.perf_counter()

    def progress(done, total):
        elapsed = time.perf_counter() - start
        left = elapsed / done * (total - done)
        say(f"  tile {done}/{total}  {elapsed / done:.2f} s/tile  {left / 60:.1f} min left")

    return progress


def _outputs_for(output, preview, exr):
    output = Path(output)
    if output.suffix.lower() not in (".hdr", ".exr"):
        raise ValueError(f"{output}: --output must end in .hdr or .exr")
    paths = [output, Path(preview) if preview else output.with_suffix(".png")]
    if exr and output.suffix.lower() == ".hdr":
        paths.append(output.with_suffix(".exr"))
    return paths


@guarded
def main(argv):
    del argv
    from hdr_gan_tf.config import branch_names, restore_generator
    from hdr_gan_tf.image_io import LDR_SUFFIXES
    from hdr_gan_tf.inference import generator_merger

    batch = FLAGS.input_dir is not None
    if batch == bool(FLAGS.inputs):
        raise ValueError("give either --inputs (three photos) or --input_dir (batch mode)")
    jobs = []
    if batch:
        if not FLAGS.output_dir:
            raise ValueError("--input_dir needs --output_dir")
        root = Path(FLAGS.input_dir)
        if not root.is_dir():
            raise ValueError(f"{root}: input folder not found")
        for scene in sorted(p for p in root.iterdir() if p.is_dir()):
            photos = sorted(str(p) for p in scene.iterdir()
                            if p.suffix.lower() in LDR_SUFFIXES)
            out = Path(FLAGS.output_dir) / f"{scene.name}.hdr"
            jobs.append((photos, out, out.with_suffix(".png"), None, None))
        if not jobs:
            raise ValueError(f"{root}: no scene folders found")
    else:
        if not FLAGS.output:
            raise ValueError("--output is required (e.g. --output=out.hdr)")
        outs = _outputs_for(FLAGS.output, FLAGS.preview, FLAGS.exr)
        jobs.append((FLAGS.inputs, outs[0], outs[1], FLAGS.exposure_bias, FLAGS.exposure_file))
    for _, output, preview, _, _ in jobs:
        for path in _outputs_for(output, preview, FLAGS.exr):
            check_output_free(path, FLAGS.overwrite)
    # A single bracket is checked before the model is loaded, so bad photos fail fast.
    first = None
    if not batch:
        photos, output, _, given, exposure_file = jobs[0]
        first = load_bracket(photos, given, exposure_file,
                             spool=streams(output, FLAGS.tile, FLAGS.exr))
    generator, config, _ = restore_generator(FLAGS.checkpoint, FLAGS.precision)
    merge = generator_merger(generator, branch_names(generator.scales), config.get("mu", 5000.0),
                             FLAGS.jit_compile)
    failures = []
    for photos, output, preview, given, exposure_file in jobs:
        try:
            bracket = first or load_bracket(photos, given, exposure_file,
                                            spool=streams(output, FLAGS.tile, FLAGS.exr))
            try:
                merge_and_write(merge, bracket, output, preview, FLAGS.exr, FLAGS.tonemap,
                                FLAGS.tile, FLAGS.overlap)
            finally:
                if hasattr(bracket[0], "close"):  # a spooled bracket's temporary file
                    bracket[0].close()
        except (ValueError, OSError) as err:
            if not batch:
                raise
            failures.append(f"{Path(output).stem}: {err}")
            say(f"skipped {failures[-1]}")
    if failures:
        fail(f"{len(failures)} of {len(jobs)} scenes failed: " + "; ".join(failures))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
