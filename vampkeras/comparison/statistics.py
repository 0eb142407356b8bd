"""Paired comparisons of two priors from their per-image test log-likelihoods (issue #31, "Statistics that
mean something").

Two priors A and B of one model are trained with the same seeds and scored on the same test images, so
their per-image log-likelihoods pair up twice: by seed value and by image. For every seed s the difference
d_s = mean_i [LL_A,s(x_i) − LL_B,s(x_i)] gets a paired-t interval over the images (how sure we are of that
pair of trained models' difference, given a finite test set). Over seeds, the mean of the d_s gets an
interval from a hierarchical bootstrap (seeds resampled with replacement, then images with replacement
within each resampled seed), which also covers seed-to-seed variation when there are several seeds.

A higher log-likelihood is better, so d > 0 means A is better. Every number here is in nats per image;
:func:`sentence` converts to bits per dimension where a dataset is reported so (Frey Faces in the paper).
The conversion is linear, so the converted intervals are exactly the intervals of the converted values.

Every result is a dataclass (or named tuple) whose ``to_json()`` gives plain floats, ints, strings and
lists, NaN written as None so that comparison.json stays strict JSON.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, NamedTuple

import numpy as np
from scipy import stats

from vampkeras.errors import ConfigError, DataError

__all__ = ["paired_interval", "hierarchical_bootstrap", "seed_spread", "compare_priors", "sentence", "Interval",
           "Spread", "SeedDifference", "PairComparison", "model_name", "prior_name", "MIN_RESAMPLES",
           "BOOTSTRAP_CHUNK_ELEMENTS", "MODEL_NAMES", "PRIOR_NAMES", "UNITS", "MAX_DIGITS"]

# The issue asks for at least this many bootstrap resamples: a 95% percentile interval reads the 2.5% tails,
# which fewer resamples estimate noisily.
MIN_RESAMPLES = 2000

# Bootstrap image indices drawn and gathered at once (int64 indices, then float64 values: 32 MB each), so
# 3 seeds x 10000 images x 2000 resamples runs in chunks of ~140 resamples instead of 480 MB at once.
BOOTSTRAP_CHUNK_ELEMENTS = 1 << 22

# How a report names what vampkeras.config.MODELS and vampkeras.config.PRIORS call them (the paper's names).
MODEL_NAMES = {"vae": "VAE", "hvae": "HVAE", "convhvae": "convHVAE", "pixelhvae": "PixelHVAE"}
PRIOR_NAMES = {"standard": "standard prior", "vampprior": "VampPrior", "mog": "mixture-of-Gaussians prior",
               "vampprior-data": "VampPrior (data)"}
# nats: per image, higher log-likelihood is better. bits/dim: −log p(x) / (D ln 2), lower is better.
UNITS = ("nats", "bits/dim")
MAX_DIGITS = 6


def model_name(model: str) -> str:
    """The display name of a model ("hvae" → "HVAE"); an unknown name is returned as given."""
    return MODEL_NAMES.get(model, model)


def prior_name(prior: str) -> str:
    """The display name of a prior ("mog" → "mixture-of-Gaussians prior"); an unknown name as given."""
    return PRIOR_NAMES.get(prior, prior)


def _json_float(value: float) -> float | None:
    """A float for JSON: NaN (no value, e.g. the spread of one seed) as None, so the file stays strict JSON."""
    value = float(value)
    return None if math.isnan(value) else value


def _number(value: float, digits: int) -> str:
    """``value`` to ``digits`` decimals, never "-0.00" (a rounded-away sign would read as a loss)."""
    return f"{round(float(value), digits) + 0.0:.{digits}f}"


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"the confidence level must be between 0 and 1 (e.g. 0.95), not {confidence}")
    return confidence


def _confidence_label(confidence: float) -> str:
    """0.95 → "95%" (0.9 → "90%", 0.999 → "99.9%")."""
    return f"{round(confidence * 100, 6):g}%"


def _values(values, what: str) -> np.ndarray:
    """``values`` as a non-empty, finite, one-dimensional float64 array; anything else is a DataError
    (the per-image arrays come from files in the cells, which may be damaged)."""
    try:
        array = np.asarray(values)
    except ValueError as error:     # a ragged list
        raise DataError(f"{what} must be a one-dimensional array of numbers ({error})") from None
    if array.dtype.kind not in "iuf":
        raise DataError(f"{what} must be numbers, not an array of {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if array.ndim != 1 or array.size == 0:
        raise DataError(f"{what} must be a non-empty one-dimensional array, not one of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{what} hold {int(np.sum(~np.isfinite(array)))} non-finite values (NaN or infinite)")
    return array


@dataclasses.dataclass(frozen=True)
class Interval:
    """An estimate with its ``confidence`` interval [low, high] from ``n`` observations (images for a
    paired t, seeds for the hierarchical bootstrap). ``standard_error`` is the estimate's: s/√n for the
    paired t, the bootstrap distribution's standard deviation for the bootstrap. With one observation the
    paired t has no interval: low, high and standard_error are NaN (None in JSON)."""

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    standard_error: float
    method: str

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly above or wholly below 0 (False where there is no interval)."""
        return bool(self.low > 0 or self.high < 0)

    def text(self, digits: int = 2) -> str:
        """"1.14, 95% CI [1.05, 1.23]" (or "1.14 (no interval: one observation)")."""
        if math.isnan(self.low):
            return f"{_number(self.estimate, digits)} (no interval: one observation)"
        return (f"{_number(self.estimate, digits)}, {_confidence_label(self.confidence)} CI "
                f"[{_number(self.low, digits)}, {_number(self.high, digits)}]")

    def to_json(self) -> dict:
        return {"estimate": _json_float(self.estimate), "low": _json_float(self.low),
                "high": _json_float(self.high), "confidence": float(self.confidence), "n": int(self.n),
                "standard_error": _json_float(self.standard_error), "method": self.method}


