"""Model zoo: build a model and its prior from a :class:`vampkeras.config.RunConfig`."""

from __future__ import annotations

import numpy as np

from vampkeras.models.base import LatentVariableModel, as_seed
from vampkeras.models.hvae import HierarchicalVAE
from vampkeras.models.vae import VAE
from vampkeras.priors import MixtureOfGaussiansPrior, Prior, StandardNormalPrior, VampPrior

__all__ = ["LatentVariableModel", "VAE", "HierarchicalVAE", "as_seed", "build_prior", "build_model"]


HIERARCHICAL = {"hvae": "mlp", "convhvae": "conv", "pixelhvae": "pixelcnn"}


def build_prior(config, spec, train_images: np.ndarray | None = None) -> Prior:
    """The prior named by ``config.prior`` for a dataset ``spec``.

    ``train_images`` (N, D) supplies the K random real images for ``--prior vampprior-data`` and for
    ``--pseudo-init data``; they are picked with the run's seed.
    """
    latent_dim = config.latent_dim
    if config.prior == "standard":
        return StandardNormalPrior(latent_dim, name="prior")
    if config.prior == "mog":
        return MixtureOfGaussiansPrior(latent_dim, config.num_components, weighted=config.weighted, seed=config.seed,
                                       name="prior")
    use_data = config.prior == "vampprior-data" or config.pseudo_init == "data"
    init_images = None
    if use_data:
        if train_images is None:
            raise ValueError("data-initialised pseudo-inputs need the training images")
        if len(train_images) < config.num_components:
            from vampkeras.errors import ConfigError
            raise ConfigError(f"--components {config.num_components} needs at least that many training images, "
                              f"but only {len(train_images)} are loaded")
        rng = np.random.default_rng(config.seed)
        init_images = train_images[rng.choice(len(train_images), config.num_components, replace=False)]
    return VampPrior(latent_dim, config.num_components, spec.num_pixels, init_mean=config.pseudo_init_mean,
                     init_std=config.pseudo_init_std, init_images=init_images,
                     trainable_inputs=config.prior != "vampprior-data", weighted=config.weighted, seed=config.seed,
                     name="prior")


def build_model(config, spec, train_images: np.ndarray | None = None) -> LatentVariableModel:
    """A built (all weights created) model for ``config`` on a dataset ``spec``."""
    import keras
    keras.utils.set_random_seed(config.seed)
    prior = build_prior(config, spec, train_images)
    common = dict(latent_dim=config.latent_dim, hidden_units=config.hidden_units, likelihood=spec.likelihood,
                  seed=config.seed, name=config.model)
    if config.model == "vae":
        model = VAE(spec.image_shape, prior, **common)
    elif config.model in HIERARCHICAL:
        model = HierarchicalVAE(spec.image_shape, prior, architecture=HIERARCHICAL[config.model], **common)
    else:
        raise ValueError(f"unknown model {config.model!r}")
    if config.jit is not None:          # None: the model's measured default (see benchmarks/README.md)
        model.jit = bool(config.jit)
    return model.build_variables()
