"""hdr-gan-convert-tf1: turns the authors' released TF1 checkpoint into one of our log dirs.

Example:
  hdr-gan-convert-tf1 --tf1_checkpoint=HDR-GAN/pretrained/model --output_dir=checkpoints/paper

The output dir holds `config.json` (the paper's architecture) and a checkpoint with both
networks at step 0, which hdr-gan-evaluate / -infer / -export take as `--checkpoint` and
hdr-gan-train takes as `--logdir` to fine-tune (fresh optimizer state).
"""

from absl import flags

from hdr_gan_tf.cli.common import define_overwrite_flag, guarded, run_program, say

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("tf1_checkpoint", None, "TF1 checkpoint prefix (e.g. pretrained/model).",
                        required=True)
    flags.DEFINE_string("output_dir", None, "New log dir to write.", required=True)
    define_overwrite_flag("Replace an existing output dir.")


@guarded
def main(argv):
    del argv
    from hdr_gan_tf.tf1_checkpoint import convert_to_logdir

    path = convert_to_logdir(FLAGS.tf1_checkpoint, FLAGS.output_dir, FLAGS.overwrite)
    say(f"Converted {FLAGS.tf1_checkpoint} -> {path}")


def run(argv=None):
    """The program: from its console script, or (`argv`, the arguments after the program's
    name) in this process, returning the exit status."""
    return run_program(define_flags, main, argv)


if __name__ == "__main__":
    run()
