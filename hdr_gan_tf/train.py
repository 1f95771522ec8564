"""hdr-gan-train: trains HDR-GAN as the paper did (SPEC §5).

Examples:
  hdr-gan-train --flagfile=experiments/demo.flags          # short run on the built-in data
  hdr-gan-train --flagfile=experiments/paper.flags --data_dir=/data/kalantari --logdir=runs/paper
  python -m hdr_gan_tf.train --logdir=runs/x --strategy=mirrored --batch_size=4

Running again with the same --logdir resumes from its latest checkpoint (weights, optimizers,
step, learning-rate schedule and data stream). SIGINT/SIGTERM save a checkpoint and stop.
"""

import json
import sys

from absl import app, flags

from hdr_gan_tf.cli import EXIT_BAD_INPUT, quiet_logs, say
from hdr_gan_tf.trainer import DEFAULTS

FLAGS = flags.FLAGS
_D = DEFAULTS
flags.DEFINE_string("data_dir", _D["data_dir"], "Kalantari-layout data root. Default: the "
                    "built-in procedural data set, generated on first use in the cache folder.")
flags.DEFINE_string("logdir", _D["logdir"], "Log dir: config.json, checkpoints, TensorBoard.")
flags.DEFINE_integer("batch_size", _D["batch_size"], "Global batch size (split over replicas).")
flags.DEFINE_integer("patch_size", _D["patch_size"], "Training patch side in pixels.")
flags.DEFINE_integer("iterations", _D["iterations"], "Iterations (G update + D update).")
flags.DEFINE_list("lr_boundaries", [str(b) for b in _D["lr_boundaries"]],
                  "Iterations from which the next learning rate applies.")
flags.DEFINE_list("lr_values", [f"{v:g}" for v in _D["lr_values"]], "Learning rates, one more "
                  "than boundaries; the same for generator and discriminator.")
flags.DEFINE_float("gan_weight", _D["gan_weight"], "λ, weight of the adversarial term.")
flags.DEFINE_integer("sphere_moments", _D["sphere_moments"], "Sphere-GAN moments R.")
flags.DEFINE_enum("sphere_reference", _D["sphere_reference"], ["first_axis", "north_pole"],
                  "Point of the sphere the Sphere-GAN distances are measured from: first_axis "
                  "(1, 0, ..., 0), as the released code did; north_pole (0, ..., 0, 1), as the "
                  "paper's text reads.")
flags.DEFINE_float("mu", _D["mu"], "μ of the μ-law tonemapper.")
flags.DEFINE_enum("ldr_bits", str(_D["ldr_bits"]), ["8", "16"], "Bits per channel the LDRs "
                  "are read with: 16 keeps them as stored; 8 reduces 16-bit files to 8 bits "
                  "(round(v/257)) as the released code's OpenCV reads did.")
flags.DEFINE_float("clip_value", _D["clip_value"], "Element-wise gradient clipping bound.")
flags.DEFINE_integer("seed", _D["seed"], "Seed of weight initialisation and the data stream.")
flags.DEFINE_integer("checkpoint_every", _D["checkpoint_every"], "Iterations between "
                     "checkpoints.")
flags.DEFINE_integer("keep_checkpoints", _D["keep_checkpoints"], "Rolling checkpoints kept "
                     "(the best one is kept apart in best/).")
flags.DEFINE_integer("summary_every", _D["summary_every"], "Iterations between scalar "
                     "summaries and progress lines.")
flags.DEFINE_integer("image_every", _D["image_every"], "Iterations between image summaries.")
flags.DEFINE_string("validation", _D["validation"], "Validation scenes held out of Training/: "
                    "a count (spread evenly over the sorted scenes) or comma-separated scene "
                    "names; 0 for none.")
flags.DEFINE_integer("validation_every", _D["validation_every"], "Iterations between "
                     "validation runs.")
flags.DEFINE_integer("scales", _D["scales"], "Generator scales: 2, 3 (paper) or 4.")
flags.DEFINE_integer("base_filters", _D["base_filters"], "Generator channels at full "
                     "resolution.")
flags.DEFINE_bool("merging_blocks", _D["merging_blocks"], "Use the reference-based residual "
                  "merging blocks.")
flags.DEFINE_string("supervise", _D["supervise"], "Branches with an L1 loss: all, or names "
                    "(aux1,main).")
flags.DEFINE_bool("use_discriminator", _D["use_discriminator"], "Train adversarially (False: "
                  "L1 only).")
flags.DEFINE_string("disc_branches", _D["disc_branches"], "Branches the discriminator sees: "
                    "all, or names.")
flags.DEFINE_enum("strategy", _D["strategy"], ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy; multi_worker reads TF_CONFIG.")
flags.DEFINE_enum("mixed_precision", _D["mixed_precision"], ["none", "bfloat16", "float16"],
                  "Mixed precision (float16 uses dynamic loss scaling).")
flags.DEFINE_bool("jit_compile", _D["jit_compile"], "Compile the training step with XLA.")


def resolve_config():
    config = {k: getattr(FLAGS, k) for k in DEFAULTS}
    config["lr_boundaries"] = [int(b) for b in config["lr_boundaries"]]
    config["lr_values"] = [float(v) for v in config["lr_values"]]
    config["ldr_bits"] = int(config["ldr_bits"])
    if len(config["lr_values"]) != len(config["lr_boundaries"]) + 1:
        raise ValueError("--lr_values needs exactly one more value than --lr_boundaries")
    return config


def main(argv):
    del argv
    quiet_logs()
    from hdr_gan_tf.trainer import TrainingDiverged, run_training

    try:
        trainer, status = run_training(resolve_config(), log=say)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_INPUT)
    step = int(trainer.step.numpy())
    say(f"Training {status} at step {step}; log dir {trainer.logdir}")
    say(json.dumps({"final_step": step, "status": status}))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
