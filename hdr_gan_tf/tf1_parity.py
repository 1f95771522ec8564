"""Checks of a `Trainer` against what the authors' TF1 training graph computed.

Two references, both made by running the released TF1 training code unchanged (see the README
of each folder under `tests/data/`):
- `tf1_train_golden/`: one iteration from the released weights on two fixed batches: every
  loss, output, discriminator map, gradient, spectral-norm vector `u` and updated weight;
- `tf1_train_trajectory/`: the losses of 20 iterations, with the network inputs of every batch,
  and the same 20 iterations of the authors' graph run again with one CPU thread.

A few pre-activations of the golden's batches sit on a kink (a ReLU at 0, a tie), where float32
rounding decides the side, and the side taken moves some gradient tensors by up to 2% of their
largest element while no loss changes. Which side a machine's kernels land on is not a property
of the implementation, so tensors are compared as computed and, where that fails, again under a
few fixed float-noise perturbations of the step's inputs (Gaussian, σ = `NOISE`, about one
float32 unit in the last place): a tensor agrees when one of these runs agrees. A departure in
what is computed moves a tensor by far more than any perturbation can bring back.

Every check returns a list of failures (empty: it agrees) and a report; the tests assert the
former, and `experiments/parity_mutations.py` runs the same checks on deliberately wrong
trainers to show that each departure is caught.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from hdr_gan_tf.config import RunConfig
from hdr_gan_tf.tf1_checkpoint import (discriminator_layer_map, generator_layer_map,
                                       keras_variable, load_tf1_weights)

# The references' configuration (their READMEs): the released run's, on 64x64 patches.
GOLDEN_CONFIG = {"patch_size": 64, "batch_size": 2, "gan_weight": 1.0, "sphere_moments": 3,
                 "sphere_reference": "first_axis", "lr_values": (1e-4, 1e-5, 1e-6),
                 "clip_value": 1.0, "scales": 3, "base_filters": 32, "merging_blocks": True,
                 "supervise": "all", "disc_branches": "all", "use_discriminator": True,
                 "mu": 5000.0}
# Loss names of the references -> ours (index 0 is the auxiliary branch, 1 the main one).
G_RUN_LOSSES = {"l1/0": "l_g_pix/aux1", "l1/1": "l_g_pix/main", "g_loss/0": "l_g_gan/aux1",
                "g_loss/1": "l_g_gan/main", "total": "l_g_total"}
D_RUN_LOSSES = {"distance_real/0": "l_d_real", "distance_real/1": "l_d_real",
                "distance_fake/0": "l_d_fake/aux1", "distance_fake/1": "l_d_fake/main",
                "d_loss": "l_d_total"}
TRAJECTORY_LOSSES = dict({f"g/{k}": v for k, v in G_RUN_LOSSES.items()},
                         **{f"d/{k}": v for k, v in D_RUN_LOSSES.items()})

# Standard deviation of the float-noise perturbations, and how many at most: one kink is on
# either side in about half of them, so 16 miss it with probability 2^-16.
NOISE = 1e-7
MAX_PERTURBATIONS = 16
# Perturbations run even when every tensor agreed as computed, to report the noise's spread.
MIN_PERTURBATIONS = 2
# Tolerances of the golden's README: losses relative to max(1, |loss|), outputs and maps, `u`
# and weights after the iteration absolute, gradients relative to the tensor's largest element.
LOSS_TOLERANCE = 1e-5
MAP_TOLERANCE = 2e-6
U_TOLERANCE = 1e-6
WEIGHT_TOLERANCE = 1e-6
GRADIENT_TOLERANCE = 1e-4
# Adam's first step is about lr·sign(g): weights are compared where |g| is clear of float noise.
CLEAR_GRADIENT = 1e-5
# Trajectory: relative loss error allowed up to and after `TRAJECTORY_SPLIT` iterations; the
# authors' graph against itself with one thread differs by 3.8e-6 and 5.2e-4 (its README).
TRAJECTORY_SPLIT = 10
TRAJECTORY_TOLERANCES = (1e-4, 1e-2)


def golden_run_config(logdir, **changes):
    """The references' `RunConfig`, with `changes` to its flat fields."""
    return RunConfig.from_flat(dict(GOLDEN_CONFIG, logdir=str(logdir), **changes))


