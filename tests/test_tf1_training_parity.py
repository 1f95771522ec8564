"""Training against the authors' TF1 training graph: one iteration (`data/tf1_train_golden/`)
and 20 (`data/tf1_train_trajectory/`).

The checks themselves live in `hdr_gan_tf.tf1_parity` (so that
`experiments/parity_mutations.py` can run them on deliberately wrong trainers); see there for
why a tensor may be compared under float-noise perturbations of the inputs. Each test prints
which tensors needed one (`pytest -s`).
"""

import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf import layouts, tf1_parity
from hdr_gan_tf.imaging import mu_law, network_inputs, to_signed
from hdr_gan_tf.training import Trainer
from tests.helpers import DATA, GOLDEN

TRAIN_GOLDEN = DATA / "tf1_train_golden"
TRAJECTORY = DATA / "tf1_train_trajectory"
MODEL = str(GOLDEN / "model")


def _load(folder, name):
    return dict(np.load(folder / f"{name}.npz"))


@pytest.fixture(scope="module")
def golden():
    return {name: _load(TRAIN_GOLDEN, name)
            for name in ("batches", "g_step", "d_step", "after_iter")}


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    config = tf1_parity.golden_run_config(tmp_path_factory.mktemp("parity"))
    return Trainer(config, tf.distribute.get_strategy(), log=lambda line: None)


def _assert_agrees(failures, report):
    print("\n".join(report))
    assert not failures, "\n".join(failures + report)


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
            reduced = layouts.reduce_to_8_bits(raw).astype(np.float32) / 255
            np.testing.assert_array_equal(reduced, batches[f"{run}/ldr_{k}"][sixteen])


@pytest.mark.slow
@pytest.mark.parametrize("run", ["g", "d"])
def test_each_update_matches_its_tf1_run(trainer, golden, run):
    """The G run from the initial state; the D run from the golden's state after the G run.
    Outputs, maps and losses as computed; every gradient and `u`, as computed or under one of
    the fixed float-noise perturbations."""
    _assert_agrees(*tf1_parity.check_update(trainer, golden, run, MODEL))


@pytest.mark.slow
def test_one_training_iteration_ends_where_tf1_ended(trainer, golden):
    """The trainer's own step (the traced, distributed one) from the initial state."""
    _assert_agrees(*tf1_parity.check_iteration(trainer, golden, MODEL))


@pytest.mark.slow
def test_twenty_iterations_follow_the_tf1_trajectory(trainer):
    """Adam's bias correction, `u` advancing twice per iteration, the step counter and the
    learning-rate lookup over 20 iterations: every loss within 1e-4 (relative) of the
    authors' graph up to iteration 10 and within 1e-2 after, where their own graph run with
    one thread drifts by up to 5.2e-4."""
    reference = _load(TRAJECTORY, "losses")
    failures, errors = tf1_parity.check_trajectory(trainer, _load(TRAJECTORY, "inputs"),
                                                   reference, MODEL)
    floor = tf1_parity.trajectory_errors(_load(TRAJECTORY, "losses_one_thread"), reference)
    print("iteration  ours      one-thread TF1")
    for i, (e, f) in enumerate(zip(errors, floor), start=1):
        print(f"{i:9d}  {e:.2e}  {f:.2e}")
    assert not failures, "\n".join(failures)
    assert int(trainer.step.numpy()) == len(errors) == 20


def test_a_tensor_agrees_when_one_perturbed_run_agrees():
    """`agreement` accepts a tensor reached under some perturbation, says which, measures the
    spread, and fails a tensor that no run brings within tolerance."""
    expected = {"kink": np.ones(3), "off": np.ones(3), "exact": np.ones(3)}

    def compute(seed):
        return {"kink": np.full(3, 1.0 if seed == 3 else 1.5), "off": np.full(3, 2.0),
                "exact": np.ones(3)}

    rows = tf1_parity.agreement(compute, expected, lambda n, a, b: float(np.abs(a - b).max()),
                                lambda n: 1e-3)
    assert (rows["exact"].seed, rows["kink"].seed, rows["off"].seed) == (0, 3, None)
    assert rows["kink"].spread == 0.5 and rows["kink"].best == 0.0
    failures = tf1_parity.failures_of(rows, "x")
    assert len(failures) == 1 and "off" in failures[0]
    batch = ((tf.ones([2, 4, 4, 6]),) * 3, tf.zeros([2, 4, 4, 3]))
    assert tf1_parity.perturbed(batch, 0) is batch
    moved = np.concatenate([np.ravel(a - b) for a, b in zip(
        tf.nest.flatten(tf1_parity.perturbed(batch, 1)), tf.nest.flatten(batch))])
    assert 0.5e-7 < moved.std() < 2e-7


def test_clip_and_adam_on_the_tf1_gradients_reproduce_its_update(trainer, golden):
    """Our optimizers (clip at 1, then Adam) applied to the golden's own gradients give its
    weights to float32 rounding (TF1's fused Adam kernel orders the arithmetic differently),
    and the clip did act: Adam's first moment holds 0.1·clip(g)."""
    tf1_parity.start_from(trainer, MODEL)
    grads = dict(golden["g_step"], **golden["d_step"])
    names = {id(v): n for n, v in tf1_parity.tf1_variables(trainer).items()}
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
