"""Figures of what a model learned (the paper's Figures 4–7): image grids, histograms, curves.

Conventions: image figures (grids of model images) are uint8 arrays (H_grid, W_grid) for grey images and
(H_grid, W_grid, 3) for colour ones, ready for :func:`png_bytes` or, as (1, H_grid, W_grid, C), for
``tf.summary.image``; plots (histogram, curves, active units) are PNG bytes (matplotlib, Agg backend).
:func:`save_png` writes either. Images come in as (N, H, W) or (N, H, W, 3) floats in [0, 1]: Bernoulli means
for binary data, grey or colour values otherwise; non-square images (Frey Faces, 28x20) keep their shape.
Nothing here prints.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

import numpy as np

__all__ = ["write_run_figures", "write_model_figures", "model_images", "image_grid", "png_bytes", "save_png",
           "generations_figure", "pseudo_inputs_figure", "reconstructions_figure", "component_generations_figure",
           "log_likelihood_histogram", "training_curves", "active_units_figure", "tensorboard_images", "figure_sizes",
           "HISTOGRAM", "ACTIVE_UNITS", "PADDING_VALUE"]

logger = logging.getLogger(__name__)

PADDING_VALUE = 0.5


def image_grid(images, rows: int | None = None, columns: int | None = None, padding: int = 1) -> np.ndarray:
    """(N, H, W[, C]) in [0, 1] → one uint8 (rows·(H+p)+p, columns·(W+p)+p[, C]) grid, p = ``padding``.

    Cells are filled row by row and separated by ``padding`` pixels of :data:`PADDING_VALUE` grey; cells
    beyond N are left that grey too. ``columns`` defaults to ⌈N / rows⌉ when ``rows`` is given, else ⌈√N⌉;
    ``rows`` defaults to ⌈N / columns⌉. Values outside [0, 1] are clipped."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    if images.ndim not in (3, 4) or len(images) == 0:
        raise ValueError(f"image_grid needs a non-empty (N, H, W) or (N, H, W, C) array, got shape {images.shape}")
    if padding < 0 or (rows is not None and rows < 1) or (columns is not None and columns < 1):
        raise ValueError(f"image_grid needs rows, columns >= 1 and padding >= 0; got {rows}, {columns}, {padding}")
    count, height, width = images.shape[:3]
    if columns is None:
        columns = math.ceil(count / rows) if rows is not None else math.ceil(math.sqrt(count))
    if rows is None:
        rows = math.ceil(count / columns)
    if rows * columns < count:
        raise ValueError(f"a grid of {rows}x{columns} cells cannot hold {count} images")
    grid = np.full((rows * (height + padding) + padding, columns * (width + padding) + padding, *images.shape[3:]),
                   PADDING_VALUE, dtype=np.float32)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        grid[top:top + height, left:left + width] = image
    return np.round(grid * 255.0).astype(np.uint8)