def paired_interval(differences: np.ndarray, confidence: float = 0.95) -> Interval:
    """The mean of per-image differences d_i = LL_A(x_i) − LL_B(x_i), shape (N,), with its paired-t
    interval: mean ± t_{N−1} · s / √N (s the sample standard deviation, ddof = 1; the interval of
    ``scipy.stats.ttest_rel(LL_A, LL_B).confidence_interval``).

    Two cases are explicit rather than NaN: differences that are all equal give a zero-width interval at
    their value (no variation, nothing uncertain); a single image gives its difference with no interval
    (low = high = standard_error = NaN: one observation says nothing about its spread)."""
    confidence = _check_confidence(confidence)
    d = _values(differences, "the per-image differences")
    n = int(d.size)
    if n == 1:
        return Interval(float(d[0]), math.nan, math.nan, confidence, 1, math.nan,
                        "paired t over images: one image, no interval")
    if np.all(d == d[0]):
        value = float(d[0])
        return Interval(value, value, value, confidence, n, 0.0,
                        f"paired t over {n} images: every difference equal, a zero-width interval")
    mean = float(np.mean(d))
    standard_error = float(np.std(d, ddof=1) / math.sqrt(n))
    half_width = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * standard_error
    return Interval(mean, mean - half_width, mean + half_width, confidence, n, standard_error,
                    f"paired t over {n} images ({n - 1} degrees of freedom)")


class Spread(NamedTuple):
    """Mean and standard deviation (ddof = 1) of one number over seeds. With one seed the standard
    deviation is NaN, not 0: one run says nothing about the spread between runs, and a 0 would read as
    "perfectly reproducible". :meth:`text` writes that case as "(one seed)"; :meth:`to_json` as None."""

    mean: float
    std: float

    def text(self, digits: int = 2) -> str:
        """"-85.13 ± 0.04", or "-85.13 (one seed)" where there is no spread."""
        if math.isnan(self.std):
            return f"{_number(self.mean, digits)} (one seed)"
        return f"{_number(self.mean, digits)} ± {_number(self.std, digits)}"

    def to_json(self) -> dict:
        return {"mean": _json_float(self.mean), "std": _json_float(self.std)}


