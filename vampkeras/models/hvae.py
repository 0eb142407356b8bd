"""Two-level hierarchical VAEs (paper §4, Eq. (5)–(6)): HVAE (MLPs), convHVAE and PixelHVAE.

Variational part q(z1|x, z2) q(z2|x); generative part p(x|z1, z2) p(z1|z2) p(z2), the prior on z2.
Loss per example: −log p(x|z1,z2) + β·(log q(z1|x,z2) + log q(z2|x) − log p(z1|z2) − log p(z2)).
"""

from __future__ import annotations

import tensorflow as tf

from vampkeras import likelihoods, shapes
from vampkeras.replicas import RNG_ALGORITHM, replica_slice_normal
from vampkeras.layers import GatedDense
from vampkeras.models.base import LatentVariableModel, as_seed
from vampkeras.models.networks import (Z1_CONV_STACK, ConvDecoder, ConvFeatures, GaussianConv, GaussianMLP,
                                       JointDecoder, JointGaussian, PixelCNNDecoder, conv_output_size)
from vampkeras.priors import Prior, diagonal_gaussian

__all__ = ["HierarchicalVAE", "ARCHITECTURES"]

ARCHITECTURES = ("mlp", "conv", "pixelcnn")


def _reparameterize(mean, log_var, noise):
    return mean + tf.exp(0.5 * log_var) * noise