def tf1_variables(trainer):
    """`{TF1 name: Keras variable}` of both networks of a trainer."""
    entries = dict(generator_layer_map(trainer.generator))
    entries.update(discriminator_layer_map(trainer.discriminator))
    return {name: keras_variable(*entry) for name, entry in entries.items()}


def start_from(trainer, model_prefix, variables=None):
    """Resets a trainer to a fresh run from the TF1 checkpoint `model_prefix`: those weights
    and `u`, zero optimizer state, step 0; then assigns `variables` (`{TF1 name: array}`)."""
    load_tf1_weights(model_prefix, trainer.generator, trainer.discriminator)
    for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
        for variable in optimizer.variables:
            variable.assign(tf.zeros_like(variable))
    trainer.step.assign(0)
    by_name = tf1_variables(trainer)
    for name, value in (variables or {}).items():
        by_name[name].assign(value)


def batch_from(arrays, prefix, index=None):
    """`((x_short, x_ref, x_long), target_tm)` of a reference's batch `prefix` (`g` or `d`),
    optionally item `index` of a stacked trajectory."""
    def get(key):
        value = arrays[f"{prefix}/{key}"]
        return tf.constant(value if index is None else value[index])
    return tuple(get(f"x_{k}") for k in ("short", "ref", "long")), get("target_tm")


def perturbed(batch, seed):
    """The batch with Gaussian noise of standard deviation `NOISE` added to every tensor
    (`seed` 0: the batch itself)."""
    if seed == 0:
        return batch
    rng = np.random.default_rng(seed)
    noisy = [t + rng.normal(0, NOISE, t.shape).astype(np.float32)
             for t in tf.nest.flatten(batch)]
    return tf.nest.pack_sequence_as(batch, noisy)


@dataclasses.dataclass
class Agreement:
    """How one tensor compares with the reference.

    `error` as computed, `best` over every run, `seed` of the first run within `tolerance`
    (0: as computed; None: none), `spread`: the largest change the perturbations made to our
    own tensor, in the same units as `error`.
    """
    name: str
    error: float
    best: float
    seed: object
    spread: float
    tolerance: float

    @property
    def agrees(self):
        return self.seed is not None


def agreement(compute, expected, error, tolerance):
    """Compares the tensors `compute(seed)` returns with `expected` (`{name: array}`).

    Runs seed 0 (unperturbed), then perturbations 1, 2, ... until every tensor has agreed (and
    at least `MIN_PERTURBATIONS` ran) or `MAX_PERTURBATIONS` did. `error(name, ours, theirs)`
    measures a difference; `tolerance(name)` bounds it. Returns `{name: Agreement}`.
    """
    first = compute(0)
    rows = {name: Agreement(name, e, e, 0 if e <= tolerance(name) else None, 0.0,
                            tolerance(name))
            for name, e in ((n, error(n, first[n], expected[n])) for n in first)}
    for seed in range(1, MAX_PERTURBATIONS + 1):
        if seed > MIN_PERTURBATIONS and all(r.agrees for r in rows.values()):
            break
        tensors = compute(seed)
        for name, row in rows.items():
            e = error(name, tensors[name], expected[name])
            row.best = min(row.best, e)
            row.spread = max(row.spread, error(name, tensors[name], first[name]))
            if row.seed is None and e <= row.tolerance:
                row.seed = seed
    return rows


def relative_error(ours, theirs):
    """Largest difference relative to the reference tensor's largest element."""
    scale = float(np.abs(theirs).max())
    return float(np.abs(ours - theirs).max()) / (scale if scale > 0 else 1.0)


