"""hdr-gan-evaluate: PSNR, SSIM, HDR-VDP-2 and PU21 metrics (docs/design.md §7) of both branches on a split.

Example:
  hdr-gan-evaluate --checkpoint=runs/paper --data_dir=/data/kalantari --output_dir=eval/paper

Writes `metrics.json` and `metrics.csv` (per scene and mean, every branch), and for each scene
`<scene>/hdr_<branch>.hdr`, `<scene>/hdr_<branch>.exr` (exact 32-bit floats) and
`<scene>/panel.png` (inputs, branches, ground truth, error map); prints a table
(`hdr_gan_tf.evaluation`). With `--predictions`, other methods' merged images are scored by the
same protocol into `comparison.json`, `comparison.csv` and `comparison_psnr_mu.png`:
  hdr-gan-evaluate --checkpoint=runs/paper --predictions=debevec=out/debevec --output_dir=eval/c
"""

from pathlib import Path

from absl import flags

from hdr_gan_tf.cli.common import (define_align_flag, define_checkpoint_flag,
                                   define_merge_flags, define_overwrite_flag, guarded,
                                   inference_options, run_program, say)

FLAGS = flags.FLAGS


def define_flags():
    from hdr_gan_tf.evaluation import PROTOCOLS
    from hdr_gan_tf.layouts import DATA_DIR_HELP, LDR_BITS, LDR_BITS_HELP
    from hdr_gan_tf.metrics import PU21_DISPLAY_PEAK

    define_checkpoint_flag(required=False)
    flags.DEFINE_string("saved_model", None, "An exported SavedModel, instead of --checkpoint.")
    flags.DEFINE_string("data_dir", None, DATA_DIR_HELP)
    flags.DEFINE_string("output_dir", None, "Folder for metrics, HDR outputs and panels "
                        "(written whole at the end).", required=True)
    flags.DEFINE_string("split", "Test", "Split folder to evaluate (Test or Training).")
    flags.DEFINE_multi_string("predictions", [], "Merged images of another method to score "
                              "by the same protocol: DIR or name=DIR, one .exr or .hdr per "
                              "scene (<scene>.exr, <scene>.hdr or <scene>/hdr_main.exr); "
                              "repeat for several methods; with a model, it joins them as "
                              "'network' in one comparison. An existing folder is always DIR "
                              "(runs/lr=1e-4/preds included); name=DIR needs a name without "
                              "'/'.")
    flags.DEFINE_enum("protocol", "full", list(PROTOCOLS), "What is scored: full = every "
                      "pixel, LDRs as stored; paper = as the released test script scored (a "
                      "centred 960x1440 crop, LDRs reduced to 8 bits). --center_crop and "
                      "--ldr_bits make a custom one instead.")
    flags.DEFINE_list("center_crop", [], "Evaluate on a centre crop H,W (e.g. 960,1440).")
    flags.DEFINE_enum("ldr_bits", "16", [str(b) for b in LDR_BITS], LDR_BITS_HELP)
    flags.DEFINE_float("pu21_display_peak", PU21_DISPLAY_PEAK, "PU21 metrics: the luminance "
                       "(cd/m²) at which each scene's ground-truth peak is shown.")
    define_merge_flags(display_referred=False)
    define_align_flag("none")
    define_overwrite_flag("Replace an earlier evaluation folder (and nothing else).")


def _protocol():
    """The `Protocol` of `--protocol`, or a custom one of `--center_crop` and `--ldr_bits`."""
    from hdr_gan_tf.evaluation import PROTOCOLS, Protocol

    custom = [f"--{name}" for name in ("center_crop", "ldr_bits") if FLAGS[name].present]
    if not custom:
        return PROTOCOLS[FLAGS.protocol]
    if FLAGS["protocol"].present:
        raise ValueError(f"--protocol={FLAGS.protocol}: fixes the crop and the LDR bits; give "
                         f"it or {' and '.join(custom)}, not both")
    crop = _center_crop(FLAGS.center_crop)
    return Protocol("custom", crop and tuple(crop), int(FLAGS.ldr_bits))


def _center_crop(values):
    """`--center_crop` as `[H, W]` (each side at least what every metric needs), or None."""
    from hdr_gan_tf.metrics import SMALLEST_SIDE

    if not values:
        return None
    try:
        crop = [int(v) for v in values]
    except ValueError:
        crop = []
    if len(crop) != 2 or min(crop) < SMALLEST_SIDE:
        raise ValueError(f"--center_crop={','.join(values)}: takes two whole numbers of pixels "
                         f"H,W of at least {SMALLEST_SIDE} each, what the metrics need (e.g. "
                         f"960,1440)")
    return crop


