"""hdr-gan-train: trains HDR-GAN as the paper did (SPEC §5).

Examples:
  hdr-gan-train --flagfile=experiments/demo.flags          # short run on the built-in data
  hdr-gan-train --flagfile=experiments/paper.flags --data_dir=/data/kalantari --logdir=runs/paper
  python -m hdr_gan_tf.cli.train --logdir=runs/x --strategy=mirrored --batch_size=4

Running again with the same --logdir resumes from its latest checkpoint (weights, optimizers,
step, learning-rate schedule and data stream). SIGINT/SIGTERM save a checkpoint and stop. A
NaN or Inf loss or weight stops training with exit status 1 (bad input: 2). Under
--strategy=multi_worker with a TF_CONFIG cluster, SIGTERM on any worker (a preemption notice)
makes every worker save a checkpoint at one agreed step and exit with status 42, for the
cluster to restart them.
"""

import json

from absl import flags

from hdr_gan_tf.cli.common import (Terminated, define_max_pixels_flag, error, guarded,
                                   run_program, say)

FLAGS = flags.FLAGS
# Exit status of a preempted multi-worker run (TensorFlow's restart code on such platforms).
EXIT_PREEMPTED = 42


def define_flags():
    """Every field of `hdr_gan_tf.config.ModelConfig` and `TrainingConfig` as a flag, with the
    dataclasses' defaults (the paper's configuration)."""
    from hdr_gan_tf.config import (MIXED_PRECISIONS, STRATEGIES, SPHERE_REFERENCES,
                                   ModelConfig, TrainingConfig)
    from hdr_gan_tf.data import CACHE_MODES

    m, t = ModelConfig(), TrainingConfig()
    flags.DEFINE_string("data_dir", t.data_dir, "Kalantari-layout data root. Default: the "
                        "built-in procedural data set, generated on first use in the cache "
                        "folder.")
    flags.DEFINE_string("logdir", t.logdir, "Log dir: config.json, checkpoints, TensorBoard.")
    flags.DEFINE_integer("batch_size", t.batch_size, "Global batch size (split over replicas).")
    flags.DEFINE_integer("patch_size", t.patch_size, "Training patch side in pixels.")
    flags.DEFINE_integer("iterations", t.iterations, "Iterations (G update + D update).")
    flags.DEFINE_list("lr_boundaries", [str(b) for b in t.lr_boundaries],
                      "Iterations from which the next learning rate applies.")
    flags.DEFINE_list("lr_values", [f"{v:g}" for v in t.lr_values], "Learning rates, one more "
                      "than boundaries; the same for generator and discriminator.")
    flags.DEFINE_float("gan_weight", t.gan_weight, "λ, weight of the adversarial term.")
    flags.DEFINE_integer("sphere_moments", t.sphere_moments, "Sphere-GAN moments R.")
    flags.DEFINE_enum("sphere_reference", t.sphere_reference, list(SPHERE_REFERENCES),
                      "Point of the sphere the Sphere-GAN distances are measured from: "
                      "first_axis (1, 0, ..., 0), as the released code did; north_pole "
                      "(0, ..., 0, 1), as the paper's text reads.")
    flags.DEFINE_float("mu", m.mu, "μ of the μ-law tonemapper.")
    flags.DEFINE_enum("ldr_bits", str(t.ldr_bits), ["8", "16"], "Bits per channel the LDRs "
                      "are read with: 16 keeps them as stored; 8 reduces 16-bit files to 8 bits "
                      "(round(v/257)) as the released code's OpenCV reads did.")
    define_max_pixels_flag()  # TrainingConfig.max_pixels is image_io.MAX_PIXELS too
    flags.DEFINE_enum("cache", t.cache, list(CACHE_MODES), "Where the decoded training scenes "
                      "are kept: memory; disk (decoded once into --cache_dir, patches read from "
                      "there with bounded memory; later runs reuse it); auto: disk when the "
                      "image headers announce more than half the available memory.")
    flags.DEFINE_string("cache_dir", t.cache_dir, "Folder of the disk cache (default: "
                        "data_cache/ in the log dir).")
    flags.DEFINE_float("clip_value", t.clip_value, "Element-wise gradient clipping bound.")
    flags.DEFINE_integer("seed", t.seed, "Seed of weight initialisation and the data stream.")
    flags.DEFINE_integer("checkpoint_every", t.checkpoint_every, "Iterations between "
                         "checkpoints.")
    flags.DEFINE_integer("keep_checkpoints", t.keep_checkpoints, "Rolling checkpoints kept "
                         "(the best one is kept apart in best/).")
    flags.DEFINE_integer("summary_every", t.summary_every, "Iterations between scalar "
                         "summaries and progress lines (each value is averaged over them).")
    flags.DEFINE_integer("image_every", t.image_every, "Iterations between image summaries.")
    flags.DEFINE_string("validation", t.validation, "Validation scenes held out of Training/: "
                        "a count (spread evenly over the sorted scenes) or comma-separated "
                        "scene names; 0 for none.")
    flags.DEFINE_integer("validation_every", t.validation_every, "Iterations between "
                         "validation runs.")
    flags.DEFINE_integer("scales", m.scales, "Generator scales: 2, 3 (paper) or 4.")
    flags.DEFINE_integer("base_filters", m.base_filters, "Generator channels at full "
                         "resolution.")
    flags.DEFINE_bool("merging_blocks", m.merging_blocks, "Use the reference-based residual "
                      "merging blocks.")
    flags.DEFINE_string("supervise", t.supervise, "Branches with an L1 loss: all, or names "
                        "(aux1,main).")
    flags.DEFINE_bool("use_discriminator", m.use_discriminator, "Train adversarially (False: "
                      "L1 only).")
    flags.DEFINE_string("disc_branches", t.disc_branches, "Branches the discriminator sees: "
                        "all, or names.")
    flags.DEFINE_enum("strategy", t.strategy, list(STRATEGIES),
                      "tf.distribute strategy: default (one device), mirrored (all GPUs of this "
                      "host), multi_worker (the hosts of TF_CONFIG; run the same command on "
                      "each).")
    flags.DEFINE_integer("collective_timeout", t.collective_timeout, "multi_worker: seconds a "
                         "worker waits for the others in a collective operation before it "
                         "gives up with an error (a lost worker stops the rest).")
    flags.DEFINE_enum("mixed_precision", t.mixed_precision, list(MIXED_PRECISIONS),
                      "Mixed precision (float16 uses dynamic loss scaling).")
    flags.DEFINE_bool("jit_compile", t.jit_compile, "Compile the training step with XLA.")
    flags.DEFINE_bool("restart", t.restart, "Train from step 0 in a log dir that holds "
                      "checkpoints: they are moved into a before_restart_<time>/ folder of the "
                      "log dir, not deleted. Without it a run resumes, and a log dir whose "
                      "checkpoints are all unreadable is refused.")


