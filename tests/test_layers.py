"""GatedDense and GaussianHead against numpy."""

import keras
import numpy as np
import pytest
from scipy.special import expit

from vampkeras.layers import GatedDense, GaussianHead


def test_gated_dense_output_is_value_half_times_sigmoid_of_gate_half():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    layer = GatedDense(5)
    x = rng.normal(size=(6, 7)).astype(np.float32)
    layer(x)                                                            # build
    kernel = rng.normal(size=(7, 10)).astype(np.float32)
    bias = rng.normal(size=(10,)).astype(np.float32)
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    w_h, w_g = kernel[:, :5].astype(np.float64), kernel[:, 5:].astype(np.float64)
    b_h, b_g = bias[:5].astype(np.float64), bias[5:].astype(np.float64)
    expected = (x @ w_h + b_h) * expit(x @ w_g + b_g)
    got = keras.ops.convert_to_numpy(layer(x))
    assert got.shape == (6, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_gated_dense_accepts_leading_batch_dimensions():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    layer = GatedDense(3)
    x = rng.normal(size=(2, 4, 6)).astype(np.float32)
    got = keras.ops.convert_to_numpy(layer(x))
    kernel = layer.kernel.numpy().astype(np.float64)
    expected = (x @ kernel[:, :3]) * expit(x @ kernel[:, 3:])           # zero bias at init
    assert got.shape == (2, 4, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape((2, 4, 6)) == (2, 4, 3)


def test_gated_dense_bias_starts_at_zero_and_kernel_has_both_halves():
    keras.utils.set_random_seed(2)
    layer = GatedDense(8)
    layer.build((None, 12))
    assert tuple(layer.kernel.shape) == (12, 16)
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(16))


@pytest.mark.parametrize("fan_in, units", [(300, 200), (784, 300)])
def test_gated_dense_kernel_is_glorot_uniform_per_half(fan_in, units):
    keras.utils.set_random_seed(3)
    layer = GatedDense(units)
    layer.build((None, fan_in))
    kernel = layer.kernel.numpy().astype(np.float64)
    limit = np.sqrt(6.0 / (fan_in + units))           # each half is a (fan_in, units) dense kernel
    expected_std = limit / np.sqrt(3.0)
    assert np.all(np.abs(kernel) <= limit)
    # A Glorot limit over the whole (fan_in, 2·units) kernel would be sqrt(6/(fan_in+2·units)) —
    # the entries must actually reach out to the per-half limit.
    assert np.abs(kernel).max() > 0.99 * limit
    for half in (kernel[:, :units], kernel[:, units:]):
        np.testing.assert_allclose(half.std(), expected_std, rtol=0.02)
        np.testing.assert_allclose(half.mean(), 0.0, atol=5 * expected_std / np.sqrt(half.size))


def test_gated_dense_config_round_trip():
    layer = GatedDense(9, name="g")
    clone = GatedDense.from_config(layer.get_config())
    assert clone.units == 9 and clone.name == "g"


def test_gaussian_head_is_linear_with_log_var_clipped_to_minus6_2():
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    head = GaussianHead(3)
    x = rng.normal(size=(5, 6)).astype(np.float32)
    head(x)
    head.mean.kernel.assign(rng.normal(size=(6, 3)).astype(np.float32))
    head.mean.bias.assign(np.array([0.5, -0.5, 1.0], np.float32))
    head.log_var.kernel.assign(rng.normal(size=(6, 3)).astype(np.float32))
    head.log_var.bias.assign(np.array([0.1, -0.2, 0.3], np.float32))
    big = np.concatenate([x, 1e3 * x, -1e3 * x]).astype(np.float32)
    mean, log_var = (keras.ops.convert_to_numpy(t) for t in head(big))
    expected_mean = big.astype(np.float64) @ head.mean.kernel.numpy() + head.mean.bias.numpy()
    raw_log_var = big.astype(np.float64) @ head.log_var.kernel.numpy() + head.log_var.bias.numpy()
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-5, atol=1e-4)      # the mean is not clipped
    assert np.abs(mean).max() > 100
    np.testing.assert_allclose(log_var, np.clip(raw_log_var, -6.0, 2.0), rtol=1e-5, atol=1e-5)
    # huge inputs saturate at both ends of the clip
    assert log_var.min() == pytest.approx(-6.0) and log_var.max() == pytest.approx(2.0)
    assert np.sum(log_var[5:] == -6.0) > 0 and np.sum(log_var[5:] == 2.0) > 0


