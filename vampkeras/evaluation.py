"""Scoring a trained model (:class:`vampkeras.trained_model.TrainedModel`, from a run folder or a SavedModel):
importance-sampled test log-likelihood (paper §5.2), the ELBO and active units, over a dataset split."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from vampkeras import shapes
from vampkeras.shapes import bits_per_dim  # noqa: F401  (re-exported: evaluate's unit for grey images)
from vampkeras.data.registry import binarize, check_values
from vampkeras.errors import DataError, VampkerasError
from vampkeras.run_folder import RunFolder
from vampkeras.trained_model import TrainedModel

__all__ = ["evaluate", "score", "active_units", "check_images", "bits_per_dim", "TRAIN_SCORING_BINARIZATION_SEED"]

# The seed of the binarization of a dynamically binarized training split when it is scored (validation and
# test are binarized once, by the dataset's loader).
TRAIN_SCORING_BINARIZATION_SEED = 0

logger = logging.getLogger(__name__)


def check_images(images: np.ndarray, image_shape) -> np.ndarray:
    """Images as (N, *image_shape) float32 (image_shape (H, W) or (H, W, C)), accepting every per-image shape
    of :func:`vampkeras.shapes.batch_shapes` ((H, W, 1) for one channel, the flattened (D,)); other shapes
    and values outside [0, 1] are refused."""
    images = np.asarray(images)
    image_shape = shapes.canonical(image_shape)
    if images.ndim < 1 or images.shape[1:] not in shapes.batch_shapes(image_shape):
        accepted = " or ".join(f"(N, {', '.join(map(str, shape))})" for shape in shapes.batch_shapes(image_shape))
        raise DataError(f"the model takes images of shape {accepted}; got an array of shape {images.shape}")
    images = images.reshape(-1, *image_shape).astype(np.float32)
    check_values([images], "the images")
    return images


def active_units(latent_means: np.ndarray, threshold: float = 0.01) -> int:
    """Number of active latent units (Burda et al. 2016; paper §5.2, Figure 3): units u whose posterior
    mean varies over the data, A_u = Var_x(E_q[u|x]) > threshold. ``latent_means`` is (N, M)."""
    return int(np.sum(np.var(np.asarray(latent_means, dtype=np.float64), axis=0) > threshold))


def score(model: TrainedModel, images: np.ndarray, num_samples: int, batch_size: int = 100,
          progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Per-example log-likelihood (S importance samples), ELBO, reconstruction and KL, (N,) arrays, and the
    posterior means of every latent layer under ``"latent_means/z1"`` etc., (N, M)."""
    if num_samples < 1:
        raise VampkerasError("--samples must be at least 1")
    if batch_size < 1:
        raise VampkerasError("--batch-size must be at least 1")
    images = check_images(images, model.image_shape)
    parts: dict[str, list] = {"log_likelihood": [], "elbo": [], "reconstruction": [], "kl": []}
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        parts["log_likelihood"].append(model.log_prob(batch, num_samples))
        for name, values in model.elbo(batch).items():
            parts[name].append(values)
        for name, values in model.latent_means(batch).items():
            parts.setdefault(f"latent_means/{name}", []).append(values)
        if progress is not None:
            progress(min(start + batch_size, len(images)), len(images))
    return {name: np.concatenate(values) if values else np.zeros([0], np.float32) for name, values in parts.items()}


