"""Scoring a trained model: importance-sampled test log-likelihood (paper §5.2) and the ELBO.

A model to score comes from a run folder (rebuilt from its config and best weights) or from a
SavedModel (its signatures alone; vampkeras' own code is not needed). Both go through the same
:class:`vampkeras.export.ExportModule` functions, so they give the same numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from vampkeras import checkpoints, export, tuning
from vampkeras.config import RunConfig
from vampkeras.data.registry import check_values
from vampkeras.errors import DataError, VampkerasError
from vampkeras.run_folder import CONFIG_FILE, RunFolder

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Scorer:
    """The functions of a trained model, on images (N, H, W) float32 in [0, 1]."""

    config: RunConfig
    image_shape: tuple[int, int]
    log_prob: Callable          # (x, num_samples) → (N,) numpy
    elbo: Callable              # x → {"elbo", "reconstruction", "kl"}: (N,) numpy each
    latent_means: Callable      # x → {"z1": (N, M)[, "z2": (N, M)]} numpy
    module: object              # the ExportModule or the loaded SavedModel


def _from_run_folder(path: Path, mixed_precision: bool = False) -> Scorer:
    from vampkeras.data import DATASETS
    from vampkeras.models import build_model_for_weights

    run = RunFolder(path)
    config = run.read_config()
    model = build_model_for_weights(config, DATASETS[config.dataset], mixed_precision)
    if run.best_checkpoint_path.is_file():
        checkpoints.load(run.best_checkpoint_path, model)
    elif checkpoints.restore_latest(run.checkpoint_dir, model, None) is None:
        raise VampkerasError(f"the run folder {path} has no checkpoint to evaluate yet")
    module = export.ExportModule(model, config.to_json())
    parameters = model.prior_parameters()           # the K pseudo-input encodings: once per evaluation

    @functools.cache
    def compiled_log_prob():
        tuning.tune_evaluation(model, config.jit)   # on first use: graph mode or XLA, the faster on this device
        return export.traced(module.log_prob_given_prior)

    return Scorer(
        config=config, image_shape=tuple(model.image_shape),
        log_prob=_checked_inputs(lambda x, s: compiled_log_prob()(tf.constant(x), tf.constant(s, tf.int32),
                                                                  parameters)["log_likelihood"].numpy()),
        elbo=_checked_inputs(lambda x: {k: v.numpy() for k, v in module.elbo(tf.constant(x)).items()}),
        latent_means=_checked_inputs(lambda x: {k: v.numpy() for k, v in module.latent_means(tf.constant(x)).items()}),
        module=module)


def _checked_inputs(function: Callable) -> Callable:
    """``function`` (a call into a SavedModel) with its failed input checks as one VampkerasError."""

    @functools.wraps(function)
    def call(*args):
        try:
            return function(*args)
        except tf.errors.InvalidArgumentError as error:
            message = export.input_error_message(error)
            if message is None:
                raise
            raise VampkerasError(f"the model refuses its input: {message}") from None

    return call


# The functions a Scorer and `vampkeras sample` call on a loaded SavedModel, with their arguments as (dtype, rank)
# in order, as :class:`export.ExportModule` traces them (x: (N, H, W) float32; counts, seeds and components:
# int32 scalars); sample_component is optional (mixture priors only). Checked once at load, so that another
# tool's SavedModel is refused there, not with a TypeError at its first call.
SAVED_FUNCTIONS = {
    "sample": ((tf.int32, 0), (tf.int32, 0)),
    "log_prob": ((tf.float32, 3), (tf.int32, 0)),
    "elbo": ((tf.float32, 3),),
    "latent_means": ((tf.float32, 3),),
}
OPTIONAL_SAVED_FUNCTIONS = {"sample_component": ((tf.int32, 0), (tf.int32, 0), (tf.int32, 0))}


def _interface_problem(loaded) -> str | None:
    """Why ``loaded`` lacks the functions of a vampkeras SavedModel (a phrase for the message), or None."""
    for name, expected in {**SAVED_FUNCTIONS, **OPTIONAL_SAVED_FUNCTIONS}.items():
        if name in OPTIONAL_SAVED_FUNCTIONS and not hasattr(loaded, name):
            continue
        specs = getattr(getattr(loaded, name, None), "input_signature", None)
        if specs is None:
            return f"it has no {name} function of fixed arguments"
        found = tuple((spec.dtype, spec.shape.rank) if isinstance(spec, tf.TensorSpec) else None for spec in specs)
        if found != expected:
            return f"its {name} function takes other arguments"
    outputs = getattr(loaded.signatures.get("sample"), "structured_outputs", None)
    images = outputs.get("images") if isinstance(outputs, dict) else None
    if images is None or images.shape.rank != 3 or not images.shape[1:].is_fully_defined():
        return "it has no sample signature giving (N, H, W) images"
    return None


def _from_saved_model(path: Path) -> Scorer:
    """A Scorer of the SavedModel at ``path``: a SavedModel folder, a TF Serving model base path (its highest
    version) or an export interrupted while it replaced ``path`` (see :func:`export.resolve_saved_model`).
    A SavedModel that TensorFlow cannot load (a half-copied one) is "damaged"; one without vampkeras' metadata
    and functions (another tool's) is "not a vampkeras SavedModel": both a VampkerasError."""
    resolved = export.resolve_saved_model(path)
    if resolved is None:
        raise VampkerasError(f"{path} is not a SavedModel (no saved_model.pb, nor numbered versions holding one)")
    if resolved != Path(path):
        logger.info("loading the SavedModel %s for %s", resolved, path)
    try:
        loaded = tf.saved_model.load(str(resolved))
    except (OSError, ValueError, IndexError, KeyError, tf.errors.OpError) as error:
        # a truncated variables file: IndexError "Read less bytes than requested"; a missing one: an OSError
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise VampkerasError(f"{resolved} is damaged or incomplete: TensorFlow cannot load it ({reason}); "
                             "export or copy it again") from None
    try:
        metadata = loaded.metadata()
        version = int(metadata["format_version"].numpy())
        config_json = metadata["config_json"].numpy().decode()
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, UnicodeDecodeError,
            tf.errors.OpError) as error:
        raise VampkerasError(f"{resolved} is not a vampkeras SavedModel (its metadata() gives no format_version "
                             f"and config_json: {type(error).__name__} {error})") from None
    if version != export.FORMAT_VERSION:
        raise VampkerasError(f"{resolved} was exported in format {version}; this vampkeras reads format "
                             f"{export.FORMAT_VERSION}")
    problem = _interface_problem(loaded)
    if problem is not None:
        raise VampkerasError(f"{resolved} is not a vampkeras SavedModel ({problem})")
    config = RunConfig.from_json(config_json)
    image_shape = tuple(int(d) for d in loaded.signatures["sample"].structured_outputs["images"].shape[1:])
    return Scorer(
        config=config, image_shape=image_shape,
        log_prob=_checked_inputs(lambda x, s: loaded.log_prob(tf.constant(x), tf.constant(s, tf.int32))
                                 ["log_likelihood"].numpy()),
        elbo=_checked_inputs(lambda x: {k: v.numpy() for k, v in loaded.elbo(tf.constant(x)).items()}),
        latent_means=_checked_inputs(lambda x: {k: v.numpy() for k, v in loaded.latent_means(tf.constant(x)).items()}),
        module=loaded)


