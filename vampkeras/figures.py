"""Figures of what a model learned (the paper's Figures 4–7): image grids, histograms, curves.

Image figures are uint8 arrays (rows, columns) ready for PNG or TensorBoard; plots are PNG bytes
(matplotlib, Agg backend). Images come in as (N, H, W) floats in [0, 1]: Bernoulli means for binary
data, grey values for grey data; non-square images keep their shape.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

PADDING_VALUE = 0.5


def image_grid(images, columns: int | None = None, padding: int = 1) -> np.ndarray:
    """(N, H, W) in [0, 1] → one uint8 grid image with ``columns`` cells per row (default ⌈√N⌉),
    cells separated by ``padding`` grey pixels; missing cells of the last row are left grey."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"image_grid needs a non-empty (N, H, W) array, got shape {images.shape}")
    count, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.full((rows * (height + padding) + padding, columns * (width + padding) + padding), PADDING_VALUE,
                   dtype=np.float32)
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


def reconstructions_figure(originals, reconstructions, columns: int = 8) -> np.ndarray:
    """Rows of ``columns`` originals, each followed by a row of their reconstructions: uint8 grid."""
    originals, reconstructions = np.asarray(originals), np.asarray(reconstructions)
    count = len(originals) - len(originals) % columns or len(originals)
    pairs = []
    for start in range(0, count, columns):
        pairs.append(originals[start:start + columns])
        pairs.append(reconstructions[start:start + columns])
    return image_grid(np.concatenate(pairs), columns=min(columns, count))


def component_generations_figure(pseudo_input, samples) -> np.ndarray:
    """Paper Figure 4, top row: the pseudo-input (H, W) first, then samples (n, H, W) from its component."""
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


def log_likelihood_histogram(values, title: str = "test log-likelihood per example") -> bytes:
    """Paper Figure 7: histogram of per-example log-likelihoods (nats), PNG bytes."""
    plt = _pyplot()
    values = np.asarray(values, dtype=np.float64)
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.hist(values, bins=min(50, max(5, len(values) // 10)), color="#4477aa")
    axes.axvline(values.mean(), color="#cc3311", label=f"mean {values.mean():.2f}")
    axes.set_xlabel("log p(x) [nats]")
    axes.set_ylabel("examples")
    axes.set_title(title)
    axes.legend()
    return _figure_png(figure)


def training_curves(history: list[dict]) -> bytes:
    """Loss, reconstruction, KL, validation loss and β per epoch (from history.csv rows), PNG bytes."""
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


def model_images(module, test_images, num_samples: int = 64, seed: int = 0, component: int = 0,
                 component_samples: int = 11) -> dict[str, np.ndarray]:
    """uint8 grids of what a model draws, from its exported functions (an ExportModule or a loaded
    SavedModel): "generations", "reconstructions" and, where the prior has them, "pseudo_inputs" and
    "component_generations". ``test_images`` (n, H, W) in [0, 1]."""
    import tensorflow as tf
    images = {}
    samples = module.sample(tf.constant(num_samples), tf.constant(seed))["images"].numpy()
    images["generations"] = image_grid(samples, columns=int(math.ceil(math.sqrt(num_samples))))
    test_images = np.asarray(test_images, dtype=np.float32)
    reconstructed = module.reconstruct(tf.constant(test_images))["images"].numpy()
    images["reconstructions"] = reconstructions_figure(test_images, reconstructed)
    if hasattr(module, "pseudo_inputs"):
        pseudo = module.pseudo_inputs()["images"].numpy()
        images["pseudo_inputs"] = image_grid(pseudo[:100], columns=10)
        component_draws = module.sample_component(tf.constant(component), tf.constant(component_samples),
                                                  tf.constant(seed))["images"].numpy()
        images["component_generations"] = component_generations_figure(pseudo[component], component_draws)
    elif hasattr(module, "sample_component"):
        component_draws = module.sample_component(tf.constant(component), tf.constant(component_samples + 1),
                                                  tf.constant(seed))["images"].numpy()
        images["component_generations"] = image_grid(component_draws, columns=len(component_draws))
    return images


def write_model_figures(folder, module, test_images, **kwargs) -> dict[str, Path]:
    """:func:`model_images` written as ``<name>.png`` files into ``folder``; returns name → path."""
    folder = Path(folder)
    return {name: save_png(folder / f"{name}.png", grid)
            for name, grid in model_images(module, test_images, **kwargs).items()}
