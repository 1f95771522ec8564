"""hdr-gan-infer: merges your own bracketed photos into an HDR image.

Examples:
  hdr-gan-infer --checkpoint=runs/paper --inputs=a.tif,b.tif,c.tif --exposure_bias=-2,0,2 \
      --output=out.hdr
  hdr-gan-infer --checkpoint=runs/paper --inputs=1.jpg,2.jpg,3.jpg --output=out.exr   # EXIF times
  hdr-gan-infer --checkpoint=runs/paper --input_dir=shoots/ --output_dir=merged/       # batch

Photos may come in any order; they are sorted by exposure. Exposures come from
`--exposure_bias` (EV, in the order of --inputs), else from an `exposure.txt` beside the photos
(or `--exposure_file`; one EV per photo, in file-name order), else from the files' EXIF
ExposureTime (`hdr_gan_tf.photos`). The reference (output-aligned) frame is the middle
exposure. Besides the HDR file, a PNG preview is written with a display tonemapper (Reinhard by
default), since a flat μ-law or a dark linear rendering is easily mistaken for a failure.
Previews of images over 4 megapixels are reduced by a whole factor. A sidecar `<output>.json`
records the photos, their EVs and where those came from, the merge and its options.

Memory: `--tile` bounds the network's working set. A tiled merge is also streamed: the photos
are read one at a time into a temporary file and read back by bands of rows, and each band of
the result is written to the `.hdr` / `.exr` file(s) as soon as it is final, so memory does not
grow with the image (docs/performance.md).
"""

import contextlib
import time
from pathlib import Path

from absl import flags

from hdr_gan_tf.cli.common import (define_align_flag, define_checkpoint_flag,
                                   define_merge_flags, define_overwrite_flag, error, guarded,
                                   inference_options, run_program, say)

FLAGS = flags.FLAGS


# ------------------------------------------------------------------ writing a merge
def streams(tile):
    """Whether a merge is written band by band: whenever it is tiled (`.hdr` and `.exr` files,
    and an `.exr` copy beside a `.hdr`, are all written a band of rows at a time)."""
    return bool(tile)


def hdr_outputs(output, exr=False):
    """The HDR files a merge to `output` writes: `output`, and with `exr` an OpenEXR copy
    beside a `.hdr` one."""
    output = Path(output)
    return [output] + ([output.with_suffix(".exr")]
                       if exr and output.suffix.lower() == ".hdr" else [])


def sidecar_path(output):
    """The JSON record written beside a merge to `output`: its name with `.json`."""
    return Path(output).with_suffix(".json")