def load_scorer(path, mixed_precision: bool = False) -> Scorer:
    """A :class:`Scorer` for a run folder or a SavedModel folder. It computes in float32, or with
    ``mixed_precision`` (run folders only) its layers in float16 (faster on GPUs; the densities and the
    log-sum-exp stay float32)."""
    path = Path(path)
    if export.is_saved_model(path):
        if mixed_precision:
            raise VampkerasError(f"{path} is a SavedModel, whose functions compute in float32; --mixed-precision "
                                 "scores a run folder")
        return _from_saved_model(path)
    if RunFolder(path).holds_run():
        return _from_run_folder(path, mixed_precision)
    raise VampkerasError(f"{path} is neither a run folder (no {CONFIG_FILE}) nor a SavedModel (no saved_model.pb)")


def check_images(images: np.ndarray, image_shape) -> np.ndarray:
    """Images as (N, H, W) float32, accepting (N, H·W); wrong shapes and values outside [0, 1] are refused."""
    images = np.asarray(images)
    height, width = image_shape
    if images.ndim == 2 and images.shape[1] == height * width:
        images = images.reshape(-1, height, width)
    if images.ndim != 3 or images.shape[1:] != (height, width):
        raise DataError(f"the model takes images of shape (N, {height}, {width}) or (N, {height * width}); "
                        f"got an array of shape {images.shape}")
    images = images.astype(np.float32)
    check_values([images], "the images")
    return images


def active_units(latent_means: np.ndarray, threshold: float = 0.01) -> int:
    """Number of active latent units (Burda et al. 2016; paper §5.2, Figure 3): units u whose posterior
    mean varies over the data, A_u = Var_x(E_q[u|x]) > threshold. ``latent_means`` is (N, M)."""
    return int(np.sum(np.var(np.asarray(latent_means, dtype=np.float64), axis=0) > threshold))


