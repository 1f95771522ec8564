"""hdr-gan-export: writes a SavedModel for serving (and optionally a .keras file).

Example:
  hdr-gan-export --checkpoint=runs/paper --output_dir=export/hdr_gan

The `serving_default` signature takes `ldr_short`, `ldr_mid`, `ldr_long` (float32
`[B, H, W, 3]` in [0, 1], any H and W) and `exposure_bias` (float32 `[B, 3]`, EV) and returns
`hdr` (linear), `tonemapped` (μ-law) and `hdr_aux` (see `hdr_gan_tf.inference.ServingModule`).
"""

from pathlib import Path

from absl import app, flags

from hdr_gan_tf.cli import check_output_free, guarded, say

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Training log dir (latest checkpoint) or checkpoint path.",
                    required=True)
flags.DEFINE_string("output_dir", None, "SavedModel folder to write.", required=True)
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute precision.")
flags.DEFINE_string("keras_file", None, "Also write the generator as this .keras file.")
flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")


def export(checkpoint, output_dir, precision="float32", keras_file=None, overwrite=False):
    import tensorflow as tf

    from hdr_gan_tf.config import restore_generator
    from hdr_gan_tf.image_io import atomic_directory, atomic_output
    from hdr_gan_tf.inference import ServingModule

    output_dir = Path(output_dir)
    check_output_free(output_dir, overwrite)
    if keras_file:
        if not str(keras_file).endswith(".keras"):
            raise ValueError(f"{keras_file}: the Keras file name must end in .keras")
        check_output_free(keras_file, overwrite)
    generator, config, prefix = restore_generator(checkpoint, precision)
    module = ServingModule(generator, config.get("mu", 5000.0))
    with atomic_directory(output_dir, replace=overwrite) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
    if keras_file:
        with atomic_output(keras_file) as path:
            generator.save(str(path))
    return prefix


@guarded
def main(argv):
    del argv
    prefix = export(FLAGS.checkpoint, FLAGS.output_dir, FLAGS.precision, FLAGS.keras_file,
                    FLAGS.overwrite)
    say(f"Exported {prefix} -> {FLAGS.output_dir}"
        + (f" and {FLAGS.keras_file}" if FLAGS.keras_file else ""))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
