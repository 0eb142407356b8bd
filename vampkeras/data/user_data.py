"""Your own images: a folder of image files, a ``.npy``/``.npz`` array, or a TFDS dataset (``tfds:NAME[/CONFIG]``).

What the data are decides how they are modelled, unless the user says otherwise:

* values: integer images are 0–255 (0/1 integer arrays are read as binary), float images must lie in [0, 1];
  16-bit images are scaled by 65535;
* likelihood: images holding only 0 and 1 (or, 8-bit, only 0 and 255) are binary → Bernoulli (static
  binarization); grey or colour values
  → the discretized logistic with 256 bins per channel, integer pixels k at their bin's centre (k + 0.5)/256
  (the authors' convention for CIFAR-10); ``binarization="dynamic"`` treats grey data as the paper treats MNIST
  (grey training images k/255 drawn afresh as 0/1 each batch, validation and test binarized once with a fixed
  seed), ``"static"`` binarizes every split once;
* splits: a folder's ``train/``, ``validation/`` (or ``valid/``, ``val/``) and ``test/`` subfolders, a
  ``.npz``'s ``train``/``validation``/``test`` arrays, or TFDS's splits, where present; a missing split is cut
  from the training images, and data without splits are split with a fixed seed in the proportions
  ``split`` (default 0.8/0.1/0.1);
* pseudo-inputs start as N(mean, std) of the training values.

Nothing here imports TensorFlow except a TFDS read; :func:`parse_source` (used by the CLI before TensorFlow
loads) touches only the file system. Every problem is a :class:`DataError` naming the file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from vampkeras import shapes
from vampkeras.data import sources
from vampkeras.data.registry import EVAL_BINARIZATION_SEED, SPLIT_SEED, input_type
from vampkeras.errors import DataError

logger = logging.getLogger(__name__)

TFDS_PREFIX = "tfds:"
TFDS_BATCH = 1000                   # images per read from TFDS
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# The names a split may have: folders of a --dataset folder, arrays of a .npz, TFDS splits
SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "valid", "val"), "test": ("test",)}
DEFAULT_SPLIT = (0.8, 0.1, 0.1)
BINARIZATIONS = ("dynamic", "static", "none")
DEFAULT_COMPONENTS = 500            # the paper's K for its 28x28 datasets
OFFLINE_ENV = "VAMPKERAS_OFFLINE"   # 1/true/yes/on: never download, name what to fetch instead


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@dataclasses.dataclass(frozen=True)
class DataSource:
    """What a ``--dataset`` argument names, other than a named dataset: ``kind`` "folder", "npy", "npz" or
    "tfds", and ``location``: the resolved absolute path, or the TFDS name (``NAME`` or ``NAME/CONFIG``)."""

    kind: str
    location: str

    @property
    def argument(self) -> str:
        """The ``--dataset`` value that names this source again (as config.json records it)."""
        return TFDS_PREFIX + self.location if self.kind == "tfds" else self.location

    @property
    def label(self) -> str:
        """A short name for run folders: the folder's or file's name, or tfds-NAME[-CONFIG]."""
        if self.kind == "tfds":
            return "tfds-" + self.location.replace("/", "-")
        return Path(self.location).stem or "data"


def is_user_source(argument: str) -> bool:
    """Whether ``argument`` names data by path or TFDS rather than by a registry name."""
    return argument.startswith(TFDS_PREFIX) or os.sep in argument or "/" in argument or Path(argument).exists()


def parse_source(argument: str) -> DataSource:
    """The source ``argument`` names: ``tfds:NAME[/CONFIG]``, or an existing folder, ``.npy`` or ``.npz`` file.
    Only the name is checked here (and that the path exists): the content is read by :func:`load`."""
    if argument.startswith(TFDS_PREFIX):
        name = argument[len(TFDS_PREFIX):]
        parts = name.split("/")
        if not name or len(parts) > 2 or not all(part and all(c.isalnum() or c in "_-." for c in part)
                                                  for part in parts):
            raise DataError(f"--dataset {argument!r}: a TFDS dataset is named tfds:NAME or tfds:NAME/CONFIG, "
                            "e.g. tfds:fashion_mnist or tfds:cifar10")
        return DataSource("tfds", name)
    path = Path(argument).expanduser()
    if not path.exists():
        raise DataError(f"--dataset {argument!r} is neither one of the named datasets nor an existing folder or "
                        ".npy/.npz file (nor tfds:NAME)")
    resolved = str(path.resolve())
    if path.is_dir():
        return DataSource("folder", resolved)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return DataSource(suffix[1:], resolved)
    raise DataError(f"--dataset {argument}: give a folder of images, a .npy or a .npz file (not a {suffix or 'file'}"
                    " without one of those suffixes)")


# -- raw images: split name → (N, H, W) or (N, H, W, C) arrays, integers 0–255 or floats in [0, 1] ----------
def _image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively, e.g. one subfolder per class), sorted by path; hidden
    files and folders are skipped; any other file is a DataError (a stray file would silently not be data)."""
    files = []
    for root, folders, names in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(root) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{path} is not an image file ({', '.join(IMAGE_SUFFIXES)}); a --dataset folder "
                                "holds images only")
            files.append(path)
    return files