def test_gaussian_head_custom_clip_bounds():
    keras.utils.set_random_seed(5)
    head = GaussianHead(2, log_var_min=-1.0, log_var_max=0.5)
    x = np.random.default_rng(5).normal(0.0, 1e3, (20, 4)).astype(np.float32)
    _, log_var = head(x)
    log_var = keras.ops.convert_to_numpy(log_var)
    assert log_var.min() == pytest.approx(-1.0) and log_var.max() == pytest.approx(0.5)


# -- --init authors: the authors' code's initialisation ------------------------------------------------------
def authors_test_model():
    """A built layer holding each kind of layer initialize_as_authors draws again."""
    from vampkeras.layers import GatedConv2D, MaskedConv2D

    class Holder(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.gated = GatedDense(300)
            self.dense = keras.layers.Dense(500)
            self.gated_conv = GatedConv2D(64, 3)
            self.masked = MaskedConv2D(64, 5, "B")
            self.conv = keras.layers.Conv2D(32, 1)

    holder = Holder()
    holder.gated.build((None, 784))
    holder.dense.build((None, 300))
    holder.gated_conv.build((None, 8, 8, 32))
    holder.masked.build((None, 8, 8, 64))
    holder.conv.build((None, 8, 8, 64))
    return holder


def test_authors_init_is_he_normal_for_dense_and_pytorch_default_for_conv():
    from vampkeras.layers import initialize_as_authors

    keras.utils.set_random_seed(5)
    holder = authors_test_model()
    initialize_as_authors(holder, seed=7)
    for layer, fan_in in ((holder.gated, 784), (holder.dense, 300)):
        kernel = layer.kernel.numpy().astype(np.float64)
        # He-normal N(0, 2/fan_in): ≥ 150 000 draws, so the std is within 1 % and the mean near 0
        assert kernel.std() == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.01)
        assert abs(kernel.mean()) < 0.01 * np.sqrt(2.0 / fan_in) * 3
        assert np.abs(kernel).max() > 3.5 * np.sqrt(2.0 / fan_in)          # a normal, not a uniform
        bias = layer.bias.numpy()
        bound = 1.0 / np.sqrt(fan_in)                                    # PyTorch's default bias
        assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.9 * bound
        assert bias.std() == pytest.approx(bound / np.sqrt(3.0), rel=0.1)
    for layer, fan_in in ((holder.gated_conv, 9 * 32), (holder.masked, 25 * 64), (holder.conv, 64)):
        bound = 1.0 / np.sqrt(fan_in)                                    # U(±1/√fan_in), weight and bias
        kernel = layer.kernel.numpy()
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.99 * bound
        assert kernel.std() == pytest.approx(bound / np.sqrt(3.0), rel=0.02)
        bias = layer.bias.numpy()
        assert np.abs(bias).max() <= bound and np.any(bias != 0)


def test_authors_init_is_deterministic_in_the_seed():
    from vampkeras.layers import initialize_as_authors

    first, second, other = authors_test_model(), authors_test_model(), authors_test_model()
    initialize_as_authors(first, seed=3)
    initialize_as_authors(second, seed=3)
    initialize_as_authors(other, seed=4)
    for a, b, c in zip(first.weights, second.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert not np.array_equal(a.numpy(), c.numpy())


def test_gated_variables_are_the_kernels_and_biases_of_the_gated_layers():
    from vampkeras.layers import gated_variables

    holder = authors_test_model()
    assert [v.path for v in gated_variables(holder)] == [
        holder.gated.kernel.path, holder.gated.bias.path, holder.gated_conv.kernel.path, holder.gated_conv.bias.path]