def png_bytes(grid: np.ndarray) -> bytes:
    """A uint8 (H, W) or (H, W, 3/4) array as PNG bytes."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(grid, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(path, grid_or_png) -> Path:
    """Write a uint8 array or PNG bytes to ``path`` atomically."""
    from vampkeras.checkpoints import atomic_write_bytes
    data = grid_or_png if isinstance(grid_or_png, bytes) else png_bytes(grid_or_png)
    atomic_write_bytes(path, data)
    return Path(path)


def generations_figure(images, columns: int | None = None) -> np.ndarray:
    """Samples from the prior, (N, H, W[, C]) in [0, 1], as a uint8 grid of ``columns`` cells per row (default
    ⌈√N⌉: 64 samples give the usual 8x8 grid)."""
    return image_grid(images, columns=columns)


def pseudo_inputs_figure(pseudo_inputs, max_images: int = 100, columns: int = 10) -> np.ndarray:
    """The first ``max_images`` VampPrior pseudo-inputs u_k = clip(W_k, 0, 1), (K, H, W), as a uint8 grid of
    ``columns`` cells per row (paper Figure 4, bottom); (K, H, W, C) for colour."""
    pseudo_inputs = np.asarray(pseudo_inputs)[:max_images]
    return image_grid(pseudo_inputs, columns=min(columns, len(pseudo_inputs)))


def reconstructions_figure(originals, reconstructions, columns: int = 8) -> np.ndarray:
    """Test images and their reconstructions, both (N, H, W[, C]) in [0, 1], as a uint8 grid: a row of
    ``columns`` originals, below it the row of their reconstructions, and so on (originals on odd rows,
    1-based). An incomplete last group of originals is left out when N > ``columns``."""
    originals, reconstructions = np.asarray(originals), np.asarray(reconstructions)
    count = len(originals) - len(originals) % columns or len(originals)
    pairs = []
    for start in range(0, count, columns):
        pairs.append(originals[start:start + columns])
        pairs.append(reconstructions[start:start + columns])
    return image_grid(np.concatenate(pairs), columns=min(columns, count))


def component_generations_figure(pseudo_input, samples) -> np.ndarray:
    """Paper Figure 4, top row: the pseudo-input (H, W[, C]) first, then samples (n, H, W[, C]) from its
    component q(z|u_k), all in one row: a uint8 (H+2p, (n+1)·(W+p)+p[, C]) grid."""
    images = np.concatenate([np.asarray(pseudo_input)[None], np.asarray(samples)])
    return image_grid(images, columns=len(images))


def _figure_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(figure)
    return buffer.getvalue()


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def log_likelihood_histogram(values, path=None, title: str = "test log-likelihood per example") -> bytes:
    """Paper Figure 7: histogram of per-example test log-likelihoods ``values`` (N,) in nats, with their mean
    marked. Returns PNG bytes and, if ``path`` is given, also writes them there (atomically)."""
    plt = _pyplot()
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) == 0 or not np.all(np.isfinite(values)):
        raise ValueError("log_likelihood_histogram needs a non-empty array of finite values")
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.hist(values, bins=min(50, max(5, len(values) // 10)), color="#4477aa")
    axes.axvline(values.mean(), color="#cc3311", label=f"mean {values.mean():.2f}")
    axes.set_xlabel("log p(x) [nats]")
    axes.set_ylabel("examples")
    axes.set_title(title)
    axes.legend()
    png = _figure_png(figure)
    if path is not None:
        save_png(path, png)
    return png


def training_curves(history: list[dict]) -> bytes:
    """Loss, reconstruction, KL, validation loss and β per epoch (a run's history rows, see
    :meth:`vampkeras.run_folder.RunFolder.read_history`), PNG bytes: losses in nats on the left, KL and β (dashed, right axis) on the right."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name in ("loss", "val_loss", "reconstruction", "val_reconstruction"):
        if history and name in history[0]:
            left.plot(epochs, [row[name] for row in history], label=name)
    left.set_xlabel("epoch")
    left.set_ylabel("nats")
    left.legend()
    for name in ("kl", "val_kl"):
        if history and name in history[0]:
            right.plot(epochs, [row[name] for row in history], label=name)
    right.set_xlabel("epoch")
    right.set_ylabel("KL [nats]")
    beta_axis = right.twinx()
    beta_axis.plot(epochs, [row.get("beta", 1.0) for row in history], color="grey", linestyle="--", label="beta")
    beta_axis.set_ylabel("beta")
    right.legend(loc="upper left")
    return _figure_png(figure)


