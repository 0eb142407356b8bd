"""The base Keras model: custom train/test steps, ELBO terms, metric trackers, IS log-likelihood.

Subclasses describe one latent-variable model by implementing

* ``prior_parameters()`` → dict of tensors fixing p(z) for a forward pass (see :mod:`vampkeras.priors`);
* ``draw_noise(num_samples, batch_size, seed)`` → a tuple of standard normal (S, B, M) tensors, one per
  latent layer: the noise of S reparameterised draws z ~ q(z|x) per example;
* ``log_density_terms_given_noise(x, noise, prior_parameters)`` → ``(log_px, log_pz, log_qz)``, each
  (S, B): log p(x|z), log p(z) and log q(z|x) for the draws that ``noise`` makes (for hierarchical models
  log p(z) and log q(z|x) are summed over the latent layers);
* ``encode(x)``, ``reconstruct(x)``, ``sample(num_samples, seed)``.

Everything numerical the user sees (loss, ELBO, log-likelihood) is computed here from those terms.
Conventions: x is (B, D) float32 in [0, 1], D = H·W·C (see :mod:`vampkeras.shapes`); seeds are stateless int32 pairs of shape (2,).

The noise is drawn apart from the densities so that the heavy part can be XLA-compiled (``jit``) while the
noise still comes from the graph-mode generator: XLA's generator draws another stream from the same seed,
and this way a compiled and a plain run compute the same numbers (to float rounding).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from vampkeras import optimizers, shapes

__all__ = ["LatentVariableModel", "as_seed"]


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
        self.image_shape = shapes.canonical(image_shape)       # (H, W) or (H, W, C)
        self.num_pixels = shapes.num_values(self.image_shape)   # D = H·W·C, the length of a flattened image
        self.run_seed = int(seed)
        # Rows (samples × examples) per importance-sampling chunk: conv models lower it to bound memory.
        # Whether the train step's forward and backward pass (``train_jit``) and the evaluation's log-densities
        # (``evaluation_jit``) run XLA-compiled or in graph mode; both give the same numbers to float rounding
        # (the noise is always drawn in graph mode). These are the defaults until :mod:`vampkeras.tuning`
        # measures the faster on the device at hand.
        self.evaluation_rows = 5_000
        self.train_jit = True
        self.evaluation_jit = True
        self.beta = self.add_weight(name="beta", shape=(), initializer=keras.initializers.Constant(1.0),
                                    trainable=False)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    # -- to be provided by subclasses -------------------------------------------------------------
    def prior_parameters(self) -> dict:
        raise NotImplementedError

    def draw_noise(self, num_samples, batch_size, seed) -> tuple:
        raise NotImplementedError

    def log_density_terms_given_noise(self, x, noise, prior_parameters):
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

    def log_density_terms(self, x, num_samples, prior_parameters, seed):
        """``(log_px, log_pz, log_qz)``, each (S, B), for S = ``num_samples`` draws seeded by ``seed``."""
        noise = self.draw_noise(num_samples, tf.shape(x)[0], as_seed(seed))
        return self.log_density_terms_given_noise(x, noise, prior_parameters)

    def _compiled(self, name, function, jit: bool):
        """``function`` as a tf.function, XLA-compiled when ``jit``; built once per model and setting, and
        kept off Keras' attribute tracking."""
        key = f"_compiled_{name}_{bool(jit)}"
        compiled = self.__dict__.get(key)
        if compiled is None:
            compiled = tf.function(function, jit_compile=bool(jit))
            object.__setattr__(self, key, compiled)
        return compiled

    def log_importance_weights_given_noise(self, x, noise, prior_parameters):
        """log p(x, z_s) − log q(z_s|x) for the draws that ``noise`` makes: (S, B)."""
        log_px, log_pz, log_qz = self.log_density_terms_given_noise(x, noise, prior_parameters)
        return log_px + log_pz - log_qz

    def elbo_terms_given_noise(self, x, noise, prior_parameters):
        """Single-sample ``(reconstruction, kl)``, each (B,), for the one draw per example that ``noise``
        (1, B, M) makes: −log p(x|z) and log q(z|x) − log p(z)."""
        log_px, log_pz, log_qz = self.log_density_terms_given_noise(x, noise, prior_parameters)
        return -log_px[0], log_qz[0] - log_pz[0]

    def elbo_terms(self, x, seed, prior_parameters=None):
        """Single-sample ``(reconstruction, kl)``, each (B,): −log p(x|z) and log q(z|x) − log p(z)."""
        if prior_parameters is None:
            prior_parameters = self.prior_parameters()
        return self.elbo_terms_given_noise(x, self.draw_noise(1, tf.shape(x)[0], as_seed(seed)), prior_parameters)

    def log_importance_weights(self, x, num_samples, prior_parameters, seed):
        """log p(x, z_s) − log q(z_s|x) for s = 1..S: (S, B). The noise is drawn in graph mode and the
        densities run XLA-compiled when ``self.evaluation_jit``."""
        noise = self.draw_noise(num_samples, tf.shape(x)[0], as_seed(seed))
        weights = self._compiled("weights", self.log_importance_weights_given_noise, self.evaluation_jit)
        return weights(x, noise, {name: tf.convert_to_tensor(value) for name, value in prior_parameters.items()})

    def log_likelihood(self, x, num_samples, seed, prior_parameters=None, chunk_size: int = 500):
        """Importance-sampled log p(x) ≈ log 1/S Σ_s p(x, z_s)/q(z_s|x), z_s ~ q(z|x) (paper §5.2).

        x (B, D) → (B,). The S samples are drawn ``chunk_size`` at a time and combined with a running
        log-sum-exp, so memory is O(B · chunk_size) whatever S is. ``prior_parameters`` (from
        :meth:`prior_parameters`) can be passed in so that the VampPrior's K encodings are computed once
        for a whole evaluation. Memory and speed: ``chunk_size`` · B rows (samples × examples) of decoder
        activations at a time; :attr:`evaluation_rows` (5000 for MLPs) keeps them in the CPU's cache.
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

    def loss_and_gradients(self, x, noise):
        """One training step's ``(loss, reconstruction, kl, gradients)`` for the draws that ``noise`` makes:
        loss = mean over the batch of reconstruction + β·kl, gradients with respect to the trainable
        variables of this replica's share of the global loss (times the optimizer's loss scale, if it has
        one: mixed precision; its update divides it out)."""
        # Keras sums the replicas' gradients: scale so that the sum is the global batch's mean gradient
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            reconstruction, kl = self.elbo_terms_given_noise(x, noise, self.prior_parameters())
            loss = tf.reduce_mean(reconstruction + self.beta * kl)
            scaled_loss = loss / replicas
            optimizer = getattr(self, "optimizer", None)            # None before compile()
            if optimizer is not None:
                scaled_loss = optimizer.scale_loss(scaled_loss)
        return loss, reconstruction, kl, tape.gradient(scaled_loss, self.trainable_variables)

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        noise = self.draw_noise(1, tf.shape(x)[0], self._step_seed())
        if tf.distribute.get_strategy().num_replicas_in_sync == 1:
            # forward and backward in one XLA cluster when self.train_jit, then the fused Adam kernel in graph
            # mode (faster than both XLA's and Keras' per-variable update: benchmarks/README.md)
            gradients_function = self._compiled("gradients", self.loss_and_gradients, self.train_jit)
            loss, reconstruction, kl, gradients = gradients_function(x, noise)
            optimizers.apply_gradients(self.optimizer, gradients, self.trainable_variables)
        else:
            # replicas: Keras' own update, which sums the gradients across replicas before it
            loss, reconstruction, kl, gradients = self.loss_and_gradients(x, noise)
            self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_trackers(loss, reconstruction, kl)

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        seed = tf.constant([self.run_seed, -1], tf.int32)
        reconstruction, kl = self.elbo_terms(x, seed)
        return self._update_trackers(tf.reduce_mean(reconstruction + kl), reconstruction, kl)