def failures_of(rows, what):
    """One failure line per tensor that agreed in no run."""
    return [f"{what} {r.name}: {r.best:.3g} at best over {MAX_PERTURBATIONS + 1} runs "
            f"(tolerance {r.tolerance:.0e}, as computed {r.error:.3g})"
            for r in rows.values() if not r.agrees]


def report_of(rows, what):
    """Lines for the tensors that needed a perturbation, and the noise's spread."""
    needed = [r for r in rows.values() if r.agrees and r.seed != 0]
    lines = [f"{what}: {len(rows) - len(needed)} of {len(rows)} agree as computed; largest "
             f"spread under float noise {max(r.spread for r in rows.values()):.2g}"]
    lines += [f"  {r.name}: {r.error:.2g} as computed, {r.best:.2g} with perturbation "
              f"{r.seed} (spread {r.spread:.2g})" for r in needed]
    return lines


def loss_failures(parts, expected, names):
    """Losses further from the reference than `LOSS_TOLERANCE` relative to max(1, |loss|)."""
    failures = []
    for theirs, ours in names.items():
        gold = float(expected[f"loss/{theirs}"])
        if not abs(float(parts[ours]) - gold) <= LOSS_TOLERANCE * max(1.0, abs(gold)):
            failures.append(f"loss {theirs}: {float(parts[ours]):.8g}, reference {gold:.8g}")
    return failures


def check_update(trainer, golden, run, model_prefix):
    """One update (`run` "g" or "d") against `tf1_train_golden`.

    The G run starts from the released weights; the D run from the golden's state after the G
    run (the G weights the iteration ends with, every `u` as the G run left it). Compares the
    outputs and discriminator maps of the state the run starts in, every loss, every gradient
    of the updated network and every `u` of both networks after the run.

    Args:
      golden: `{"batches", "g_step", "d_step", "after_iter"}`, each the dict of its `.npz`.
    Returns `(failures, report)`.
    """
    gold = golden[f"{run}_step"]
    names = tf1_variables(trainer)
    state = {}
    if run == "d":
        state = {n: golden["g_step"][f"u/{n}"] for n in names if n.endswith("/u")}
        state.update({n: golden["after_iter"][n] for n in names
                      if n.startswith("UnetppGeneratorS/") and not n.endswith("/u")})
    update, network, losses = {
        "g": (trainer.generator_gradients, trainer.generator, G_RUN_LOSSES),
        "d": (trainer.discriminator_gradients, trainer.discriminator, D_RUN_LOSSES)}[run]
    batch = batch_from(golden["batches"], run)
    by_id = {id(v): n for n, v in names.items()}
    failures = []

    def compute(seed):
        start_from(trainer, model_prefix, state)
        if seed == 0:
            failures.extend(_output_failures(trainer, batch, gold))
        gradients, parts = update(perturbed(batch, seed))
        if seed == 0:
            failures.extend(loss_failures(parts, gold, losses))
        tensors = {f"grad/{by_id[id(v)]}": g.numpy()
                   for v, g in zip(network.trainable_variables, gradients)}
        tensors.update({f"u/{n}": v.numpy() for n, v in names.items() if n.endswith("/u")})
        return tensors

    def error(name, ours, theirs):
        return relative_error(ours, theirs) if name.startswith("grad/") else float(
            np.abs(ours - theirs).max())

    rows = agreement(compute, gold, error,
                     lambda n: GRADIENT_TOLERANCE if n.startswith("grad/") else U_TOLERANCE)
    if len([n for n in rows if n.startswith("grad/")]) != len(network.trainable_variables):
        failures.append("not every trainable variable has a reference gradient")
    failures += failures_of(rows, "")
    return failures, report_of({n: r for n, r in rows.items() if n.startswith("grad/")},
                               f"{run} run gradients")