def merge_and_write(merge, bracket, output, preview, exr=False, tonemap="reinhard", log=print,
                    model=None, align="none", panel=False):
    """Merges a loaded bracket (`hdr_gan_tf.photos.load_bracket`) and writes the HDR file(s),
    the preview PNG and the sidecar `sidecar_path(output)`: the photos with their EVs and where
    those came from, the reference, how each photo maps onto it (`align`, one of
    `alignment.ALIGN_MODES`), the merge (`model`: what `merge.load_merger` described; its
    options) and the time taken. `panel`: also `panel_path(output)`, the reference photo and
    the previews without and with alignment side by side (the one without merged from a copy
    reduced to the preview's size).

    A tiled merge writes each band of rows to the `.hdr` / `.exr` file(s) as soon as it is
    final, so neither the photos (pass them spooled) nor the result is ever held whole. The
    preview is made from a copy reduced to at most `display.PREVIEW_MAX_PIXELS`.
    """
    import dataclasses
    import json

    from hdr_gan_tf import __version__
    from hdr_gan_tf.display import PreviewImage, tonemap_for_display
    from hdr_gan_tf.image_io import exr_rows, radiance_rows, write_hdr, write_ldr
    from hdr_gan_tf.outputs import write_text

    from hdr_gan_tf.alignment import align_bracket

    ev = bracket.ev
    start = time.perf_counter()
    height, width = bracket.ldrs.shape[1:3]
    ldrs, alignments = align_bracket(bracket.ldrs, ev, align, log)
    tile = merge.options.tile
    log(f"Merging {width}x{height} photos at EV {ev.tolist()}"
        + (f" in {tile}-pixel tiles" if tile else ""))
    progress = progress_printer(log)
    reduced = PreviewImage(height, width)
    paths = hdr_outputs(output, exr)
    if getattr(merge, "display_referred", False):
        # A fused picture, not radiance: made at the preview's size, written as the preview.
        from hdr_gan_tf.alignment import reduced_copy

        small, _ = reduced_copy(ldrs, factor=reduced.factor)
        shown = merge(small, ev)["main"]
        paths = []
        log("Mertens' fusion is display-referred: no HDR file is written, only the preview")
    elif streams(tile):
        with contextlib.ExitStack() as stack:
            writers = [stack.enter_context((exr_rows if p.suffix.lower() == ".exr"
                                            else radiance_rows)(p, height, width))
                       for p in paths]
            for _, rows in merge.bands(ldrs, ev, progress, wanted=["main"]):
                for write in writers:
                    write(rows["main"])
                reduced.add(rows["main"])
    else:
        if hasattr(ldrs, "rows"):
            ldrs = ldrs.rows(0, height)
        hdr = merge(ldrs, ev, progress, wanted=["main"])["main"]
        for path in paths:
            write_hdr(path, hdr)
        reduced.add(hdr)
        del hdr
    if paths:
        shown = tonemap_for_display(reduced.image(), tonemap)
    write_ldr(preview, shown)
    if panel:
        write_ldr(panel_path(output), _panel(merge, bracket, shown, reduced.factor, tonemap,
                                             align))
    record = {
        "program": "hdr-gan-infer", "version": __version__,
        "photos": sorted(
            [{"path": str(photo), "ev": float(value), "role": role, **found.record()}
             for photo, value, role, found in zip(bracket.photos, ev,
                                                  ("short", "reference", "long"), alignments)]
            + [{"path": str(photo), "ev": value, "role": "unused"}
               for photo, value in bracket.unused], key=lambda p: p["ev"]),
        "ev_source": bracket.ev_source, "reference": str(bracket.photos[1]),
        "chosen_by": bracket.chosen_by,
        "merged_by": model,
        "options": dataclasses.asdict(merge.options), "size": [width, height],
        "outputs": [str(p) for p in paths], "preview": str(preview),
        "seconds": round(time.perf_counter() - start, 3)}
    write_text(sidecar_path(output), json.dumps(record, indent=2) + "\n")
    written = paths + [preview, sidecar_path(output)] + ([panel_path(output)] if panel else [])
    log(f"Wrote {', '.join(map(str, written))}")


def _panel(merge, bracket, shown, factor, tonemap, align):
    """The reference photo, the merge without alignment and the preview `shown` (with it), each
    reduced by `factor` and labelled, side by side."""
    import cv2
    import numpy as np

    from hdr_gan_tf.alignment import reduced_copy
    from hdr_gan_tf.display import label, tonemap_for_display

    small, _ = reduced_copy(bracket.ldrs, factor=factor)
    merged = merge(small, bracket.ev)["main"]
    unaligned = merged if getattr(merge, "display_referred", False) else tonemap_for_display(
        merged, tonemap)
    size = (shown.shape[1], shown.shape[0])
    tiles = [(small[1], "reference photo"), (unaligned, "--align=none"),
             (shown, f"--align={align}")]
    return np.concatenate([label(cv2.resize(image, size, interpolation=cv2.INTER_AREA), text)
                           for image, text in tiles], axis=1)


def progress_printer(log=print):
    """`progress(done, total)` that logs the tile count, the rate and the time left."""
    start = time.perf_counter()

    def progress(done, total):
        elapsed = time.perf_counter() - start
        left = elapsed / done * (total - done)
        log(f"  tile {done}/{total}  {elapsed / done:.2f} s/tile  {left / 60:.1f} min left")

    return progress


