"""The one-layer VAE of the paper's Table 1 ("VAE (L=1)"), with any prior from :mod:`vampkeras.priors`."""

from __future__ import annotations

import tensorflow as tf

from vampkeras import likelihoods
from vampkeras.replicas import replica_slice_normal
from vampkeras.models.base import LatentVariableModel, as_seed
from vampkeras.models.networks import DecoderMLP, GaussianMLP, ImageDecoder, ImageEncoder
from vampkeras.priors import Prior, diagonal_gaussian

__all__ = ["VAE"]


class VAE(LatentVariableModel):
    """x → q(z|x) = N(μ(x), diag σ²(x)) → z → p(x|z); prior p(z) given (standard, MoG, VampPrior).

    The networks are the paper's gated MLPs of ``hidden_units``, or your own Keras layers or models:
    ``encoder`` takes images (N, H, W, C) and returns (mean, log_var), each (N, ``latent_dim``) (or one
    (N, 2·latent_dim) tensor); ``decoder`` takes z (N, latent_dim) and returns the likelihood's parameters,
    (N, K·D) or (N, H, W, K·C) (see :class:`~vampkeras.models.networks.ImageDecoder`; K = 1 for Bernoulli
    logits, 2 for the discretized logistic). A VampPrior's pseudo-inputs go through your encoder too. Name
    your layers: checkpoints match weights by their Keras paths, in which Keras numbers unnamed layers per
    process. ``examples/custom_networks.py`` shows a whole run.
    """

    def __init__(self, image_shape, prior: Prior, latent_dim: int = 40, hidden_units: int = 300,
                 likelihood: str = "bernoulli", seed: int = 0, encoder=None, decoder=None, **kwargs):
        super().__init__(image_shape, seed=seed, **kwargs)
        self.latent_dim = int(latent_dim)
        self.likelihood = likelihood
        if encoder is None:
            self.encoder = GaussianMLP(hidden_units, latent_dim, name="encoder")
        else:
            self.encoder = ImageEncoder(encoder, self.image_shape, latent_dim, name="encoder")
        if decoder is None:
            self.decoder = DecoderMLP(hidden_units, likelihoods.output_units(likelihood, self.num_pixels),
                                      name="decoder")
        else:
            self.decoder = ImageDecoder(decoder, self.image_shape, likelihoods.outputs_per_value(likelihood),
                                        name="decoder")
        self.prior = prior

    def prior_parameters(self):
        return self.prior.parameters(self.encoder)

    def latent_means(self, x, seed=0):
        """E_q[z|x] per latent layer: {"z1": (B, M)}."""
        return {"z1": self.encoder(x)[0]}

    def encode(self, x):
        """(B, D) → (mean, log_var) of q(z|x), each (B, M)."""
        return self.encoder(x)

    def observation(self, z):
        """p(x|z) for z (..., M): a distribution with event shape (D,)."""
        return likelihoods.build(self.likelihood, self.decoder(z))

    def draw_noise(self, num_samples, batch_size, seed):
        """(ε,) with ε (S, B, M) standard normal: z = μ(x) + σ(x)·ε."""
        return (replica_slice_normal(tf.stack([num_samples, batch_size, self.latent_dim]), as_seed(seed)),)

    def log_density_terms_given_noise(self, x, noise, prior_parameters):
        (noise,) = noise
        num_samples = tf.shape(noise)[0]
        mean, log_var = self.encoder(x)                                         # (B, M)
        z = mean + tf.exp(0.5 * log_var) * noise                                # (S, B, M)
        log_qz = diagonal_gaussian(mean, log_var).log_prob(z)                    # (S, B)
        log_pz = self.prior.log_prob(z, prior_parameters)                       # (S, B)
        flat_z = tf.reshape(z, [-1, self.latent_dim])
        flat_x = tf.reshape(tf.broadcast_to(x, tf.concat([[num_samples], tf.shape(x)], 0)), [-1, self.num_pixels])
        log_px = tf.reshape(self.observation(flat_z).log_prob(flat_x), tf.shape(log_qz))
        return log_px, log_pz, log_qz

    def reconstruct(self, x):
        """Mean of p(x | z = E[z|x]): (B, D)."""
        mean, _ = self.encoder(x)
        return self.observation(mean).mean()

    def sample(self, num_samples, seed):
        """Images drawn from the model, shown as the means of p(x|z), z ~ p(z): (num_samples, D)."""
        z = self.prior.sample(num_samples, self.prior_parameters(), seed=as_seed(seed))
        return self.observation(z).mean()

    def sample_component(self, component, num_samples, seed):
        """Images from the prior's component ``component`` alone (a VampPrior's q(z|u_k)): (n, D)."""
        parameters = self.prior_parameters()
        mean = parameters["means"][component]
        log_var = parameters["log_vars"][component]
        z = diagonal_gaussian(mean, log_var).sample(num_samples, seed=as_seed(seed))
        return self.observation(z).mean()
