import numpy as np
import pytest

from hdr_gan_tf.synthetic import synthesize_dataset
from tests.helpers import GOLDEN


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """4 training + 2 test procedural scenes of 96x128 in the Kalantari layout."""
    root = tmp_path_factory.mktemp("data") / "tiny"
    return synthesize_dataset(root, num_train=4, num_test=2, height=96, width=128, seed=1)


@pytest.fixture(scope="session")
def golden():
    return dict(np.load(GOLDEN / "golden_io.npz"))


@pytest.fixture(scope="session")
def golden_checkpoint():
    return str(GOLDEN / "model")


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` run only where TensorFlow sees a GPU."""
    if not any("gpu" in item.keywords for item in items):
        return
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    skip = pytest.mark.skip(reason="needs a GPU (TensorFlow sees none)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