# ------------------------------------------------------------------ the program
def define_flags():
    define_checkpoint_flag(required=False)
    flags.DEFINE_list("inputs", [], "3 to 9 photos of a bracket (TIFF/PNG/JPEG, 8- or 16-bit, or "
                      "RAW: DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2), "
                      "any order; of more than three, three are merged (--reference, --short, "
                      "--long, or chosen by EV).")
    for role, which in (("reference", "the photo the result is aligned to (default: the one "
                                      "nearest the middle EV)"),
                        ("short", "the darker photo merged (default: the darkest within 3 EV "
                                  "of the reference)"),
                        ("long", "the brighter photo merged (default: the brightest within 3 "
                                 "EV of the reference)")):
        flags.DEFINE_string(role, None, f"One of --inputs: {which}.")
    flags.DEFINE_list("exposure_bias", [], "EV of each photo, in the order of --inputs.")
    flags.DEFINE_string("exposure_file", None, "exposure.txt with one EV per photo (file-name "
                        "order).")
    flags.DEFINE_string("output", None, "HDR output (.hdr or .exr).")
    flags.DEFINE_bool("exr", False, "Also write an OpenEXR copy beside a .hdr output.")
    flags.DEFINE_string("preview", None, "Preview PNG (default: the output with .png).")
    flags.DEFINE_enum("tonemap", "reinhard", ["reinhard", "drago", "mu_law"], "Preview "
                      "tonemapper.")
    flags.DEFINE_string("input_dir", None, "Batch mode: folder of scene folders (three photos "
                        "each).")
    flags.DEFINE_string("output_dir", None, "Batch mode: where <scene>.hdr and <scene>.png go.")
    define_merge_flags(("network", "debevec", "mertens"))
    define_align_flag("auto")
    flags.DEFINE_bool("panel", False, "Also write <output>_panel.png: the reference photo and "
                      "the previews of the merge without alignment and with it, side by side.")
    define_overwrite_flag()


def panel_path(output):
    """Where `--panel` puts the side-by-side picture of a merge: `<output stem>_panel.png`."""
    output = Path(output)
    return output.with_name(f"{output.stem}_panel.png")


def _outputs_for(output, preview, exr):
    """`[output, preview, (the .exr copy), sidecar, (the --panel picture)]`."""
    output = Path(output)
    if output.suffix.lower() not in (".hdr", ".exr"):
        raise ValueError(f"{output}: --output must end in .hdr or .exr")
    main, *copy = hdr_outputs(output, exr)
    preview = Path(preview) if preview else output.with_suffix(".png")
    if preview.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        raise ValueError(f"{preview}: --preview must end in .png, .jpg or .tif")
    return [main, preview, *copy, sidecar_path(output)] + (
        [panel_path(output)] if FLAGS.panel else [])


def _jobs():
    """`(photos, output, preview, exposure_bias, exposure_file)` per bracket to merge."""
    from hdr_gan_tf.image_io import LDR_SUFFIXES
    from hdr_gan_tf.raw_photos import RAW_SUFFIXES

    batch = FLAGS.input_dir is not None
    if batch == bool(FLAGS.inputs):
        raise ValueError("give either --inputs (three photos) or --input_dir (batch mode)")
    if not batch:
        if not FLAGS.output:
            raise ValueError("--output is required (e.g. --output=out.hdr)")
        outs = _outputs_for(FLAGS.output, FLAGS.preview, FLAGS.exr)
        return [(FLAGS.inputs, outs[0], outs[1], FLAGS.exposure_bias, FLAGS.exposure_file)]
    if not FLAGS.output_dir:
        raise ValueError("--input_dir needs --output_dir")
    root = Path(FLAGS.input_dir)
    if not root.is_dir():
        raise ValueError(f"{root}: input folder not found")
    jobs = []
    for scene in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(str(p) for p in scene.iterdir()
                        if p.suffix.lower() in LDR_SUFFIXES + RAW_SUFFIXES)
        out = Path(FLAGS.output_dir) / f"{scene.name}.hdr"
        jobs.append((photos, out, out.with_suffix(".png"), None, None))
    if not jobs:
        raise ValueError(f"{root}: no scene folders found")
    return jobs


