"""One training iteration against the authors' TF1 training graph (`data/tf1_train_golden/`).

The golden holds what the released TF1 code computed in iteration 0 from the weights of
`data/tf1_golden/model` on two fixed 64x64 batches (batch 2, λ = 1, first-axis Sphere-GAN
reference, Adam 1e-4, element-wise clip at 1): every loss term, gradient, output, discriminator
map and spectral-norm vector `u` after the generator update (G run) and after the
discriminator update (D run), and every variable after the iteration. Tolerances are the ones
its README states.

The G run's outputs and maps are what inference gives from the initial state (one power
iteration from the stored `u`, which training then stores); the D run's, what inference gives
from the state after the G run.
"""

import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf import data
from hdr_gan_tf.imaging import mu_law, network_inputs, to_signed
from hdr_gan_tf.tf1_checkpoint import (discriminator_layer_map, generator_layer_map,
                                       keras_variable, load_tf1_weights)
from hdr_gan_tf.config import RunConfig
from hdr_gan_tf.training import Trainer
from tests.helpers import DATA, GOLDEN

TRAIN_GOLDEN = DATA / "tf1_train_golden"
# The golden's configuration (its README): the released run's, on 64x64 patches.
CONFIG = {"patch_size": 64, "batch_size": 2, "gan_weight": 1.0, "sphere_moments": 3,
          "sphere_reference": "first_axis", "lr_values": (1e-4, 1e-5, 1e-6), "clip_value": 1.0,
          "scales": 3, "base_filters": 32, "merging_blocks": True, "supervise": "all",
          "disc_branches": "all", "use_discriminator": True, "mu": 5000.0}
# Loss names of the golden -> ours (index 0 is the auxiliary branch, 1 the main one).
G_RUN_LOSSES = {"l1/0": "l_g_pix/aux1", "l1/1": "l_g_pix/main", "g_loss/0": "l_g_gan/aux1",
                "g_loss/1": "l_g_gan/main", "total": "l_g_total"}
D_RUN_LOSSES = {"distance_real/0": "l_d_real", "distance_real/1": "l_d_real",
                "distance_fake/0": "l_d_fake/aux1", "distance_fake/1": "l_d_fake/main",
                "d_loss": "l_d_total"}


def _load(name):
    return dict(np.load(TRAIN_GOLDEN / f"{name}.npz"))


@pytest.fixture(scope="module")
def golden():
    return {name: _load(name) for name in ("batches", "g_step", "d_step", "after_iter")}


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    config = RunConfig.from_flat(dict(CONFIG, logdir=str(tmp_path_factory.mktemp("parity"))))
    trainer = Trainer(config, tf.distribute.get_strategy(), log=lambda line: None)
    variables = dict(generator_layer_map(trainer.generator))
    variables.update(discriminator_layer_map(trainer.discriminator))
    trainer.tf1_variables = {name: keras_variable(*v) for name, v in variables.items()}
    return trainer


def _batch(batches, run):
    inputs = tuple(tf.constant(batches[f"{run}/x_{k}"]) for k in ("short", "ref", "long"))
    return inputs, tf.constant(batches[f"{run}/target_tm"])


def _start_from(trainer, golden, after_g_run=False):
    """The initial state, or (`after_g_run`) the golden's state after the G run: the G weights
    the iteration ends with (the D run leaves them alone), every `u` as the G run left it."""
    load_tf1_weights(GOLDEN / "model", trainer.generator, trainer.discriminator)
    if after_g_run:
        for name, variable in trainer.tf1_variables.items():
            if name.endswith("/u"):
                variable.assign(golden["g_step"][f"u/{name}"])
            elif name.startswith("UnetppGeneratorS/"):
                variable.assign(golden["after_iter"][name])


def _assert_losses(parts, gold, names):
    for theirs, ours in names.items():
        expected = float(gold[f"loss/{theirs}"])
        assert abs(float(parts[ours]) - expected) <= 1e-5 * max(1.0, abs(expected)), (
            theirs, float(parts[ours]), expected)


def _assert_outputs_and_maps(trainer, batch, gold):
    """The run's outputs and discriminator maps, from the state the run starts in."""
    inputs, target = batch
    outputs = trainer.generator(list(inputs), training=False)
    for k, y in enumerate(outputs, start=1):
        np.testing.assert_allclose(y.numpy(), gold[f"out/out_{k}"], rtol=0, atol=2e-6)
    maps = trainer.discriminator(tf.concat([target] + outputs, axis=0), training=False)
    for name, m in zip(("real", "fake_1", "fake_2"), tf.split(maps, 3)):
        np.testing.assert_allclose(m.numpy(), gold[f"dmap/{name}"], rtol=0, atol=2e-6)


def _assert_gradients(trainer, gradients, network, gold):
    by_id = {id(v): g for v, g in zip(network.trainable_variables, gradients)}
    checked = 0
    for name, variable in trainer.tf1_variables.items():
        if f"grad/{name}" not in gold:
            continue
        expected = gold[f"grad/{name}"]
        error = np.abs(by_id[id(variable)].numpy() - expected).max() / np.abs(expected).max()
        assert error <= 1e-4, (name, error)
        checked += 1
    assert checked == len(network.trainable_variables)


def _assert_every_u(trainer, gold):
    for name, variable in trainer.tf1_variables.items():
        if name.endswith("/u"):
            np.testing.assert_allclose(variable.numpy(), gold[f"u/{name}"], rtol=0, atol=1e-6,
                                       err_msg=name)


