"""Priors p(z): every log-density is checked against a float64 numpy/scipy computation written here."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from scipy.stats import norm

from vampkeras.priors import (
    MixtureOfGaussiansPrior,
    StandardNormalPrior,
    VampPrior,
    gaussian_mixture,
    gaussian_mixture_log_prob,
)

LATENT = 4
PIXELS = 20
K = 5


# -- independent numpy references -------------------------------------------------------------------
def np_mixture_log_prob(z, logits, means, log_vars):
    """log Σ_k softmax(logits)_k Π_m N(z_m | μ_km, exp(lv_km)), float64, by explicit broadcasting."""
    z = np.asarray(z, np.float64)
    means = np.asarray(means, np.float64)
    scales = np.exp(0.5 * np.asarray(log_vars, np.float64))
    components = norm.logpdf(z[..., None, :], means, scales).sum(-1)          # (..., K)
    logits = np.asarray(logits, np.float64)
    log_weights = logits - logsumexp(logits)
    return logsumexp(components + log_weights, axis=-1)


class LinearEncoder:
    """A stand-in for q(z|x): any callable (N, D) → (mean, log_var) will do for a prior.

    mean = x A + a, log_var = clip(x B + b, -6, 2); ``numpy`` computes the same in float64.
    """

    def __init__(self, seed=0, mean_bias=None, log_var_bias=None, scale=0.5):
        rng = np.random.default_rng(seed)
        self.A = rng.normal(0.0, scale, (PIXELS, LATENT)).astype(np.float32)
        self.B = rng.normal(0.0, scale, (PIXELS, LATENT)).astype(np.float32)
        self.a = np.zeros(LATENT, np.float32) if mean_bias is None else np.asarray(mean_bias, np.float32)
        self.b = np.zeros(LATENT, np.float32) if log_var_bias is None else np.asarray(log_var_bias, np.float32)

    def __call__(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        return (tf.matmul(x, self.A) + self.a, tf.clip_by_value(tf.matmul(x, self.B) + self.b, -6.0, 2.0))

    def numpy(self, x):
        x = np.asarray(x, np.float64)
        return x @ self.A + self.a, np.clip(x @ self.B + self.b, -6.0, 2.0)


def random_mixture(rng, k, m, mean_scale=1.0):
    logits = rng.normal(0.0, 1.5, k).astype(np.float32)
    means = rng.normal(0.0, mean_scale, (k, m)).astype(np.float32)
    log_vars = rng.uniform(-2.0, 1.0, (k, m)).astype(np.float32)
    return logits, means, log_vars


# -- gaussian_mixture_log_prob ----------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, 7])
def test_mixture_log_prob_matches_numpy_logsumexp_for_sbm_z(k):
    rng = np.random.default_rng(10 + k)
    logits, means, log_vars = random_mixture(rng, k, LATENT)
    z = rng.normal(0.0, 1.5, (3, 6, LATENT)).astype(np.float32)               # (S, B, M)
    got = gaussian_mixture_log_prob(tf.constant(z), logits, means, log_vars).numpy()
    assert got.shape == (3, 6)
    np.testing.assert_allclose(got, np_mixture_log_prob(z, logits, means, log_vars), rtol=1e-5, atol=2e-4)


def test_mixture_log_prob_equals_tfp_mixture_same_family():
    rng = np.random.default_rng(1)
    logits, means, log_vars = random_mixture(rng, 6, LATENT)
    z = rng.normal(0.0, 1.5, (2, 5, LATENT)).astype(np.float32)
    fast = gaussian_mixture_log_prob(tf.constant(z), logits, means, log_vars).numpy()
    tfp_value = gaussian_mixture(logits, means, log_vars).log_prob(z).numpy()
    reference = np_mixture_log_prob(z, logits, means, log_vars)
    np.testing.assert_allclose(tfp_value, reference, rtol=1e-5, atol=2e-4)
    np.testing.assert_allclose(fast, tfp_value, rtol=1e-5, atol=2e-4)


def test_mixture_log_prob_nonuniform_logits_differ_from_uniform():
    # The mixture weights must enter: a strongly skewed logit vector moves the value exactly as numpy says.
    rng = np.random.default_rng(2)
    _, means, log_vars = random_mixture(rng, 4, LATENT, mean_scale=3.0)
    z = rng.normal(0.0, 2.0, (5, LATENT)).astype(np.float32)
    skewed = np.array([4.0, -3.0, 0.5, -1.0], np.float32)
    uniform = np.zeros(4, np.float32)
    got_skewed = gaussian_mixture_log_prob(tf.constant(z), skewed, means, log_vars).numpy()
    got_uniform = gaussian_mixture_log_prob(tf.constant(z), uniform, means, log_vars).numpy()
    np.testing.assert_allclose(got_skewed, np_mixture_log_prob(z, skewed, means, log_vars), rtol=1e-5, atol=2e-4)
    np.testing.assert_allclose(got_uniform, np_mixture_log_prob(z, uniform, means, log_vars), rtol=1e-5, atol=2e-4)
    assert np.max(np.abs(got_skewed - got_uniform)) > 0.1


def test_mixture_log_prob_is_invariant_to_a_shift_of_the_logits():
    rng = np.random.default_rng(3)
    logits, means, log_vars = random_mixture(rng, 5, LATENT)
    z = rng.normal(size=(4, LATENT)).astype(np.float32)
    a = gaussian_mixture_log_prob(tf.constant(z), logits, means, log_vars).numpy()
    b = gaussian_mixture_log_prob(tf.constant(z), logits + 7.0, means, log_vars).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-5)


def test_single_component_mixture_is_one_diagonal_gaussian():
    rng = np.random.default_rng(4)
    mean = rng.normal(size=(1, LATENT)).astype(np.float32)
    log_var = rng.uniform(-3.0, 1.0, (1, LATENT)).astype(np.float32)
    z = rng.normal(size=(2, 3, LATENT)).astype(np.float32)
    got = gaussian_mixture_log_prob(tf.constant(z), np.array([2.5], np.float32), mean, log_var).numpy()
    expected = norm.logpdf(z.astype(np.float64), mean[0], np.exp(0.5 * log_var[0].astype(np.float64))).sum(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-4)


def test_mixture_log_prob_far_from_every_component_is_finite_and_exact():
    # Far tails: the logsumexp must not underflow to -inf.
    means = np.zeros((3, LATENT), np.float32)
    log_vars = np.full((3, LATENT), -4.0, np.float32)
    log_vars[1] = -2.0
    z = np.full((2, LATENT), 10.0, np.float32)
    got = gaussian_mixture_log_prob(tf.constant(z), np.zeros(3, np.float32), means, log_vars).numpy()
    expected = np_mixture_log_prob(z, np.zeros(3), means, log_vars)
    assert np.all(np.isfinite(got)) and np.all(expected < -500)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def _sharp_posteriors(seed, mean_scale):
    """A VampPrior-like regime: K=50, M=40, posteriors at the log-variance floor (-6), z drawn near them."""
    rng = np.random.default_rng(seed)
    k, m = 50, 40
    means = (mean_scale * rng.normal(size=(k, m))).astype(np.float32)
    log_vars = np.full((k, m), -6.0, np.float32)
    z = (means[rng.integers(0, k, 64)] + np.exp(-3.0) * rng.normal(size=(64, m))).astype(np.float32)
    return np.zeros(k, np.float32), means, log_vars, z


def test_tfp_mixture_is_accurate_for_sharp_components():
    # The reference precision that float32 can reach in this regime (see the test below).
    logits, means, log_vars, z = _sharp_posteriors(5, 3.0)
    tfp_value = gaussian_mixture(logits, means, log_vars).log_prob(z).numpy()
    np.testing.assert_allclose(tfp_value, np_mixture_log_prob(z, logits, means, log_vars), rtol=0, atol=1e-2)


@pytest.mark.parametrize("mean_scale", [3.0, 10.0])
def test_mixture_log_prob_is_accurate_for_sharp_components(mean_scale):
    logits, means, log_vars, z = _sharp_posteriors(5, mean_scale)
    got = gaussian_mixture_log_prob(tf.constant(z), logits, means, log_vars).numpy()
    np.testing.assert_allclose(got, np_mixture_log_prob(z, logits, means, log_vars), rtol=0, atol=1e-2)


# -- standard normal --------------------------------------------------------------------------------
def test_standard_normal_log_prob_matches_scipy():
    prior = StandardNormalPrior(LATENT)
    z = np.random.default_rng(6).normal(0.0, 2.0, (3, 5, LATENT)).astype(np.float32)
    got = prior.log_prob(tf.constant(z), prior.parameters(None)).numpy()
    np.testing.assert_allclose(got, norm.logpdf(z.astype(np.float64)).sum(-1), rtol=1e-6, atol=1e-5)
    # its TFP distribution agrees too
    np.testing.assert_allclose(prior.distribution({}).log_prob(z).numpy(),
                               norm.logpdf(z.astype(np.float64)).sum(-1), rtol=1e-6, atol=1e-5)


def test_standard_normal_samples_have_unit_moments():
    prior = StandardNormalPrior(LATENT)
    samples = prior.sample(20000, {}, seed=tf.constant([1, 2])).numpy()
    assert samples.shape == (20000, LATENT)
    np.testing.assert_allclose(samples.mean(0), 0.0, atol=5.0 / np.sqrt(20000))
    np.testing.assert_allclose(samples.std(0), 1.0, rtol=0.03)


# -- mixture of Gaussians ---------------------------------------------------------------------------
def test_mog_parameter_shapes_and_log_var_clipping():
    prior = MixtureOfGaussiansPrior(LATENT, K, seed=1)
    params = prior.parameters(None)
    assert tuple(params["mixture_logits"].shape) == (K,)
    assert tuple(params["means"].shape) == (K, LATENT)
    assert tuple(params["log_vars"].shape) == (K, LATENT)
    raw = np.linspace(-10.0, 5.0, K * LATENT).reshape(K, LATENT).astype(np.float32)
    prior.log_vars.assign(raw)
    np.testing.assert_array_equal(prior.parameters(None)["log_vars"].numpy(), np.clip(raw, -6.0, 2.0))


def test_mog_uniform_weights_are_not_trainable_and_weighted_ones_are():
    uniform = MixtureOfGaussiansPrior(LATENT, K)
    weighted = MixtureOfGaussiansPrior(LATENT, K, weighted=True)
    names = lambda p: {v.name for v in p.trainable_weights}  # noqa: E731
    assert names(uniform) == {"means", "log_vars"}
    assert names(weighted) == {"means", "log_vars", "mixture_logits"}


def test_mog_log_prob_matches_numpy_with_nonuniform_weights():
    rng = np.random.default_rng(7)
    prior = MixtureOfGaussiansPrior(LATENT, K, weighted=True, seed=3)
    logits, means, log_vars = random_mixture(rng, K, LATENT)
    log_vars[0, 0] = -9.0                                   # clipped to -6 by parameters()
    prior.mixture_logits.assign(logits)
    prior.means.assign(means)
    prior.log_vars.assign(log_vars)
    z = rng.normal(size=(2, 3, LATENT)).astype(np.float32)
    expected = np_mixture_log_prob(z, logits, means, np.clip(log_vars, -6.0, 2.0))
    params = prior.parameters(None)
    np.testing.assert_allclose(prior.log_prob(tf.constant(z), params).numpy(), expected, rtol=1e-5, atol=2e-4)
    np.testing.assert_allclose(prior.distribution(params).log_prob(z).numpy(), expected, rtol=1e-5, atol=2e-4)


def test_mog_samples_have_the_mixture_mean_and_variance():
    rng = np.random.default_rng(8)
    prior = MixtureOfGaussiansPrior(LATENT, 3, weighted=True)
    logits = np.array([1.0, 0.0, -1.0], np.float32)
    means = rng.normal(0.0, 2.0, (3, LATENT)).astype(np.float32)
    log_vars = rng.uniform(-1.0, 0.5, (3, LATENT)).astype(np.float32)
    prior.mixture_logits.assign(logits)
    prior.means.assign(means)
    prior.log_vars.assign(log_vars)
    n = 40000
    samples = prior.sample(n, prior.parameters(None), seed=tf.constant([3, 4])).numpy()
    assert samples.shape == (n, LATENT)
    weights = np.exp(logits - logsumexp(logits))
    mixture_mean = weights @ means
    mixture_var = weights @ (np.exp(log_vars) + means ** 2) - mixture_mean ** 2
    np.testing.assert_allclose(samples.mean(0), mixture_mean, atol=5.0 * np.sqrt(mixture_var.max() / n))
    np.testing.assert_allclose(samples.var(0), mixture_var, rtol=0.05)


# -- VampPrior --------------------------------------------------------------------------------------
def test_pseudo_inputs_are_the_weights_clipped_to_unit_interval():
    prior = VampPrior(LATENT, K, PIXELS, seed=0)
    raw = np.random.default_rng(9).uniform(-1.0, 2.0, (K, PIXELS)).astype(np.float32)
    assert raw.min() < 0 and raw.max() > 1
    prior.pseudo_input_weights.assign(raw)
    np.testing.assert_array_equal(prior.pseudo_inputs().numpy(), np.clip(raw, 0.0, 1.0))


def test_random_pseudo_input_init_has_requested_mean_and_std():
    prior = VampPrior(LATENT, 50, 40, init_mean=0.3, init_std=0.02, seed=4)
    w = prior.pseudo_input_weights.numpy()
    assert w.shape == (50, 40)
    np.testing.assert_allclose(w.mean(), 0.3, atol=5 * 0.02 / np.sqrt(w.size))
    np.testing.assert_allclose(w.std(), 0.02, rtol=0.05)


def test_vampprior_log_prob_is_mixture_of_encoded_pseudo_inputs():
    rng = np.random.default_rng(11)
    encoder = LinearEncoder(seed=1, mean_bias=[1.0, -2.0, 0.5, 0.0], log_var_bias=[-1.0, 0.5, 0.0, -0.5])
    prior = VampPrior(LATENT, K, PIXELS, seed=2)
    raw = rng.uniform(-0.5, 1.5, (K, PIXELS)).astype(np.float32)
    prior.pseudo_input_weights.assign(raw)
    params = prior.parameters(encoder)

    means, log_vars = encoder.numpy(np.clip(raw, 0.0, 1.0))
    np.testing.assert_allclose(params["means"].numpy(), means, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(params["log_vars"].numpy(), log_vars, rtol=1e-5, atol=1e-5)

    z = rng.normal(0.0, 1.5, (3, 4, LATENT)).astype(np.float32)
    expected = logsumexp(norm.logpdf(z[..., None, :].astype(np.float64), means, np.exp(0.5 * log_vars)).sum(-1),
                         axis=-1) - np.log(K)
    np.testing.assert_allclose(prior.log_prob(tf.constant(z), params).numpy(), expected, rtol=1e-5, atol=2e-4)


def test_weighted_vampprior_uses_softmax_of_its_trainable_logits():
    rng = np.random.default_rng(12)
    encoder = LinearEncoder(seed=1, mean_bias=[2.0, -2.0, 0.0, 1.0])
    prior = VampPrior(LATENT, K, PIXELS, weighted=True, seed=2)
    assert "mixture_logits" in {v.name for v in prior.trainable_weights}
    prior.pseudo_input_weights.assign(rng.uniform(0.0, 1.0, (K, PIXELS)).astype(np.float32))
    logits = np.array([3.0, -2.0, 0.0, 1.0, -1.0], np.float32)
    prior.mixture_logits.assign(logits)
    means, log_vars = encoder.numpy(prior.pseudo_inputs().numpy())
    z = rng.normal(size=(5, LATENT)).astype(np.float32)
    np.testing.assert_allclose(prior.log_prob(tf.constant(z), prior.parameters(encoder)).numpy(),
                               np_mixture_log_prob(z, logits, means, log_vars), rtol=1e-5, atol=2e-4)


def test_unweighted_vampprior_logits_are_frozen():
    prior = VampPrior(LATENT, K, PIXELS)
    assert {v.name for v in prior.trainable_weights} == {"pseudo_inputs"}
    assert "mixture_logits" in {v.name for v in prior.non_trainable_weights}


def test_vampprior_data_has_no_trainable_pseudo_inputs():
    images = np.random.default_rng(13).uniform(size=(K, PIXELS)).astype(np.float32)
    prior = VampPrior(LATENT, K, PIXELS, init_images=images, trainable_inputs=False)
    assert prior.trainable_weights == []
    assert "pseudo_inputs" in {v.name for v in prior.non_trainable_weights}


def test_vampprior_init_from_images_reproduces_them():
    images = np.random.default_rng(14).uniform(size=(K, 4, 5)).astype(np.float32)     # (K, H, W)
    prior = VampPrior(LATENT, K, PIXELS, init_images=images)
    np.testing.assert_array_equal(prior.pseudo_inputs().numpy(), images.reshape(K, PIXELS))


def test_vampprior_sample_shape_and_seed_determinism():
    encoder = LinearEncoder(seed=1)
    prior = VampPrior(LATENT, K, PIXELS, seed=2)
    params = prior.parameters(encoder)
    a = prior.sample(7, params, seed=tf.constant([5, 6])).numpy()
    b = prior.sample(7, params, seed=tf.constant([5, 6])).numpy()
    c = prior.sample(7, params, seed=tf.constant([5, 7])).numpy()
    assert a.shape == (7, LATENT)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_single_component_vampprior_samples_match_its_component():
    encoder = LinearEncoder(seed=3, mean_bias=[3.0, -1.0, 0.0, 2.0], log_var_bias=[-2.0, 0.0, 1.0, -1.0])
    prior = VampPrior(LATENT, 1, PIXELS, seed=5)
    prior.pseudo_input_weights.assign(np.random.default_rng(15).uniform(size=(1, PIXELS)).astype(np.float32))
    mean, log_var = encoder.numpy(prior.pseudo_inputs().numpy())
    std = np.exp(0.5 * log_var[0])
    n = 20000
    samples = prior.sample(n, prior.parameters(encoder), seed=tf.constant([8, 9])).numpy()
    assert samples.shape == (n, LATENT)
    np.testing.assert_allclose(samples.mean(0), mean[0], atol=5.0 * std.max() / np.sqrt(n))
    np.testing.assert_allclose(samples.std(0), std, rtol=0.03)


def test_build_prior_names_the_dataset_defaults_left_unresolved():
    from vampkeras.config import RunConfig
    from vampkeras.data import DATASETS
    from vampkeras.models import build_prior

    spec = DATASETS["mnist5k"]
    with pytest.raises(ValueError, match=r"num_components is None.*config.resolve"):
        build_prior(RunConfig(prior="mog"), spec)
    with pytest.raises(ValueError, match=r"pseudo_init_mean and pseudo_init_std are None"):
        build_prior(RunConfig(prior="vampprior", num_components=3), spec)
    prior = build_prior(RunConfig(prior="vampprior").resolve(spec), spec)
    assert prior.pseudo_inputs().shape == (spec.num_components, 784)
    images = np.random.default_rng(0).uniform(size=(5, 784)).astype(np.float32)
    data_prior = build_prior(RunConfig(prior="vampprior-data", num_components=3), spec, train_images=images)
    assert data_prior.pseudo_inputs().shape == (3, 784)       # picked images: no init mean or std needed