def evaluate(model, dataset: str | None = None, split: str = "test", num_samples: int = 5000,
             batch_size: int = 100, max_examples: int | None = None, data_dir=None,
             progress: Callable[[int, int], None] | None = None,
             figures_dir=None, mixed_precision: bool = False, data=None) -> tuple[dict, dict[str, np.ndarray]]:
    """Score ``model`` (a :class:`TrainedModel`, or the path of a run folder or SavedModel, loaded with
    ``mixed_precision`` for float16 layers, see :meth:`TrainedModel.load`) on a split of ``dataset`` (default
    the model's), or of ``data`` (a loaded :class:`vampkeras.data.Dataset`, reused as it is).

    Returns the summary ``{"dataset", "split", "num_examples", "num_samples", "precision", "log_likelihood",
    "elbo", "reconstruction", "kl", "active_units", "seconds"}`` (means over examples, in nats; active units per
    latent layer, ``{"z1": n[, "z2": n]}``; for non-binary data also ``"bits_per_dim"``, see
    :func:`bits_per_dim`) and the per-example arrays.

    The histogram of per-example log-likelihoods (paper Figure 7) and the active-units figure are written
    to ``figures_dir``; for a run folder (default: the run's figures folder) the summary is also saved as the
    run's evaluation record. A read-only run folder is scored all the same, and only ``figures_dir`` written.
    A result that is not a finite number raises :class:`VampkerasError` before anything is written.
    """
    from vampkeras.data.registry import load_dataset, load_for_run
    from vampkeras.models import MIXED_PRECISION_POLICY

    if split not in ("train", "validation", "test"):
        raise VampkerasError(f"unknown split {split!r}; choose train, validation or test")
    if not isinstance(model, TrainedModel):
        model = TrainedModel.load(model, mixed_precision)
    config = model.config
    if data is None:
        from vampkeras.data.registry import DATASETS
        from vampkeras.data.user_data import is_user_source, parse_source

        dataset = None if dataset is None else str(dataset)
        if dataset is not None and is_user_source(dataset) and dataset not in DATASETS:
            dataset = parse_source(dataset).argument             # a path as config.json records it: resolved
        if dataset in (None, config.dataset):
            data = load_for_run(config, data_dir, max_examples, what="evaluate")
        elif dataset in DATASETS:
            data = load_dataset(dataset, data_dir, max_examples)  # modelled as the paper does
        else:                   # your own other data, modelled as the model's were
            data = load_dataset(dataset, data_dir, max_examples, likelihood=config.likelihood,
                                binarization=config.binarization)
    name = data.spec.name
    images = data.split(split)
    if data.spec.binarization == "dynamic" and split == "train":
        images = binarize(images, TRAIN_SCORING_BINARIZATION_SEED)
    started = time.perf_counter()
    values = score(model, images, num_samples, batch_size, progress)
    summary = {"dataset": name, "split": split, "num_examples": int(len(images)), "num_samples": int(num_samples),
               "precision": MIXED_PRECISION_POLICY if mixed_precision else "float32",
               **{key: float(np.mean(v)) for key, v in values.items() if not key.startswith("latent_means/")},
               "active_units": {key.split("/", 1)[1]: active_units(v) for key, v in values.items()
                                if key.startswith("latent_means/")},
               "seconds": time.perf_counter() - started}
    if data.spec.likelihood != "bernoulli":
        # the field's unit for discrete-valued images: -log p(x) / (D·ln 2), p over the 256 bins per value
        summary["bits_per_dim"] = bits_per_dim(summary["log_likelihood"], model.image_shape)
    logger.info("evaluated %s on %s/%s: %s", model, name, split, summary)
    _record(model, summary, values, figures_dir)
    return summary, values


def _record(model: TrainedModel, summary: dict, values: dict, figures_dir) -> None:
    from vampkeras import figures
    from vampkeras.run_folder import summary_json

    summary_json(summary)            # a NaN result is refused before anything is written
    run = RunFolder(model.source) if model.source is not None and RunFolder(model.source).holds_run() else None
    if run is not None and not run.is_writable():
        logger.warning("the run folder %s is read-only: its evaluation record and figures are not updated",
                       run.path)
        run = None
    if figures_dir is None and run is not None:
        figures_dir = run.figures_dir
    try:
        if figures_dir is not None and len(values["log_likelihood"]):
            figures.save_png(Path(figures_dir) / f"{figures.HISTOGRAM}.png",
                             figures.log_likelihood_histogram(values["log_likelihood"]))
            figures.save_png(Path(figures_dir) / f"{figures.ACTIVE_UNITS}.png", figures.active_units_figure(
                {k.split("/", 1)[1]: v for k, v in values.items() if k.startswith("latent_means/")}))
        if run is not None:
            run.write_evaluation(summary)
    except OSError as error:
        raise VampkerasError(f"cannot write the evaluation's figures or summary: {error.strerror or error}") from None
