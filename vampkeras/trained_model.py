"""A trained model: the one object that evaluation, figures, the report, `sample`/`score` and training's
TensorBoard images use, whether the model comes from a run folder (rebuilt from its config and best
weights), from a SavedModel (its signatures alone; vampkeras' own code is not needed) or from memory (a
Keras model being trained). All three go through the same :class:`vampkeras.export.ExportModule` functions,
so they give the same numbers.

Images are NumPy arrays (N, H, W) float32 in [0, 1] in and out; an input the model's checks refuse (wrong
shape, NaN, outside [0, 1], grey values for a Bernoulli model) is one :class:`VampkerasError`.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from vampkeras import checkpoints, export, tuning
from vampkeras.config import RunConfig
from vampkeras.errors import VampkerasError
from vampkeras.run_folder import CONFIG_FILE, RunFolder

__all__ = ["TrainedModel", "IMAGES", "SAVED_FUNCTIONS", "OPTIONAL_SAVED_FUNCTIONS"]

logger = logging.getLogger(__name__)


def _checked_inputs(function: Callable) -> Callable:
    """``function`` (a call into the model's functions) with its failed input checks as one VampkerasError."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except tf.errors.InvalidArgumentError as error:
            message = export.input_error_message(error)
            if message is None:
                raise
            raise VampkerasError(f"the model refuses its input: {message}") from None

    return call


class TrainedModel:
    """A trained model's functions on NumPy images. Build one with :meth:`load` (a run folder or a SavedModel)
    or :meth:`from_keras` (a model in memory).

    ``config`` is the run's :class:`RunConfig`; ``image_shape`` (H, W) or (H, W, C); ``source`` the folder it was loaded
    from (None in memory)."""

    def __init__(self, config: RunConfig, image_shape: tuple[int, ...], functions, source: Path | None = None,
                 log_prob: Callable | None = None):
        self.config = config
        self.image_shape = tuple(int(d) for d in image_shape)
        self.source = source
        self._functions = functions          # an ExportModule, or a loaded SavedModel with the same functions
        self._log_prob = log_prob or (lambda x, s: self._functions.log_prob(x, s))

    def __repr__(self) -> str:
        return (f"TrainedModel({self.config.model} + {self.config.prior} on {self.config.dataset}, "
                f"from {self.source or 'memory'})")

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def load(cls, path, mixed_precision: bool = False, networks=None) -> "TrainedModel":
        """The model in a run folder or a SavedModel folder (or a TF Serving base path: its highest version).
        It computes in float32, or with ``mixed_precision`` (run folders only) its layers in float16 (faster
        on GPUs; the densities and the log-sum-exp stay float32). A run trained with your own ``networks``
        (see :func:`vampkeras.training.train`) needs them again; its SavedModel does not."""
        path = Path(path)
        if export.is_saved_model(path):
            if mixed_precision:
                raise VampkerasError(f"{path} is a SavedModel, whose functions compute in float32; "
                                     "--mixed-precision scores a run folder")
            return cls._from_saved_model(path)
        if RunFolder(path).holds_run():
            return cls._from_run_folder(path, mixed_precision, networks)
        raise VampkerasError(f"{path} is neither a run folder (no {CONFIG_FILE}) nor a SavedModel (no "
                             "saved_model.pb)")

    @classmethod
    def from_keras(cls, model, config: RunConfig, source: Path | None = None) -> "TrainedModel":
        """The functions of a Keras model in memory (traced once per TrainedModel; keep it to reuse them)."""
        module = export.ExportModule(model, config.to_json())
        parameters = model.prior_parameters()         # the K pseudo-input encodings: once per TrainedModel

        @functools.cache
        def compiled_log_prob():
            tuning.tune_evaluation(model, config.jit)  # on first use: graph mode or XLA, the faster here
            return export.traced(module.log_prob_given_prior)

        return cls(config, tuple(model.image_shape), module, source,
                   log_prob=lambda x, s: compiled_log_prob()(x, s, parameters))

    @classmethod
    def _from_run_folder(cls, path: Path, mixed_precision: bool, networks=None) -> "TrainedModel":
        from vampkeras.data.registry import spec_for
        from vampkeras.models import build_model_for_weights, networks_name

        run = RunFolder(path)
        config = run.read_config()
        if networks_name(networks) != config.networks:
            raise VampkerasError(f"the run {path} was trained with your own networks ({config.networks}): score its "
                                 "SavedModel, which holds them, or load the run in Python with "
                                 "TrainedModel.load(path, networks=...)" if networks is None else
                                 f"the run {path} was trained with the networks {config.networks or 'of vampkeras'}, "
                                 f"not {networks_name(networks)}")
        model = build_model_for_weights(config, spec_for(config), mixed_precision, networks=networks)
        if run.best_checkpoint_path.is_file():
            checkpoints.load(run.best_checkpoint_path, model)
        elif checkpoints.restore_latest(run.checkpoint_dir, model, None) is None:
            raise VampkerasError(f"the run folder {path} has no checkpoint to evaluate yet")
        return cls.from_keras(model, config, source=path)

    @classmethod
    def _from_saved_model(cls, path: Path) -> "TrainedModel":
        """A SavedModel folder, a TF Serving model base path (its highest version) or an export interrupted
        while it replaced ``path`` (see :func:`export.resolve_saved_model`). One that is not a vampkeras
        SavedModel (another tool's, or a hostile one whose functions reach outside the model) is refused by
        :func:`export.verify_saved_model` before anything of it is loaded or run; one that TensorFlow then
        cannot load (a half-copied one) is "damaged": both a VampkerasError.

        A SavedModel that passes is still a program that this process runs (see
        :func:`export.verify_saved_model`): load only SavedModels whose maker you trust."""
        resolved = export.resolve_saved_model(path)
        if resolved is None:
            raise VampkerasError(f"{path} is not a SavedModel (no saved_model.pb, nor numbered versions holding one)")
        if resolved != Path(path):
            logger.info("loading the SavedModel %s for %s", resolved, path)
        config = export.verify_saved_model(resolved)      # read as data: nothing of the model runs before this
        try:
            loaded = tf.saved_model.load(str(resolved))
        except (OSError, ValueError, IndexError, KeyError, tf.errors.OpError) as error:
            # a truncated variables file: IndexError "Read less bytes than requested"; a missing one: an OSError
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise VampkerasError(f"{resolved} is damaged or incomplete: TensorFlow cannot load it ({reason}); "
                                 "export or copy it again") from None
        problem = _interface_problem(loaded)
        if problem is not None:
            raise VampkerasError(f"{resolved} is not a vampkeras SavedModel ({problem})")
        try:
            version = int(loaded.metadata()["format_version"].numpy())
        except (AttributeError, KeyError, TypeError, ValueError, IndexError, tf.errors.OpError) as error:
            raise VampkerasError(f"{resolved} is not a vampkeras SavedModel (its metadata() gives no "
                                 f"format_version: {type(error).__name__} {error})") from None
        if version != export.FORMAT_VERSION:
            raise VampkerasError(f"{resolved} was exported in format {version}; this vampkeras reads format "
                                 f"{export.FORMAT_VERSION}")
        image_shape = loaded.signatures["sample"].structured_outputs["images"].shape[1:]
        return cls(config, tuple(image_shape), loaded, source=resolved)

    # -- what the model has -----------------------------------------------------------------------------
    @property
    def has_components(self) -> bool:
        """Whether the prior is a mixture (MoG or VampPrior): :meth:`sample_component` works."""
        return hasattr(self._functions, "sample_component")

    @property
    def has_pseudo_inputs(self) -> bool:
        """Whether the prior is a VampPrior: :meth:`pseudo_inputs` works."""
        return hasattr(self._functions, "pseudo_inputs")

    def _batch(self, images) -> tf.Tensor:
        """``images`` as a tensor after checking its shape (N, H, W[, C]) here: a loaded SavedModel's functions
        refuse another shape with TensorFlow's own TypeError, before their checks run."""
        images = tf.constant(images)
        if images.shape.rank != 1 + len(self.image_shape) or tuple(images.shape[1:]) != self.image_shape:
            raise VampkerasError(f"the model refuses its input: {export.image_shape_message(self.image_shape)}; "
                                 f"got shape {tuple(images.shape)}")
        return images

    # -- scoring ----------------------------------------------------------------------------------------
    @_checked_inputs
    def log_prob(self, images: np.ndarray, num_samples: int) -> np.ndarray:
        """Importance-sampled log p(x) with ``num_samples`` samples (paper §5.2), (N,) nats."""
        return self._log_prob(self._batch(images), tf.constant(num_samples, tf.int32))["log_likelihood"].numpy()

    @_checked_inputs
    def elbo(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``{"elbo", "reconstruction", "kl"}``, each (N,), a single-sample estimate."""
        return {k: v.numpy() for k, v in self._functions.elbo(self._batch(images)).items()}

    @_checked_inputs
    def latent_means(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """E_q[z|x] per latent layer: ``{"z1": (N, M)[, "z2": (N, M)]}`` (for active units)."""
        return {k: v.numpy() for k, v in self._functions.latent_means(self._batch(images)).items()}

    # -- images -----------------------------------------------------------------------------------------
    @_checked_inputs
    def sample(self, num_samples: int, seed: int) -> np.ndarray:
        """Images drawn from the model (Bernoulli means, or grey or colour values), (num_samples, H, W[, C])."""
        return self._functions.sample(tf.constant(num_samples, tf.int32), tf.constant(seed, tf.int32))["images"].numpy()

    @_checked_inputs
    def sample_component(self, component: int, num_samples: int, seed: int) -> np.ndarray:
        """Images drawn with the top latent from prior component ``component`` only (paper Figure 4),
        (num_samples, H, W[, C]). Mixture priors only (:attr:`has_components`)."""
        if not self.has_components:
            raise VampkerasError(f"the {self.config.prior} prior has no components to draw from")
        return self._functions.sample_component(tf.constant(component, tf.int32), tf.constant(num_samples, tf.int32),
                                                tf.constant(seed, tf.int32))["images"].numpy()

    @_checked_inputs
    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """The decoder's mean of each image's posterior mean, (N, H, W[, C])."""
        return self._functions.reconstruct(self._batch(images))["images"].numpy()

    def pseudo_inputs(self) -> np.ndarray:
        """The VampPrior's K pseudo-inputs u_k as images, (K, H, W[, C]). VampPriors only (:attr:`has_pseudo_inputs`)."""
        if not self.has_pseudo_inputs:
            raise VampkerasError(f"the {self.config.prior} prior has no pseudo-inputs")
        return self._functions.pseudo_inputs()["images"].numpy()


# The functions a TrainedModel calls on a loaded SavedModel, with their arguments as (dtype, rank) in order, as
# :class:`export.ExportModule` traces them (x: (N, H, W[, C]) float32, of the rank IMAGES of the images that
# `sample` gives; counts, seeds and components: int32 scalars); sample_component is optional (mixture priors
# only). Checked once at load, so that another tool's SavedModel is refused there, not with a TypeError at its
# first call.
IMAGES = "images"
SAVED_FUNCTIONS = {
    "sample": ((tf.int32, 0), (tf.int32, 0)),
    "log_prob": ((tf.float32, IMAGES), (tf.int32, 0)),
    "elbo": ((tf.float32, IMAGES),),
    "latent_means": ((tf.float32, IMAGES),),
}
OPTIONAL_SAVED_FUNCTIONS = {"sample_component": ((tf.int32, 0), (tf.int32, 0), (tf.int32, 0))}


def _interface_problem(loaded) -> str | None:
    """Why ``loaded`` lacks the functions of a vampkeras SavedModel (a phrase for the message), or None."""
    outputs = getattr(getattr(loaded, "signatures", {}).get("sample"), "structured_outputs", None)
    images = outputs.get("images") if isinstance(outputs, dict) else None
    if (images is None or images.shape.rank not in (3, 4) or not images.shape[1:].is_fully_defined()
            or (images.shape.rank == 4 and images.shape[-1] == 1)):
        return "it has no sample signature giving (N, H, W) or (N, H, W, C) images"
    for name, arguments in {**SAVED_FUNCTIONS, **OPTIONAL_SAVED_FUNCTIONS}.items():
        expected = tuple((dtype, images.shape.rank if rank == IMAGES else rank) for dtype, rank in arguments)
        if name in OPTIONAL_SAVED_FUNCTIONS and not hasattr(loaded, name):
            continue
        specs = getattr(getattr(loaded, name, None), "input_signature", None)
        if specs is None:
            return f"it has no {name} function of fixed arguments"
        found = tuple((spec.dtype, spec.shape.rank) if isinstance(spec, tf.TensorSpec) else None for spec in specs)
        if found != expected:
            return f"its {name} function takes other arguments"
    return None