def test_preprocessing_builds_the_tensors_the_tf1_graph_built(golden):
    batches = golden["batches"]
    for run in ("g", "d"):
        ldrs = [batches[f"{run}/ldr_{k}"] for k in ("short", "mid", "long")]
        xs = network_inputs(*ldrs, batches[f"{run}/ev"])
        for x, k in zip(xs, ("short", "ref", "long")):
            np.testing.assert_allclose(x.numpy(), batches[f"{run}/x_{k}"], rtol=0, atol=5e-7)
        # The graph's target went through a rounded 2h - 1 (its README): 1.8e-5 at black.
        target = to_signed(mu_law(batches[f"{run}/hdr_linear"]))
        np.testing.assert_allclose(target, batches[f"{run}/target_tm"], atol=2e-5)
        # --ldr_bits=8: the 16-bit scene's file values reduce to the 8-bit values TF1 read.
        sixteen = batches[f"{run}/crop"][:, 0] == 2
        assert sixteen.any()
        for k in ("short", "mid", "long"):
            raw = np.round(batches[f"{run}/ldr_file_{k}"][sixteen] * 65535).astype(np.uint16)
            assert not np.array_equal(raw % 257, np.zeros_like(raw))  # really 16-bit values
            reduced = data.reduce_to_8_bits(raw).astype(np.float32) / 255
            np.testing.assert_array_equal(reduced, batches[f"{run}/ldr_{k}"][sixteen])


@pytest.mark.slow
@pytest.mark.parametrize("run", ["g", "d"])
def test_each_update_matches_its_tf1_run(trainer, golden, run):
    """The G run from the initial state; the D run from the golden's state after the G run.
    Each run advances every u of both networks by one power iteration (the D run re-runs G
    with its updated weights)."""
    gold = golden[f"{run}_step"]
    batch = _batch(golden["batches"], run)
    _start_from(trainer, golden, after_g_run=run == "d")
    _assert_outputs_and_maps(trainer, batch, gold)
    update, network, names = {
        "g": (trainer.generator_gradients, trainer.generator, G_RUN_LOSSES),
        "d": (trainer.discriminator_gradients, trainer.discriminator, D_RUN_LOSSES)}[run]
    gradients, parts = update(batch)
    _assert_losses(parts, gold, names)
    _assert_gradients(trainer, gradients, network, gold)
    _assert_every_u(trainer, gold)


@pytest.mark.slow
def test_one_training_iteration_ends_where_tf1_ended(trainer, golden):
    """The trainer's own step (the traced, distributed one) from the initial state."""
    _start_from(trainer, golden)
    assert int(trainer.g_optimizer.iterations.numpy()) == 0
    logs = trainer.train_step(_batch(golden["batches"], "g"), _batch(golden["batches"], "d"))
    _assert_losses(logs, golden["g_step"], G_RUN_LOSSES)
    _assert_losses(logs, golden["d_step"], D_RUN_LOSSES)
    grads = dict(golden["g_step"], **golden["d_step"])
    after = golden["after_iter"]
    checked = total = 0
    for name, variable in trainer.tf1_variables.items():
        if name.endswith("/u"):
            np.testing.assert_allclose(variable.numpy(), after[name], rtol=0, atol=1e-6,
                                       err_msg=name)
            continue
        # Adam's first step is about lr·sign(g): where |g| is at float noise level the sign
        # may legitimately differ (the golden's README), so those elements are left out.
        clear = np.abs(grads[f"grad/{name}"]) > 1e-5
        np.testing.assert_allclose(variable.numpy()[clear], after[name][clear], rtol=0,
                                   atol=1e-6, err_msg=name)
        checked, total = checked + clear.sum(), total + clear.size
    assert checked > 0.5 * total, (checked, total)
    assert int(trainer.step.numpy()) == 1


def test_clip_and_adam_on_the_tf1_gradients_reproduce_its_update(trainer, golden):
    """Our optimizers (clip at 1, then Adam) applied to the golden's own gradients give its
    weights to float32 rounding (TF1's fused Adam kernel orders the arithmetic differently),
    and the clip did act: Adam's first moment holds 0.1·clip(g)."""
    _start_from(trainer, golden)
    grads = dict(golden["g_step"], **golden["d_step"])
    names = {id(v): n for n, v in trainer.tf1_variables.items()}
    clipped = 0
    for network in (trainer.generator, trainer.discriminator):
        optimizer = trainer._optimizer()
        variables = network.trainable_variables
        optimizer.apply_gradients(
            [(tf.constant(grads[f"grad/{names[id(v)]}"]), v) for v in variables])
        for v in variables:
            gradient = grads[f"grad/{names[id(v)]}"]
            # Two roundings of the weight, and 1e-5 of the step (about lr = 1e-4).
            np.testing.assert_allclose(v.numpy(), golden["after_iter"][names[id(v)]],
                                       rtol=2.5e-7, atol=1e-9, err_msg=names[id(v)])
            if np.abs(gradient).max() > 1:
                momentum = optimizer._momentums[optimizer._get_variable_index(v)].numpy()
                np.testing.assert_allclose(momentum, 0.1 * np.clip(gradient, -1, 1), rtol=1e-6)
                clipped += 1
    assert clipped == 1  # the golden's one gradient element beyond 1