def _output_failures(trainer, batch, gold):
    inputs, target = batch
    outputs = trainer.generator(list(inputs), training=False)
    maps = tf.split(trainer.discriminator(tf.concat([target] + outputs, axis=0),
                                          training=False), 3)
    tensors = {f"out/out_{k}": y for k, y in enumerate(outputs, start=1)}
    tensors.update({f"dmap/{n}": m for n, m in zip(("real", "fake_1", "fake_2"), maps)})
    return [f"{name}: {e:.3g} (tolerance {MAP_TOLERANCE:.0e})"
            for name, e in ((n, float(np.abs(t.numpy() - gold[n]).max()))
                            for n, t in tensors.items()) if not e <= MAP_TOLERANCE]


def check_iteration(trainer, golden, model_prefix):
    """The trainer's own step (the traced, distributed one) from the released weights against
    the golden iteration: its losses, then every `u` and weight after it (weights where the
    golden's gradient is clear of float noise). Returns `(failures, report)`."""
    names = tf1_variables(trainer)
    gradients = dict(golden["g_step"], **golden["d_step"])
    clear = {n: np.abs(gradients[f"grad/{n}"]) > CLEAR_GRADIENT
             for n in names if not n.endswith("/u")}
    failures = []

    def compute(seed):
        start_from(trainer, model_prefix)
        logs = trainer.train_step(perturbed(batch_from(golden["batches"], "g"), seed),
                                  perturbed(batch_from(golden["batches"], "d"), seed))
        if seed == 0:
            failures.extend(loss_failures(logs, golden["g_step"], G_RUN_LOSSES))
            failures.extend(loss_failures(logs, golden["d_step"], D_RUN_LOSSES))
            if int(trainer.step.numpy()) != 1:
                failures.append(f"step counter {int(trainer.step.numpy())} after one step")
        return {n: v.numpy() for n, v in names.items()}

    def error(name, ours, theirs):
        where = clear.get(name, np.ones(ours.shape, bool))
        return float(np.abs(ours[where] - theirs[where]).max()) if where.any() else 0.0

    rows = agreement(compute, golden["after_iter"], error,
                     lambda n: U_TOLERANCE if n.endswith("/u") else WEIGHT_TOLERANCE)
    checked = sum(int(c.sum()) for c in clear.values())
    if not checked > 0.5 * sum(c.size for c in clear.values()):
        failures.append(f"only {checked} weights have a gradient clear of float noise")
    return failures + failures_of(rows, "after the iteration"), report_of(
        rows, "after the iteration, u and weights")


def run_trajectory(trainer, inputs, model_prefix):
    """Our losses (`{reference name: [n] array}`) over the reference's iterations: from the
    released weights with a fresh optimizer, the trainer's own step fed the very tensors the
    authors' graph built for each G and D batch."""
    start_from(trainer, model_prefix)
    count = inputs["g/x_short"].shape[0]
    ours = {name: np.zeros(count) for name in TRAJECTORY_LOSSES}
    for i in range(count):
        logs = trainer.train_step(batch_from(inputs, "g", i), batch_from(inputs, "d", i))
        for theirs, name in TRAJECTORY_LOSSES.items():
            ours[theirs][i] = float(logs[name])
    return ours


def trajectory_errors(ours, reference):
    """Largest relative loss difference `|a - b| / max(1, |b|)` over every loss, per
    iteration (`[n]`), of losses present in both."""
    names = [n for n in reference if n in ours]
    return np.max([np.abs(ours[n] - reference[n]) / np.maximum(1.0, np.abs(reference[n]))
                   for n in names], axis=0)


def check_trajectory(trainer, inputs, reference, model_prefix):
    """The trajectory against the reference's losses. Returns `(failures, errors)`, errors
    per iteration."""
    errors = trajectory_errors(run_trajectory(trainer, inputs, model_prefix), reference)
    failures = []
    for i, e in enumerate(errors, start=1):
        allowed = TRAJECTORY_TOLERANCES[i > TRAJECTORY_SPLIT]
        if not e <= allowed:
            failures.append(f"iteration {i}: losses differ by {e:.3g} (allowed {allowed:.0e})")
    return failures, errors