def score(scorer: Scorer, images: np.ndarray, num_samples: int, batch_size: int = 100,
          progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Per-example log-likelihood (S importance samples), ELBO, reconstruction and KL, (N,) arrays, and the
    posterior means of every latent layer under ``"latent_means/z1"`` etc., (N, M)."""
    if num_samples < 1:
        raise VampkerasError("--samples must be at least 1")
    if batch_size < 1:
        raise VampkerasError("--batch-size must be at least 1")
    images = check_images(images, scorer.image_shape)
    parts: dict[str, list] = {"log_likelihood": [], "elbo": [], "reconstruction": [], "kl": []}
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        parts["log_likelihood"].append(scorer.log_prob(batch, num_samples))
        for name, values in scorer.elbo(batch).items():
            parts[name].append(values)
        for name, values in scorer.latent_means(batch).items():
            parts.setdefault(f"latent_means/{name}", []).append(values)
        if progress is not None:
            progress(min(start + batch_size, len(images)), len(images))
    return {name: np.concatenate(values) if values else np.zeros([0], np.float32) for name, values in parts.items()}


def evaluate(path, dataset: str | None = None, split: str = "test", num_samples: int = 5000,
             batch_size: int = 100, max_examples: int | None = None, data_dir=None,
             progress: Callable[[int, int], None] | None = None,
             figures_dir=None, mixed_precision: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """Score a run folder or SavedModel on a dataset split (a run folder with ``mixed_precision``: its
    layers in float16, see :func:`load_scorer`).

    Returns the summary ``{"dataset", "split", "num_examples", "num_samples", "precision", "log_likelihood",
    "elbo", "reconstruction", "kl", "active_units", "seconds"}`` (means over examples, in nats; active units per
    latent layer, ``{"z1": n[, "z2": n]}``) and the per-example arrays.

    The histogram of per-example log-likelihoods (paper Figure 7) and the active-units figure are written
    to ``figures_dir``; for a run folder (default: the run's figures folder) the summary is also saved as the
    run's evaluation record. A read-only run folder is scored all the same, and only ``figures_dir`` written.
    A result that is not a finite number raises :class:`VampkerasError` before anything is written.
    """
    from vampkeras.data import load_dataset
    from vampkeras.models import MIXED_PRECISION_POLICY

    if split not in ("train", "validation", "test"):
        raise VampkerasError(f"unknown split {split!r}; choose train, validation or test")
    scorer = load_scorer(path, mixed_precision)
    name = dataset or scorer.config.dataset
    data = load_dataset(name, data_dir, max_examples)
    images = data.split(split)
    if data.spec.binarization == "dynamic" and split == "train":
        images = (np.random.default_rng(0).uniform(size=images.shape) < images).astype(np.float32)
    started = time.perf_counter()
    values = score(scorer, images, num_samples, batch_size, progress)
    summary = {"dataset": name, "split": split, "num_examples": int(len(images)), "num_samples": int(num_samples),
               "precision": MIXED_PRECISION_POLICY if mixed_precision else "float32",
               **{key: float(np.mean(v)) for key, v in values.items() if not key.startswith("latent_means/")},
               "active_units": {key.split("/", 1)[1]: active_units(v) for key, v in values.items()
                                if key.startswith("latent_means/")},
               "seconds": time.perf_counter() - started}
    logger.info("evaluated %s on %s/%s: %s", path, name, split, summary)
    _record(Path(path), summary, values, figures_dir)
    return summary, values


def _record(path: Path, summary: dict, values: dict, figures_dir) -> None:
    from vampkeras import figures
    from vampkeras.run_folder import summary_json

    summary_json(summary)            # a NaN result is refused before anything is written
    run = None if export.is_saved_model(path) else RunFolder(path)
    if run is not None and not run.is_writable():
        logger.warning("the run folder %s is read-only: its evaluation record and figures are not updated", path)
        run = None
    if figures_dir is None and run is not None:
        figures_dir = run.figures_dir
    try:
        if figures_dir is not None and len(values["log_likelihood"]):
            figures.save_png(Path(figures_dir) / "log_likelihood_histogram.png",
                             figures.log_likelihood_histogram(values["log_likelihood"]))
            figures.save_png(Path(figures_dir) / "active_units.png", figures.active_units_figure(
                {k.split("/", 1)[1]: v for k, v in values.items() if k.startswith("latent_means/")}))
        if run is not None:
            run.write_evaluation(summary)
    except OSError as error:
        raise VampkerasError(f"cannot write the evaluation's figures or summary: {error.strerror or error}") from None
