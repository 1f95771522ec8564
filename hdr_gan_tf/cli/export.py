"""hdr-gan-export: writes a SavedModel for serving (and optionally a .keras file).

Example:
  hdr-gan-export --checkpoint=runs/paper --output_dir=export/hdr_gan [--onnx=export/hdr_gan.onnx]

The `serving_default` signature takes `ldr_short`, `ldr_mid`, `ldr_long` (float32
`[B, H, W, 3]` in [0, 1], any H and W) and `exposure_bias` (float32 `[B, 3]`, EV) and returns
`hdr` (linear), `tonemapped` (μ-law) and `hdr_aux` (see `hdr_gan_tf.serving.ServingModule`).
"""

from absl import flags

from hdr_gan_tf.cli.common import (define_checkpoint_flag, define_overwrite_flag,
                                   define_precision_flag, guarded, run_program, say)

FLAGS = flags.FLAGS


def define_flags():
    define_checkpoint_flag()
    flags.DEFINE_string("output_dir", None, "SavedModel folder to write.", required=True)
    define_precision_flag()
    flags.DEFINE_string("keras_file", None, "Also write the generator as this .keras file.")
    flags.DEFINE_string("onnx", None, "Also write the serving model as this .onnx file (same "
                        "inputs and outputs as the SavedModel; for onnxruntime and other ONNX "
                        "runtimes).")
    define_overwrite_flag()


@guarded
def main(argv):
    del argv
    from hdr_gan_tf.serving import export_saved_model

    prefix = export_saved_model(FLAGS.checkpoint, FLAGS.output_dir, FLAGS.precision,
                                FLAGS.keras_file, FLAGS.overwrite, FLAGS.onnx)
    extra = [path for path in (FLAGS.keras_file, FLAGS.onnx) if path]
    say(f"Exported {prefix} -> {FLAGS.output_dir}" + "".join(f" and {p}" for p in extra))


def run(argv=None):
    """The program: from its console script, or (`argv`, the arguments after the program's
    name) in this process, returning the exit status."""
    return run_program(define_flags, main, argv)


if __name__ == "__main__":
    run()
