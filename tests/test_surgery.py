"""vampkeras.comparison.surgery on Gaussians where the terms of (1/N) Σ KL(q(z|x_n) ‖ p) = I(x; z) +
KL(q(z) ‖ p) have closed forms: identical posteriors (I = 0, the marginal KL a Gaussian KL), posteriors whose
aggregate is the prior in the large-N limit (I → D/2 log(1 + a²/s²), marginal KL → 0), well-separated
posteriors (I = log N), and the average KL against the closed-form Gaussian KL (within the Monte-Carlo
standard error, whose calibration is checked too)."""

import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from vampkeras.comparison.surgery import (average_kl_to_standard_normal, elbo_surgery, gaussian_log_density,
                                          standard_normal_log_density)
from vampkeras.errors import ConfigError, DataError


def gaussian_kl(mean_q, var_q, mean_p, var_p):
    """KL(N(mean_q, diag var_q) ‖ N(mean_p, diag var_p)) over the last axis, the textbook closed form."""
    return 0.5 * np.sum(np.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1.0, axis=-1)


def gaussian_prior(mean, var):
    """The log density of N(mean, diag var) as a ``log_prior``, written with scipy (independent of the module)."""
    def log_prior(z):
        return stats.norm.logpdf(z, loc=mean, scale=np.sqrt(var)).sum(axis=1)
    return log_prior


def within(estimate, exact, standard_error, slack=0.0):
    """|estimate − exact| within 4 Monte-Carlo standard errors (plus ``slack`` for a known finite-N bias)."""
    return abs(estimate - exact) <= 4 * standard_error + slack


def test_identical_posteriors_have_no_mutual_information():
    n, mean, s = 40, np.array([0.5, -1.0, 2.0]), 0.8
    prior_mean, prior_var = np.array([0.2, 0.0, -0.3]), np.array([1.5, 0.7, 2.0])
    means, log_vars = np.tile(mean, (n, 1)), np.full((n, 3), math.log(s * s))
    result = elbo_surgery(means, log_vars, gaussian_prior(prior_mean, prior_var), num_samples=8)
    # q(z) = q(z|x_n) for every n: nothing tells the images apart
    assert abs(result.mutual_information) < 1e-10 and result.mutual_information_se < 1e-10
    exact = gaussian_kl(mean, s * s, prior_mean, prior_var)
    assert within(result.marginal_kl, exact, result.marginal_kl_se)
    assert within(result.average_kl, exact, result.average_kl_se)
    assert 0 < result.marginal_kl_se < 0.1 * exact


@pytest.mark.parametrize("dims, a, s", [(2, 1.0, 1.0), (4, 0.5, 1.0)])
def test_when_the_prior_is_the_aggregated_posterior_the_kl_is_all_mutual_information(dims, a, s):
    """Posterior means μ_n ~ N(0, a² I), posteriors N(μ_n, s² I): for large N the aggregated posterior is
    N(0, (a² + s²) I), the prior here, so the marginal KL → 0 and I → D/2 log(1 + a²/s²) (far below log N)."""
    n = 2000
    means = np.random.default_rng(10).normal(0.0, a, (n, dims))
    log_vars = np.full((n, dims), math.log(s * s))
    result = elbo_surgery(means, log_vars, gaussian_prior(0.0, a * a + s * s), num_samples=4)
    limit = dims / 2 * math.log(1 + a * a / (s * s))
    assert limit < math.log(n) / 5
    # the finite-N mixture differs from its limit by O(1/N) and the drawn μ_n's moments by O(1/√N)
    assert within(result.mutual_information, limit, result.mutual_information_se, slack=0.01)
    assert within(result.marginal_kl, 0.0, result.marginal_kl_se, slack=0.01)
    exact_average = np.mean(gaussian_kl(means, s * s, 0.0, a * a + s * s))
    assert within(result.average_kl, exact_average, result.average_kl_se)
    assert result.average_kl > 10 * result.marginal_kl


