"""Priors p(z) over the top latent layer (paper §3 and §4 "alternative priors").

Every prior has the same small interface, so that a model never asks which prior it has:

* ``parameters(encoder)`` → dict of tensors that fix the prior for one forward pass (for the VampPrior
  this runs the encoder on the K pseudo-inputs: compute it once and reuse it for many ``log_prob`` calls);
* ``distribution(parameters)`` → the ``tfd.Distribution`` (event shape (M,));
* ``log_prob(z, parameters)`` → log p(z), shape ``z.shape[:-1]``;
* ``sample(num_samples, parameters, seed)`` → (num_samples, M).

``encoder`` is any callable mapping images (N, D) to ``(mean, log_var)`` of q(z|x), each (N, M).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from keras import ops

__all__ = ["Prior", "StandardNormalPrior", "MixtureOfGaussiansPrior", "VampPrior", "diagonal_gaussian",
           "gaussian_mixture", "gaussian_mixture_log_prob"]

tfd = tfp.distributions

LOG_2PI = math.log(2.0 * math.pi)


def diagonal_gaussian(mean, log_var) -> tfd.Distribution:
    """N(mean, diag(exp(log_var))) with event shape (M,) and batch shape mean.shape[:-1]."""
    return tfd.Independent(tfd.Normal(loc=mean, scale=tf.exp(0.5 * log_var)), reinterpreted_batch_ndims=1)


def gaussian_mixture(mixture_logits, means, log_vars) -> tfd.MixtureSameFamily:
    """Mixture of K diagonal Gaussians: logits (K,), means and log_vars (K, M)."""
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=mixture_logits),
        components_distribution=diagonal_gaussian(means, log_vars),
    )


def gaussian_mixture_log_prob(z, mixture_logits, means, log_vars):
    """log Σ_k π_k N(z | μ_k, diag σ_k²) for z (..., M), with K components: returns (...).

    Equal in value to ``gaussian_mixture(...).log_prob(z)``, but the (N, K) table of the log π_k N(z_n|μ_k)
    is one matrix product instead of a (N, K, M) broadcast:
        log π_k N(z|μ_k) = z² · (−½/σ²_k) + z · (μ_k/σ²_k) + c_k,
        c_k = log π_k − ½ Σ_m (μ²_km/σ²_km + log σ²_km + log 2π),
    i.e. [z², z, 1] (N, 2M+1) times a (2M+1, K) matrix of coefficients, which keeps the memory at O(N·K)
    and runs at matmul speed. The terms are large and nearly cancel for sharp components (σ² down to e⁻⁶),
    so the product is computed in float64 (M is small: it costs little) and capped at its exact maximum
    log π_k N(μ_k|μ_k), which rounding could exceed; the log-sum-exp over K runs in the input's precision.
    """
    dtype = z.dtype
    batch_shape = tf.shape(z)[:-1]
    latent_dim = tf.shape(z)[-1]
    flat_z = tf.cast(tf.reshape(z, [-1, latent_dim]), tf.float64)                 # (N, M)
    means = tf.cast(means, tf.float64)
    log_vars = tf.cast(log_vars, tf.float64)
    precision = tf.exp(-log_vars)                                                 # (K, M)
    log_weights = tf.nn.log_softmax(tf.cast(mixture_logits, tf.float64))         # (K,)
    peak = log_weights - 0.5 * (tf.reduce_sum(log_vars, axis=-1)
                                + tf.cast(latent_dim, tf.float64) * LOG_2PI)     # (K,) log π_k N(μ_k|μ_k)
    offset = peak - 0.5 * tf.reduce_sum(tf.square(means) * precision, axis=-1)   # (K,) c_k
    features = tf.concat([tf.square(flat_z), flat_z, tf.ones_like(flat_z[:, :1])], axis=-1)       # (N, 2M+1)
    coefficients = tf.concat([-0.5 * precision, means * precision, offset[:, None]], axis=-1)    # (K, 2M+1)
    table = tf.minimum(tf.matmul(features, coefficients, transpose_b=True), peak)                # (N, K)
    log_prob = tf.reduce_logsumexp(tf.cast(table, dtype), axis=-1)
    return tf.reshape(log_prob, batch_shape)


class Prior(keras.layers.Layer):
    """Base class: see the module docstring for the interface."""

    def __init__(self, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)

    def parameters(self, encoder) -> dict:
        return {}

    def distribution(self, parameters: dict) -> tfd.Distribution:
        raise NotImplementedError

    def log_prob(self, z, parameters: dict):
        return self.distribution(parameters).log_prob(z)

    def sample(self, num_samples, parameters: dict, seed):
        return self.distribution(parameters).sample(num_samples, seed=seed)

    def pseudo_inputs(self):
        """(K, D) pseudo-inputs in [0, 1], or None for priors that have none."""
        return None

    @property
    def num_mixture_components(self) -> int | None:
        """K for mixture priors (whose parameters hold "means" and "log_vars" of shape (K, M)), else None."""
        return getattr(self, "num_components", None)

    def call(self, encoder):  # pragma: no cover - priors are used through their methods
        return self.parameters(encoder)


class StandardNormalPrior(Prior):
    """p(z) = N(0, I) (paper §2)."""

    def distribution(self, parameters):
        zeros = tf.zeros([self.latent_dim])
        return diagonal_gaussian(zeros, zeros)

    def log_prob(self, z, parameters):
        return -0.5 * tf.reduce_sum(tf.square(z) + LOG_2PI, axis=-1)


class MixtureOfGaussiansPrior(Prior):
    """p(z) = Σ_k π_k N(μ_k, diag σ_k²) with trainable means and log-variances (paper §3, §4 "MoG").

    Uniform weights π_k = 1/K unless ``weighted``, then trainable logits.
    """

    def __init__(self, latent_dim: int, num_components: int, weighted: bool = False, seed: int = 0, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = int(num_components)
        self.weighted = bool(weighted)
        self.means = self.add_weight(
            name="means", shape=(self.num_components, self.latent_dim),
            initializer=keras.initializers.RandomNormal(0.0, 1.0, seed=seed))
        self.log_vars = self.add_weight(name="log_vars", shape=(self.num_components, self.latent_dim),
                                        initializer="zeros")
        self.mixture_logits = self.add_weight(name="mixture_logits", shape=(self.num_components,),
                                              initializer="zeros", trainable=self.weighted)

    def parameters(self, encoder):
        return {"mixture_logits": ops.convert_to_tensor(self.mixture_logits),
                "means": ops.convert_to_tensor(self.means),
                "log_vars": ops.clip(self.log_vars, -6.0, 2.0)}

    def distribution(self, parameters):
        return gaussian_mixture(parameters["mixture_logits"], parameters["means"], parameters["log_vars"])

    def log_prob(self, z, parameters):
        return gaussian_mixture_log_prob(z, parameters["mixture_logits"], parameters["means"], parameters["log_vars"])


class VampPrior(Prior):
    """Variational mixture of posteriors: p(z) = Σ_k π_k q(z | u_k) (paper §3, Eq. after (4)).

    Pseudo-inputs u_k = clip(W_k, 0, 1) (a hardtanh, as the authors do) with W (K, D) either trainable
    (initialised N(init_mean, init_std²) or from data) or fixed real training images ("VampPrior data",
    §4). π_k = 1/K unless ``weighted`` (the weighted VampPrior of the paper's §6): then softmax of
    trainable logits.
    """

    def __init__(self, latent_dim: int, num_components: int, num_pixels: int, init_mean: float = 0.05,
                 init_std: float = 0.01, init_images: np.ndarray | None = None, trainable_inputs: bool = True,
                 weighted: bool = False, seed: int = 0, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = int(num_components)
        self.num_pixels = int(num_pixels)
        self.weighted = bool(weighted)
        if init_images is not None:
            init_images = np.asarray(init_images, dtype="float32").reshape(self.num_components, self.num_pixels)
            initializer = keras.initializers.Constant(init_images)
        else:
            initializer = keras.initializers.RandomNormal(init_mean, init_std, seed=seed)
        self.pseudo_input_weights = self.add_weight(
            name="pseudo_inputs", shape=(self.num_components, self.num_pixels), initializer=initializer,
            trainable=trainable_inputs)
        self.mixture_logits = self.add_weight(name="mixture_logits", shape=(self.num_components,),
                                              initializer="zeros", trainable=self.weighted)

    def pseudo_inputs(self):
        return ops.clip(self.pseudo_input_weights, 0.0, 1.0)

    def parameters(self, encoder):
        means, log_vars = encoder(self.pseudo_inputs())
        return {"mixture_logits": ops.convert_to_tensor(self.mixture_logits), "means": means, "log_vars": log_vars}

    def distribution(self, parameters):
        return gaussian_mixture(parameters["mixture_logits"], parameters["means"], parameters["log_vars"])

    def log_prob(self, z, parameters):
        return gaussian_mixture_log_prob(z, parameters["mixture_logits"], parameters["means"], parameters["log_vars"])
