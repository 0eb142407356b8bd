"""What a dataset is, below the loaders that make one (:mod:`vampkeras.data.registry` for the named datasets,
:mod:`vampkeras.data.user_data` for your own): its spec, its splits and the record a run keeps of them (sizes
and content hashes), the fixed seeds of splits and binarizations, the value checks, and the data and cache
folders. Both loaders import this module; neither imports the other at import time."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from vampkeras import shapes
from vampkeras.errors import DataError

__all__ = ["DatasetSpec", "Dataset", "input_type", "check_values", "binarize", "content_digest", "content_sha256",
           "data_record", "default_data_dir", "cache_dir", "EVAL_BINARIZATION_SEED", "SPLIT_SEED"]

EVAL_BINARIZATION_SEED = 1234     # fixed: validation/test binarization must not depend on the run
SPLIT_SEED = 2017                 # fixed shuffles/splits (mnist5k, Frey Faces, rebuilt Omniglot)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and the paper's defaults for it."""

    name: str
    image_shape: tuple[int, ...]        # (H, W) or (H, W, C), see vampkeras.shapes
    input_type: str                     # "binary" | "grey" | "colour"
    binarization: str                   # "dynamic" | "static" | "none"
    likelihood: str                     # "bernoulli" | "discretized_logistic"
    pseudo_init_mean: float
    pseudo_init_std: float
    num_components: int
    split_sizes: tuple[int, int, int]   # train, validation, test
    source: str

    @property
    def num_pixels(self) -> int:
        """D = H·W·C, the length of a flattened image."""
        return shapes.num_values(self.image_shape)


@dataclasses.dataclass
class Dataset:
    """Splits as (N, D) float32 in [0, 1], D = H·W·C; see the module docstring for binarization. ``record``
    describes what was loaded (:func:`data_record`), for config.json."""

    spec: DatasetSpec
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    record: dict | None = None

    def split(self, name: str) -> np.ndarray:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]


def input_type(likelihood: str, image_shape) -> str:
    """What a dataset's images are, for `vampkeras datasets`: "binary", "grey" or "colour"."""
    return "binary" if likelihood == "bernoulli" else "grey" if shapes.channels(image_shape) == 1 else "colour"


def check_values(splits, where: str) -> None:
    """Every array finite and in [0, 1], else a :class:`DataError` that starts with ``where``."""
    for values in splits:
        if not np.all(np.isfinite(values)):
            raise DataError(f"{where}: the images contain NaN or infinite values")
        if values.size and (values.min() < 0.0 or values.max() > 1.0):
            raise DataError(f"{where}: pixel values must lie in [0, 1], found [{values.min():g}, {values.max():g}]")


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """One fixed Bernoulli draw per pixel: x ~ Bernoulli(grey value)."""
    return (np.random.default_rng(seed).uniform(size=images.shape) < images).astype(np.float32)


def content_digest(shape):
    """The sha256 that :func:`content_sha256` continues with an array's float32 values (C order): it starts from
    the ``shape``. Feed it a split a block at a time to hash a split that is never whole in memory."""
    return hashlib.sha256(repr(tuple(int(size) for size in shape)).encode())


def content_sha256(values: np.ndarray) -> str:
    """sha256 of a split's float32 values (C order) and its shape: what the model sees, bit for bit."""
    digest = content_digest(values.shape)
    digest.update(np.ascontiguousarray(values, dtype=np.float32).data)
    return digest.hexdigest()


def data_record(dataset: Dataset, splits: dict | None = None) -> dict:
    """What a run trained on, for config.json: the source, the image shape, the modelling, and per split its
    size and content hash (:func:`content_sha256`); ``splits``: those entries, made by
    a loader that read less than the whole dataset (:class:`CutSplits`)."""
    spec = dataset.spec
    return {"source": spec.name, "image_shape": list(spec.image_shape), "likelihood": spec.likelihood,
            "binarization": spec.binarization,
            "splits": splits or {name: {"count": len(values), "sha256": content_sha256(values)}
                                 for name, values in (("train", dataset.train), ("validation", dataset.validation),
                                                      ("test", dataset.test))}}


def default_data_dir() -> Path:
    """``$VAMPKERAS_DATA`` if set, else ``~/.vampkeras/data``."""
    return Path(os.environ.get("VAMPKERAS_DATA") or Path.home() / ".vampkeras" / "data")


def cache_dir() -> Path:
    """Where rebuilt datasets are cached: ``$VAMPKERAS_CACHE`` or ``~/.cache/vampkeras``."""
    return Path(os.environ.get("VAMPKERAS_CACHE") or Path.home() / ".cache" / "vampkeras")