def test_well_separated_posteriors_reach_the_log_n_bound():
    n = 64
    means = np.random.default_rng(11).normal(size=(n, 4))
    log_vars = np.full((n, 4), 2 * math.log(1e-3))     # s = 0.001, the means ~0.1 apart or more
    result = elbo_surgery(means, log_vars, standard_normal_log_density, num_samples=3)
    assert result.mutual_information_bound == math.log(n)
    assert result.mutual_information <= math.log(n)
    assert result.mutual_information == pytest.approx(math.log(n), abs=1e-9)
    assert result.marginal_kl == pytest.approx(result.average_kl - math.log(n), abs=1e-9)


def test_the_average_kl_is_the_closed_form_within_its_standard_error():
    rng = np.random.default_rng(12)
    means, log_vars = rng.normal(0.0, 1.5, (300, 5)), rng.uniform(-3.0, 1.0, (300, 5))
    result = elbo_surgery(means, log_vars, standard_normal_log_density, num_samples=8)
    exact = average_kl_to_standard_normal(means, log_vars)
    assert exact == pytest.approx(np.mean(gaussian_kl(means, np.exp(log_vars), 0.0, 1.0)), rel=1e-12)
    assert within(result.average_kl, exact, result.average_kl_se)
    assert result.average_kl_se < 0.01 * exact


def test_the_closed_form_helper_on_hand_values():
    # KL(N(μ, σ²) ‖ N(0, 1)) = (σ² + μ² − 1 − log σ²) / 2: 0.5 for (μ = 1, σ = 1); (e − 2) / 2 for σ² = e
    assert average_kl_to_standard_normal([[1.0]], [[0.0]]) == pytest.approx(0.5, rel=1e-15)
    assert average_kl_to_standard_normal([[0.0]], [[1.0]]) == pytest.approx((math.e - 2) / 2, rel=1e-15)
    assert average_kl_to_standard_normal([[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]) == pytest.approx(
        (0.5 + (math.e - 2) / 2) / 2, rel=1e-15)


def test_the_standard_errors_are_calibrated():
    """Over 40 generator seeds, (estimate − exact) / standard error has mean ~0 and standard deviation ~1."""
    rng = np.random.default_rng(13)
    means, log_vars = rng.normal(size=(30, 2)), rng.uniform(-2.0, 0.5, (30, 2))
    exact = average_kl_to_standard_normal(means, log_vars)
    scores = []
    for seed in range(40):
        result = elbo_surgery(means, log_vars, standard_normal_log_density, num_samples=4, seed=seed)
        scores.append((result.average_kl - exact) / result.average_kl_se)
    assert abs(np.mean(scores)) < 0.6
    assert 0.6 < np.std(scores, ddof=1) < 1.5


def test_the_three_estimates_add_up_on_the_same_samples():
    """average KL = I + marginal KL for the estimates themselves (same samples), for a mixture prior too."""
    rng = np.random.default_rng(14)
    means, log_vars = rng.normal(size=(150, 3)), rng.uniform(-2.0, 0.5, (150, 3))
    components, weights = rng.normal(0.0, 2.0, (5, 3)), np.log(np.full(5, 0.2))

    def mixture(z):
        return logsumexp(weights + np.stack([gaussian_log_density(z, c, 0.0) for c in components], axis=1), axis=1)
    for num_samples in (1, 3):
        result = elbo_surgery(means, log_vars, mixture, num_samples=num_samples)
        assert result.average_kl == pytest.approx(result.mutual_information + result.marginal_kl, rel=1e-12)
        assert 0 < result.mutual_information <= math.log(150)


@pytest.mark.parametrize("scale, num_samples", [(0.01, 1), (1.0, 2), (5.0, 1), (30.0, 4)])
def test_the_mutual_information_never_exceeds_log_n(scale, num_samples):
    rng = np.random.default_rng(15)
    means, log_vars = rng.normal(0.0, scale, (80, 6)), rng.uniform(-4.0, 0.0, (80, 6))
    result = elbo_surgery(means, log_vars, standard_normal_log_density, num_samples=num_samples)
    assert result.mutual_information <= result.mutual_information_bound == math.log(80)


def test_the_numbers_depend_on_the_seed_only_not_on_the_chunks():
    rng = np.random.default_rng(16)
    means, log_vars = rng.normal(size=(90, 4)), rng.uniform(-2.0, 0.0, (90, 4))
    first = elbo_surgery(means, log_vars, standard_normal_log_density, num_samples=3)
    assert elbo_surgery(means, log_vars, standard_normal_log_density, num_samples=3) == first
    for chunk_bytes in (1, 8 * 90 * 7):      # one sample at a time; 7 samples (not a whole image's 3)
        chunked = elbo_surgery(means, log_vars, standard_normal_log_density, num_samples=3, chunk_bytes=chunk_bytes)
        for key, value in first.to_json().items():
            assert chunked.to_json()[key] == pytest.approx(value, rel=1e-12, abs=1e-14)
    other = elbo_surgery(means, log_vars, standard_normal_log_density, num_samples=3, seed=1)
    assert other.average_kl != first.average_kl


def test_a_subset_of_images_is_its_own_aggregated_posterior():
    rng = np.random.default_rng(17)
    means, log_vars = rng.normal(size=(100, 3)), np.full((100, 3), 2 * math.log(1e-3))
    subset = elbo_surgery(means, log_vars, standard_normal_log_density, num_images=20)
    assert subset.num_images == 20 and subset.mutual_information_bound == math.log(20)
    assert subset.mutual_information == pytest.approx(math.log(20), abs=1e-9)
    assert elbo_surgery(means, log_vars, standard_normal_log_density, num_images=100) == elbo_surgery(
        means, log_vars, standard_normal_log_density)


def test_to_json_is_strict_json():
    result = elbo_surgery(np.zeros((1, 2)), np.zeros((1, 2)), standard_normal_log_density, num_samples=1)
    data = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert data["average_kl_se"] is None       # one image, one sample: no spread to estimate
    assert data["num_images"] == 1 and data["num_samples"] == 1 and data["latent_dims"] == 2
    assert data["average_kl"] == pytest.approx(0.0, abs=1e-15) == data["mutual_information"]


def test_the_log_densities_are_scipys():
    rng = np.random.default_rng(18)
    z, mean, log_var = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), rng.uniform(-1, 1, (6, 3))
    expected = [stats.multivariate_normal.logpdf(z[i], mean[i], np.diag(np.exp(log_var[i]))) for i in range(6)]
    assert gaussian_log_density(z, mean, log_var) == pytest.approx(expected, rel=1e-12)
    assert standard_normal_log_density(z) == pytest.approx(stats.multivariate_normal.logpdf(z, np.zeros(3)),
                                                             rel=1e-12)


