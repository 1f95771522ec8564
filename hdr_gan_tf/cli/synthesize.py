"""hdr-gan-synth: writes a procedural data set in the Kalantari layout (or the authors' or
NTIRE's).

Example:
  hdr-gan-synth --output_dir=data/synthetic --num_train=10 --num_test=3 --height=384 --width=512
"""

from absl import flags

from hdr_gan_tf.cli.common import guarded, run_program, say

FLAGS = flags.FLAGS


def define_flags():
    from hdr_gan_tf.synthetic import DEFAULT_SET

    flags.DEFINE_string("output_dir", None, "New folder to write (its two split folders).",
                        required=True)
    flags.DEFINE_integer("num_train", DEFAULT_SET["num_train"], "Training scenes.")
    flags.DEFINE_integer("num_test", DEFAULT_SET["num_test"], "Test scenes.")
    flags.DEFINE_integer("height", DEFAULT_SET["height"], "Image height (even).")
    flags.DEFINE_integer("width", DEFAULT_SET["width"], "Image width (even).")
    flags.DEFINE_integer("seed", DEFAULT_SET["seed"], "Random seed; the same seed gives the same "
                         "set.")
    flags.DEFINE_enum("bit_depth", "16", ["8", "16"], "Bits per sample of the LDR TIFFs (NTIRE's "
                      "PNGs have 8).")
    from hdr_gan_tf.layouts import LAYOUTS

    flags.DEFINE_enum("layout", "kalantari", list(LAYOUTS), "; ".join(
        f"{layout.name}: {layout.summary}" for layout in LAYOUTS.values()) + ".")

@guarded
def main(argv):
    del argv
    from hdr_gan_tf.synthetic import synthesize_dataset

    out = synthesize_dataset(
        FLAGS.output_dir, FLAGS.num_train, FLAGS.num_test, FLAGS.height, FLAGS.width, FLAGS.seed,
        int(FLAGS.bit_depth), progress=lambda i, n: say(f"scene {i}/{n}"), layout=FLAGS.layout)
    say(f"Wrote {FLAGS.num_train} training and {FLAGS.num_test} test scenes to {out}")


def run(argv=None):
    """The program: from its console script, or (`argv`, the arguments after the program's
    name) in this process, returning the exit status."""
    return run_program(define_flags, main, argv)


if __name__ == "__main__":
    run()