def seed_spread(values) -> Spread:
    """Mean ± standard deviation (ddof = 1) of one number over seeds, e.g. the test log-likelihoods of a
    (model, prior)'s cells; one value gives std NaN (see :class:`Spread`)."""
    array = _values(values, "the values over seeds")
    std = float(np.std(array, ddof=1)) if array.size > 1 else math.nan
    return Spread(float(np.mean(array)), std)


@dataclasses.dataclass(frozen=True)
class SeedDifference:
    """One seed's paired comparison: mean per-image LLs of A and B (nats) and the mean difference
    d_s = mean_i [LL_A − LL_B] with its paired-t interval over the images."""

    seed: int
    mean_a: float
    mean_b: float
    interval: Interval

    def to_json(self) -> dict:
        return {"seed": int(self.seed), "mean_a": float(self.mean_a), "mean_b": float(self.mean_b),
                **self.interval.to_json()}


@dataclasses.dataclass(frozen=True)
class PairComparison:
    """Prior A against prior B of one model over seeds.

    ``interval``: the mean of the per-seed differences d_s (nats per image, > 0 where A is better) with its
    hierarchical-bootstrap percentile interval (``n`` = the number of seeds; ``standard_error`` = the
    bootstrap distribution's standard deviation). ``seeds_a_better`` counts the seeds with d_s > 0,
    ``seeds_b_better`` those with d_s < 0. ``covers`` says in words which variation the interval covers."""

    per_seed: tuple[SeedDifference, ...]
    interval: Interval
    seeds_a_better: int
    seeds_b_better: int
    num_seeds: int
    num_images: int
    resamples: int
    generator_seed: int
    covers: str

    @property
    def mean(self) -> float:
        return self.interval.estimate

    @property
    def low(self) -> float:
        return self.interval.low

    @property
    def high(self) -> float:
        return self.interval.high

    def to_json(self) -> dict:
        return {"per_seed": [seed.to_json() for seed in self.per_seed], "interval": self.interval.to_json(),
                "seeds_a_better": int(self.seeds_a_better), "seeds_b_better": int(self.seeds_b_better),
                "num_seeds": int(self.num_seeds), "num_images": int(self.num_images),
                "resamples": int(self.resamples), "generator_seed": int(self.generator_seed),
                "covers": self.covers}


def hierarchical_bootstrap(differences: np.ndarray, resamples: int, generator: np.random.Generator,
                           chunk_elements: int = BOOTSTRAP_CHUNK_ELEMENTS) -> np.ndarray:
    """``resamples`` draws of the hierarchical bootstrap of the mean difference, shape (resamples,), from
    per-image differences of shape (K seeds, N images).

    One resample draws K seed rows with replacement, then for each drawn row N images with replacement,
    and averages the K resampled image means. The draws come from ``generator`` in a fixed order: first
    every resample's seed rows ((resamples, K) at once), then the image indices of each resample in turn
    ((K, N) each; drawn a chunk of whole resamples at a time, which NumPy's generators make the same
    numbers as one resample at a time), so the result does not depend on ``chunk_elements``, the number
    of indices held at once."""
    differences = np.asarray(differences, dtype=np.float64)
    num_seeds, num_images = differences.shape
    seed_rows = generator.integers(0, num_seeds, size=(resamples, num_seeds))
    flat = differences.ravel()
    per_chunk = max(1, int(chunk_elements) // (num_seeds * num_images))
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, per_chunk):
        stop = min(resamples, start + per_chunk)
        images = generator.integers(0, num_images, size=(stop - start, num_seeds, num_images))
        images += seed_rows[start:stop, :, None] * num_images   # index into the flattened (K, N) array
        means[start:stop] = np.take(flat, images).mean(axis=2).mean(axis=1)
    return means


