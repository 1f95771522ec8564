"""hdr-gan-train: trains HDR-GAN as the paper did (docs/design.md §5).

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

from hdr_gan_tf.cli.common import (Terminated, define_setting_flags, error, guarded, run_program,
                                   say)

FLAGS = flags.FLAGS
# Exit status of a preempted multi-worker run (TensorFlow's restart code on such platforms).
EXIT_PREEMPTED = 42


def define_flags():
    """One flag per field of `ModelConfig` and `TrainingConfig`, generated from the fields'
    declarations (type, default, help, choices): the flags cannot drift from the schema, which
    also validates them (`resolve_config`)."""
    from hdr_gan_tf.config import ModelConfig, TrainingConfig

    for part in (ModelConfig, TrainingConfig):
        define_setting_flags(part)


def resolve_config():
    """The `RunConfig` the parsed flags describe (ConfigError names the field at fault)."""
    import typing

    from hdr_gan_tf.config import ConfigError, RunConfig, TrainingConfig

    hints = typing.get_type_hints(TrainingConfig)
    values = {name: FLAGS[name].value for name in RunConfig().flat()}
    for name in ("lr_boundaries", "lr_values"):
        item = typing.get_args(hints[name])[0]
        try:
            values[name] = tuple(item(v) for v in values[name])
        except ValueError:
            raise ConfigError(f"must be a comma-separated list of {item.__name__} values, got "
                              f"{','.join(values[name])}", field=name) from None
    return RunConfig.from_flat(values)


@guarded
def main(argv):
    """Bad input and TensorFlow errors end as `guarded` ends them; what is particular to
    training is handled here."""
    del argv
    from hdr_gan_tf.training import TrainingDiverged, run_training

    import tensorflow as tf

    config = resolve_config()
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


def run(argv=None):
    """The program: from its console script, or (`argv`, the arguments after the program's
    name) in this process, returning the exit status."""
    return run_program(define_flags, main, argv)


if __name__ == "__main__":
    run()
