"""Shared test helpers: running the programs, Keras layer round trips, tiny networks."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "tf1_golden"
GOLDEN_LARGE = DATA / "tf1_golden_large"


def run_program(module, *args, timeout=600, env=None):
    """Runs `python -m hdr_gan_tf.<module> args...`; returns the CompletedProcess."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2",
                    PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", f"hdr_gan_tf.{module}", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=REPO)


def assert_layer_round_trip(layer, inputs, tmp_path):
    """A layer rebuilt from its config, given the same weights, computes the same output; and
    it survives a `.keras` save/load inside a model."""
    expected = layer(inputs)
    clone = layer.__class__.from_config(layer.get_config())
    clone(inputs)
    clone.set_weights(layer.get_weights())
    for a, b in zip(keras.tree.flatten(expected), keras.tree.flatten(clone(inputs))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert clone.get_config() == layer.get_config()
    return expected
