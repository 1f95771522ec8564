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