def _covers(num_seeds: int) -> str:
    if num_seeds == 1:
        return ("One seed: the interval covers image-to-image variation only (which test images were drawn), "
                "not seed-to-seed variation (how another training run would differ); train more seeds to "
                "cover it.")
    return (f"{num_seeds} seeds: the interval covers seed-to-seed variation (seeds resampled) and "
            f"image-to-image variation (test images resampled within each seed); with {num_seeds} seeds the "
            f"seed-level resampling draws from only {num_seeds} trained pairs, so that part is coarse.")


def compare_priors(per_seed: Mapping[int, tuple[np.ndarray, np.ndarray]], resamples: int = MIN_RESAMPLES,
                   confidence: float = 0.95, generator_seed: int = 0,
                   chunk_elements: int = BOOTSTRAP_CHUNK_ELEMENTS) -> PairComparison:
    """Compare prior A with prior B of one model. ``per_seed`` maps each seed value to (LL_A, LL_B), the
    per-image test log-likelihoods (nats, shape (N,) each) of the two cells with that seed, on the same N
    test images in the same order for every seed.

    Returns per seed the paired-t interval of d_s = mean_i [LL_A − LL_B], and over seeds the mean of the
    d_s with a ``confidence`` percentile interval from :func:`hierarchical_bootstrap` (``resamples`` ≥
    2000 draws from ``np.random.default_rng(generator_seed)``; seeds are taken in ascending order, so the
    result does not depend on the mapping's order). Deterministic: the same inputs give the same numbers."""
    confidence = _check_confidence(confidence)
    if int(resamples) < MIN_RESAMPLES:
        raise ConfigError(f"the bootstrap needs at least {MIN_RESAMPLES} resamples, not {resamples}")
    resamples = int(resamples)
    if not per_seed:
        raise DataError("no seeds to compare")
    for seed in per_seed:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise DataError(f"seed values must be integers, not {seed!r}")
    seeds = sorted(per_seed)
    rows, seed_differences = [], []
    for seed in seeds:
        pair = per_seed[seed]
        if len(pair) != 2:
            raise DataError(f"seed {seed}: expected the pair (LL_A, LL_B), got {len(pair)} arrays")
        ll_a = _values(pair[0], f"seed {seed}'s per-image log-likelihoods of prior A")
        ll_b = _values(pair[1], f"seed {seed}'s per-image log-likelihoods of prior B")
        if ll_a.shape != ll_b.shape:
            raise DataError(f"seed {seed}: prior A was scored on {ll_a.size} images and prior B on "
                            f"{ll_b.size}; a paired comparison needs the same test images")
        if rows and ll_a.size != rows[0].size:
            raise DataError(f"seed {seed} was scored on {ll_a.size} images and seed {seeds[0]} on "
                            f"{rows[0].size}; every seed must be scored on the same test images")
        difference = ll_a - ll_b
        rows.append(difference)
        seed_differences.append(SeedDifference(int(seed), float(np.mean(ll_a)), float(np.mean(ll_b)),
                                               paired_interval(difference, confidence)))
    differences = np.stack(rows)
    per_seed_means = np.array([seed.interval.estimate for seed in seed_differences])
    boot = hierarchical_bootstrap(differences, resamples, np.random.default_rng(generator_seed),
                                  chunk_elements)
    low, high = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    num_seeds, num_images = differences.shape
    interval = Interval(float(np.mean(per_seed_means)), float(low), float(high), confidence, num_seeds,
                        float(np.std(boot, ddof=1)),
                        f"hierarchical bootstrap ({resamples} resamples: seeds, then images within each "
                        f"seed), percentile interval")
    return PairComparison(per_seed=tuple(seed_differences), interval=interval,
                          seeds_a_better=int(np.sum(per_seed_means > 0)),
                          seeds_b_better=int(np.sum(per_seed_means < 0)), num_seeds=num_seeds,
                          num_images=num_images, resamples=resamples, generator_seed=int(generator_seed),
                          covers=_covers(num_seeds))


