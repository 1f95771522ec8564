import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf import Discriminator, Generator
from tests.helpers import START_TENSORFLOW


def _inputs(h, w, batch=1, seed=0):
    rng = np.random.default_rng(seed)
    return [tf.constant(rng.uniform(-1, 1, (batch, h, w, 6)).astype(np.float32))
            for _ in range(3)]


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def test_default_parameter_counts_match_the_paper():
    g = Generator()
    g.build([(None, None, None, 6)] * 3)
    d = Discriminator()
    d.build((None, None, None, 3))
    assert _count(g.trainable_variables) == 2_557_382
    assert _count(d.trainable_variables) == 660_929


@pytest.mark.parametrize("h, w", [(64, 96), (36, 44)])
def test_outputs_shapes(h, w):
    outputs = Generator()(_inputs(h, w, batch=2))
    assert [tuple(y.shape) for y in outputs] == [(2, h, w, 3)] * 2


@pytest.mark.parametrize("scales, branches", [(2, 1), (3, 2), (4, 3)])
def test_scales_give_one_branch_fewer_than_scales(scales, branches):
    outputs = Generator(scales=scales, base_filters=8)(_inputs(32, 48))
    assert len(outputs) == branches
    assert all(y.shape == (1, 32, 48, 3) for y in outputs)


def test_nested_decoder_inputs_follow_the_general_rule():
    g = Generator(scales=4, base_filters=8)
    g(_inputs(32, 32))
    # node (k, j) takes c_j * (k + 2) channels: up, m_j, e_j^ref and k - 1 earlier rows
    for k, j in g.node_keys():
        assert g.node(k, j).conv_a.conv2d.kernel.shape[2] == 8 * 2 ** j * (k + 2)
    assert g.node_keys() == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (3, 0)]


@pytest.mark.slow
@pytest.mark.parametrize("scales, base_filters, merging_blocks, h, w", [
    (2, 8, True, 32, 48), (3, 32, True, 132, 140), (4, 32, True, 32, 48), (3, 8, False, 32, 48)])
def test_inference_orders_compute_what_the_training_pass_computes(scales, base_filters,
                                                                  merging_blocks, h, w):
    """`call(training=False)` and `infer_lean` (exposures one by one, decoder parts added one
    by one), with border strips on every map and without (padded copies, as in training),
    against the training pass. All do
    one power iteration from the stored `u` (the training pass then stores the new one), so
    the training pass comes last. 132x140 has maps large enough for strips to matter
    everywhere; 4 scales take the merging bottlenecks."""
    g = Generator(scales=scales, base_filters=base_filters, merging_blocks=merging_blocks)
    g.build([(None, None, None, 6)] * 3)  # variables made eagerly, so the graphs trace once
    x = _inputs(h, w, batch=2, seed=scales)
    graph = tf.function(lambda *x, lean=False, strips=None: (
        g.infer_lean(list(x), strips_from_pixels=strips) if lean
        else g(list(x), training=False, strips_from_pixels=strips)))
    inferred = [graph(*x, lean=False, strips=0), graph(*x, lean=True, strips=0),
                g.infer_lean(x)]  # the last one eagerly, with padded copies
    trained = g(x, training=True)
    for outputs in inferred:
        for a, b in zip(trained, outputs):
            np.testing.assert_allclose(b.numpy(), a.numpy(), atol=2e-5)


PEAK_PROBE = START_TENSORFLOW + """
import hdr_gan_tf, numpy as np, tensorflow as tf
g = hdr_gan_tf.Generator()
g.build([(None, None, None, 6)] * 3)  # variables made eagerly, so each graph traces once
x = [tf.constant(np.random.default_rng(i).uniform(-1, 1, (1, 256, 384, 6)), tf.float32)
     for i in range(3)]
strips = 128 * 128  # border strips on the large maps, as a merge runs the network
for lean in (True, False):
    forward = (lambda x: g.infer_lean(x, strips_from_pixels=strips)) if lean else (
        lambda x: g(x, training=False, strips_from_pixels=strips))
    run = tf.function(lambda a, b, c: forward([a, b, c]))
    run(*x)
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    run(*x)
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    print((peak - before) / (256 * 384 * 32 * 4))
"""


