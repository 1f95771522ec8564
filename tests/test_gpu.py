"""On a GPU: training (float32, mixed float16 with loss scaling, XLA), the inference orders
and border strips, the TF1 goldens and the exported model. Skipped where TensorFlow sees no GPU
(see conftest.py); `experiments/gpu_check.sh` runs them on a GPU machine.

Float32 convolutions on recent NVIDIA GPUs default to TensorFloat-32 (10-bit mantissas); the
comparisons with the goldens switch it off, as a user wanting the reference's numbers would.
"""

import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf import data
from hdr_gan_tf.config import RunConfig, build_discriminator, build_generator, set_precision
from hdr_gan_tf.merge import InferenceOptions, merge_exposures
from hdr_gan_tf.serving import ServingModule, save_serving_model
from hdr_gan_tf.tf1_checkpoint import load_tf1_weights
from hdr_gan_tf.training import Trainer
from tests.helpers import GOLDEN_LARGE

pytestmark = pytest.mark.gpu


@pytest.fixture
def exact_float32():
    tf.config.experimental.enable_tensor_float_32_execution(False)
    yield
    tf.config.experimental.enable_tensor_float_32_execution(True)


def _train(tiny_data, tmp_path, iterations=3, **settings):
    config = RunConfig.from_flat(dict(logdir=str(tmp_path / "run"), data_dir=str(tiny_data),
                                      patch_size=64, base_filters=16, validation="0",
                                      **settings))
    set_precision(config.training.precision)
    try:
        trainer = Trainer(config, tf.distribute.get_strategy(), log=lambda line: None)
        scenes = data.open_split(tiny_data, data.TRAIN_SPLIT)
        iterator = iter(trainer.distributed_dataset(scenes))
        logs = [trainer.train_step(next(iterator), next(iterator)) for _ in range(iterations)]
    finally:
        set_precision("float32")
    assert "GPU" in trainer.generator.weights[0].value.device
    return trainer, logs


@pytest.mark.parametrize("settings", [{}, {"jit_compile": True}],
                         ids=["float32", "xla"])
def test_training_steps_on_the_gpu(tiny_data, tmp_path, settings):
    trainer, logs = _train(tiny_data, tmp_path, **settings)
    assert int(trainer.step.numpy()) == 3
    assert all(np.isfinite(float(v)) for step in logs for v in step.values())


def test_mixed_float16_training_scales_the_loss(tiny_data, tmp_path):
    import keras

    trainer, logs = _train(tiny_data, tmp_path, precision="float16")
    assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert all(np.isfinite(float(v)) for step in logs for v in step.values())
    assert trainer.generator.weights[0].dtype == "float32"  # float32 variables


def test_goldens_and_inference_orders_on_the_gpu(golden, golden_checkpoint, exact_float32):
    generator, discriminator = build_generator(), build_discriminator()
    load_tf1_weights(golden_checkpoint, generator, discriminator)
    out_1, out_2 = generator([golden["x_short"], golden["x_ref"], golden["x_long"]])
    assert np.abs(out_2.numpy() - golden["out_2"]).max() <= 1e-5
    assert np.abs(out_1.numpy() - golden["out_1"]).max() <= 1e-5
    large = dict(np.load(GOLDEN_LARGE / "golden_large.npz"))
    ldrs = np.concatenate([large[f"ldr_{k}"] for k in ("short", "mid", "long")])
    for options in (InferenceOptions(), InferenceOptions(lean_from_pixels=None,
                                                         strips_from_pixels=None)):
        outputs = merge_exposures(generator, ldrs, large["exposure_bias"][0], options=options)
        assert np.abs(outputs[-1] - large["out_2"][0]).max() <= 1e-5, options


def test_saved_model_round_trip_on_the_gpu(golden, golden_checkpoint, tmp_path, exact_float32):
    generator = build_generator()
    load_tf1_weights(golden_checkpoint, generator)
    module = ServingModule(generator)
    save_serving_model(module, tmp_path / "model")
    serve = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]
    inputs = {k: tf.constant(golden[k]) for k in ("ldr_short", "ldr_mid", "ldr_long")}
    inputs["exposure_bias"] = tf.constant(golden["exposure_bias"])
    served = serve(**inputs)
    assert "GPU" in served["tonemapped"].device
    np.testing.assert_allclose(served["tonemapped"].numpy(), (golden["out_2"] + 1) / 2,
                               atol=1e-5)
