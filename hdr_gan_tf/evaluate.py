"""hdr-gan-evaluate: the paper's metrics (SPEC §7) for both branches over a data split.

Example:
  hdr-gan-evaluate --checkpoint=runs/paper --data_dir=/data/kalantari --output_dir=eval/paper

Writes `metrics.json` and `metrics.csv` (per scene and mean, every branch), and for each scene
`<scene>/hdr_<branch>.hdr` and `<scene>/panel.png` (inputs, branches, ground truth, error map);
prints a table.
"""

import csv
import io
import json
import time
from pathlib import Path

from absl import app, flags

from hdr_gan_tf.cli import check_output_free, guarded, say

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Training log dir (latest checkpoint) or checkpoint path.")
flags.DEFINE_string("saved_model", None, "An exported SavedModel, instead of --checkpoint.")
flags.DEFINE_string("data_dir", None, "Kalantari-layout data root (default: the built-in "
                    "procedural data set).")
flags.DEFINE_string("output_dir", None, "Folder for metrics, HDR outputs and panels.",
                    required=True)
flags.DEFINE_string("split", "Test", "Split folder to evaluate (Test or Training).")
flags.DEFINE_list("center_crop", [], "Evaluate on a centre crop H,W (e.g. 960,1440).")
flags.DEFINE_enum("ldr_bits", "16", ["8", "16"], "Bits per channel the LDRs are read with: "
                  "16 keeps them as stored; 8 reduces 16-bit files to 8 bits (round(v/257)) as "
                  "the released code's test script read them (with --center_crop=960,1440, how "
                  "the paper scored its model).")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute precision.")
flags.DEFINE_bool("jit_compile", False, "Compile the network with XLA (faster on CPUs; one "
                  "compilation per image or tile size).")
flags.DEFINE_integer("tile", 0, "Process in tiles of this side (0: whole image).")
flags.DEFINE_integer("overlap", 32, "Tile overlap in pixels.")
flags.DEFINE_bool("overwrite", False, "Write into an existing output dir.")

METRICS = ("psnr_mu", "psnr_l", "ssim_mu", "ssim_l")


def center_crop(array, size):
    if not size:
        return array
    h, w = size
    top, left = (array.shape[-3] - h) // 2, (array.shape[-2] - w) // 2
    if top < 0 or left < 0:
        raise ValueError(f"--center_crop={h},{w} is larger than the {array.shape[-3]}x"
                         f"{array.shape[-2]} image")
    return array[..., top:top + h, left:left + w, :]


def format_table(rows, branches):
    header = ["scene"] + [f"{m}_{b}" for b in branches for m in METRICS]
    lines = ["  ".join(f"{h:>12}" for h in header)]
    for row in rows:
        cells = [f"{row['scene']:>12}"] + [f"{row[f'{m}_{b}']:12.4f}"
                                           for b in branches for m in METRICS]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def evaluate(merge, scenes, branches, output_dir, crop=None, tile=0, overlap=32):
    """Runs `merge` on every scene, writes outputs and returns the rows (mean row last)."""
    from hdr_gan_tf.display import comparison_panel
    from hdr_gan_tf.image_io import write_hdr, write_ldr, write_text
    from hdr_gan_tf.metrics import hdr_metrics

    output_dir = Path(output_dir)
    rows = []
    for n, scene in enumerate(scenes, start=1):
        start = time.time()
        ldrs = center_crop(scene.ldr_float(), crop)
        gt = center_crop(scene.hdr, crop)
        outputs = merge(ldrs, scene.exposure_bias, tile=tile, overlap=overlap)
        row = {"scene": scene.name}
        for b in branches:
            row.update({f"{k}_{b}": v for k, v in hdr_metrics(outputs[b], gt).items()})
            write_hdr(output_dir / scene.name / f"hdr_{b}.hdr", outputs[b])
        write_ldr(output_dir / scene.name / "panel.png", comparison_panel(ldrs, outputs, gt))
        rows.append(row)
        say(f"[{n}/{len(scenes)}] {scene.name}: PSNR-mu main {row['psnr_mu_main']:.2f} dB "
            f"({time.time() - start:.1f} s)")
    mean = {"scene": "mean"}
    for key in rows[0]:
        if key != "scene":
            mean[key] = sum(r[key] for r in rows) / len(rows)
    rows.append(mean)
    write_text(output_dir / "metrics.json", json.dumps(
        {"scenes": rows[:-1], "mean": mean}, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(output_dir / "metrics.csv", buffer.getvalue())
    return rows


@guarded
def main(argv):
    del argv
    from hdr_gan_tf import data as data_lib
    from hdr_gan_tf.config import branch_names, restore_generator
    from hdr_gan_tf.inference import generator_merger, saved_model_merger
    from hdr_gan_tf.synth import builtin_dataset

    if bool(FLAGS.checkpoint) == bool(FLAGS.saved_model):
        raise ValueError("give exactly one of --checkpoint and --saved_model")
    crop = [int(v) for v in FLAGS.center_crop] if FLAGS.center_crop else None
    if crop is not None and len(crop) != 2:
        raise ValueError("--center_crop takes two numbers: H,W")
    if Path(FLAGS.output_dir).exists() and any(Path(FLAGS.output_dir).iterdir()):
        check_output_free(FLAGS.output_dir, FLAGS.overwrite)
    data_dir = FLAGS.data_dir or str(builtin_dataset(say))
    scenes = data_lib.open_split(data_dir, FLAGS.split, ldr_bits=int(FLAGS.ldr_bits))
    if FLAGS.saved_model:
        if not Path(FLAGS.saved_model, "saved_model.pb").is_file():
            raise ValueError(f"{FLAGS.saved_model}: not a SavedModel (no saved_model.pb)")
        merge, branches = saved_model_merger(FLAGS.saved_model), ["aux1", "main"]
    else:
        generator, config, prefix = restore_generator(FLAGS.checkpoint, FLAGS.precision)
        branches = branch_names(generator.scales)
        merge = generator_merger(generator, branches, config.get("mu", 5000.0),
                                 FLAGS.jit_compile)
        say(f"Evaluating {prefix} on {len(scenes)} scenes of {data_dir}/{FLAGS.split}")
    rows = evaluate(merge, scenes, branches, FLAGS.output_dir, crop, FLAGS.tile, FLAGS.overlap)
    say(format_table(rows, branches))
    say(f"Wrote {FLAGS.output_dir}/metrics.json, metrics.csv and per-scene outputs")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