@pytest.mark.parametrize("means, log_vars, kwargs, error", [
    (np.zeros((5, 2)), np.zeros((5, 3)), {}, DataError),
    (np.zeros(5), np.zeros(5), {}, DataError),
    (np.zeros((0, 2)), np.zeros((0, 2)), {}, DataError),
    (np.array([[0.0, np.nan]]), np.zeros((1, 2)), {}, DataError),
    (np.zeros((5, 2)), np.zeros((5, 2)), {"num_samples": 0}, ConfigError),
    (np.zeros((5, 2)), np.zeros((5, 2)), {"num_images": 0}, ConfigError),
    (np.zeros((5, 2)), np.zeros((5, 2)), {"num_images": 6}, ConfigError),
])
def test_bad_inputs_are_refused(means, log_vars, kwargs, error):
    with pytest.raises(error):
        elbo_surgery(means, log_vars, standard_normal_log_density, **kwargs)


@pytest.mark.parametrize("log_prior, message", [
    (lambda z: np.zeros(len(z) + 1), "shape"),
    (lambda z: np.zeros((len(z), 1)), "shape"),
    (lambda z: np.full(len(z), -np.inf), "not finite"),
])
def test_a_prior_that_returns_nonsense_is_refused(log_prior, message):
    with pytest.raises(DataError, match=message):
        elbo_surgery(np.zeros((5, 2)), np.zeros((5, 2)), log_prior)
