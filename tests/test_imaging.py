import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf import imaging


def test_exposure_times_are_relative_to_the_shortest():
    np.testing.assert_allclose(imaging.exposure_times([[-2, 0, 2]]), [[1, 4, 16]])
    np.testing.assert_allclose(imaging.exposure_times([[0, 2, 4]]), [[1, 4, 16]])
    np.testing.assert_allclose(imaging.exposure_times([[-3, 0, 3]]), [[1, 8, 64]])


def test_both_ev_conventions_give_identical_network_inputs():
    rng = np.random.default_rng(0)
    ldrs = [rng.random((1, 8, 8, 3), np.float32) for _ in range(3)]
    a = imaging.network_inputs(*ldrs, [[-2.0, 0.0, 2.0]])
    b = imaging.network_inputs(*ldrs, [[0.0, 2.0, 4.0]])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_mu_law_round_trip_and_range():
    h = np.concatenate([[0.0, 1e-6, 1e-3, 0.5, 1.0], np.random.default_rng(1).random(100)])
    t = imaging.mu_law(h.astype(np.float64))
    assert isinstance(t, np.ndarray) and t.dtype == np.float64  # NumPy in, NumPy out
    assert float(np.min(t)) == 0.0 and abs(float(np.max(t)) - 1.0) < 1e-12
    np.testing.assert_allclose(imaging.inverse_mu_law(t), h, atol=1e-12)
    # mu = 5000 maps 1/5000 to log(2)/log(5001), in TensorFlow as in NumPy
    np.testing.assert_allclose(imaging.mu_law(np.array([1 / 5000])), np.log(2) / np.log(5001))
    as_tensor = imaging.mu_law(tf.constant([1 / 5000], tf.float64))
    assert isinstance(as_tensor, tf.Tensor)
    np.testing.assert_allclose(as_tensor.numpy(), np.log(2) / np.log(5001))
    assert imaging.mu_law(np.ones(2, np.float32)).dtype == np.float32


def test_network_inputs_match_the_reference_code(golden):
    xs = imaging.network_inputs(golden["ldr_short"], golden["ldr_mid"], golden["ldr_long"],
                                golden["exposure_bias"])
    for x, name in zip(xs, ("x_short", "x_ref", "x_long")):
        assert x.shape == golden[name].shape
        np.testing.assert_allclose(x.numpy(), golden[name], atol=1e-6)


def test_output_to_hdr_inverts_the_scaling():
    hdr = np.array([0.0, 0.001, 0.1, 1.0], np.float32)
    y = 2 * imaging.mu_law(hdr) - 1
    linear, tonemapped = imaging.output_to_hdr(y)
    np.testing.assert_allclose(linear.numpy(), hdr, atol=1e-6)
    np.testing.assert_allclose(tonemapped.numpy(), imaging.mu_law(hdr), atol=1e-7)


@pytest.mark.parametrize("values, problem", [
    (["0", "2"], "expected 3"), (["0", "x", "2"], "numbers"), (["0", "0", "2"], "increase"),
    (["2", "0", "-2"], "increase"), (["0", "nan", "2"], "finite")])
def test_parse_exposure_bias_rejects_bad_values(values, problem):
    with pytest.raises(ValueError, match=problem):
        imaging.parse_exposure_bias(values, source="exposure.txt")