def _read_folder_images(folder: Path) -> np.ndarray:
    """The images under ``folder``, (N, H, W[, 3]): uint8, or float32 in [0, 1] if any is 16-bit."""
    files = _image_files(folder)
    if not files:
        raise DataError(f"no images in {folder}: the folder holds no {', '.join(IMAGE_SUFFIXES)} files")
    images = [sources.read_image(files[0])]
    for path in files[1:]:
        image = sources.read_image(path)
        if image.shape != images[0].shape:
            raise DataError(f"{path} is an image of {_describe(image.shape)}, but {files[0]} is "
                            f"{_describe(images[0].shape)}: all images of a dataset have one size and channel count")
        images.append(image)
    if any(image.dtype != np.uint8 for image in images):
        images = [image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image for image in images]
    return np.stack(images)


def _describe(shape) -> str:
    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    return f"{height}x{width} with {channels} channel{'s' if channels > 1 else ''}"


def _read_folder(folder: Path) -> dict[str, np.ndarray]:
    present = {split: [folder / name for name in names if (folder / name).is_dir()]
               for split, names in SPLIT_NAMES.items()}
    if not present["train"]:
        if present["validation"] or present["test"]:      # (reading them as unsplit data would train on them)
            found = (present["validation"] + present["test"])[0].name
            raise DataError(f"{folder} has a {found}/ folder but no train/ folder: put the training images into "
                            "train/, or use no split folders at all")
        return {"all": _read_folder_images(folder)}
    for split, found in present.items():
        if len(found) > 1:
            raise DataError(f"{folder} has {' and '.join(f.name + '/' for f in found)}: name one {split} folder")
    strays = [entry for entry in folder.iterdir() if not entry.name.startswith(".")
              and not any(entry in found for found in present.values())]
    if strays:
        raise DataError(f"{folder} has split folders (train/, validation/, test/) and also {strays[0].name}: "
                        "put every image into one of the split folders")
    return {split: _read_folder_images(found[0]) for split, found in present.items() if found}


def _read_array(array: np.ndarray, where: str) -> np.ndarray:
    """A user's array as images (N, H, W) or (N, H, W, C); wrong ranks and types are a DataError."""
    if array.dtype.kind not in "biuf":
        raise DataError(f"{where} holds {array.dtype} values; images are bool, integers or floats")
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (1, 3)):
        raise DataError(f"{where} holds an array of shape {array.shape}; images are (N, H, W) or (N, H, W, C) "
                        "with C = 1 or 3")
    if len(array) == 0:
        raise DataError(f"no images in {where}: the array is empty")
    if 0 in array.shape[1:]:
        raise DataError(f"{where} holds images of shape {array.shape[1:]}: an image has at least one pixel")
    return array


