"""The merge methods' table: what each needs, what it loads, and the contract every merger
keeps (`merge.Merger`)."""

import numpy as np
import pytest

from hdr_gan_tf.merge import InferenceOptions, Merger
from hdr_gan_tf.methods import METHODS, check_method, load_merger
from hdr_gan_tf.settings import ConfigError


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_says_what_it_needs(name):
    method = METHODS[name]
    if method.needs_model:
        with pytest.raises(ConfigError) as err:
            check_method(name)
        assert err.value.field == "checkpoint"
        check_method(name, checkpoint="runs/x")
    else:
        check_method(name)
        with pytest.raises(ConfigError, match="takes no model") as err:
            check_method(name, checkpoint="runs/x")
        assert err.value.field == "method"


def test_an_unknown_method_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="one of network, debevec, mertens, not 'magic'") as err:
        check_method("magic")
    assert err.value.field == "method"


def _bracket(height=24, width=32):
    rng = np.random.default_rng(0)
    base = rng.random((height, width, 3)).astype(np.float32)
    return np.stack([base * 0.25, base * 0.5, np.minimum(base * 2, 1)]), np.array([-2, 0, 2.0])


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if not m.needs_model])
def test_every_merger_keeps_the_contract(name):
    merger = load_merger(InferenceOptions(), method=name)
    assert isinstance(merger, Merger)
    assert merger.display_referred == METHODS[name].display_referred
    assert merger.branches[-1] == "main" and merger.description
    ldrs, ev = _bracket()
    whole = merger(ldrs, ev)
    assert set(whole) == set(merger.branches)
    assert whole["main"].shape == (24, 32, 3) and whole["main"].dtype == np.float32
    bands = list(merger.bands(ldrs, ev))
    np.testing.assert_allclose(np.concatenate([rows["main"] for _, rows in bands]),
                               whole["main"], atol=1e-6)
    options, _ = merger.plan(24, 32)
    assert isinstance(options, InferenceOptions)


def test_the_network_merger_keeps_the_contract_too(small_log_dir):
    merger = load_merger(InferenceOptions(tile=32, overlap=8), checkpoint=small_log_dir,
                         method="network", log=lambda line: None)
    assert isinstance(merger, Merger) and merger.streams and not merger.display_referred
    ldrs, ev = _bracket(40, 56)
    whole = merger(ldrs, ev)
    assert set(whole) == set(merger.branches) and str(small_log_dir) in merger.description
    rows = np.concatenate([rows["main"] for _, rows in merger.bands(ldrs, ev, wanted=["main"])])
    np.testing.assert_allclose(rows, whole["main"], atol=1e-6)