class HierarchicalVAE(LatentVariableModel):
    """``architecture``: "mlp" (HVAE), "conv" (convHVAE) or "pixelcnn" (PixelHVAE: convHVAE's encoders
    with an autoregressive PixelCNN decoder). The prior (any :class:`Prior`) is on z2; for the VampPrior
    its components are q(z2|u_k)."""

    def __init__(self, image_shape, prior: Prior, architecture: str = "mlp", latent_dim: int = 40,
                 hidden_units: int = 300, likelihood: str = "bernoulli", seed: int = 0,
                 pixelcnn_channels: int = 64, pixelcnn_layers: int = 8, **kwargs):
        super().__init__(image_shape, seed=seed, **kwargs)
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
        self.architecture = architecture
        self.latent_dim = int(latent_dim)
        self.likelihood = likelihood
        self.autoregressive = architecture == "pixelcnn"
        per_value = likelihoods.outputs_per_value(likelihood)
        if architecture == "mlp":
            self.q_z2 = GaussianMLP(hidden_units, latent_dim, name="q_z2")
            self.q_z1 = JointGaussian(GatedDense(hidden_units, name="x_features"), hidden_units, hidden_units,
                                      latent_dim, name="q_z1")
            self.p_x = JointDecoder(hidden_units, per_value * self.num_pixels, name="p_x")
        else:
            self.q_z2 = GaussianConv(self.image_shape, latent_dim, name="q_z2")
            self.q_z1 = JointGaussian(ConvFeatures(self.image_shape, Z1_CONV_STACK, name="x_features"),
                                      conv_output_size(self.image_shape, Z1_CONV_STACK), hidden_units,
                                      latent_dim, name="q_z1")
            if architecture == "conv":
                self.p_x = ConvDecoder(self.image_shape, hidden_units, per_value, name="p_x")
            else:
                self.p_x = PixelCNNDecoder(self.image_shape, per_value, pixelcnn_channels, pixelcnn_layers,
                                           name="p_x")
        self.p_z1 = GaussianMLP(hidden_units, latent_dim, name="p_z1")
        self.prior = prior
        if architecture != "mlp":
            self.evaluation_rows = 2_000        # IS chunk rows: bounded memory for the conv activations
        # XLA's masked convolutions ran slower than graph mode on CPU (IS evaluation; benchmarks/README.md);
        # the other architectures run faster under XLA
        self.train_jit = self.evaluation_jit = architecture != "pixelcnn"

    def prior_parameters(self):
        return self.prior.parameters(self.q_z2)

    def encode(self, x):
        """(mean, log_var) of q(z2|x), the top layer: each (B, M)."""
        return self.q_z2(x)

    def observation(self, z1, z2, x=None):
        """p(x|z1, z2) (for PixelHVAE conditioned on the pixels of ``x`` before each pixel)."""
        return likelihoods.build(self.likelihood, self.p_x(z1, z2, x))

    def draw_noise(self, num_samples, batch_size, seed):
        """(ε2, ε1), each (S, B, M) standard normal: z2 = μ(x) + σ(x)·ε2, then z1 = μ(x, z2) + σ(x, z2)·ε1."""
        seed_z2, seed_z1 = tf.unstack(tf.random.experimental.stateless_split(as_seed(seed), 2))
        shape = tf.stack([num_samples, batch_size, self.latent_dim])
        return replica_slice_normal(shape, seed_z2), replica_slice_normal(shape, seed_z1)

    def log_density_terms_given_noise(self, x, noise, prior_parameters):
        noise_z2, noise_z1 = noise
        num_samples, batch = tf.shape(noise_z2)[0], tf.shape(noise_z2)[1]
        mean_z2, log_var_z2 = self.q_z2(x)                                                  # (B, M)
        z2 = _reparameterize(mean_z2, log_var_z2, noise_z2)                                 # (S, B, M)
        log_q_z2 = diagonal_gaussian(mean_z2, log_var_z2).log_prob(z2)                      # (S, B)
        log_p_z2 = self.prior.log_prob(z2, prior_parameters)                                # (S, B)

        flat_z2 = tf.reshape(z2, [-1, self.latent_dim])                                     # (S·B, M)
        flat_x = tf.reshape(tf.broadcast_to(x, tf.concat([[num_samples], tf.shape(x)], 0)), [-1, self.num_pixels])
        mean_z1, log_var_z1 = self.q_z1(x, flat_z2)
        z1 = _reparameterize(mean_z1, log_var_z1, tf.reshape(noise_z1, [-1, self.latent_dim]))
        log_q_z1 = diagonal_gaussian(mean_z1, log_var_z1).log_prob(z1)
        prior_mean_z1, prior_log_var_z1 = self.p_z1(flat_z2)
        log_p_z1 = diagonal_gaussian(prior_mean_z1, prior_log_var_z1).log_prob(z1)
        log_px = self.observation(z1, flat_z2, flat_x).log_prob(flat_x)

        as_table = lambda values: tf.reshape(values, [num_samples, batch])                 # noqa: E731
        return as_table(log_px), log_p_z2 + as_table(log_p_z1), log_q_z2 + as_table(log_q_z1)

    def latent_means(self, x, seed=0, num_samples: int = 10):
        """E_q[z2|x] and E_q[z1|x] ≈ mean over z2 ~ q(z2|x) of the mean of q(z1|x, z2): each (B, M)."""
        mean_z2, log_var_z2 = self.q_z2(x)
        batch = tf.shape(x)[0]
        noise = tf.random.stateless_normal(tf.stack([num_samples, batch, self.latent_dim]), seed=as_seed(seed),
                                         alg=RNG_ALGORITHM)
        z2 = tf.reshape(_reparameterize(mean_z2, log_var_z2, noise), [-1, self.latent_dim])         # (S·B, M)
        mean_z1, _ = self.q_z1(x, z2)
        return {"z1": tf.reduce_mean(tf.reshape(mean_z1, [num_samples, batch, self.latent_dim]), axis=0),
                "z2": mean_z2}

    def decode(self, z1, z2, seed):
        """Images shown for latents z1, z2 (N, M): the means of p(x|z1, z2); for PixelHVAE, pixels are
        sampled one at a time in row-major order (all C channels of a pixel at once) and each pixel shows its
        conditional mean. (N, D)."""
        if not self.autoregressive:
            return self.observation(z1, z2).mean()
        count = tf.shape(z1)[0]
        seed = as_seed(seed)
        height, width, channels = shapes.with_channels(self.image_shape)
        positions = height * width
        padded_latents = self.p_x.pad_for_pixels(self.p_x.latent_channels(z1, z2))

        def body(index, pixels, means):
            # the masked stack runs on the window of pixels this one depends on, not on the whole image
            padded_pixels = self.p_x.pad_for_pixels(tf.reshape(pixels, [count, height, width, channels]))
            outputs = self.p_x.pixel_outputs(padded_pixels, padded_latents, index // width, index % width)
            # the pixel's parameters (K kinds × C channels) at every position: the distribution then draws the
            # same random numbers as one over the whole image would, and the pixel takes its own
            everywhere = tf.tile(tf.reshape(outputs, [count, -1, 1, channels]), [1, 1, positions, 1])
            distribution = likelihoods.build(self.likelihood, tf.reshape(everywhere, [count, -1]))
            step_seed = tf.random.experimental.stateless_fold_in(seed, index)
            chosen = tf.repeat(tf.one_hot(index, positions), channels)                       # (D,)
            pixels = pixels * (1.0 - chosen) + distribution.sample(seed=step_seed) * chosen
            means = means * (1.0 - chosen) + distribution.mean() * chosen
            return index + 1, pixels, means

        empty = tf.zeros(tf.stack([count, self.num_pixels]))
        _, _, means = tf.while_loop(lambda index, *_: index < positions, body, (tf.constant(0), empty, empty))
        return means

    def reconstruct(self, x, seed=0):
        """Decode the posterior means: z2 = E[z2|x], z1 = E[z1|x, z2]. (B, D)."""
        mean_z2, _ = self.q_z2(x)
        mean_z1, _ = self.q_z1(x, mean_z2)
        return self.decode(mean_z1, mean_z2, seed)

    def _decode_from_z2(self, z2, seed):
        seed_z1, seed_x = tf.unstack(tf.random.experimental.stateless_split(as_seed(seed), 2))
        mean_z1, log_var_z1 = self.p_z1(z2)
        z1 = _reparameterize(mean_z1, log_var_z1, tf.random.stateless_normal(tf.shape(mean_z1), seed=seed_z1, alg=RNG_ALGORITHM))
        return self.decode(z1, z2, seed_x)

    def sample(self, num_samples, seed):
        """z2 ~ p(z2), z1 ~ p(z1|z2), then :meth:`decode`: (num_samples, D)."""
        seed_z2, seed_rest = tf.unstack(tf.random.experimental.stateless_split(as_seed(seed), 2))
        z2 = self.prior.sample(num_samples, self.prior_parameters(), seed=seed_z2)
        return self._decode_from_z2(z2, seed_rest)

    def sample_component(self, component, num_samples, seed):
        """Images whose z2 comes from the prior's component ``component`` alone: (num_samples, D)."""
        parameters = self.prior_parameters()
        seed_z2, seed_rest = tf.unstack(tf.random.experimental.stateless_split(as_seed(seed), 2))
        z2 = diagonal_gaussian(parameters["means"][component], parameters["log_vars"][component]).sample(
            num_samples, seed=seed_z2)
        return self._decode_from_z2(z2, seed_rest)
