"""The base Keras model: custom train/test steps, ELBO terms, metric trackers, IS log-likelihood.

Subclasses describe one latent-variable model by implementing

* ``prior_parameters()`` → dict of tensors fixing p(z) for a forward pass (see :mod:`vampkeras.priors`);
* ``log_density_terms(x, num_samples, prior_parameters, seed)`` → ``(log_px, log_pz, log_qz)``, each
  (S, B): log p(x|z), log p(z) and log q(z|x) for S reparameterised draws z ~ q(z|x) per example
  (for hierarchical models log p(z) and log q(z|x) are summed over the latent layers);
* ``encode(x)``, ``reconstruct(x)``, ``sample(num_samples, seed)``.

Everything numerical the user sees (loss, ELBO, log-likelihood) is computed here from those terms.
Conventions: x is (B, D) float32 in [0, 1]; seeds are stateless int32 pairs of shape (2,).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


def as_seed(seed) -> tf.Tensor:
    """A stateless seed of shape (2,), int32, from an int, a pair, or a tensor."""
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.stack([tf.cast(seed, tf.int32), tf.constant(0, tf.int32)])
    return tf.cast(seed, tf.int32)


class LatentVariableModel(keras.Model):
    """A VAE-family model trained by maximising the (β-weighted) ELBO, Eq. (2).

    Loss per example: −log p(x|z) + β·(log q(z|x) − log p(z)) for one reparameterised sample,
    averaged over the batch; validation always uses β = 1. ``reconstruction`` = −log p(x|z) and
    ``kl`` = log q(z|x) − log p(z) are the single-sample estimates of distortion and rate.
    """

    def __init__(self, image_shape, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_pixels = math.prod(self.image_shape)
        self.run_seed = int(seed)
        # rows (samples × examples) per importance-sampling chunk; conv models lower it to bound memory
        self.evaluation_rows = 50_000
        self.beta = self.add_weight(name="beta", shape=(), initializer=keras.initializers.Constant(1.0),
                                    trainable=False)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    # -- to be provided by subclasses -------------------------------------------------------------
    def prior_parameters(self) -> dict:
        raise NotImplementedError

    def log_density_terms(self, x, num_samples, prior_parameters, seed):
        raise NotImplementedError

    def encode(self, x):
        raise NotImplementedError

    def reconstruct(self, x):
        raise NotImplementedError

    def sample(self, num_samples, seed):
        raise NotImplementedError

    def latent_means(self, x, seed=0) -> dict:
        """E_q[z_l|x] for each latent layer l ("z1", "z2"): each (B, M)."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------------
    def build_variables(self) -> "LatentVariableModel":
        """Create every weight by one forward pass on a dummy batch (needed before loading weights)."""
        if not self.built:
            self.elbo_terms(tf.zeros([1, self.num_pixels]), seed=0)
            self.built = True
        return self

    def call(self, inputs):
        """Negative ELBO per example, (B,), with a fixed seed (for Keras' own bookkeeping)."""
        reconstruction, kl = self.elbo_terms(inputs, seed=0)
        return reconstruction + kl

    def elbo_terms(self, x, seed, prior_parameters=None):
        """Single-sample ``(reconstruction, kl)``, each (B,): −log p(x|z) and log q(z|x) − log p(z)."""
        if prior_parameters is None:
            prior_parameters = self.prior_parameters()
        log_px, log_pz, log_qz = self.log_density_terms(x, 1, prior_parameters, as_seed(seed))
        return -log_px[0], log_qz[0] - log_pz[0]

    def log_importance_weights(self, x, num_samples, prior_parameters, seed):
        """log p(x, z_s) − log q(z_s|x) for s = 1..S: (S, B)."""
        log_px, log_pz, log_qz = self.log_density_terms(x, num_samples, prior_parameters, seed)
        return log_px + log_pz - log_qz

    def log_likelihood(self, x, num_samples, seed, prior_parameters=None, chunk_size: int = 500):
        """Importance-sampled log p(x) ≈ log 1/S Σ_s p(x, z_s)/q(z_s|x), z_s ~ q(z|x) (paper §5.2).

        x (B, D) → (B,). The S samples are drawn ``chunk_size`` at a time and combined with a running
        log-sum-exp, so memory is O(B · chunk_size) whatever S is. ``prior_parameters`` (from
        :meth:`prior_parameters`) can be passed in so that the VampPrior's K encodings are computed once
        for a whole evaluation.
        """
        if prior_parameters is None:
            prior_parameters = self.prior_parameters()
        seed = as_seed(seed)
        num_samples = tf.cast(num_samples, tf.int32)
        num_chunks = (num_samples + chunk_size - 1) // chunk_size
        batch = tf.shape(x)[0]

        def body(index, running_max, running_sum):
            size = tf.minimum(chunk_size, num_samples - index * chunk_size)
            chunk_seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int32))
            weights = self.log_importance_weights(x, size, prior_parameters, chunk_seed)      # (size, B)
            new_max = tf.maximum(running_max, tf.reduce_max(weights, axis=0))
            running_sum = (running_sum * tf.exp(running_max - new_max)
                           + tf.reduce_sum(tf.exp(weights - new_max), axis=0))
            return index + 1, new_max, running_sum

        _, log_max, total = tf.while_loop(
            lambda index, *_: index < num_chunks, body,
            (tf.constant(0), tf.fill([batch], -float("inf")), tf.zeros([batch])))
        return tf.math.log(total) + log_max - tf.math.log(tf.cast(num_samples, tf.float32))

    def _step_seed(self):
        return tf.stack([tf.constant(self.run_seed, tf.int32), tf.cast(self.optimizer.iterations, tf.int32)])

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def _update_trackers(self, loss, reconstruction, kl):
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        replicas = self.distribute_strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            reconstruction, kl = self.elbo_terms(x, self._step_seed())
            loss = tf.reduce_mean(reconstruction + self.beta * kl)
            # Keras sums the replicas' gradients: scale so that the sum is the global batch's mean gradient
            scaled_loss = loss / replicas
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_trackers(loss, reconstruction, kl)

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        seed = tf.constant([self.run_seed, -1], tf.int32)
        reconstruction, kl = self.elbo_terms(x, seed)
        return self._update_trackers(tf.reduce_mean(reconstruction + kl), reconstruction, kl)
