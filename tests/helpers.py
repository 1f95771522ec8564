"""Shared test helpers: running the programs, Keras layer round trips, child processes."""

import os
import subprocess
import textwrap
import sys
import time
from pathlib import Path

import keras
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "tf1_golden"
GOLDEN_LARGE = DATA / "tf1_golden_large"
# Debian's packages chromium and chromium-driver (.ci/run installs them).
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _program_env(env=None):
    full_env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    full_env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs them: the programs choose
    full_env.update(env or {})
    return full_env


def _command(module, args):
    return [sys.executable, "-m", f"hdr_gan_tf.cli.{module}", *map(str, args)]


def run_program(module, *args, timeout=600, env=None, in_process=True):
    """Runs program `hdr_gan_tf.cli.<module>` on `args`; returns a CompletedProcess.

    In this process by default (its `run(argv)`, from the repository root, its standard
    output and error captured), which spares a TensorFlow start per run; as
    `python -m hdr_gan_tf.cli.<module>` where the process itself is the point (`env`,
    `in_process=False`: what a fresh process prints, signals, locks)."""
    if env is not None or not in_process:
        return subprocess.run(_command(module, args), capture_output=True, text=True,
                              timeout=timeout, env=_program_env(env), cwd=REPO)
    import contextlib
    import importlib
    import io

    program = importlib.import_module(f"hdr_gan_tf.cli.{module}")
    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(REPO)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = program.run(list(map(str, args)))
    finally:
        os.chdir(cwd)
        keras.mixed_precision.set_global_policy("float32")  # a program may have set another
    return subprocess.CompletedProcess(_command(module, args), status, out.getvalue(),
                                       err.getvalue())


def run_programs(runs):
    """Runs every `(module, args)` of the dict `runs` in this process, one after another;
    returns `{key: CompletedProcess}`."""
    return {key: run_program(module, *args) for key, (module, args) in runs.items()}


def assert_each_refused(cases):
    """Runs every case `{name: (module, args, expected)}`; each must end with exit status 2
    and one `error:` line holding `expected`, without a traceback. Returns the results."""
    results = run_programs({name: (module, args) for name, (module, args, _) in cases.items()})
    for name, result in results.items():
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert len(errors) == 1 and cases[name][2] in errors[0], (name, result.stderr)
        assert "Traceback" not in result.stderr, (name, result.stderr)
    return results


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


def assert_within_float32_noise(got, float32_result, float64_result, factor=8):
    """`got` lies as close to the float64 result as `factor` times the float32 result's own
    largest error (its rounding noise, at least one float32 ulp of the largest value): a
    tolerance that follows each CPU's summation order instead of one CPU's numbers."""
    exact = np.asarray(float64_result, np.float64)
    noise = max(np.abs(np.asarray(float32_result, np.float64) - exact).max(),
                np.finfo(np.float32).eps * np.abs(exact).max())
    error = np.abs(np.asarray(got, np.float64) - exact).max()
    assert error <= factor * noise, f"off by {error:.3g}; float32 noise {noise:.3g}"


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


# The first lines of a test's Python child that loads TensorFlow: loaded as the programs load it.
START_TENSORFLOW = "from hdr_gan_tf.cli.common import import_tensorflow\nimport_tensorflow()\n"


def python_child(code):
    """A Python process running `code` that prints one line when ready, then waits for its
    standard input to close."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code) + "\nsys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    return proc, proc.stdout.readline().strip()


def log_dir_holder(logdir):
    """A Python process holding `logdir`'s writer lock as a running trainer does
    (`log_dir_lock`, imported from `hdr_gan_tf.outputs`, which spares the 7 CPU-s of a
    TensorFlow start); returns the process and its pid as it printed it."""
    return python_child(f"""
        import os, sys
        from hdr_gan_tf.outputs import log_dir_lock
        lock = log_dir_lock({str(logdir)!r})
        lock.__enter__()
        print(os.getpid(), flush=True)
    """)


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


def headless_chromium(width=1400, height=1300):
    """Debian's Chromium without a screen, driven by Selenium, logging its network requests."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # As root in a container, and without the background traffic a closed network refuses.
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def free_port():
    """A TCP port on the loopback address that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what, timeout=120, every=0.2):
    """`condition()`'s first true value, asked every `every` seconds (a Selenium error counts
    as not yet: an element may be replaced while the page re-renders); AssertionError naming
    `what` after `timeout` seconds."""
    from selenium.common.exceptions import WebDriverException

    end = time.time() + timeout
    while time.time() < end:
        try:
            value = condition()
        except WebDriverException:
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"waited {timeout} s for {what}")


def tiny_filesystem(path, free_kb, size="2m"):
    """A tmpfs of `size` at `path` with about `free_kb` KB left free (needs root), or a skip;
    the caller unmounts it (`umount`)."""
    import pytest

    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}",
                                            "tmpfs", str(path)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    fill_to(path, free_kb)
    return path


def fill_to(path, free_kb):
    """Fills the file system of `path` (a file `filler` there) until about `free_kb` KB are
    left free."""
    stats = os.statvfs(path)
    filler = stats.f_bavail * stats.f_frsize - free_kb * 1024
    with open(Path(path) / "filler", "ab") as f:
        f.write(b"\0" * max(filler, 0))
