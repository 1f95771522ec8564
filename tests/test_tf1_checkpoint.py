import csv

import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf.config import build_discriminator, build_generator
from hdr_gan_tf.imaging import network_inputs
from hdr_gan_tf.merge import merge_exposures, run_generator
from hdr_gan_tf.tf1_checkpoint import (discriminator_layer_map, generator_layer_map,
                                       keras_variable, load_tf1_weights)
from tests.helpers import DATA, GOLDEN_LARGE, rewrite_tf1_checkpoint


def _reference_rows():
    with open(DATA / "tf1_checkpoint_variables.tsv") as f:
        lines = [line for line in f if not line.startswith("#")]
    return [r for r in csv.DictReader(lines, delimiter="\t")]


@pytest.fixture(scope="module")
def networks():
    return build_generator(), build_discriminator()


def test_every_reference_variable_has_exactly_one_counterpart(networks):
    generator, discriminator = networks
    rows = _reference_rows()
    assert len(rows) == 189
    ours = dict(generator_layer_map(generator))
    ours.update(discriminator_layer_map(discriminator))
    assert sorted(ours) == sorted(r["name"] for r in rows)  # nothing missing, nothing extra
    for row in rows:
        shape = tuple(int(s) for s in row["shape"].split("x"))
        variable = keras_variable(*ours[row["name"]])
        assert tuple(variable.shape) == shape, row["name"]
        assert int(np.prod(variable.shape)) == int(row["count"])
        assert variable.trainable == (row["kind"] != "sn_vector_u"), row["name"]
    mapped = {id(keras_variable(*v)) for v in ours.values()}
    everything = generator.weights + discriminator.weights
    assert mapped == {id(v) for v in everything}  # every Keras variable is mapped


def test_conversion_copies_raw_kernels_and_u_as_they_are(golden_checkpoint):
    """Our spectral normalisation keeps the raw kernel, as the TF1 graph did: nothing is
    divided by σ on the way in."""
    generator = build_generator()
    discriminator = build_discriminator()
    load_tf1_weights(golden_checkpoint, generator, discriminator)
    reader = tf.train.load_checkpoint(golden_checkpoint)
    entries = dict(generator_layer_map(generator))
    entries.update(discriminator_layer_map(discriminator))
    for name, entry in entries.items():
        np.testing.assert_array_equal(keras_variable(*entry).numpy(), reader.get_tensor(name),
                                      err_msg=name)


def test_golden_outputs_are_reproduced(golden, golden_checkpoint):
    generator = build_generator()
    discriminator = build_discriminator()
    load_tf1_weights(golden_checkpoint, generator, discriminator)
    out_1, out_2 = generator([golden["x_short"], golden["x_ref"], golden["x_long"]],
                             training=False)
    assert np.abs(out_1.numpy() - golden["out_1"]).max() <= 1e-6
    assert np.abs(out_2.numpy() - golden["out_2"]).max() <= 1e-6
    d_out = discriminator(golden["d_in"], training=False)
    assert np.abs(d_out.numpy() - golden["d_out"]).max() <= 1e-6
    # The LDR entry point: LDRs + EVs -> inputs -> tonemapped main output.
    outputs = run_generator(generator, (golden["ldr_short"], golden["ldr_mid"],
                                        golden["ldr_long"]), golden["exposure_bias"])
    np.testing.assert_allclose(outputs[-1].numpy(), golden["out_2"], rtol=0, atol=1e-6)
    xs = network_inputs(golden["ldr_short"], golden["ldr_mid"], golden["ldr_long"],
                        golden["exposure_bias"])
    np.testing.assert_allclose(xs[1].numpy(), golden["x_ref"], atol=1e-6)


@pytest.mark.slow
def test_large_golden_through_the_whole_image_merge(golden_checkpoint):
    """512x528 16-bit photos: the memory-lean inference order and the border-strip
    convolutions, against the TF1 graph's two outputs."""
    golden = dict(np.load(GOLDEN_LARGE / "golden_large.npz"))
    generator = build_generator()
    load_tf1_weights(golden_checkpoint, generator)
    ldrs = np.concatenate([golden[f"ldr_{k}"] for k in ("short", "mid", "long")])  # uint16
    assert ldrs.shape == (3, 512, 528, 3) and ldrs.dtype == np.uint16
    outputs = merge_exposures(generator, ldrs, golden["exposure_bias"][0])
    for ours, theirs in zip(outputs, (golden["out_1"][0], golden["out_2"][0])):
        assert np.abs(ours - theirs).max() <= 1e-6


@pytest.mark.parametrize("change, expected", [
    ({"drop": "UnetppGeneratorS/merge/merge_net_1/cov4/kernel"},
     "missing variables: UnetppGeneratorS/merge/merge_net_1/cov4/kernel"),
    ({"reshape": "UnetppGeneratorS/decoders/SR_11/cov_0/kernel"},
     r"wrong shapes: UnetppGeneratorS/decoders/SR_11/cov_0/kernel \(checkpoint \[3, 3, 192, 63\]"),
    ({"add": "UnetppGeneratorS/decoders/SR_30/cov_0/bias"},
     "unexpected variables: UnetppGeneratorS/decoders/SR_30/cov_0/bias"),
    ({"drop": "PatchDiscriminator/dis_cov3/u"}, "missing variables: PatchDiscriminator/dis_cov3/u"),
])
def test_mismatched_checkpoints_are_refused_by_name(golden_checkpoint, tmp_path, change,
                                                    expected):
    prefix = rewrite_tf1_checkpoint(golden_checkpoint, tmp_path / "model", **change)
    generator = build_generator()
    discriminator = build_discriminator()
    before = [v.numpy().copy() for v in generator.weights]
    with pytest.raises(ValueError, match=expected):
        load_tf1_weights(prefix, generator, discriminator)
    for b, v in zip(before, generator.weights):  # nothing was assigned
        np.testing.assert_array_equal(b, v.numpy())


def test_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "junk.index").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable TensorFlow checkpoint"):
        load_tf1_weights(str(tmp_path / "junk"), build_generator())
