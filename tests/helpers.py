"""Shared test helpers: running the programs, Keras layer round trips, child processes."""

import os
import subprocess
import textwrap
import sys
from pathlib import Path

import keras
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "tf1_golden"
GOLDEN_LARGE = DATA / "tf1_golden_large"


def _program_env(env=None):
    full_env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    full_env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs them: the programs choose
    full_env.update(env or {})
    return full_env


def _command(module, args):
    return [sys.executable, "-m", f"hdr_gan_tf.cli.{module}", *map(str, args)]


def run_program(module, *args, timeout=600, env=None):
    """Runs `python -m hdr_gan_tf.cli.<module> args...`; returns the CompletedProcess."""
    return subprocess.run(_command(module, args), capture_output=True, text=True,
                          timeout=timeout, env=_program_env(env), cwd=REPO)


def run_programs_side_by_side(runs, timeout=300):
    """Starts every `(module, args)` of the dict `runs` at once (for runs that stop early, so
    that their start-ups overlap); returns `{key: CompletedProcess}`."""
    procs = {key: subprocess.Popen(_command(module, args), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=_program_env(),
                                   cwd=REPO)
             for key, (module, args) in runs.items()}
    results = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=timeout)
        results[key] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


def assert_layer_round_trip(layer, inputs, tmp_path):
    """The layer rebuilt from its config, given the same weights, computes the same output; and
    a model made of it, saved to a `.keras` file and loaded back, computes it too.

    Returns the layer's output.
    """
    expected = layer(inputs)
    clone = layer.__class__.from_config(layer.get_config())
    clone(inputs)
    clone.set_weights(layer.get_weights())
    _assert_same(expected, clone(inputs))
    assert clone.get_config() == layer.get_config()
    symbolic = keras.tree.map_structure(lambda t: keras.Input(batch_shape=t.shape), inputs)
    path = tmp_path / f"{layer.name}.keras"
    keras.Model(symbolic, layer(symbolic)).save(path)
    loaded = keras.saving.load_model(path)
    assert any(isinstance(sub, layer.__class__) for sub in loaded.layers)
    _assert_same(expected, loaded(inputs))
    return expected


def _assert_same(a, b):
    for x, y in zip(keras.tree.flatten(a), keras.tree.flatten(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def python_child(code):
    """A Python process running `code` that prints one line when ready, then waits for its
    standard input to close."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code) + "\nsys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    return proc, proc.stdout.readline().strip()


def rewrite_tf1_checkpoint(source, target, drop=None, reshape=None, add=None):
    """A copy of the TF1 checkpoint `source` at `target` with one variable dropped, one
    reshaped (its last axis one shorter) or one added; returns the new prefix."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(source)
    variables = {}
    for name in reader.get_variable_to_shape_map():
        if name == drop:
            continue
        value = reader.get_tensor(name)
        if name == reshape:
            value = value[..., :-1]
        variables[name] = tf.Variable(value, name=name)
    if add:
        variables[add] = tf.Variable(np.zeros(3, np.float32))
    # A name-based (TF1-style) checkpoint, as tf.compat.v1.train.Saver writes.
    saver = tf.compat.v1.train.Saver(var_list=variables)
    saver.save(sess=None, save_path=str(target), write_meta_graph=False)
    return str(target)


def training_batches(scenes, count=4):
    """The first `count` batches of a fixed training stream over `scenes`, each flattened."""
    from hdr_gan_tf import data

    dataset = data.training_dataset(scenes, patch_size=64, batch_size=2, seed=5, start=3)
    return [np.concatenate([t.numpy().ravel() for t in (*inputs, target)])
            for inputs, target in dataset.take(count)]
