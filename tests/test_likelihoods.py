"""Observation models: the one-expression Bernoulli equals TFP's, for binary and grey targets."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from vampkeras import likelihoods

tfd = tfp.distributions


def tfp_bernoulli(logits):
    return tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32), reinterpreted_batch_ndims=1)


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_bernoulli_log_prob_equals_tfp_for_binary_and_grey_targets(scale):
    rng = np.random.default_rng(0)
    logits = (scale * rng.normal(size=(3, 7, 50))).astype(np.float32)
    for x in [(rng.uniform(size=(3, 7, 50)) < 0.3).astype(np.float32), rng.uniform(size=(3, 7, 50)).astype(np.float32)]:
        got = likelihoods.bernoulli(logits).log_prob(x).numpy()
        expected = tfp_bernoulli(logits).log_prob(x).numpy()
        assert got.shape == (3, 7)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
        # and a float64 hand computation: Σ x log σ(l) + (1 − x) log σ(−l)
        l64 = logits.astype(np.float64)
        hand = np.sum(-x * np.logaddexp(0, -l64) - (1 - x) * np.logaddexp(0, l64), axis=-1)
        np.testing.assert_allclose(got, hand, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("jit", [False, True])
def test_bernoulli_log_prob_per_pixel_is_float32_exact_over_the_whole_logit_range(jit):
    """One pixel at a time (D = 1), logits from −100 to 100 (e^−|l| far below float32's spacing near 1):
    within 1e-6 of the float64 value, eagerly and XLA-compiled (the IS evaluation's path); tf.nn.softplus
    itself is 1.8e-6 off here."""
    logits = np.concatenate([np.linspace(-100, 100, 4001), [-1e-6, 0.0, 1e-6]]).astype(np.float32)[:, None]
    log_prob = tf.function(lambda l, x: likelihoods.bernoulli(l).log_prob(x), jit_compile=jit)
    l64 = logits[:, 0].astype(np.float64)
    for value, expected in ((1.0, -np.logaddexp(0, -l64)), (0.0, -np.logaddexp(0, l64))):
        got = log_prob(logits, np.full_like(logits, value)).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_bernoulli_mean_shapes_and_samples():
    logits = np.array([[-2.0, 0.0, 3.0]], np.float32)
    distribution = likelihoods.bernoulli(logits)
    assert distribution.event_shape == (3,) and distribution.batch_shape == (1,)
    np.testing.assert_allclose(distribution.mean().numpy(), 1 / (1 + np.exp(-logits)), rtol=1e-6)
    draws = distribution.sample(20000, seed=tf.constant([1, 2])).numpy()
    assert draws.shape == (20000, 1, 3) and set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_allclose(draws.mean(axis=0), 1 / (1 + np.exp(-logits)), atol=0.015)
    again = distribution.sample(20000, seed=tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(draws, again)


def test_build_refuses_an_unknown_likelihood():
    with pytest.raises(ValueError, match="unknown likelihood"):
        likelihoods.build("poisson", tf.zeros([1, 4]))
