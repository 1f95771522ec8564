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
from pathlib import Path

from absl import app, flags

from hdr_gan_tf.cli import EXIT_BAD_INPUT, quiet_logs

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Kalantari-layout data root. Default: the built-in "
                    "procedural data set, generated on first use in the cache folder.")
flags.DEFINE_string("logdir", "runs/hdr_gan", "Log dir: config.json, checkpoints, TensorBoard.")
flags.DEFINE_integer("batch_size", 2, "Global batch size (split over replicas).")
flags.DEFINE_integer("patch_size", 256, "Training patch side in pixels.")
flags.DEFINE_integer("iterations", 1_215_000, "Training iterations (G update + D update).")
flags.DEFINE_list("lr_boundaries", ["114300", "706400"], "Iterations where the rate drops.")
flags.DEFINE_list("lr_values", ["1e-4", "1e-5", "1e-6"], "Learning rates, one more than "
                  "boundaries; the same for generator and discriminator.")
flags.DEFINE_float("gan_weight", 1.0, "λ, weight of the adversarial term.")
flags.DEFINE_integer("sphere_moments", 3, "Sphere-GAN moments R.")
flags.DEFINE_float("mu", 5000.0, "μ of the μ-law tonemapper.")
flags.DEFINE_float("clip_value", 1.0, "Element-wise gradient clipping bound.")
flags.DEFINE_integer("seed", 0, "Seed of weight initialisation and the data stream.")
flags.DEFINE_integer("checkpoint_every", 5000, "Iterations between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", 3, "Rolling checkpoints kept (the best is kept apart).")
flags.DEFINE_integer("summary_every", 100, "Iterations between scalar summaries/progress lines.")
flags.DEFINE_integer("image_every", 5000, "Iterations between image summaries.")
flags.DEFINE_string("validation", "2", "Validation scenes held out of Training/: a count "
                    "(spread evenly over the sorted scenes) or comma-separated scene names; 0 "
                    "for none.")
flags.DEFINE_integer("validation_every", 10000, "Iterations between validation runs.")
flags.DEFINE_integer("scales", 3, "Generator scales: 2, 3 (paper) or 4.")
flags.DEFINE_integer("base_filters", 32, "Generator channels at full resolution.")
flags.DEFINE_bool("merging_blocks", True, "Use the reference-based residual merging blocks.")
flags.DEFINE_string("supervise", "all", "Branches with an L1 loss: all, or names (aux1,main).")
flags.DEFINE_bool("use_discriminator", True, "Train adversarially (False: L1 only).")
flags.DEFINE_string("disc_branches", "all", "Branches the discriminator sees: all, or names.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy; multi_worker reads TF_CONFIG.")
flags.DEFINE_enum("mixed_precision", "none", ["none", "bfloat16", "float16"],
                  "Mixed precision (float16 uses dynamic loss scaling).")
flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.")

CONFIG_KEYS = ("data_dir", "logdir", "batch_size", "patch_size", "iterations", "lr_boundaries",
               "lr_values", "gan_weight", "sphere_moments", "mu", "clip_value", "seed",
               "checkpoint_every", "keep_checkpoints", "summary_every", "image_every",
               "validation", "validation_every", "scales", "base_filters", "merging_blocks",
               "supervise", "use_discriminator", "disc_branches", "strategy", "mixed_precision",
               "jit_compile")


def resolve_config():
    config = {k: getattr(FLAGS, k) for k in CONFIG_KEYS}
    config["lr_boundaries"] = [int(b) for b in config["lr_boundaries"]]
    config["lr_values"] = [float(v) for v in config["lr_values"]]
    if len(config["lr_values"]) != len(config["lr_boundaries"]) + 1:
        raise ValueError("--lr_values needs exactly one more value than --lr_boundaries")
    return config


def main(argv):
    del argv
    import keras

    from hdr_gan_tf import config as config_lib
    from hdr_gan_tf import data as data_lib
    from hdr_gan_tf.synth import builtin_dataset
    from hdr_gan_tf.trainer import Trainer, TrainingDiverged, make_strategy

    quiet_logs()

    def log(line):
        print(line, flush=True)

    try:
        config = resolve_config()
        strategy = make_strategy(config["strategy"])
        config_lib.set_precision("float32" if config["mixed_precision"] == "none"
                                 else config["mixed_precision"])
        keras.utils.set_random_seed(config["seed"])
        logdir = Path(config["logdir"])
        if (logdir / config_lib.CONFIG_FILE).is_file():
            old = config_lib.read_config(logdir)
            if config_lib.architecture(old) != config_lib.architecture(config):
                raise config_lib.ConfigError(
                    f"{logdir} holds a run with architecture {config_lib.architecture(old)}; "
                    f"these flags ask for {config_lib.architecture(config)}. Use another --logdir.")
        config["data_dir"] = config["data_dir"] or str(builtin_dataset(log))
        validation = config["validation"].strip()
        validation = int(validation) if validation.isdigit() else [
            v.strip() for v in validation.split(",") if v.strip()]
        scenes = data_lib.open_split(config["data_dir"], data_lib.TRAIN_SPLIT,
                                     min_size=config["patch_size"])
        train_scenes, val_scenes = data_lib.split_validation(scenes, validation)
        log(f"Data: {len(train_scenes)} training and {len(val_scenes)} validation scenes from "
            f"{config['data_dir']}; {strategy.num_replicas_in_sync} replica(s)")
        trainer = Trainer(config, strategy, log=log)
        logdir.mkdir(parents=True, exist_ok=True)
        config_lib.write_config(logdir, config)
        trainer.restore()
        status = trainer.fit(train_scenes, val_scenes)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_INPUT)
    log(f"Training {status} at step {int(trainer.step.numpy())}; log dir {logdir}")
    log(json.dumps({"final_step": int(trainer.step.numpy()), "status": status}))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