def _load_npy(path: Path, where: str | None = None) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read {path} as a .npy array of numbers ({error})") from None
    return _read_array(array, where or str(path))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if not names:
                raise DataError(f"no images in {path}: the archive holds no arrays")
            chosen = {}
            for split, aliases in SPLIT_NAMES.items():
                found = [name for name in aliases if name in names]
                if len(found) > 1:
                    raise DataError(f"{path} holds arrays {' and '.join(found)}: name one {split} array")
                if found:
                    chosen[split] = found[0]
            if not chosen:
                if len(names) > 1:
                    raise DataError(f"{path} holds {len(names)} arrays ({', '.join(sorted(names))}); give one array, "
                                    "or arrays named train, validation and test")
                return {"all": _read_array(archive[names[0]], f"{path} (array {names[0]!r})")}
            if "train" not in chosen:
                raise DataError(f"{path} has {', '.join(chosen.values())} but no train array")
            return {split: _read_array(archive[name], f"{path} (array {name!r})") for split, name in chosen.items()}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"cannot read {path} as a .npz archive of arrays ({error})") from None


def tfds_folder(data_dir: Path) -> Path | None:
    """Where TFDS data are looked for: ``<data_dir>/tfds`` if that folder exists, else TFDS's own default."""
    folder = Path(data_dir) / "tfds"
    return folder if folder.is_dir() else None


