"""SavedModel export: a model that samples and scores without vampkeras (or TFP) installed.

``tf.saved_model.load(path)`` gives these signatures (images are (N, H, W) float32 in [0, 1]):

* ``sample(num_samples: int32, seed: int32)`` → ``{"images": (num_samples, H, W)}``
* ``log_prob(x, num_samples: int32)`` → ``{"log_likelihood": (N,)}``: IS estimate, paper §5.2
* ``elbo(x)`` → ``{"elbo", "reconstruction", "kl"}``, each (N,), single sample
* ``encode(x)`` → ``{"mean", "log_var"}``, each (N, M) (the top latent layer)
* ``reconstruct(x)`` → ``{"images": (N, H, W)}``
* ``latent_means(x)`` → ``{"z1": (N, M)}`` (and ``"z2"`` for two-level models): E_q[z|x], for active units
* ``metadata()`` → ``{"config_json": the run's RunConfig as JSON, "format_version": int32}``
* mixture priors only: ``sample_component(component, num_samples, seed)`` → ``{"images"}`` drawn with the
  top latent from that one component (a VampPrior's q(z|u_k), paper Figure 4)
* VampPriors only: ``pseudo_inputs()`` → ``{"images": (K, H, W)}``

plus ``assets/config.json``. All randomness is seeded (``log_prob`` and ``elbo`` use fixed seeds), so the
same call gives the same numbers.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from vampkeras.errors import VampkerasError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
LOG_PROB_SEED = 20171
ELBO_SEED = 20172
EXAMPLES_PER_BATCH = 100


def traced(function, input_signature=None):
    """``function`` as a tf.function (of ``input_signature``, a list of specs, if given), without AutoGraph.

    The models' code has no Python control flow on tensors (its loops are explicit ``tf.while_loop``s), so
    AutoGraph's source conversion changes nothing but costs time: 10–37% of an export, by model
    (``benchmarks/export.py``); the evaluator traces its log-likelihood this way too. Code that needed
    AutoGraph would fail to trace, not run differently.
    """
    return tf.function(function, input_signature=input_signature, autograph=False)


class ExportModule(tf.Module):
    """The exported functions, usable in memory too (the evaluator runs the same code)."""

    def __init__(self, model, config_json: str, config_path: str | None = None):
        super().__init__(name="vampkeras_model")
        # The SavedModel holds the model's weights, not the Keras model: tracking the model would drag in its
        # optimizer (three times the weights' size in Adam's slots) and every layer's object graph.
        object.__setattr__(self, "model", model)
        self.model_weights = list(model.weights)
        self.image_shape = tuple(model.image_shape)
        self.config_json = config_json
        if config_path is not None:
            self.config_asset = tf.saved_model.Asset(config_path)
        image_spec = tf.TensorSpec([None, *self.image_shape], tf.float32, name="x")
        scalar_int = tf.TensorSpec([], tf.int32)
        self.sample = traced(self._sample, [scalar_int, scalar_int])
        self.log_prob = traced(self._log_prob, [image_spec, scalar_int])
        self.elbo = traced(self._elbo, [image_spec])
        self.encode = traced(self._encode, [image_spec])
        self.reconstruct = traced(self._reconstruct, [image_spec])
        self.latent_means = traced(self._latent_means, [image_spec])
        self.metadata = traced(self._metadata, [])
        self.names = ["sample", "log_prob", "elbo", "encode", "reconstruct", "latent_means", "metadata"]
        if model.prior.num_mixture_components is not None:
            self.sample_component = traced(self._sample_component, [scalar_int, scalar_int, scalar_int])
            self.names.append("sample_component")
        if model.prior.pseudo_inputs() is not None:
            self.pseudo_inputs = traced(self._pseudo_inputs, [])
            self.names.append("pseudo_inputs")

    def signatures(self) -> dict:
        return {name: getattr(self, name).get_concrete_function() for name in self.names}

    def _flat(self, x):
        return tf.reshape(x, [-1, self.model.num_pixels])

    def _images(self, flat):
        return tf.reshape(flat, [-1, *self.image_shape])

    def _sample(self, num_samples, seed):
        return {"images": self._images(self.model.sample(num_samples, tf.cast(seed, tf.int32)))}

    def _sample_component(self, component, num_samples, seed):
        images = self.model.sample_component(component, num_samples, tf.cast(seed, tf.int32))
        return {"images": self._images(images)}

    def _pseudo_inputs(self):
        return {"images": self._images(self.model.prior.pseudo_inputs())}

    def _log_prob(self, x, num_samples):
        return self.log_prob_given_prior(x, num_samples, self.model.prior_parameters())

    def log_prob_given_prior(self, x, num_samples, parameters):
        """IS log-likelihood of images x (N, H, W) → {"log_likelihood": (N,)}, with the prior's parameters
        (``model.prior_parameters()``) computed by the caller, once for any number of calls."""
        flat = self._flat(x)
        count = tf.shape(flat)[0]
        num_batches = (count + EXAMPLES_PER_BATCH - 1) // EXAMPLES_PER_BATCH
        seed = tf.constant([LOG_PROB_SEED, 0], tf.int32)
        samples_per_chunk = max(1, self.model.evaluation_rows // EXAMPLES_PER_BATCH)

        def body(index, results):
            batch = flat[index * EXAMPLES_PER_BATCH:(index + 1) * EXAMPLES_PER_BATCH]
            batch_seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int32))
            values = self.model.log_likelihood(batch, num_samples, batch_seed, parameters, samples_per_chunk)
            return index + 1, results.write(index, values)

        _, results = tf.while_loop(lambda index, _: index < num_batches, body,
                                   (tf.constant(0), tf.TensorArray(tf.float32, size=num_batches, infer_shape=False)))
        return {"log_likelihood": tf.reshape(results.concat(), [count])}

    def _elbo(self, x):
        reconstruction, kl = self.model.elbo_terms(self._flat(x), tf.constant([ELBO_SEED, 0], tf.int32))
        return {"elbo": -(reconstruction + kl), "reconstruction": reconstruction, "kl": kl}

    def _encode(self, x):
        mean, log_var = self.model.encode(self._flat(x))
        return {"mean": mean, "log_var": log_var}

    def _reconstruct(self, x):
        return {"images": self._images(self.model.reconstruct(self._flat(x)))}

    def _latent_means(self, x):
        return self.model.latent_means(self._flat(x))

    def _metadata(self):
        return {"config_json": tf.constant(self.config_json), "format_version": tf.constant(FORMAT_VERSION)}


def is_saved_model(path) -> bool:
    return (Path(path) / "saved_model.pb").is_file()


def export(model, config_json: str, directory, overwrite: bool = False) -> Path:
    """Write ``model`` as a SavedModel to ``directory``, atomically.

    The model is saved into a temporary sibling folder and renamed into place only when complete, so an
    interrupted export never leaves a half-written model. An existing non-empty ``directory`` is refused
    unless ``overwrite``.
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not overwrite:
        raise VampkerasError(f"the export folder {directory} already holds files; choose another --export "
                             "folder or pass --overwrite")
    directory.parent.mkdir(parents=True, exist_ok=True)
    for stale in directory.parent.glob(f".{directory.name}.*-*"):     # left by an export that was killed
        if stale.is_dir() and (stale.name.startswith(f".{directory.name}.tmp-")
                               or stale.name.startswith(f".{directory.name}.old-")):
            shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        config_path = staging / "config.json"
        config_path.write_text(config_json)
        module = ExportModule(model, config_json, str(config_path))
        target = staging / "model"
        tf.saved_model.save(module, str(target), signatures=module.signatures())
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
            os.replace(target, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported SavedModel to %s", directory)
    return directory