def resolve_config():
    """The `RunConfig` the parsed flags describe (ConfigError names a bad value)."""
    from hdr_gan_tf.config import ConfigError, RunConfig

    values = {name: FLAGS[name].value for name in RunConfig().flat()}
    try:
        values["lr_boundaries"] = tuple(int(b) for b in values["lr_boundaries"])
        values["lr_values"] = tuple(float(v) for v in values["lr_values"])
    except ValueError as err:
        raise ConfigError(f"--lr_boundaries/--lr_values: {err}") from None
    values["ldr_bits"] = int(values["ldr_bits"])
    return RunConfig.from_flat(values)


@guarded
def main(argv):
    """Bad input and TensorFlow errors end as `guarded` ends them; what is particular to
    training is handled here."""
    del argv
    from hdr_gan_tf.training import TrainingDiverged, run_training

    import tensorflow as tf

    config = resolve_config_or_exit()
    try:
        trainer, status = run_training(config, log=say)
    except TrainingDiverged as err:
        error(err, status=1)
    except tf.errors.OpError as err:
        if config.training.strategy != "multi_worker":
            raise
        detail = str(err).strip().splitlines()[0][:300]
        error(f"lost contact with another worker of the cluster (TF_CONFIG), or it failed; the "
              f"last checkpoint in {config.training.logdir} is intact and a restart of every "
              f"worker resumes from it ({type(err).__name__}: {detail})")
    except KeyboardInterrupt:
        error("interrupted before training started (no checkpoint was written)")
    except Terminated:
        error("stopped by SIGTERM before training started (no checkpoint was written)",
              128 + 15)
    step = int(trainer.step.numpy())
    say(f"Training {status} at step {step}; log dir {trainer.logdir}")
    say(json.dumps({"final_step": step, "status": status,
                    "weights_sha256": trainer.weights_digest()}))
    if status == "preempted":
        raise SystemExit(EXIT_PREEMPTED)


def resolve_config_or_exit():
    """`resolve_config`, or one `error: --flag: ...` line and exit status 2."""
    from hdr_gan_tf.config import RunConfig

    try:
        return resolve_config()
    except ValueError as err:
        message = str(err)
        if message.split(":", 1)[0] in RunConfig().flat():  # a field is the flag of its name
            message = "--" + message
        error(message)


def run():
    run_program(define_flags, main)


if __name__ == "__main__":
    run()