def _predictions():
    """`--predictions` as `{name: folder}`: an existing folder is a folder, named by its last
    part, whatever its name holds; else `name=DIR` where the part before the first `=` is not
    a path (no `/`), else `DIR`."""
    named = {}
    for given in FLAGS.predictions:
        name, equals, folder = given.partition("=")
        if Path(given).is_dir() or not equals or "/" in name or name in (".", ".."):
            name, folder = Path(given).name, given
        if not name or not folder or name in named or name == FLAGS.method:
            raise ValueError(f"--predictions={given}: give name=DIR or DIR with a name of its "
                             f"own (not '{FLAGS.method}', which is --method's)")
        named[name] = folder
    return named


@guarded
def main(argv):
    del argv
    from hdr_gan_tf import data as data_lib
    from hdr_gan_tf.checkpoints import checkpoint_log_dir
    from hdr_gan_tf.evaluation import (evaluate, find_predictions, format_table,
                                       score_predictions, write_comparison)
    from hdr_gan_tf.methods import METHODS, check_method, load_merger
    from hdr_gan_tf.metrics import METRICS
    from hdr_gan_tf.outputs import check_outputs, output_dir
    from hdr_gan_tf.synthetic import builtin_dataset

    predictions = _predictions()
    merging = bool(FLAGS.checkpoint or FLAGS.saved_model
                   or not METHODS[FLAGS.method].needs_model)
    if not (merging or predictions):
        raise ValueError("give a model to score (--checkpoint or --saved_model), a classical "
                         "--method, merged images (--predictions), or one of them with those")
    if merging:
        check_method(FLAGS.method, FLAGS.checkpoint, FLAGS.saved_model)
    protocol = _protocol()
    if not 0 < FLAGS.pu21_display_peak <= 1e6:  # also refuses nan
        raise ValueError(f"--pu21_display_peak={FLAGS.pu21_display_peak}: give a luminance in "
                         f"cd/m² above 0 and at most 1e6 (e.g. 4000)")
    options = inference_options()  # checks --tile, --overlap and --precision before any work
    if FLAGS.saved_model:  # what an exported model cannot do, refused before data is read
        from hdr_gan_tf.serving import check_saved_model_options
        check_saved_model_options(options)
    check_outputs(folders=[(FLAGS.output_dir, "evaluation")], overwrite=FLAGS.overwrite,
                  inputs=[FLAGS.checkpoint and checkpoint_log_dir(FLAGS.checkpoint),
                          FLAGS.saved_model, FLAGS.data_dir, *predictions.values()])
    data_dir = FLAGS.data_dir or str(builtin_dataset(say))
    scenes = data_lib.open_split(data_dir, FLAGS.split, ldr_bits=protocol.ldr_bits,
                                 max_pixels=FLAGS.max_pixels)
    found = {name: find_predictions(folder, [s.name for s in scenes])
             for name, folder in predictions.items()}
    merge = None
    if merging:
        merge = load_merger(options, FLAGS.checkpoint, FLAGS.saved_model, FLAGS.method, log=say)
        say(f"Evaluating {merge.description} on {len(scenes)} scenes of {data_dir}/{FLAGS.split}")
    with output_dir(FLAGS.output_dir, "evaluation") as folder:
        methods = {}
        if merge:
            rows = evaluate(merge, scenes, merge.branches, folder, protocol, log=say,
                            display_peak=FLAGS.pu21_display_peak, align=FLAGS.align)
            methods[FLAGS.method] = [{"scene": r["scene"],
                                      **{m: r[f"{m}_main"] for m in METRICS}}
                                     for r in rows[:-1]]
        for name, paths in found.items():
            say(f"Scoring {name}: {len(paths)} merged images of {predictions[name]}")
            methods[name] = score_predictions(paths, scenes, protocol, FLAGS.pu21_display_peak,
                                              FLAGS.max_pixels)
        if predictions:
            comparison = write_comparison(methods, folder, protocol, FLAGS.pu21_display_peak)
    if merge:
        say(format_table(rows, merge.branches, protocol, FLAGS.pu21_display_peak))
    if predictions:
        say(comparison)
    say(f"Wrote {FLAGS.output_dir}/"
        + ("metrics.json, metrics.csv and per-scene outputs" if merge else "")
        + (" and " if merge and predictions else "")
        + ("comparison.json, comparison.csv and comparison_psnr_mu.png" if predictions else ""))


def run(argv=None):
    """The program: from its console script, or (`argv`, the arguments after the program's
    name) in this process, returning the exit status."""
    return run_program(define_flags, main, argv)


if __name__ == "__main__":
    run()
