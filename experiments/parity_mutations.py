"""Do the TF1 parity checks bite? Runs them on deliberately wrong trainers.

    python experiments/parity_mutations.py [--only=name,name] [--json=mutations.json]

Each variant departs from the authors' training in one way, built from the outside (a public
configuration field, a Trainer subclass, or a spectral-norm method swapped for the duration of
its run); nothing of it is left in the package. For each, the checks of `hdr_gan_tf.tf1_parity`
that `tests/test_tf1_training_parity.py` runs are run (one G update, one D update, the
trainer's own iteration, the 20-iteration trajectory) and the table says which catch it, with
the largest difference each saw. The first row is the trainer as it is, which must pass all.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from hdr_gan_tf import layers, tf1_parity  # noqa: E402
from hdr_gan_tf.training import Trainer  # noqa: E402

DATA = REPO / "tests" / "data"
MODEL = str(DATA / "tf1_golden" / "model")


def _vectors_u(network):
    return [w for w in network.weights if w.path.endswith("vector_u")]


def _keeping_u(network, update, batch):
    """`update(batch)`, then `network`'s `u` put back as they were before it."""
    kept = [tf.identity(u) for u in _vectors_u(network)]
    result = update(batch)
    for u, value in zip(_vectors_u(network), kept):
        u.assign(value)
    return result


class OnePowerIterationTrainer(Trainer):
    """Each network's `u` advances once per iteration: the update that does not train a
    network puts its `u` back (as if it ran in inference mode)."""

    def generator_gradients(self, batch):
        return _keeping_u(self.discriminator, super().generator_gradients, batch)

    def discriminator_gradients(self, batch):
        return _keeping_u(self.generator, super().discriminator_gradients, batch)


class KerasEpsilonTrainer(Trainer):
    """Adam with Keras' default ε = 1e-7 instead of TF1's 1e-8."""

    def _optimizer(self):
        optimizer = super()._optimizer()
        optimizer.epsilon = 1e-7
        return optimizer


class ScoredOneByOne:
    """The discriminator called once per image group of `size` samples, each call in its own
    power iteration: three σ (and three `u` steps) where the authors' graph had one."""

    def __init__(self, discriminator, size):
        self._discriminator, self._size = discriminator, size

    def __call__(self, images, training=False):
        groups = tf.split(images, images.shape[0] // self._size)
        return tf.concat([self._discriminator(g, training=training) for g in groups], axis=0)

    def __getattr__(self, name):
        return getattr(self._discriminator, name)


class ThreeSigmaTrainer(Trainer):
    def __init__(self, config, strategy, log=print):
        super().__init__(config, strategy, log)
        self.discriminator = ScoredOneByOne(self.discriminator, config.training.batch_size)


def _in_place_normalized_kernel(self, training=False):
    """Keras' `SpectralNormalization` in training: `W ← W/σ` written into the kernel, the
    convolution uses (and the optimizer steps on) the normalised kernel, no gradient through
    σ. Inference divides by σ as ours does, so that only training departs."""
    if not training:
        return _ORIGINAL_NORMALIZED_KERNEL(self, training=False)
    normalized = tf.stop_gradient(_ORIGINAL_NORMALIZED_KERNEL(self, training=True))
    self.kernel.assign(normalized)
    return tf.convert_to_tensor(self.kernel)


_ORIGINAL_NORMALIZED_KERNEL = layers.SpectralNorm.normalized_kernel


@contextlib.contextmanager
def _in_place_spectral_norm():
    layers.SpectralNorm.normalized_kernel = _in_place_normalized_kernel
    try:
        yield
    finally:
        layers.SpectralNorm.normalized_kernel = _ORIGINAL_NORMALIZED_KERNEL


# name: (what departs, Trainer class, configuration changes, context of the run)
VARIANTS = {
    "none": ("the trainer as it is", Trainer, {}, contextlib.nullcontext),
    "keras_sn": ("Keras' in-place spectral normalisation (no gradient through σ)", Trainer, {},
                 _in_place_spectral_norm),
    "one_power_iteration": ("one power iteration per training iteration instead of two",
                            OnePowerIterationTrainer, {}, contextlib.nullcontext),
    "north_pole": ("Sphere-GAN reference at the north pole", Trainer,
                   {"sphere_reference": "north_pole"}, contextlib.nullcontext),
    "no_clip": ("no gradient clip (`clip_value=0`)", Trainer, {"clip_value": 0.0},
                contextlib.nullcontext),
    "adam_eps_1e-7": ("Adam's ε = 1e-7 (Keras' default)", KerasEpsilonTrainer, {},
                      contextlib.nullcontext),
    "three_sigma": ("discriminator called three times in training mode (three σ)",
                    ThreeSigmaTrainer, {}, contextlib.nullcontext),
}


def _largest(failures):
    return failures[0] if failures else "passes"


def run_variant(name, golden, trajectory):
    what, trainer_class, changes, context = VARIANTS[name]
    started = time.time()
    with context(), tempfile.TemporaryDirectory() as logdir:
        config = tf1_parity.golden_run_config(logdir, **changes)
        trainer = trainer_class(config, tf.distribute.get_strategy(), log=lambda line: None)
        row = {"variant": name, "what": what}
        for run in ("g", "d"):
            failures, _ = tf1_parity.check_update(trainer, golden, run, MODEL)
            row[f"update_{run}"] = failures
        row["iteration"], _ = tf1_parity.check_iteration(trainer, golden, MODEL)
        row["trajectory"], errors = tf1_parity.check_trajectory(
            trainer, trajectory["inputs"], trajectory["losses"], MODEL)
        split = tf1_parity.TRAJECTORY_SPLIT
        row["trajectory_max"] = [float(errors[:split].max()), float(errors[split:].max())]
    row["seconds"] = round(time.time() - started, 1)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated variant names")
    parser.add_argument("--json", default="", help="also write the rows here")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(VARIANTS)
    golden = {n: dict(np.load(DATA / "tf1_train_golden" / f"{n}.npz"))
              for n in ("batches", "g_step", "d_step", "after_iter")}
    trajectory = {n: dict(np.load(DATA / "tf1_train_trajectory" / f"{n}.npz"))
                  for n in ("inputs", "losses")}
    rows = []
    print("| variant | G update | D update | one iteration | trajectory (max rel. error, "
          "1–10 / 11–20) |")
    print("| --- | --- | --- | --- | --- |")
    for name in names:
        row = run_variant(name, golden, trajectory)
        rows.append(row)
        cells = [f"{len(row[k])} failures; first: {_largest(row[k])}" if row[k] else "passes"
                 for k in ("update_g", "update_d", "iteration")]
        t1, t2 = row["trajectory_max"]
        cells.append(f"{'caught' if row['trajectory'] else 'passes'}: {t1:.2g} / {t2:.2g}")
        print(f"| {name}: {row['what']} | " + " | ".join(cells) + " |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