@pytest.mark.slow
def test_lean_inference_order_holds_fewer_full_resolution_maps():
    """Peak tensor memory of one inference pass, in 32-channel full-resolution maps, measured by
    TensorFlow's allocator in a fresh process (the package selects the BFC allocator, which
    counts), both orders with border strips as a merge runs them. The lean order needs about 5.5
    maps plus the inputs (6.4 measured at 256x384); the graph's own order measured after it in
    the same process 8.5. The peak differs from process to process, with one thread as with
    several (TensorFlow's executor orders ready ops differently): 5.8 to 8.0 maps for the lean
    order in 30 processes on an AVX2 AMD EPYC, so each order's median of three processes is
    compared."""
    measured = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", PEAK_PROBE], capture_output=True, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        measured.append(tuple(map(float, out.stdout.split()[-2:])))
    lean, own = (sorted(values)[1] for values in zip(*measured))
    assert lean <= 7.5 and own - lean >= 1, measured


def test_without_merging_blocks_uses_a_1x1_conv():
    g = Generator(merging_blocks=False, base_filters=8)
    g(_inputs(16, 16))
    assert [m.conv2d.kernel.shape for m in g.mergers] == [(1, 1, 24, 8), (1, 1, 48, 16),
                                                          (1, 1, 96, 32)]


def test_encoders_do_not_share_weights():
    g = Generator(base_filters=8)
    g(_inputs(16, 16))
    kernels = [e.units[0].conv_a.conv2d.kernel for e in g.encoders]
    assert len({id(k) for k in kernels}) == 3
    assert not np.allclose(kernels[0].numpy(), kernels[1].numpy())


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    g = Generator()
    x = _inputs(32, 64)
    before = g(x)
    path = tmp_path / "generator.keras"
    g.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Generator)
    for a, b in zip(before, loaded(x)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_discriminator_patch_map_and_round_trip(tmp_path):
    d = Discriminator()
    x = tf.random.stateless_uniform((2, 256, 256, 3), (1, 2), -1, 1)
    y = d(x)
    assert y.shape == (2, 26, 26, 1)
    d.save(tmp_path / "d.keras")
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "d.keras")(x).numpy(),
                                  y.numpy())


def test_wrong_number_of_exposures_is_refused():
    with pytest.raises(ValueError, match="short, reference, long"):
        Generator(base_filters=8)(_inputs(16, 16)[:2])


def test_mu_is_part_of_the_model_and_survives_a_keras_file(tmp_path):
    """μ travels with the generator: its configuration, a `.keras` file, and every merge and
    serving module built from it (none falls back to the paper's 5000)."""
    from hdr_gan_tf.config import ModelConfig, build_generator
    from hdr_gan_tf.merge import GeneratorMerger
    from hdr_gan_tf.serving import ServingModule

    generator = build_generator(ModelConfig(scales=2, base_filters=4, mu=100.0))
    assert generator.get_config()["mu"] == 100.0
    path = tmp_path / "g.keras"
    generator.save(path)
    assert keras.saving.load_model(path).mu == 100.0
    assert ServingModule(generator).mu == 100.0
    ldrs = np.random.default_rng(0).random((3, 8, 8, 3), dtype=np.float32)
    ev = np.array([-2.0, 0.0, 2.0], np.float32)
    ours = GeneratorMerger(generator, ["main"])(ldrs, ev)["main"]
    paper = GeneratorMerger(generator, ["main"], mu=5000.0)(ldrs, ev)["main"]
    assert not np.allclose(ours, paper)


def test_branch_selection():
    from hdr_gan_tf.generator import parse_branches

    assert parse_branches("all", 3) == [0, 1]
    assert parse_branches("main", 3) == [1]
    assert parse_branches("aux1,main", 4) == [0, 2]
    with pytest.raises(ValueError, match="unknown branches"):
        parse_branches("aux2", 3)
