"""Observation models p(x | z): build a ``tfd.Distribution`` over flattened images from decoder outputs.

Each likelihood says how many decoder outputs it needs per image value (``outputs_per_value``: per pixel of a
grey image, per channel of a pixel of a colour one) and turns the decoder's (..., D·outputs_per_value) outputs
into a distribution with event shape (D,), D = H·W·C (values independent given the decoder's outputs).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from vampkeras.config import LIKELIHOODS        # the names, owned by the config (which loads without TensorFlow)

__all__ = ["NUM_BINS", "PixelDistribution", "IndependentBernoulli", "DiscretizedLogistic", "bernoulli",
           "discretized_logistic", "outputs_per_value", "output_units", "build"]

tfd = tfp.distributions

NUM_BINS = 256


class PixelDistribution(tfd.Distribution):
    """Base of the observation models: independent pixels along the last axis of ``pixel_parameter``
    (..., D), so event shape (D,) and batch shape ``pixel_parameter.shape[:-1]``."""

    @property
    def pixel_parameter(self):
        raise NotImplementedError

    def _event_shape(self):
        return self.pixel_parameter.shape[-1:]

    def _event_shape_tensor(self):
        return tf.shape(self.pixel_parameter)[-1:]

    def _batch_shape(self):
        return self.pixel_parameter.shape[:-1]

    def _batch_shape_tensor(self):
        return tf.shape(self.pixel_parameter)[:-1]


class IndependentBernoulli(PixelDistribution):
    """Independent Bernoulli pixels with logits l (..., D); event shape (D,).

    ``log_prob(x)`` = Σ_d x_d·l_d − softplus(l_d) for x in [0, 1] (binary data, or grey values as soft
    targets): the same value as ``tfd.Independent(tfd.Bernoulli(logits))`` (tested), written as one
    expression because the likelihood of S·B decoder outputs dominates the IS evaluation (benchmarks/).
    ``mean()`` is sigmoid(l), the image shown for binary data.
    """

    def __init__(self, logits, name="IndependentBernoulli"):
        parameters = dict(locals())
        self._logits = tf.convert_to_tensor(logits)
        super().__init__(dtype=self._logits.dtype, reparameterization_type=tfd.NOT_REPARAMETERIZED,
                         validate_args=False, allow_nan_stats=True, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        from tensorflow_probability.python.internal import parameter_properties
        return dict(logits=parameter_properties.ParameterProperties(event_ndims=1))

    @property
    def logits(self):
        return self._logits

    @property
    def pixel_parameter(self):
        return self._logits

    def _log_prob(self, x):
        # x·log σ(l) + (1 − x)·log σ(−l) = x·l − softplus(l), softplus(l) = max(l, 0) + log(1 + e^−|l|).
        # log(1 + t), t = e^−|l| ≤ 1, rather than log1p(t) or tf.nn.softplus: per pixel it is as accurate
        # (tested against float64 for l in [−100, 100], closer than tf.nn.softplus), and XLA's log1p is slow
        # enough to cost a visible part of an IS chunk (measured in benchmarks/README.md)
        logits = self._logits
        softplus = tf.maximum(logits, 0.0) + tf.math.log(1.0 + tf.exp(-tf.abs(logits)))
        return tf.reduce_sum(x * logits - softplus, axis=-1)

    def _mean(self):
        return tf.sigmoid(self._logits)

    def _sample_n(self, n, seed=None):
        shape = tf.concat([[n], tf.shape(self._logits)], 0)
        uniform = tf.random.stateless_uniform(shape, seed=seed, alg="philox")
        return tf.cast(uniform < tf.sigmoid(self._logits), self.dtype)


def bernoulli(logits) -> tfd.Distribution:
    """Independent Bernoulli pixels: logits (..., D) → :class:`IndependentBernoulli`, event shape (D,)."""
    return IndependentBernoulli(logits)


class DiscretizedLogistic(PixelDistribution):
    """Pixels in 256 bins [k/256, (k+1)/256), each with a logistic density of mean μ and scale s integrated
    over the bin (Kingma et al. 2016; the paper's Frey Faces / Histopathology likelihood). The edge bins are
    open — bin 0 takes (−∞, 1/256), bin 255 takes [255/256, ∞) — so the 256 probabilities sum to one.

    ``loc`` (..., D) in [1/512, 1 − 1/512], ``log_scale`` (..., D); event shape (D,).
    """

    def __init__(self, loc, log_scale, name="DiscretizedLogistic"):
        parameters = dict(locals())
        self._loc = tf.convert_to_tensor(loc)
        self._log_scale = tf.convert_to_tensor(log_scale)
        super().__init__(dtype=self._loc.dtype, reparameterization_type=tfd.NOT_REPARAMETERIZED,
                         validate_args=False, allow_nan_stats=True, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        from tensorflow_probability.python.internal import parameter_properties
        return dict(loc=parameter_properties.ParameterProperties(event_ndims=1),
                    log_scale=parameter_properties.ParameterProperties(event_ndims=1))

    @property
    def pixel_parameter(self):
        return self._loc

    def pixel_log_probs(self, x):
        """log P(bin of x) per pixel: x (..., D) → (..., D)."""
        bin_index = tf.clip_by_value(tf.floor(x * NUM_BINS), 0.0, NUM_BINS - 1.0)
        inverse_scale = tf.exp(-self._log_scale)
        upper = (bin_index + 1.0) / NUM_BINS
        lower = bin_index / NUM_BINS
        a = (upper - self._loc) * inverse_scale          # standardised upper edge
        b = (lower - self._loc) * inverse_scale          # standardised lower edge
        # log(σ(a) − σ(b)) = log σ(a) + log σ(−b) + log(1 − e^{b−a}), stable for any a > b.
        interior = (tf.math.log_sigmoid(a) + tf.math.log_sigmoid(-b)
                    + tf.math.log(-tf.math.expm1(b - a)))
        return tf.where(bin_index < 0.5, tf.math.log_sigmoid(a),                       # open lower edge
                        tf.where(bin_index > NUM_BINS - 1.5, tf.math.log_sigmoid(-b),    # open upper edge
                                 interior))

    def _log_prob(self, x):
        return tf.reduce_sum(self.pixel_log_probs(x), axis=-1)

    def _mean(self):
        return self._loc

    def _sample_n(self, n, seed=None):
        shape = tf.concat([[n], tf.shape(self._loc)], 0)
        uniform = tf.random.stateless_uniform(shape, seed=seed, minval=1e-6, maxval=1 - 1e-6, alg="philox")
        value = self._loc + tf.exp(self._log_scale) * (tf.math.log(uniform) - tf.math.log1p(-uniform))
        return (tf.clip_by_value(tf.floor(value * NUM_BINS), 0.0, NUM_BINS - 1.0) + 0.5) / NUM_BINS


def discretized_logistic(outputs) -> tfd.Distribution:
    """outputs (..., 2·D): mean pre-activations then log-scale pre-activations. The mean is a sigmoid
    clipped to [1/512, 1 − 1/512]; the log-scale is clipped to [−4.5, 0] (the authors' hardtanh)."""
    mean_logits, log_scale = tf.split(outputs, 2, axis=-1)
    loc = tf.clip_by_value(tf.sigmoid(mean_logits), 1.0 / 512.0, 1.0 - 1.0 / 512.0)
    return DiscretizedLogistic(loc, tf.clip_by_value(log_scale, -4.5, 0.0))


def outputs_per_value(likelihood: str) -> int:
    """Parameters per observed value: 1 for Bernoulli (the logit), 2 for the discretized logistic (mean and
    log-scale). A decoder returns this many per pixel and channel."""
    return {"bernoulli": 1, "discretized_logistic": 2}[_known(likelihood)]


def output_units(likelihood: str, num_pixels: int) -> int:
    """Number of decoder outputs per example the likelihood needs."""
    return outputs_per_value(likelihood) * num_pixels


def build(likelihood: str, outputs) -> tfd.Distribution:
    """The distribution for decoder ``outputs`` (..., output_units)."""
    return {"bernoulli": bernoulli, "discretized_logistic": discretized_logistic}[_known(likelihood)](outputs)


def _known(likelihood: str) -> str:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {LIKELIHOODS}")
    return likelihood
