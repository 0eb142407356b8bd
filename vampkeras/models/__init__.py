"""Model zoo: build a model and its prior from a :class:`vampkeras.config.RunConfig`."""

from __future__ import annotations

import contextlib

import numpy as np

from vampkeras.config import NOISY_DATA_STD
from vampkeras.errors import ConfigError
from vampkeras.layers import initialize_as_authors
from vampkeras.models.base import LatentVariableModel, as_seed
from vampkeras.models.hvae import HierarchicalVAE
from vampkeras.models.vae import VAE
from vampkeras.priors import MixtureOfGaussiansPrior, Prior, StandardNormalPrior, VampPrior

__all__ = ["LatentVariableModel", "VAE", "HierarchicalVAE", "as_seed", "build_prior", "build_model",
           "build_model_for_weights", "check_networks", "networks_name", "MIXED_PRECISION_POLICY"]

# Keras' policy for --mixed-precision: layers compute in float16 (tensor cores on GPUs), variables stay float32;
# the networks hand float32 to every density (vampkeras.models.networks), and training scales the loss.
MIXED_PRECISION_POLICY = "mixed_float16"


HIERARCHICAL = {"hvae": "mlp", "convhvae": "conv", "pixelhvae": "pixelcnn"}

# --pseudo-init values that start the pseudo-inputs from K training images; "noisy-data" adds N(0, σ²) noise
# with the authors' σ, config.NOISY_DATA_STD (their code's use_training_data_init).
DATA_PSEUDO_INITS = ("data", "noisy-data")


def build_prior(config, spec, train_images: np.ndarray | None = None) -> Prior:
    """The prior named by ``config.prior`` for a dataset ``spec``.

    ``train_images`` (N, D) supplies the K random real images for ``--prior vampprior-data`` and for
    ``--pseudo-init data`` / ``noisy-data``; they are picked (and the noise drawn) with the run's seed.
    """
    latent_dim = config.latent_dim
    if config.prior == "standard":
        return StandardNormalPrior(latent_dim, name="prior")
    _require_resolved(config, ["num_components"])
    if config.prior == "mog":
        return MixtureOfGaussiansPrior(latent_dim, config.num_components, weighted=config.weighted, seed=config.seed,
                                       name="prior")
    use_data = config.prior == "vampprior-data" or config.pseudo_init in DATA_PSEUDO_INITS
    init_images = None
    if use_data:
        if train_images is None:
            raise ValueError("data-initialised pseudo-inputs need the training images")
        check_prior_data(config, len(train_images))
        rng = np.random.default_rng(config.seed)
        init_images = train_images[rng.choice(len(train_images), config.num_components, replace=False)]
        if config.prior == "vampprior" and config.pseudo_init == "noisy-data":
            # the authors' use_training_data_init: K training images + N(0, σ²) noise, still trainable
            init_images = init_images + rng.normal(0.0, NOISY_DATA_STD, init_images.shape).astype(init_images.dtype)
    else:
        _require_resolved(config, ["pseudo_init_mean", "pseudo_init_std"])
    return VampPrior(latent_dim, config.num_components, spec.num_pixels, init_mean=config.pseudo_init_mean,
                     init_std=config.pseudo_init_std, init_images=init_images,
                     trainable_inputs=config.prior != "vampprior-data", weighted=config.weighted, seed=config.seed,
                     name="prior")


def check_prior_data(config, num_train_images: int) -> None:
    """Refuse (ConfigError) a prior that takes its K pseudo-inputs from fewer than K training images; a run
    checks this before it creates anything."""
    uses_data = config.prior == "vampprior-data" or (config.prior == "vampprior"
                                                     and config.pseudo_init in DATA_PSEUDO_INITS)
    if uses_data and num_train_images < config.num_components:
        raise ConfigError(f"--components {config.num_components} needs at least that many training images, "
                          f"but only {num_train_images} are loaded")


