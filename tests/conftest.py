import os

# Side by side under pytest-xdist, each worker's TensorFlow (and the programs it starts) gets
# its share of the cores: workers never wait on each other's spinning thread pools.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(
        1, CORES // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))))

import gc

import numpy as np
import pytest

from hdr_gan_tf.cli.common import start_tensorflow

# Every pytest process loads TensorFlow (the imports below do): loaded as the programs load it,
# quietly, the collector paused, then frozen.
start_tensorflow()

from hdr_gan_tf.synthetic import synthesize_dataset  # noqa: E402
from tests.helpers import GOLDEN  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """4 training + 2 test procedural scenes of 96x128 in the Kalantari layout."""
    root = tmp_path_factory.mktemp("data") / "tiny"
    return synthesize_dataset(root, num_train=4, num_test=2, height=96, width=128, seed=1)


@pytest.fixture(scope="session")  # not "module": the tests may run on different workers
def small_log_dir(tmp_path_factory):
    """A log dir of an untrained small generator: what merges alike in the page and the
    programs, whatever the weights."""
    import tensorflow as tf

    from hdr_gan_tf.config import ModelConfig, RunConfig, build_generator, write_config

    logdir = tmp_path_factory.mktemp("small") / "run"
    logdir.mkdir()
    config = RunConfig(model=ModelConfig(base_filters=8))
    write_config(logdir, config)
    tf.keras.utils.set_random_seed(8)  # the same weights in every run
    tf.train.Checkpoint(generator=build_generator(config.model)).save(str(logdir / "ckpt"))
    return logdir


@pytest.fixture(scope="session")
def converted(golden_checkpoint, tmp_path_factory):
    """The authors' released checkpoint, converted by hdr-gan-convert-tf1: a log dir."""
    from tests.helpers import run_program

    out = tmp_path_factory.mktemp("converted") / "paper"
    result = run_program("convert_tf1", f"--tf1_checkpoint={golden_checkpoint}",
                         f"--output_dir={out}")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def exported(converted, tmp_path_factory):
    """`converted` exported by hdr-gan-export, with its Keras file beside it."""
    from tests.helpers import run_program

    out = tmp_path_factory.mktemp("export") / "saved"
    keras_file = out.parent / "generator.keras"
    result = run_program("export", f"--checkpoint={converted}", f"--output_dir={out}",
                         f"--keras_file={keras_file}")
    assert result.returncode == 0, result.stderr
    assert keras_file.is_file()
    return out



@pytest.fixture()
def photos(tiny_data, tmp_path):
    """A scene's three LDRs copied under shuffled names, plus its EVs."""
    import shutil

    scene = tiny_data / "Test" / "002"
    ev = [float(v) for v in (scene / "exposure.txt").read_text().split()]
    files = sorted(scene.glob("*.tif"))
    target = tmp_path / "shoot"
    target.mkdir()
    names = ["c_long.tif", "a_short.tif", "b_mid.tif"]
    for src, name in zip([files[2], files[0], files[1]], names):
        shutil.copy(src, target / name)
    return [target / n for n in names], [ev[2], ev[0], ev[1]]




@pytest.fixture(scope="session")
def golden():
    return dict(np.load(GOLDEN / "golden_io.npz"))


@pytest.fixture(scope="session")
def golden_checkpoint():
    return str(GOLDEN / "model")


def pytest_configure(config):
    """In each process that runs tests (an xdist worker, or pytest itself with `-n 0`), the
    cycle collector runs less often: tracing a graph makes young objects by the million, and
    each collection of the oldest generation walks them all."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", 0):
        gc.set_threshold(20_000, 20, 20)


def pytest_unconfigure(config):
    gc.freeze()  # the interpreter's collections at exit would walk everything the tests made


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pytest.ini): one worker per core, at most four (each starts TensorFlow)."""
    return max(1, min(CORES, 4))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Side by side, slow tests first, so that the long ones overlap (those that mostly wait
    last among them, beside computing ones rather than each other); tests that share a
    module-scoped fixture in one xdist group, so that it is built once; tests marked `gpu`
    run only where TensorFlow sees a GPU."""
    if os.environ.get("PYTEST_XDIST_WORKER"):  # in one process, modules stay together
        items.sort(key=lambda item: ("slow" not in item.keywords, "waits" in item.keywords))
    for item in items:
        defs = getattr(item, "_fixtureinfo", None)
        shared = defs and [name for name, chain in defs.name2fixturedefs.items()
                           if chain[-1].scope == "module"]
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    if not any("gpu" in item.keywords for item in items):
        return
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    skip = pytest.mark.skip(reason="needs a GPU (TensorFlow sees none)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
