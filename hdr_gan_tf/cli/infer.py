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

Memory: `--tile=auto` (the default) merges each image whole when the memory available allows
and otherwise in the tiles that fit (`hdr_gan_tf.memory`; the choice is printed and recorded in
the sidecar); `--tile=N` asks for tiles of N pixels, `--tile=0` for the whole image. A tiled
merge is also streamed: the photos are read one at a time into a temporary file and read back by
bands of rows, and each band of the result is written to the `.hdr` / `.exr` file(s) as soon as
it is final, so memory does not grow with the image (docs/performance.md).
"""

from pathlib import Path

from absl import flags

from hdr_gan_tf.cli.common import (define_align_flag, define_checkpoint_flag,
                                   define_merge_flags, define_overwrite_flag, error, guarded,
                                   as_flag, define_tonemap_flag, inference_options,
                                   run_program, say, tensorflow_error)
from hdr_gan_tf.formats import FORMATS, check_formats
from hdr_gan_tf.hdr_photos import Rendering
from hdr_gan_tf.settings import worded
from hdr_gan_tf.merge_files import (check_fusion_options, hdr_outputs, merge_and_write,
                                    panel_path, sidecar_path, streams)

FLAGS = flags.FLAGS


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
    from hdr_gan_tf.hdr_photos import DEFAULT_HEADROOM

    flags.DEFINE_string("output", None, "HDR output; its suffix chooses the format: " + "; ".join(
        f"{f.suffix}: {f.summary}" for f in FORMATS.values()) + ".")
    flags.DEFINE_list("formats", [], "More formats written beside --output (its name with "
                      "their suffixes), from: " + ", ".join(FORMATS) + ". jpg and avif are HDR "
                      "photos for HDR screens (docs/hdr_photos.md).")
    flags.DEFINE_bool("exr", False, "Also write an OpenEXR copy beside the output (as "
                      "--formats=exr).")
    flags.DEFINE_float("hdr_headroom", DEFAULT_HEADROOM, "HDR photos (jpg, avif): the most "
                       "stops above white they keep (white: what the reference photo records "
                       "as white); up to the merge's own peak.")
    flags.DEFINE_string("preview", None, "Preview PNG (default: the output with .png).")
    define_tonemap_flag()
    flags.DEFINE_string("input_dir", None, "Batch mode: folder of scene folders (three photos "
                        "each).")
    flags.DEFINE_string("output_dir", None, "Batch mode: where <scene>.hdr and <scene>.png go.")
    define_merge_flags()
    define_align_flag("auto")
    flags.DEFINE_bool("panel", False, "Also write <output>_panel.png: the reference photo and "
                      "the previews of the merge without alignment and with it, side by side.")
    define_overwrite_flag()


def _outputs_for(output, preview, exr):
    """`[output, preview, (the --formats and --exr copies), sidecar, (the --panel picture)]`."""
    output = Path(output)
    check_formats(FLAGS.formats, output)
    main, *copy = hdr_outputs(output, exr, FLAGS.formats)
    preview = Path(preview) if preview else output.with_suffix(".png")
    if preview.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        raise ValueError(f"{preview}: --preview must end in .png, .jpg or .tif")
    files = [main, preview, *copy, sidecar_path(output)] + (
        [panel_path(output)] if FLAGS.panel else [])
    if len({p.resolve() for p in files}) < len(files):
        raise ValueError(f"--preview={preview}: the same file as another output of the merge "
                         f"({', '.join(p.name for p in files if p != preview)}); choose another "
                         f"name")
    return files


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
        out = Path(FLAGS.output_dir) / f"{scene.name}{FORMATS['hdr'].suffix}"
        jobs.append((photos, out, out.with_suffix(".png"), None, None))
    if not jobs:
        raise ValueError(f"{root}: no scene folders found")
    return jobs


@guarded
def main(argv):
    del argv
    from hdr_gan_tf.checkpoints import checkpoint_log_dir
    from hdr_gan_tf.methods import check_method, load_merger
    from hdr_gan_tf.outputs import DiskFull, check_outputs
    from hdr_gan_tf.photos import check_bracket_files, exposures_for, load_bracket

    jobs = _jobs()
    roles = {role: FLAGS[role].value for role in ("reference", "short", "long")
             if FLAGS[role].value}
    if roles and FLAGS.input_dir is not None:
        raise ValueError(f"--{next(iter(roles))}: names a photo of --inputs; a batch "
                         f"(--input_dir) chooses each shoot's three by EV")
    options = inference_options()  # checks --tile, --overlap and --precision first
    check_method(FLAGS.method, FLAGS.checkpoint)
    check_fusion_options(FLAGS.method, options.tile, FLAGS.exr, FLAGS.formats)
    Rendering(1.0, FLAGS.hdr_headroom)  # checks --hdr_headroom before any work
    batch = FLAGS.input_dir is not None
    # Every output against every other and every input of the whole command (all scenes);
    # each existing one replaced only if its merge's sidecar vouches for it.
    outputs = {p: [sidecar_path(output)] for _, output, preview, _, _ in jobs
               for p in _outputs_for(output, preview, FLAGS.exr)}
    check_outputs(files=list(outputs),
                  inputs=[FLAGS.checkpoint and checkpoint_log_dir(FLAGS.checkpoint),
                          FLAGS.input_dir,
                          FLAGS.exposure_file,
                          *(p for photos, *_ in jobs for p in photos)],
                  overwrite=FLAGS.overwrite, records=outputs)
    # Photos are checked from their headers (and exposures found) before the model is loaded,
    # so bad ones fail fast (in a batch, such a scene is reported and skipped).
    failures, usable = [], []
    for job in jobs:
        try:
            size = check_bracket_files(job[0], FLAGS.max_pixels)
            exposures_for(job[0], job[3], job[4])
            usable.append((job, size))
        except Exception as err:  # noqa: BLE001 - in a batch, one bad shoot is one line
            if not batch:
                raise
            failures.append(f"{Path(job[1]).stem}: {_one_line(err)}")
            say(f"skipped {failures[-1]}")
    if not usable:
        error(f"{len(failures)} of {len(jobs)} scenes failed: " + "; ".join(failures))
    merge = load_merger(options, checkpoint=FLAGS.checkpoint, method=FLAGS.method, log=say)
    for (photos, output, preview, given, exposure_file), (width, height) in usable:
        try:
            # The tile is decided from the photos' size before they are read: a tiled merge
            # reads them into a spool file instead of memory.
            decided, plan = merge.plan(height, width)
            if plan:
                say(f"Tiles for {Path(output).name}: {plan.reason}")
            bracket = load_bracket(photos, given, exposure_file, spool=streams(decided.tile),
                                   max_pixels=FLAGS.max_pixels, roles=roles)
            try:
                merge_and_write(merge, bracket, output, preview, FLAGS.exr, FLAGS.tonemap,
                                log=say, align=FLAGS.align, panel=FLAGS.panel,
                                decided=decided, plan=plan, formats=FLAGS.formats,
                                headroom=FLAGS.hdr_headroom)
            finally:
                if hasattr(bracket[0], "close"):  # a spooled bracket's temporary file
                    bracket[0].close()
        except Exception as err:  # noqa: BLE001 - in a batch, one bad shoot is one line
            if not batch or isinstance(err, DiskFull):
                raise
            failures.append(f"{Path(output).stem}: {_one_line(err)}")
            say(f"skipped {failures[-1]}")
    if failures:
        error(f"{len(failures)} of {len(jobs)} scenes failed: " + "; ".join(failures))


def _one_line(err):
    """An error of one shoot as one line: foreseen ones by their message, others by their
    kind too (the batch goes on either way)."""
    import tensorflow as tf

    if isinstance(err, (ValueError, OSError)):
        return worded(err, as_flag)
    if isinstance(err, tf.errors.OpError):
        return tensorflow_error(err)
    return f"unexpected {type(err).__name__}: {str(err).strip().splitlines()[0][:300]}" if str(
        err).strip() else f"unexpected {type(err).__name__}"


def run(argv=None):
    """The program: from its console script, or (`argv`, the arguments after the program's
    name) in this process, returning the exit status."""
    return run_program(define_flags, main, argv)


if __name__ == "__main__":
    run()