def _require_resolved(config, names):
    unset = [name for name in names if getattr(config, name) is None]
    if unset:
        raise ValueError(f"RunConfig.{' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} None, which means "
                         "the dataset's default: fill it with config.resolve(DATASETS[name]), or set it")


@contextlib.contextmanager
def _dtype_policy(name: str):
    """Layers constructed inside take Keras' dtype policy ``name`` (each layer keeps the policy it was made
    with); the global policy is restored afterwards."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def networks_name(networks) -> str | None:
    """The name a run records for a ``networks`` callable (its qualified name, e.g. ``conv_networks``), or None."""
    if networks is None:
        return None
    # (the qualified name without the module: the same whether the factory's file runs as a script or is imported)
    return getattr(networks, "__qualname__", type(networks).__name__)


def check_networks(config, networks) -> None:
    """Refuse (ConfigError) your own ``networks`` for a model other than the VAE, whose networks they replace;
    a run checks this before it creates anything."""
    if networks is not None and config.model != "vae":
        raise ConfigError(f"your own networks replace the VAE's; --model {config.model} has its own")
    if networks is not None and config.init != "paper":
        raise ConfigError(f"--init {config.init} applies to vampkeras' networks; your own networks initialise "
                          "their weights themselves")


def _own_networks(networks, spec, config):
    """``networks(spec, config)``, checked to be an (encoder, decoder) pair of callables."""
    made = networks(spec, config)
    if not (isinstance(made, (tuple, list)) and len(made) == 2 and all(callable(part) for part in made)):
        raise ConfigError(f"networks(spec, config) must return (encoder, decoder), two Keras layers or models; "
                          f"{networks_name(networks)} returned {type(made).__name__}")
    return made


def build_model(config, spec, train_images: np.ndarray | None = None,
                mixed_precision: bool | None = None, networks=None) -> LatentVariableModel:
    """A built (all weights created) model for ``config`` on a dataset ``spec``. Its layers compute in
    float16 (:data:`MIXED_PRECISION_POLICY`) if ``mixed_precision`` (default: ``config.mixed_precision``),
    else in float32; the weights are float32 either way, so the same checkpoint loads into both.
    ``networks(spec, config)`` → (encoder, decoder): your own networks for the VAE (see :class:`VAE`)."""
    import keras
    keras.utils.set_random_seed(config.seed)
    precision = config.mixed_precision if mixed_precision is None else mixed_precision
    with _dtype_policy(MIXED_PRECISION_POLICY if precision else "float32"):
        prior = build_prior(config, spec, train_images)
        common = dict(latent_dim=config.latent_dim, hidden_units=config.hidden_units, likelihood=spec.likelihood,
                      seed=config.seed, name=config.model)
        check_networks(config, networks)
        if config.model == "vae":
            encoder, decoder = _own_networks(networks, spec, config) if networks is not None else (None, None)
            model = VAE(spec.image_shape, prior, encoder=encoder, decoder=decoder, **common)
        elif config.model in HIERARCHICAL:
            model = HierarchicalVAE(spec.image_shape, prior, architecture=HIERARCHICAL[config.model], **common)
        else:
            raise ValueError(f"unknown model {config.model!r}")
        if config.jit is not None:          # None: measured on the device at hand (vampkeras.tuning)
            model.train_jit = model.evaluation_jit = bool(config.jit)
        model.build_variables()
        if config.init == "authors":
            initialize_as_authors(model, config.seed)
        return model


def build_model_for_weights(config, spec, mixed_precision: bool | None = None, networks=None) -> LatentVariableModel:
    """A built model for ``config`` to load saved weights into: zeros stand in for the training images that
    data-initialised pseudo-inputs would be picked from (the loaded weights replace them)."""
    placeholder = np.zeros([config.num_components, spec.num_pixels], np.float32)
    return build_model(config, spec, placeholder, mixed_precision=mixed_precision, networks=networks)