def read_tfds(name: str, data_dir: Path, download: bool) -> dict[str, np.ndarray]:
    """The images of the TFDS dataset ``name`` (``NAME`` or ``NAME/CONFIG``; its first image feature), split
    name ("train", "validation", "test", as TFDS has them) → (N, H, W, C) array. TFDS looks in
    :func:`tfds_folder`; a dataset it has not prepared there is downloaded and prepared by TFDS when
    ``download`` (and not ``$VAMPKERAS_OFFLINE``), else a DataError says how to prepare it."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError("tfds: datasets need the tensorflow-datasets package (pip install tensorflow-datasets)") \
            from None
    folder = tfds_folder(data_dir)
    prepare = (f"prepare it on a machine with internet: python -c \"import tensorflow_datasets as tfds; "
               f"tfds.builder('{name}', data_dir='DIR').download_and_prepare()\", then copy DIR to "
               f"{Path(data_dir) / 'tfds'}")
    try:
        builder = tfds.builder(name, data_dir=str(folder) if folder else None, try_gcs=False)
    except Exception as error:      # DatasetNotFoundError, config errors: TFDS raises many types
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"tfds:{name} is not a TFDS dataset here ({message})") from None
    if not builder.is_prepared():
        if not download or offline():
            raise DataError(f"tfds:{name} is not prepared in {folder or 'TFDS’s default folder'} and downloads are "
                            f"off; {prepare}")
        try:
            builder.download_and_prepare()
        except Exception as error:
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise DataError(f"tfds:{name} could not be downloaded and prepared ({reason}); {prepare}") from None
    image_keys = [key for key, feature in builder.info.features.items()
                  if type(feature).__name__ == "Image"]
    if not image_keys:
        raise DataError(f"tfds:{name} has no image feature (its features: {', '.join(builder.info.features)})")
    splits = {}
    known = list(builder.info.splits)   # empty without prepared metadata (tfds.testing.mock_data): try the names
    for split, aliases in SPLIT_NAMES.items():
        for alias in (alias for alias in aliases if not known or alias in known):
            try:
                batches = [batch[image_keys[0]] for batch in tfds.as_numpy(
                    builder.as_dataset(split=alias, batch_size=TFDS_BATCH))]
            except Exception as error:      # TFDS raises many types
                if not known:               # (an unknown split name, as far as we can tell)
                    continue
                reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
                raise DataError(f"cannot read the {alias} split of tfds:{name} ({reason})") from None
            images = np.concatenate(batches) if batches else np.zeros([0, 1, 1], np.uint8)
            splits[split] = _read_array(images, f"tfds:{name} ({alias})")
            break
    if "train" not in splits:
        raise DataError(f"tfds:{name} has no train split (it has {', '.join(known) or 'none we know of'})")
    logger.info("loaded tfds:%s (%s)", name, ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    return splits


def read_raw(source: DataSource, data_dir=None, download: bool = True) -> dict[str, np.ndarray]:
    """The source's images as read: split name ("train", "validation", "test", or "all" for unsplit data) →
    (N, H, W) or (N, H, W, C) array of integers or floats."""
    path = Path(source.location)
    if source.kind == "folder":
        return _read_folder(path)
    if source.kind == "npy":
        return {"all": _load_npy(path)}
    if source.kind == "npz":
        return _read_npz(path)
    if source.kind == "tfds":
        from vampkeras.data.registry import default_data_dir
        return read_tfds(source.location, Path(data_dir) if data_dir is not None else default_data_dir(), download)
    raise ValueError(f"unknown source kind {source.kind!r}")


# -- from raw arrays to the model's float images ---------------------------------------------------------
def _as_unit_values(images: np.ndarray, where: str, centre_bins: bool) -> np.ndarray:
    """Values in [0, 1], float32, as (N, H, W[, C]) with C = 1 dropped. Integers: 0/1 arrays as they are, else
    0–255, at their bin's centre (k + 0.5)/256 when ``centre_bins`` (the discretized logistic's bins) or k/255;
    floats and bools must lie in [0, 1]. NaN/Inf and out-of-range values are a DataError."""
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.dtype.kind == "b":
        return images.astype(np.float32)
    if images.dtype.kind in "iu":
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise DataError(f"{where}: integer images hold values 0–255 (or 0/1), found {low} to {high}")
        if high <= 1:
            return images.astype(np.float32)
        values = images.astype(np.float32)
        return (values + 0.5) / 256.0 if centre_bins else values / 255.0
    values = images.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise DataError(f"{where}: the images contain NaN or infinite values")
    if values.min() < 0.0 or values.max() > 1.0:
        raise DataError(f"{where}: float images must lie in [0, 1], found values from {values.min():g} to "
                        f"{values.max():g} (integer images are read as 0–255)")
    return values


def _is_binary(raw: dict[str, np.ndarray]) -> bool:
    """Whether every image holds two values only: 0 and 1 (bools, integers, floats), or 0 and 255 (black and
    white 8-bit images, as PNGs store them)."""
    def binary(images):
        if images.dtype.kind == "b":
            return True
        if images.dtype.kind in "iu":
            return bool(np.isin(images, (0, 1)).all() or np.isin(images, (0, 255)).all())
        return bool(np.isin(images, (0.0, 1.0)).all())
    return all(binary(images) for images in raw.values())


def choose_modelling(binary: bool, likelihood: str | None, binarization: str | None, where: str) -> tuple[str, str]:
    """(likelihood, binarization) for data that are ``binary`` or not, given the user's choices (None: follow
    the data). Contradictions are a DataError naming the option to change."""
    if binarization is not None and binarization not in BINARIZATIONS:
        raise DataError(f"--binarize must be one of {', '.join(BINARIZATIONS)}, not {binarization!r}")
    if binarization is None:
        binarization = "static" if binary else "none"
    binarized = binary or binarization in ("dynamic", "static")
    if likelihood is None:
        likelihood = "bernoulli" if binarized else "discretized_logistic"
    if likelihood == "bernoulli" and not binarized:
        raise DataError(f"--likelihood bernoulli needs binary images, but {where} holds grey or colour values: add "
                        "--binarize dynamic (the paper's treatment of MNIST) or --binarize static, or leave "
                        "--likelihood out (the discretized logistic)")
    if likelihood == "discretized_logistic" and binarization in ("dynamic", "static") and not binary:
        raise DataError(f"--binarize {binarization} makes the images binary, which the discretized logistic does not "
                        "model: use --likelihood bernoulli, or leave --binarize out")
    if binary and binarization == "none":
        binarization = "static"             # 0/1 data are binary whatever the option: nothing to binarize
    return likelihood, binarization


def _split(raw: dict[str, np.ndarray], fractions) -> dict[str, np.ndarray]:
    """train/validation/test from the given splits; missing ones cut (fixed seed) from the training images in
    the proportions ``fractions``; unsplit data ("all") split in those proportions."""
    fractions = tuple(float(f) for f in (fractions or DEFAULT_SPLIT))
    rng = np.random.default_rng(SPLIT_SEED)
    if "all" in raw:
        images = raw["all"]
        order = rng.permutation(len(images))
        train_count = int(round(fractions[0] / sum(fractions) * len(images)))
        validation_count = int(round(fractions[1] / sum(fractions) * len(images)))
        if min(train_count, validation_count, len(images) - train_count - validation_count) < 1:
            raise DataError(f"{len(images)} images cannot be split {fractions[0]:g}/{fractions[1]:g}/{fractions[2]:g} "
                            "into non-empty train, validation and test sets")
        return {"train": images[order[:train_count]],
                "validation": images[order[train_count:train_count + validation_count]],
                "test": images[order[train_count + validation_count:]]}
    splits = dict(raw)
    missing = [split for split in ("validation", "test") if split not in splits]
    if missing:
        train = splits["train"]
        order = rng.permutation(len(train))
        index = {"train": 0, "validation": 1, "test": 2}
        shares = [fractions[index[split]] / (fractions[0] + sum(fractions[index[s]] for s in missing))
                  for split in missing]
        counts = [int(round(share * len(train))) for share in shares]
        if min(counts) < 1 or sum(counts) >= len(train):
            raise DataError(f"{len(train)} training images cannot give up a {' and a '.join(missing)} split")
        start = 0
        for split, count in zip(missing, counts):
            splits[split] = train[order[start:start + count]]
            start += count
        splits["train"] = train[np.sort(order[start:])]
    return splits


def content_sha256(values: np.ndarray) -> str:
    """sha256 of a split's float32 values (C order) and its shape: what the model sees, bit for bit."""
    import hashlib
    digest = hashlib.sha256(repr(tuple(values.shape)).encode())
    digest.update(np.ascontiguousarray(values, dtype=np.float32).data)
    return digest.hexdigest()


