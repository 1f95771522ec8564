import subprocess
import sys

import numpy as np
import pytest

from hdr_gan_tf.config import ConfigError, build_generator
from hdr_gan_tf.merge import run_generator
from hdr_gan_tf.merge import InferenceOptions
from hdr_gan_tf.serving import SavedModelMerger, ServingModule, save_serving_model
from hdr_gan_tf.tf1_checkpoint import load_tf1_weights


@pytest.fixture(scope="module")
def generator(golden_checkpoint):
    g = build_generator()
    load_tf1_weights(golden_checkpoint, g)
    return g


@pytest.mark.slow
def test_saved_model_in_a_fresh_process_matches_the_python_model(generator, golden, tmp_path):
    module = ServingModule(generator)
    save_serving_model(module, tmp_path / "model")
    h, w = 61, 93  # not multiples of 4
    inputs = {k: golden[k][:, :h, :w] for k in ("ldr_short", "ldr_mid", "ldr_long")}
    np.savez(tmp_path / "inputs.npz", exposure_bias=golden["exposure_bias"], **inputs)
    script = f"""
import numpy as np, tensorflow as tf, sys
x = dict(np.load(r"{tmp_path / 'inputs.npz'}"))
serve = tf.saved_model.load(r"{tmp_path / 'model'}").signatures["serving_default"]
out = serve(**{{k: tf.constant(v) for k, v in x.items()}})
np.savez(r"{tmp_path / 'out.npz'}", **{{k: v.numpy() for k, v in out.items()}})
print("MODULES", "hdr_gan_tf" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert "MODULES False" in result.stdout, result.stderr
    served = np.load(tmp_path / "out.npz")
    outputs = run_generator(generator, [inputs[k] for k in ("ldr_short", "ldr_mid", "ldr_long")],
                            golden["exposure_bias"])
    tonemapped = np.clip((outputs[-1].numpy() + 1) / 2, 0, 1)
    assert served["tonemapped"].shape == (1, h, w, 3)
    assert np.abs(served["tonemapped"] - tonemapped).max() <= 1e-5
    hdr = ((1 + 5000.0) ** tonemapped - 1) / 5000.0
    assert np.abs(served["hdr"] - hdr).max() <= 1e-5
    aux = ((1 + 5000.0) ** np.clip((outputs[0].numpy() + 1) / 2, 0, 1) - 1) / 5000.0
    assert np.abs(served["hdr_aux"] - aux).max() <= 1e-5
    # The merger of the SavedModel gives the same, and refuses options it cannot honour rather
    # than ignore them.
    merge = SavedModelMerger(tmp_path / "model")
    ldrs = np.concatenate([inputs[k] for k in ("ldr_short", "ldr_mid", "ldr_long")])
    np.testing.assert_allclose(merge(ldrs, golden["exposure_bias"][0])["main"], served["hdr"][0],
                               atol=1e-6)
    for field, options in [("tile", InferenceOptions(tile=32, overlap=8)),
                           ("precision", InferenceOptions(precision="bfloat16")),
                           ("jit_compile", InferenceOptions(jit_compile=True))]:
        with pytest.raises(ConfigError, match=f"^{field}: an exported SavedModel") as caught:
            SavedModelMerger(tmp_path / "model", options)
        assert caught.value.field == field

