"""hdr-gan-convert-tf1: turns the authors' released TF1 checkpoint into one of our log dirs.

Example:
  hdr-gan-convert-tf1 --tf1_checkpoint=HDR-GAN/pretrained/model --output_dir=checkpoints/paper

The output dir holds `config.json` (the paper's architecture) and a checkpoint with both
networks at step 0, which hdr-gan-evaluate / -infer / -export take as `--checkpoint` and
hdr-gan-train takes as `--logdir` to fine-tune (fresh optimizer state).
"""

from pathlib import Path

from absl import app, flags

from hdr_gan_tf.cli import check_output_free, guarded, say

FLAGS = flags.FLAGS
flags.DEFINE_string("tf1_checkpoint", None, "TF1 checkpoint prefix (e.g. pretrained/model).",
                    required=True)
flags.DEFINE_string("output_dir", None, "New log dir to write.", required=True)
flags.DEFINE_bool("overwrite", False, "Replace an existing output dir.")


def convert(tf1_checkpoint, output_dir, overwrite=False):
    """Converts and writes the log dir atomically; returns the checkpoint path written."""
    import tensorflow as tf

    from hdr_gan_tf import config as config_lib
    from hdr_gan_tf.image_io import atomic_directory
    from hdr_gan_tf.tf1_checkpoint import load_tf1_weights

    output_dir = Path(output_dir)
    check_output_free(output_dir, overwrite)
    config = dict(config_lib.DEFAULT_ARCHITECTURE, mu=5000.0,
                  spectral_norm=config_lib.SPECTRAL_NORM, converted_from=str(tf1_checkpoint))
    generator = config_lib.build_generator(config)
    discriminator = config_lib.build_discriminator(config)
    load_tf1_weights(tf1_checkpoint, generator, discriminator)
    with atomic_directory(output_dir, replace=overwrite) as tmp:
        config_lib.write_config(tmp, config)
        step = tf.Variable(0, dtype=tf.int64, name="step")
        ckpt = tf.train.Checkpoint(generator=generator, discriminator=discriminator, step=step)
        tf.train.CheckpointManager(ckpt, str(tmp), max_to_keep=1, checkpoint_name="ckpt").save(0)
    return tf.train.latest_checkpoint(str(output_dir))


@guarded
def main(argv):
    del argv
    path = convert(FLAGS.tf1_checkpoint, FLAGS.output_dir, FLAGS.overwrite)
    say(f"Converted {FLAGS.tf1_checkpoint} -> {path}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
