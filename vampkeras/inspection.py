"""Using a trained model from its run folder or SavedModel: draw images, score new images."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable

import numpy as np

from vampkeras import figures
from vampkeras.checkpoints import atomic_write_bytes, atomic_write_text
from vampkeras.errors import DataError, VampkerasError


def sample_images(path, num_samples: int = 64, seed: int = 0, component: int | None = None,
                  out="samples.png", npy=None) -> list[Path]:
    """Draw ``num_samples`` images (from one prior component if ``component`` is given), write them as a
    PNG grid to ``out`` and, if ``npy``, as an (n, H, W) float32 array. Returns the written paths."""
    import tensorflow as tf
    from vampkeras.evaluation import load_scorer

    scorer = load_scorer(path)
    module = scorer.module
    if component is None:
        images = module.sample(tf.constant(num_samples), tf.constant(seed))["images"].numpy()
    else:
        if not hasattr(module, "sample_component"):
            raise VampkerasError(f"the model's prior ({scorer.config.prior}) has no components to choose from; "
                                 "--pseudo-input needs a mixture prior")
        count = scorer.config.num_components
        if not 0 <= component < count:
            raise VampkerasError(f"--pseudo-input must lie in 0..{count - 1} (the prior has {count} components)")
        images = module.sample_component(tf.constant(component), tf.constant(num_samples),
                                         tf.constant(seed))["images"].numpy()
    written = [figures.save_png(out, figures.image_grid(images))]
    if npy:
        buffer = io.BytesIO()
        np.save(buffer, images.astype(np.float32))
        atomic_write_bytes(npy, buffer.getvalue())
        written.append(Path(npy))
    return written


def read_images(input_path) -> tuple[np.ndarray, list[str]]:
    """Images and their names from a ``.npy`` file ((N, H, W) or (N, D)) or a folder of 8-bit grey PNGs
    (sorted by name, values / 255)."""
    from PIL import Image, UnidentifiedImageError

    input_path = Path(input_path)
    if input_path.is_dir():
        files = sorted(p for p in input_path.iterdir() if p.suffix.lower() == ".png")
        if not files:
            raise DataError(f"{input_path} holds no .png files")
        arrays = []
        for file in files:
            try:
                with Image.open(file) as image:
                    arrays.append(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)
            except (OSError, UnidentifiedImageError) as error:
                raise DataError(f"cannot read {file} as a PNG image ({error})") from None
        if len({a.shape for a in arrays}) != 1:
            raise DataError(f"the PNGs in {input_path} differ in size: {sorted({a.shape for a in arrays})}")
        return np.stack(arrays), [f.name for f in files]
    try:
        images = np.load(input_path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {input_path} as a .npy array ({error})") from None
    if images.dtype == np.bool_:
        images = images.astype(np.float32)
    if not np.issubdtype(images.dtype, np.number):
        raise DataError(f"{input_path} holds {images.dtype} values, not numbers")
    return images, [str(i) for i in range(len(images))]


def score_file(path, input_path, num_samples: int = 1000, batch_size: int = 100, out="scores.csv",
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Score images from ``input_path`` (see :func:`read_images`) under the model at ``path``; write a CSV
    (index, name, log_likelihood, elbo). Images of the wrong shape, with NaN/Inf, outside [0, 1], or —
    for a Bernoulli model — not binary are refused."""
    from vampkeras.data import DATASETS
    from vampkeras.evaluation import check_images, load_scorer, score

    scorer = load_scorer(path)
    images, names = read_images(input_path)
    images = check_images(images, scorer.image_shape)
    spec = DATASETS.get(scorer.config.dataset)
    if (spec is None or spec.likelihood == "bernoulli") and not np.isin(images, (0.0, 1.0)).all():
        raise DataError("the model has a Bernoulli likelihood and scores binary images only; "
                        f"{input_path} holds values other than 0 and 1 (binarize them first)")
    values = score(scorer, images, num_samples, batch_size, progress)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "name", "log_likelihood", "elbo"])
    for index, name in enumerate(names):
        writer.writerow([index, name, f"{values['log_likelihood'][index]:.6f}", f"{values['elbo'][index]:.6f}"])
    atomic_write_text(out, buffer.getvalue())
    return {"count": len(names), "mean_log_likelihood": float(np.mean(values["log_likelihood"])), "out": str(out)}
