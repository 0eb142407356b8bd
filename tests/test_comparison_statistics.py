"""vampkeras.comparison.statistics against independent computations on known per-image arrays: the paired-t
interval against scipy.stats.ttest_rel, the hierarchical bootstrap against a plain loop over resamples
(the same generator draws) and against cases with known answers (a constant difference, identical seeds,
one seed), the sentence's wordings (win, loss, no clear difference, one seed disagreeing, bits/dim)."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from vampkeras import config
from vampkeras.comparison import statistics
from vampkeras.comparison.statistics import (Interval, PairComparison, compare_priors, paired_interval,
                                             seed_spread, sentence)
from vampkeras.errors import ConfigError, DataError


def slow_hierarchical_bootstrap(differences, resamples, generator_seed):
    """The hierarchical bootstrap written as the plain loop it is, drawing in the documented order: every
    resample's K seed rows first, then per resample K x N image indices; per resample the mean over the
    drawn seeds of the mean over the drawn images."""
    rng = np.random.default_rng(generator_seed)
    num_seeds, num_images = differences.shape
    seed_rows = rng.integers(0, num_seeds, size=(resamples, num_seeds))
    means = []
    for r in range(resamples):
        images = rng.integers(0, num_images, size=(num_seeds, num_images))
        means.append(np.mean([np.mean(differences[seed_rows[r, k]][images[k]]) for k in range(num_seeds)]))
    return np.array(means)


def noisy_pairs(seeds, num_images, shifts, noise=1.0, seed=0):
    """Per seed (LL_A, LL_B) with LL_A − LL_B = shift + N(0, noise²) per image, around LLs near −90."""
    rng = np.random.default_rng(seed)
    pairs = {}
    for s, shift in zip(seeds, shifts):
        ll_b = rng.normal(-90.0, 5.0, num_images)
        pairs[s] = (ll_b + shift + rng.normal(0.0, noise, num_images), ll_b)
    return pairs


# ---- paired_interval --------------------------------------------------------------------------------------

@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_paired_interval_is_scipys_paired_t_interval(confidence):
    rng = np.random.default_rng(1)
    ll_a, ll_b = rng.normal(-85.0, 4.0, 40), rng.normal(-86.0, 4.0, 40)
    interval = paired_interval(ll_a - ll_b, confidence)
    reference = stats.ttest_rel(ll_a, ll_b)
    low, high = reference.confidence_interval(confidence)
    assert interval.estimate == pytest.approx(np.mean(ll_a) - np.mean(ll_b), rel=1e-12)
    assert (interval.low, interval.high) == pytest.approx((low, high), rel=1e-12)
    # and the hand formula, mean ± t_{n−1} s / √n
    d = ll_a - ll_b
    half = stats.t.ppf((1 + confidence) / 2, 39) * np.std(d, ddof=1) / math.sqrt(40)
    assert interval.high - interval.estimate == pytest.approx(half, rel=1e-12)
    assert interval.standard_error == pytest.approx(np.std(d, ddof=1) / math.sqrt(40), rel=1e-12)
    assert interval.n == 40 and "39 degrees of freedom" in interval.method


def test_a_constant_difference_has_a_zero_width_interval_not_nan():
    interval = paired_interval(np.full(25, 0.1))
    assert (interval.estimate, interval.low, interval.high, interval.standard_error) == (0.1, 0.1, 0.1, 0.0)
    zero = paired_interval(np.zeros(7))
    assert (zero.estimate, zero.low, zero.high) == (0.0, 0.0, 0.0) and not zero.excludes_zero


def test_one_image_gives_its_difference_and_no_interval():
    interval = paired_interval(np.array([2.5]))
    assert interval.estimate == 2.5 and interval.n == 1
    assert math.isnan(interval.low) and math.isnan(interval.high) and math.isnan(interval.standard_error)
    assert not interval.excludes_zero
    assert interval.to_json()["low"] is None and interval.to_json()["high"] is None
    assert interval.text() == "2.50 (no interval: one observation)"


@pytest.mark.parametrize("bad", [np.array([]), np.array([1.0, np.nan]), np.array([1.0, np.inf]),
                                 np.ones((2, 3)), ["a", "b"], [[1.0], [1.0, 2.0]]])
def test_paired_interval_refuses_what_is_not_finite_per_image_numbers(bad):
    with pytest.raises(DataError):
        paired_interval(bad)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95])
def test_a_confidence_outside_0_1_is_refused(confidence):
    with pytest.raises(ConfigError, match="confidence"):
        paired_interval(np.arange(5.0), confidence)


# ---- seed_spread -------------------------------------------------------------------------------------------

def test_seed_spread_is_mean_and_sample_std():
    spread = seed_spread([-85.0, -85.5, -84.1])
    assert spread.mean == pytest.approx(np.mean([-85.0, -85.5, -84.1]), rel=1e-14)
    assert spread.std == pytest.approx(np.std([-85.0, -85.5, -84.1], ddof=1), rel=1e-14)
    mean, std = spread      # a (mean, std) pair
    assert spread.text() == f"{mean:.2f} ± {std:.2f}" == "-84.87 ± 0.71"
    assert spread.to_json() == {"mean": mean, "std": std}


def test_one_seed_has_no_spread_and_says_so():
    spread = seed_spread([-85.13])
    assert spread.mean == -85.13 and math.isnan(spread.std)
    assert spread.text() == "-85.13 (one seed)"
    assert spread.to_json() == {"mean": -85.13, "std": None}


# ---- compare_priors: the hierarchical bootstrap -----------------------------------------------------------

def test_the_bootstrap_is_the_plain_loop_with_the_same_draws():
    pairs = noisy_pairs([0, 1, 2], 37, [1.0, 1.3, 0.6], noise=2.0)
    comparison = compare_priors(pairs, resamples=2000, generator_seed=5)
    differences = np.stack([pairs[s][0] - pairs[s][1] for s in (0, 1, 2)])
    reference = slow_hierarchical_bootstrap(differences, 2000, 5)
    low, high = np.quantile(reference, [0.025, 0.975])
    assert (comparison.low, comparison.high) == pytest.approx((low, high), rel=1e-12)
    assert comparison.interval.standard_error == pytest.approx(np.std(reference, ddof=1), rel=1e-10)
    assert comparison.mean == pytest.approx(np.mean(differences), rel=1e-12)
    # the chunking (one resample at a time, or all at once) changes nothing
    for chunk_elements in (1, 10**9):
        rechunked = compare_priors(pairs, resamples=2000, generator_seed=5, chunk_elements=chunk_elements)
        assert (rechunked.low, rechunked.high) == pytest.approx((low, high), rel=1e-12)


def test_a_constant_difference_gives_exactly_that_interval():
    rng = np.random.default_rng(3)
    # LLs on a grid of quarters, so that LL_A − LL_B is exactly 0.75 in floating point
    pairs = {}
    for s in (0, 1, 2):
        ll_b = rng.integers(-400, -300, 500) * 0.25
        pairs[s] = (ll_b + 0.75, ll_b)
    comparison = compare_priors(pairs)
    assert (comparison.mean, comparison.low, comparison.high) == (0.75, 0.75, 0.75)
    assert comparison.interval.standard_error == 0.0
    assert all((d.interval.low, d.interval.high) == (0.75, 0.75) for d in comparison.per_seed)
    assert comparison.seeds_a_better == 3 and comparison.seeds_b_better == 0
    assert sentence("static_mnist", "hvae", "vampprior", "standard", comparison) == (
        "On static_mnist, the HVAE's VampPrior beats the standard prior by 0.75 nats per image, "
        "95% CI [0.75, 0.75], in 3 of 3 seeds.")


def test_identical_seeds_give_what_resampling_images_alone_gives():
    rng = np.random.default_rng(4)
    num_images = 2000
    ll_b = rng.normal(-90.0, 5.0, num_images)
    ll_a = ll_b + 0.5 + rng.normal(0.0, 2.0, num_images)
    comparison = compare_priors({s: (ll_a, ll_b) for s in (0, 1, 2)}, generator_seed=9)
    # Resampling images alone, with the same draws: which seed rows are drawn cannot matter.
    d = ll_a - ll_b
    draws = np.random.default_rng(9)
    draws.integers(0, 3, size=(2000, 3))
    images_only = []
    for _ in range(2000):
        images = draws.integers(0, num_images, size=(3, num_images))   # three image resamples of one array
        images_only.append(np.mean(d[images], axis=1).mean())
    assert (comparison.low, comparison.high) == pytest.approx(tuple(np.quantile(images_only, [0.025, 0.975])),
                                                              rel=1e-12)
    # and as theory says: the mean of 3 independent image resamples, a half-width near 1.96 s / √(3N)
    half = 1.96 * np.std(d, ddof=1) / math.sqrt(3 * num_images)
    assert (comparison.high - comparison.low) / 2 == pytest.approx(half, rel=0.1)
    assert comparison.low < np.mean(d) < comparison.high


def test_with_one_seed_the_interval_covers_images_only_and_matches_the_paired_t():
    pairs = noisy_pairs([7], 5000, [0.2], noise=3.0)
    comparison = compare_priors(pairs)
    paired = comparison.per_seed[0].interval
    assert comparison.num_seeds == 1 and comparison.per_seed[0].seed == 7
    assert comparison.mean == paired.estimate
    # the bootstrap over images and the t interval agree for 5000 images (the bootstrap's own noise: ~5%)
    assert comparison.low == pytest.approx(paired.low, abs=0.1 * (paired.high - paired.low))
    assert comparison.high == pytest.approx(paired.high, abs=0.1 * (paired.high - paired.low))
    assert "image-to-image variation only" in comparison.covers
    assert "not seed-to-seed" in comparison.covers
    several = compare_priors(noisy_pairs([0, 1], 50, [0.2, 0.3]))
    assert "seed-to-seed variation (seeds resampled)" in several.covers


def test_per_seed_intervals_are_paired_t_intervals():
    pairs = noisy_pairs([14, 69, 420], 60, [1.0, 0.8, 1.2], noise=2.0)
    comparison = compare_priors(pairs)
    assert [d.seed for d in comparison.per_seed] == [14, 69, 420]
    for d in comparison.per_seed:
        ll_a, ll_b = pairs[d.seed]
        low, high = stats.ttest_rel(ll_a, ll_b).confidence_interval(0.95)
        assert (d.interval.low, d.interval.high) == pytest.approx((low, high), rel=1e-12)
        assert (d.mean_a, d.mean_b) == pytest.approx((np.mean(ll_a), np.mean(ll_b)), rel=1e-14)


def test_a_zero_difference_is_no_difference():
    rng = np.random.default_rng(5)
    pairs = {s: (ll, ll.copy()) for s in (0, 1, 2) for ll in [rng.normal(-90.0, 5.0, 300)]}
    comparison = compare_priors(pairs)
    assert (comparison.mean, comparison.low, comparison.high) == (0.0, 0.0, 0.0)
    assert comparison.seeds_a_better == 0 and comparison.seeds_b_better == 0
    assert sentence("mnist5k", "vae", "vampprior", "standard", comparison) == (
        "On mnist5k, the VAE's VampPrior and the standard prior show no clear difference: the VampPrior's "
        "advantage is 0.00 nats per image, 95% CI [0.00, 0.00], and it is ahead in 0 of 3 seeds.")


def test_one_seed_of_three_disagreeing_says_2_of_3():
    pairs = noisy_pairs([0, 1, 2], 1000, [1.0, 1.1, -0.5], noise=0.5)
    comparison = compare_priors(pairs)
    assert comparison.seeds_a_better == 2 and comparison.seeds_b_better == 1
    # All three resampled seeds are the disagreeing one with probability 1/27 > 2.5%: the lower bound is
    # about that seed's difference, and the interval holds 0.
    assert comparison.low == pytest.approx(comparison.per_seed[2].interval.estimate, abs=0.1)
    assert comparison.low < 0 < comparison.high
    text = sentence("static_mnist", "hvae", "vampprior", "mog", comparison)
    assert text.startswith("On static_mnist, the HVAE's VampPrior and the mixture-of-Gaussians prior show "
                           "no clear difference: the VampPrior's advantage is 0.5")
    assert text.endswith("and it is ahead in 2 of 3 seeds.")


def test_a_loss_is_worded_as_a_loss_with_the_interval_turned_round():
    pairs = noisy_pairs([0, 1, 2], 500, [-2.0, -2.2, -1.9], noise=0.5)
    comparison = compare_priors(pairs)
    assert comparison.high < 0 and comparison.seeds_b_better == 3
    text = sentence("omniglot", "convhvae", "standard", "vampprior", comparison)
    margin, low, high = -comparison.mean, -comparison.high, -comparison.low
    assert text == (f"On omniglot, the convHVAE's standard prior loses to the VampPrior by {margin:.2f} nats "
                    f"per image, 95% CI [{low:.2f}, {high:.2f}], in 3 of 3 seeds.")


def test_the_issues_example_sentence():
    interval = Interval(1.14, 1.05, 1.23, 0.95, 3, 0.045, "hierarchical bootstrap")
    comparison = PairComparison(per_seed=(), interval=interval, seeds_a_better=3, seeds_b_better=0,
                                num_seeds=3, num_images=10000, resamples=2000, generator_seed=0, covers="")
    assert sentence("static_mnist", "hvae", "vampprior", "standard", comparison) == (
        "On static_mnist, the HVAE's VampPrior beats the standard prior by 1.14 nats per image, 95% CI "
        "[1.05, 1.23], in 3 of 3 seeds.")
    one_seed = PairComparison(per_seed=(), interval=Interval(0.5, 0.3, 0.7, 0.9, 1, 0.1, ""), seeds_a_better=1,
                              seeds_b_better=0, num_seeds=1, num_images=10, resamples=2000, generator_seed=0,
                              covers="")
    assert sentence("caltech101", "pixelhvae", "vampprior-data", "standard", one_seed) == (
        "On caltech101, the PixelHVAE's VampPrior (data) beats the standard prior by 0.50 nats per image, "
        "90% CI [0.30, 0.70], in 1 of 1 seed.")


def test_bits_per_dimension_convert_the_advantage_with_evaluations_formula():
    from vampkeras.evaluation import bits_per_dim

    # Frey Faces: 28 x 20 images; A gains ~20 nats per image, i.e. its bits/dim are lower
    pairs = noisy_pairs([0, 1, 2], 400, [20.0, 20.1, 19.95], noise=1.0)
    comparison = compare_priors(pairs)
    gain = bits_per_dim(np.mean([np.mean(b) for _, b in pairs.values()]), (28, 20)) - bits_per_dim(
        np.mean([np.mean(a) for a, _ in pairs.values()]), (28, 20))
    assert gain == pytest.approx(comparison.mean / (560 * math.log(2)), rel=1e-9)
    low, high = comparison.low / (560 * math.log(2)), comparison.high / (560 * math.log(2))
    text = sentence("freyfaces", "vae", "vampprior", "standard", comparison, unit="bits/dim", image_shape=(28, 20))
    digits = max(3, -math.floor(math.log10((high - low) / 2)))
    assert text == (f"On freyfaces, the VAE's VampPrior beats the standard prior by {gain:.{digits}f} bits/dim, "
                    f"95% CI [{low:.{digits}f}, {high:.{digits}f}], in 3 of 3 seeds.")
    assert digits == 4      # a half-width under 0.001 bits/dim is shown, not rounded to [x, x]
    with pytest.raises(ConfigError, match="image shape"):
        sentence("freyfaces", "vae", "vampprior", "standard", comparison, unit="bits/dim")
    with pytest.raises(ConfigError, match="unit"):
        sentence("freyfaces", "vae", "vampprior", "standard", comparison, unit="bits")


def test_the_same_inputs_give_the_same_numbers():
    pairs = noisy_pairs([0, 1, 2], 200, [0.3, 0.1, 0.4], noise=3.0)
    first = compare_priors(pairs).to_json()
    assert compare_priors(pairs).to_json() == first
    assert compare_priors(dict(reversed(list(pairs.items())))).to_json() == first   # seed order is sorted
    other = compare_priors(pairs, generator_seed=1).to_json()
    assert other["interval"]["low"] != first["interval"]["low"]     # the generator seed is used
    assert other["interval"]["estimate"] == first["interval"]["estimate"]


def test_to_json_is_strict_json_of_plain_values():
    comparison = compare_priors(noisy_pairs([0, 1], 1, [0.5, 0.7]))   # one image: NaN per-seed bounds
    data = json.loads(json.dumps(comparison.to_json(), allow_nan=False))
    assert data["num_seeds"] == 2 and data["num_images"] == 1 and data["resamples"] == 2000
    assert data["per_seed"][0]["low"] is None and data["per_seed"][0]["seed"] == 0
    assert data["interval"]["n"] == 2 and isinstance(data["interval"]["low"], float)
    assert isinstance(data["covers"], str) and data["seeds_a_better"] == 2


@pytest.mark.parametrize("per_seed, error", [
    ({}, DataError),
    ({0: (np.zeros(3), np.zeros(4))}, DataError),
    ({0: (np.zeros(3), np.zeros(3)), 1: (np.zeros(4), np.zeros(4))}, DataError),
    ({0: (np.zeros(3), np.array([0.0, np.nan, 0.0]))}, DataError),
    ({0: (np.zeros(3),)}, DataError),
    ({"0": (np.zeros(3), np.zeros(3))}, DataError),
])
def test_compare_priors_refuses_unpaired_or_damaged_arrays(per_seed, error):
    with pytest.raises(error):
        compare_priors(per_seed)


def test_fewer_than_2000_resamples_are_refused():
    with pytest.raises(ConfigError, match="2000"):
        compare_priors({0: (np.zeros(3), np.zeros(3))}, resamples=1999)


def test_every_model_and_prior_has_its_display_name():
    assert set(statistics.MODEL_NAMES) == set(config.MODELS)
    assert set(statistics.PRIOR_NAMES) == set(config.PRIORS)
    assert [statistics.prior_name(p) for p in ("standard", "vampprior", "mog", "vampprior-data")] == [
        "standard prior", "VampPrior", "mixture-of-Gaussians prior", "VampPrior (data)"]
    assert [statistics.model_name(m) for m in ("vae", "hvae", "convhvae", "pixelhvae")] == [
        "VAE", "HVAE", "convHVAE", "PixelHVAE"]