@guarded
def main(argv):
    del argv
    from hdr_gan_tf.checkpoints import checkpoint_log_dir
    from hdr_gan_tf.merge import check_method, load_merger
    from hdr_gan_tf.outputs import DiskFull, check_outputs
    from hdr_gan_tf.photos import check_bracket_files, load_bracket

    jobs = _jobs()
    roles = {role: FLAGS[role].value for role in ("reference", "short", "long")
             if FLAGS[role].value}
    if roles and FLAGS.input_dir is not None:
        raise ValueError(f"--{next(iter(roles))}: names a photo of --inputs; a batch "
                         f"(--input_dir) chooses each shoot's three by EV")
    options = inference_options()  # checks --tile, --overlap and --precision first
    check_method(FLAGS.method, FLAGS.checkpoint)
    for flag in ("exr", "tile"):
        if FLAGS.method == "mertens" and FLAGS[flag].value:
            raise ValueError(f"--{flag}: Mertens' fusion writes no HDR file, only the preview "
                             f"(made at the preview's size); leave --{flag} out")
    batch = FLAGS.input_dir is not None
    # Every output against every other and every input of the whole command (all scenes).
    check_outputs(files=[p for _, output, preview, _, _ in jobs
                         for p in _outputs_for(output, preview, FLAGS.exr)],
                  inputs=[FLAGS.checkpoint and checkpoint_log_dir(FLAGS.checkpoint),
                          FLAGS.input_dir,
                          FLAGS.exposure_file,
                          *(p for photos, *_ in jobs for p in photos)],
                  overwrite=FLAGS.overwrite)
    # Photos are checked from their headers before the model is loaded, so bad ones fail fast
    # (in a batch, such a scene is reported and skipped).
    failures, usable = [], []
    for job in jobs:
        try:
            check_bracket_files(job[0], FLAGS.max_pixels)
            usable.append(job)
        except ValueError as err:
            if not batch:
                raise
            failures.append(f"{Path(job[1]).stem}: {err}")
            say(f"skipped {failures[-1]}")
    if not usable:
        error(f"{len(failures)} of {len(jobs)} scenes failed: " + "; ".join(failures))
    first = None
    if not batch:
        photos, output, _, given, exposure_file = usable[0]
        first = load_bracket(photos, given, exposure_file,
                             spool=streams(options.tile),
                             max_pixels=FLAGS.max_pixels, roles=roles)
    merge, model = load_merger(options, checkpoint=FLAGS.checkpoint, method=FLAGS.method,
                               log=say)
    for photos, output, preview, given, exposure_file in usable:
        try:
            bracket = first or load_bracket(photos, given, exposure_file,
                                            spool=streams(options.tile),
                                            max_pixels=FLAGS.max_pixels)
            try:
                merge_and_write(merge, bracket, output, preview, FLAGS.exr, FLAGS.tonemap,
                                log=say, model=model, align=FLAGS.align, panel=FLAGS.panel)
            finally:
                if hasattr(bracket[0], "close"):  # a spooled bracket's temporary file
                    bracket[0].close()
        except (ValueError, OSError) as err:
            if not batch or isinstance(err, DiskFull):
                raise
            failures.append(f"{Path(output).stem}: {err}")
            say(f"skipped {failures[-1]}")
    if failures:
        error(f"{len(failures)} of {len(jobs)} scenes failed: " + "; ".join(failures))


def run(argv=None):
    """The program: from its console script, or (`argv`, the arguments after the program's
    name) in this process, returning the exit status."""
    return run_program(define_flags, main, argv)


if __name__ == "__main__":
    run()