def load(source: DataSource, data_dir=None, likelihood: str | None = None, binarization: str | None = None,
         split=None, download: bool = True):
    """The source's images as a :class:`vampkeras.data.Dataset` (flattened float32 (N, D) splits) with a spec
    built from the data: image shape, likelihood, binarization, pseudo-input initialisation."""
    from vampkeras.data.registry import Dataset, DatasetSpec, binarize, check_values, dynamic_splits

    raw = read_raw(source, data_dir, download)
    where = source.argument
    image_shapes = {split_name: shapes.canonical(images.shape[1:]) for split_name, images in raw.items()}
    if len(set(image_shapes.values())) > 1:
        listed = ", ".join(f"{name} {shapes.describe(shape)}" for name, shape in image_shapes.items())
        raise DataError(f"{where}: the splits hold images of different shapes ({listed})")
    image_shape = next(iter(image_shapes.values()))
    if shapes.channels(image_shape) not in (1, 3):
        raise DataError(f"{where}: images have {shapes.channels(image_shape)} channels; vampkeras models 1 (grey) "
                        "or 3 (colour)")
    binary = _is_binary(raw)
    likelihood, binarization = choose_modelling(binary, likelihood, binarization, where)
    if split is not None and {"train", "validation", "test"} <= set(raw):
        raise DataError(f"{where} has its own train, validation and test splits; --split applies to data without "
                        "them")
    centre_bins = likelihood == "discretized_logistic"
    values = {name: _as_unit_values(images, f"{where} ({name})" if name != "all" else where, centre_bins)
              for name, images in raw.items()}
    splits = _split(values, split)
    flat = {name: np.ascontiguousarray(images.reshape(len(images), -1)) for name, images in splits.items()}
    if binary:
        pass                                # 0/1 already (or, for the discretized logistic, 0 and 255 at bin centres)
    elif binarization == "dynamic":         # validation and test binarized once; training batches afresh
        flat["train"], flat["validation"], flat["test"] = dynamic_splits(flat["train"], flat["validation"],
                                                                         flat["test"])
    elif binarization == "static":
        flat = {name: binarize(images, EVAL_BINARIZATION_SEED + offset)
                for offset, (name, images) in enumerate(flat.items())}
    check_values(list(flat.values()), where)
    train = flat["train"]
    spec = DatasetSpec(name=where, image_shape=image_shape, input_type=input_type(likelihood, image_shape),
                       binarization=binarization, likelihood=likelihood,
                       pseudo_init_mean=round(float(train.mean()), 6), pseudo_init_std=round(float(train.std()), 6),
                       num_components=DEFAULT_COMPONENTS,
                       split_sizes=tuple(len(flat[name]) for name in ("train", "validation", "test")),
                       source=f"{source.kind}: {source.location}")
    return Dataset(spec, flat["train"], flat["validation"], flat["test"])