def sentence(dataset: str, model: str, prior_a: str, prior_b: str, comparison: PairComparison,
             unit: str = "nats", image_shape=None, digits: int | None = None) -> str:
    """One plain sentence for a paper, e.g. "On static_mnist, the HVAE's VampPrior beats the standard
    prior by 1.14 nats per image, 95% CI [1.05, 1.23], in 3 of 3 seeds."

    Three wordings, from the interval over seeds: it lies above 0 — A "beats" B by the mean, counting the
    seeds with d_s > 0; below 0 — A "loses to" B by minus the mean (interval negated), counting the seeds
    with d_s < 0; it contains 0 — "no clear difference", giving A's advantage (negative where B is ahead)
    and the seeds where A is ahead.

    ``unit``: "nats" (per image; 2 decimals) or "bits/dim" (3 decimals; needs ``image_shape``, (H, W) or
    (H, W, C)). In bits/dim the advantage is how much lower A's bits/dim is than B's (lower is better),
    converted with :func:`vampkeras.shapes.bits_per_dim`, linear, so the interval converts exactly.
    More decimals are shown where the interval's half-width would round away (up to 6); ``digits`` fixes
    the decimals instead."""
    automatic_digits = digits is None
    if unit not in UNITS:
        raise ConfigError(f"unknown unit {unit!r}; choose one of: {', '.join(UNITS)}")
    if unit == "nats":
        def advantage(value):
            return value
        unit_text, digits = "nats per image", 2 if digits is None else digits
    else:
        if image_shape is None:
            raise ConfigError("bits per dimension need the image shape")
        # Imported here: vampkeras.evaluation loads TensorFlow, which the comparison in nats never needs.
        from vampkeras.shapes import bits_per_dim

        def advantage(value):
            # bpd(LL_B) − bpd(LL_A) = −bpd(LL_A − LL_B): bits_per_dim is linear in the log-likelihood.
            return -bits_per_dim(value, image_shape)
        unit_text, digits = "bits/dim", 3 if digits is None else digits
    interval = comparison.interval
    estimate, low, high = advantage(interval.estimate), advantage(interval.low), advantage(interval.high)
    if automatic_digits and high > low:
        # Enough decimals that the interval's half-width shows (a bits/dim gap of 0.0004 is no "0.000").
        digits = min(MAX_DIGITS, max(digits, -math.floor(math.log10((high - low) / 2))))
    name_a, name_b, net = prior_name(prior_a), prior_name(prior_b), model_name(model)
    seeds = f"{comparison.num_seeds} seed{'s' if comparison.num_seeds != 1 else ''}"
    ci = f"{_confidence_label(interval.confidence)} CI"

    def number(value):
        return _number(value, digits)
    if low > 0:
        return (f"On {dataset}, the {net}'s {name_a} beats the {name_b} by {number(estimate)} {unit_text}, "
                f"{ci} [{number(low)}, {number(high)}], in {comparison.seeds_a_better} of {seeds}.")
    if high < 0:
        return (f"On {dataset}, the {net}'s {name_a} loses to the {name_b} by {number(-estimate)} {unit_text}, "
                f"{ci} [{number(-high)}, {number(-low)}], in {comparison.seeds_b_better} of {seeds}.")
    return (f"On {dataset}, the {net}'s {name_a} and the {name_b} show no clear difference: the {name_a}'s "
            f"advantage is {number(estimate)} {unit_text}, {ci} [{number(low)}, {number(high)}], and it is "
            f"ahead in {comparison.seeds_a_better} of {seeds}.")