def active_units_figure(latent_means: dict[str, np.ndarray], threshold: float = 0.01) -> bytes:
    """Per-unit variance over the data of E_q[u|x] for each latent layer (log scale), with the 0.01
    activity threshold (paper Figure 3), PNG bytes. ``latent_means``: layer name → (N, M)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 3.5))
    for offset, (name, means) in enumerate(sorted(latent_means.items())):
        variances = np.sort(np.var(np.asarray(means, dtype=np.float64), axis=0))[::-1]
        active = int(np.sum(variances > threshold))
        axes.plot(np.arange(1, len(variances) + 1), np.maximum(variances, 1e-8), marker="o", markersize=3,
                  label=f"{name}: {active} active")
    axes.axhline(threshold, color="#cc3311", linestyle="--", label=f"threshold {threshold}")
    axes.set_yscale("log")
    axes.set_xlabel("latent unit (sorted)")
    axes.set_ylabel("Var_x E[u|x]")
    axes.legend()
    return _figure_png(figure)


def model_images(model, test_images, num_samples: int = 64, seed: int = 0, component: int = 0,
                 component_samples: int = 11) -> dict[str, np.ndarray]:
    """uint8 grids (H_grid, W_grid) of what ``model`` (a :class:`~vampkeras.trained_model.TrainedModel`) draws:
    "generations" (``num_samples`` prior samples), "reconstructions" (``test_images`` (n, H, W[, C]) in [0, 1]
    above their reconstructions) and, where the prior has them, "pseudo_inputs" (VampPriors) and
    "component_generations" (mixture priors: ``component``'s pseudo-input, if any, then
    ``component_samples`` draws from that component)."""
    images = {"generations": generations_figure(model.sample(num_samples, seed))}     # 64 samples → 8x8
    test_images = np.asarray(test_images, dtype=np.float32)
    images["reconstructions"] = reconstructions_figure(test_images, model.reconstruct(test_images))
    if model.has_pseudo_inputs:
        pseudo = model.pseudo_inputs()
        images["pseudo_inputs"] = pseudo_inputs_figure(pseudo)
        component_draws = model.sample_component(component, component_samples, seed)
        images["component_generations"] = component_generations_figure(pseudo[component], component_draws)
    elif model.has_components:
        component_draws = model.sample_component(component, component_samples + 1, seed)
        images["component_generations"] = image_grid(component_draws, columns=len(component_draws))
    return images


def write_model_figures(folder, model, test_images, **kwargs) -> dict[str, Path]:
    """:func:`model_images` written as ``<name>.png`` files into ``folder``; returns name → path."""
    folder = Path(folder)
    return {name: save_png(folder / f"{name}.png", grid)
            for name, grid in model_images(model, test_images, **kwargs).items()}


# Names of the evaluation's figures (``<name>.png``; `vampkeras evaluate` writes them, the report shows them)
HISTOGRAM = "log_likelihood_histogram"
ACTIVE_UNITS = "active_units"


def figure_sizes(config) -> dict:
    """How many images the model figures draw for a run's ``config``: fewer for the autoregressive
    PixelHVAE, whose sampling and reconstruction take one network pass per pixel. Keys: ``num_samples``,
    ``component_samples`` (for :func:`model_images`) and ``num_test_images``."""
    few = getattr(config, "model", None) == "pixelhvae"
    return {"num_samples": 16 if few else 64, "component_samples": 5 if few else 11,
            "num_test_images": 8 if few else 16}


def tensorboard_images(model, test_images, num: int = 64, seed: int = 0,
                       component_samples: int = 11) -> dict[str, np.ndarray]:
    """:func:`model_images` of ``model`` (a TrainedModel) as uint8 (1, H_grid, W_grid, C) arrays for
    ``tf.summary.image``, by tag: "generations" (``num`` samples), "reconstructions" and, where present,
    "pseudo_inputs" and "component_generations". ``test_images`` (n, H, W[, C]) in [0, 1]."""
    grids = model_images(model, test_images, num_samples=num, seed=seed, component_samples=component_samples)
    return {name: (grid if grid.ndim == 3 else grid[..., None])[None] for name, grid in grids.items()}


def write_run_figures(run, model, test_images=None, seed: int = 0, data_dir=None) -> dict[str, Path]:
    """Write the figures of a trained model into the figures folder of ``run`` (a
    :class:`~vampkeras.run_folder.RunFolder` or its path) and return name → path (a folder that cannot be
    written is a VampkerasError): generations.png,
    reconstructions.png, pseudo_inputs.png (VampPriors), component_generations.png (mixture priors) and
    training_curves.png (if the run's history has rows).

    ``model``: a :class:`~vampkeras.trained_model.TrainedModel`; its config sets how many images are drawn
    (:func:`figure_sizes`). ``test_images`` (n, H, W[, C]) in [0, 1] to reconstruct; default the first test
    images of the model's dataset (read from ``data_dir``, default the config's)."""
    from vampkeras.run_folder import RunFolder

    run = run if isinstance(run, RunFolder) else RunFolder(run)
    config = model.config
    sizes = figure_sizes(config)
    if test_images is None:
        from vampkeras.data.registry import load_for_run
        data = load_for_run(config, data_dir, max_examples=sizes["num_test_images"], what="the figures")
        test_images = data.test.reshape(-1, *model.image_shape)
    test_images = np.asarray(test_images, dtype=np.float32)[:sizes["num_test_images"]]
    folder = run.figures_dir
    try:
        paths = write_model_figures(folder, model, test_images, num_samples=sizes["num_samples"], seed=seed,
                                    component_samples=sizes["component_samples"])
        history = run.read_history()
        if history:
            paths["training_curves"] = save_png(run.figure_path("training_curves"), training_curves(history))
    except OSError as error:
        from vampkeras.errors import VampkerasError
        raise VampkerasError(f"cannot write the figures in {folder}: {error.strerror or error}") from None
    logger.info("wrote figures %s to %s", sorted(paths), folder)
    return paths
