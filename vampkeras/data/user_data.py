"""Your own images: a folder of image files, a ``.npy``/``.npz`` array, or a TFDS dataset (``tfds:NAME[/CONFIG]``).

What the data are decides how they are modelled, unless the user says otherwise:

* values: integer images are 0–255 (0/1 integer arrays are read as binary if every split is binary), float
  images must lie in [0, 1]; 16-bit images are scaled by 65535;
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

Every file is hostile until read: headers come first (image sizes without decoding, ``.npy`` headers, ``.npz``
members' sizes), declared sizes are checked against the bytes present and the memory the data will take
against what this process may use (:mod:`vampkeras.resources`), before anything is decoded or inflated; only
regular files are opened (never a FIFO or a device); arrays of objects are never unpickled. ``.npy`` files
are memory-mapped, and ``--max-examples`` bounds the float32 values held.

Nothing here imports TensorFlow except a TFDS read; :func:`parse_source` (used by the CLI before TensorFlow
loads) touches only the file system. Every problem is a :class:`DataError` naming the file.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from vampkeras import shapes
from vampkeras.data import sources
from vampkeras.data.dataset import (EVAL_BINARIZATION_SEED, SPLIT_SEED, Dataset, DatasetSpec, check_values,
                                    content_digest, content_sha256, data_record, default_data_dir, input_type)
from vampkeras.errors import DataError

__all__ = ["DataSource", "load", "parse_source", "is_user_source", "offline", "read_raw", "read_tfds", "tfds_folder",
           "choose_modelling", "TFDS_PREFIX", "BINARIZATIONS", "DEFAULT_SPLIT", "DEFAULT_COMPONENTS", "OFFLINE_ENV",
           "IMAGE_SUFFIXES", "SPLIT_NAMES"]

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
# Values processed at a time (a block of rows, or of one large image's values), and the bytes each takes
# meanwhile: the raw value, its float32 copies, the float64 uniform of a binarization and its comparison
CHUNK_VALUES = 1 << 20
TEMPORARY_BYTES = 40
INFLATE_BLOCK = 1 << 20             # bytes inflated from a .npz member at a time


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
# A source is read in two steps: first every header (image sizes and modes, array shapes and types; nothing is
# decoded or inflated), checked, with the memory that holding the data will take (_check_memory); then the
# content. A .npy file and a .npz's stored (uncompressed) array are memory maps: only the rows in use are in
# memory at a time, and --max-examples bounds what is held (see load).

# What a file that is not a regular one is, for messages (found by stat, without opening it)
_SPECIAL_FILES = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
                  stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def _check_regular(path: Path, rule: str) -> None:
    """Refuse (DataError, ending in ``rule``) a ``path`` that is not a regular file or a link to one, decided
    from the file system without opening it: reading a FIFO would wait forever, and opening a device may have
    effects. A link loop or a dangling link is refused too."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    if not stat.S_ISREG(mode):
        raise DataError(f"{path} is {_SPECIAL_FILES.get(stat.S_IFMT(mode), 'a special file')}, not a regular "
                        f"file: {rule}")


def _image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively, e.g. one subfolder per class), sorted by path; hidden
    files and folders are skipped; any other file is a DataError (a stray file would silently not be data), and
    so is an image name that is not a regular file (a FIFO, a device, a link loop): refused, not skipped, so
    that no image goes missing unnoticed, and never opened."""
    def unreadable(error: OSError):
        raise DataError(f"cannot read the folder {error.filename}: {error.strerror or error}")

    files = []
    for root, folders, names in os.walk(folder, onerror=unreadable):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(root) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{path} is not an image file ({', '.join(IMAGE_SUFFIXES)}); a --dataset folder "
                                "holds images only")
            _check_regular(path, "a --dataset folder holds regular image files only (links to them are fine)")
            files.append(path)
    return files


@dataclasses.dataclass(frozen=True)
class _Planned:
    """One split of a source as its headers describe it, before its content is read: ``shape`` (N, H, W[, C])
    of ``dtype``; ``resident``, the bytes that reading it holds in memory (0 for a memory map); ``read()`` the
    array, in memory or memory-mapped."""

    shape: tuple
    dtype: np.dtype
    resident: int
    read: Callable[[], np.ndarray]


def _plan_folder_images(folder: Path) -> _Planned:
    """The images under ``folder`` from their headers (all of one size and channel count), read as (N, H, W[, 3]):
    uint8, or float32 in [0, 1] if any is 16-bit."""
    files = _image_files(folder)
    if not files:
        raise DataError(f"no images in {folder}: the folder holds no {', '.join(IMAGE_SUFFIXES)} files")
    headers = [sources.read_image(path, header_only=True) for path in files]
    shape = headers[0][0]
    for path, (other, _) in zip(files[1:], headers[1:]):
        if other != shape:
            raise DataError(f"{path} is an image of {_describe(other)}, but {files[0]} is {_describe(shape)}: all "
                            "images of a dataset have one size and channel count")
    dtype = np.dtype(np.float32) if any(kind == np.float32 for _, kind in headers) else np.dtype(np.uint8)
    full = (len(files), *shape)

    def read() -> np.ndarray:
        images = np.empty(full, dtype)
        for index, path in enumerate(files):
            image = sources.read_image(path)
            if image.shape != shape or (image.dtype != dtype and image.dtype != np.uint8):
                raise DataError(f"{path} changed while {folder} was read (it is now an image of "
                                f"{_describe(image.shape)}); read the folder again")
            images[index] = image.astype(np.float32) / 255.0 if image.dtype != dtype else image
        return images

    return _Planned(full, dtype, math.prod(full) * dtype.itemsize, read)


def _describe(shape) -> str:
    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    return f"{height}x{width} with {channels} channel{'s' if channels > 1 else ''}"


def _plan_folder(folder: Path) -> dict[str, _Planned]:
    present = {split: [folder / name for name in names if (folder / name).is_dir()]
               for split, names in SPLIT_NAMES.items()}
    if not present["train"]:
        if present["validation"] or present["test"]:      # (reading them as unsplit data would train on them)
            found = (present["validation"] + present["test"])[0].name
            raise DataError(f"{folder} has a {found}/ folder but no train/ folder: put the training images into "
                            "train/, or use no split folders at all")
        return {"all": _plan_folder_images(folder)}
    for split, found in present.items():
        if len(found) > 1:
            raise DataError(f"{folder} has {' and '.join(f.name + '/' for f in found)}: name one {split} folder")
    strays = [entry for entry in folder.iterdir() if not entry.name.startswith(".")
              and not any(entry in found for found in present.values())]
    if strays:
        raise DataError(f"{folder} has split folders (train/, validation/, test/) and also {strays[0].name}: "
                        "put every image into one of the split folders")
    return {split: _plan_folder_images(found[0]) for split, found in present.items() if found}


def _check_images_array(shape: tuple, dtype: np.dtype, where: str) -> None:
    """Refuse (DataError) an array that cannot hold images: not (N, H, W) or (N, H, W, C) with C = 1 or 3, not of
    real numbers (objects are never unpickled), empty, or of empty images."""
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(f"{where} holds {dtype} values; images are bool, integers or floats")
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] not in (1, 3)):
        raise DataError(f"{where} holds an array of shape {shape}; images are (N, H, W) or (N, H, W, C) "
                        "with C = 1 or 3")
    if shape[0] == 0:
        raise DataError(f"no images in {where}: the array is empty")
    if 0 in shape[1:]:
        raise DataError(f"{where} holds images of shape {shape[1:]}: an image has at least one pixel")


def _read_array(array: np.ndarray, where: str) -> np.ndarray:
    """A user's array as images (N, H, W) or (N, H, W, C); wrong ranks and types are a DataError."""
    _check_images_array(tuple(array.shape), array.dtype, where)
    return array


def _npy_header(stream, where: str) -> tuple[tuple, bool, np.dtype]:
    """The (shape, Fortran order, dtype) a .npy header declares (:func:`vampkeras.data.sources.read_npy_header`),
    checked to describe images; the stream is left at the first byte of the data, none of which is read."""
    shape, fortran, dtype = sources.read_npy_header(stream, where)
    _check_images_array(shape, dtype, where)
    return shape, fortran, dtype


def _check_data_size(where: str, shape: tuple, dtype: np.dtype, present: int) -> None:
    """Refuse an array whose header declares other than the ``present`` bytes of data: a truncated file, or a
    header that promises more than is there (an allocation of the declared size would be the bomb)."""
    expected = math.prod(shape) * dtype.itemsize
    if present < expected:
        raise DataError(f"{where} is truncated or corrupt: its header declares an array of shape {shape} of {dtype} "
                        f"({expected} bytes), but it holds {max(present, 0)} bytes of data")
    if present > expected:
        raise DataError(f"{where} is corrupt: it holds {present} bytes of data, more than its header declares "
                        f"(shape {shape} of {dtype}: {expected} bytes)")


def _plan_npy(path: Path) -> dict[str, _Planned]:
    """A .npy file from its header, read as a memory map."""
    where = str(path)
    _check_regular(path, "a .npy dataset is a regular file")
    with sources.open_regular(path) as stream:
        shape, fortran, dtype = _npy_header(stream, where)
        offset, size = stream.tell(), os.fstat(stream.fileno()).st_size
    _check_data_size(where, shape, dtype, size - offset)

    def read() -> np.ndarray:
        with sources.open_regular(path) as stream:
            if os.fstat(stream.fileno()).st_size != size:
                raise DataError(f"{path} changed while it was read; read it again")
            return np.memmap(stream, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")

    return {"all": _Planned(shape, dtype, 0, read)}


ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")        # signature, ..., file name length, extra field length


def _plan_npz_member(path: Path, stream, archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> _Planned:
    """One array of a .npz from its header: its declared size checked against the member's uncompressed size
    (which the zip module never reads beyond, CRC-checked) before anything is inflated; a stored member is read
    as a memory map, a compressed one inflated into an array of the declared size."""
    if not info.filename.endswith(".npy") or info.is_dir():
        raise DataError(f"{where} is not a .npy array; a .npz holds .npy arrays only")
    if info.flag_bits & 0x1:
        raise DataError(f"{where} is encrypted; vampkeras reads plain .npz archives")
    with archive.open(info) as member:
        shape, fortran, dtype = _npy_header(member, where)
        header = member.tell()
    _check_data_size(where, shape, dtype, info.file_size - header)
    order = "F" if fortran else "C"
    if info.compress_type == zipfile.ZIP_STORED:
        stream.seek(info.header_offset)
        local = stream.read(ZIP_LOCAL_HEADER.size)
        if len(local) != ZIP_LOCAL_HEADER.size or ZIP_LOCAL_HEADER.unpack(local)[0] != b"PK\x03\x04":
            raise DataError(f"cannot read {where}: its local header is missing or damaged")
        _, name_length, extra_length = ZIP_LOCAL_HEADER.unpack(local)
        start = info.header_offset + ZIP_LOCAL_HEADER.size + name_length + extra_length
        size = os.fstat(stream.fileno()).st_size
        if info.compress_size != info.file_size or start + info.file_size > size:
            raise DataError(f"{where} is truncated or corrupt: the archive does not hold the {info.file_size} bytes "
                            "it declares for it")

        def read() -> np.ndarray:
            with sources.open_regular(path) as again:
                if os.fstat(again.fileno()).st_size != size:
                    raise DataError(f"{path} changed while it was read; read it again")
                return np.memmap(again, dtype=dtype, mode="r", offset=start + header, shape=shape, order=order)

        return _Planned(shape, dtype, 0, read)

    def inflate() -> np.ndarray:
        flat = np.empty(math.prod(shape), dtype)
        view = flat.view(np.uint8)
        try:
            with sources.open_regular(path) as again, zipfile.ZipFile(again) as reopened, \
                    reopened.open(reopened.getinfo(info.filename)) as member:
                _npy_header(member, where)
                filled = 0
                while filled < len(view):
                    got = member.readinto(view[filled:filled + INFLATE_BLOCK])
                    if not got:
                        raise DataError(f"{where} is truncated: it ends after {filled} of its {len(view)} bytes")
                    filled += got
                if member.read(1):          # (never: the zip module stops at the declared size; this checks the CRC)
                    raise DataError(f"{where} holds more data than its header declares")
        except DataError:
            raise
        except (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, KeyError, zipfile.BadZipFile,
                zlib.error) as error:
            raise DataError(f"cannot read {path} as a .npz archive of arrays ({error})") from None
        return flat.reshape(shape, order=order)

    return _Planned(shape, dtype, math.prod(shape) * dtype.itemsize, inflate)


def _plan_npz(path: Path) -> dict[str, _Planned]:
    """The arrays of a .npz that hold images: ``train``/``validation``/``test`` (or their aliases), or its one
    array; every member checked from its header (:func:`_plan_npz_member`)."""
    _check_regular(path, "a .npz dataset is a regular file")
    try:
        with sources.open_regular(path) as stream, zipfile.ZipFile(stream) as archive:
            infos = archive.infolist()
            keys = [info.filename[:-len(".npy")] if info.filename.endswith(".npy") else info.filename
                    for info in infos]
            repeated = sorted({key for key in keys if keys.count(key) > 1})
            if repeated:
                raise DataError(f"{path} holds more than one member named {repeated[0]!r}: a .npz names each array "
                                "once")
            members = dict(zip(keys, infos))
            if not members:
                raise DataError(f"no images in {path}: the archive holds no arrays")
            chosen = {}
            for split, aliases in SPLIT_NAMES.items():
                found = [name for name in aliases if name in members]
                if len(found) > 1:
                    raise DataError(f"{path} holds arrays {' and '.join(found)}: name one {split} array")
                if found:
                    chosen[split] = found[0]
            if not chosen:
                if len(members) > 1:
                    raise DataError(f"{path} holds {len(members)} arrays ({', '.join(sorted(members))}); give one "
                                    "array, or arrays named train, validation and test")
                chosen = {"all": keys[0]}
            elif "train" not in chosen:
                raise DataError(f"{path} has {', '.join(chosen.values())} but no train array")
            return {split: _plan_npz_member(path, stream, archive, members[name], f"{path} (array {name!r})")
                    for split, name in chosen.items()}
    except DataError:
        raise
    except (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"cannot read {path} as a .npz archive of arrays ({error})") from None


def _memory_needed(planned: dict[str, _Planned], max_examples: int | None) -> tuple[int, int, int, int]:
    """(bytes in all, as float32 values, as read, of working space) that :func:`load` holds for the ``planned``
    splits: the float32 values it keeps (at most 3 · ``max_examples`` images: the first of each split), what
    reading holds (an inflated array, decoded images; nothing for a memory map), and one block of temporaries."""
    def kept(plan):
        return plan.shape[0] if max_examples is None else min(plan.shape[0], 3 * max_examples)
    values = sum(kept(plan) * math.prod(plan.shape[1:]) for plan in planned.values()) * 4
    resident = sum(plan.resident for plan in planned.values())
    temporaries = min(sum(math.prod(plan.shape) for plan in planned.values()), CHUNK_VALUES) * TEMPORARY_BYTES
    return values + resident + temporaries, values, resident, temporaries


def _check_memory(where: str, planned: dict[str, _Planned], max_examples: int | None) -> None:
    """Refuse (DataError, naming the numbers) data that would not fit in what this process may use
    (:func:`vampkeras.resources.host_memory_limit`), before any of it is decoded or inflated."""
    from vampkeras.resources import describe_bytes, host_memory_limit

    need, values, resident, temporaries = _memory_needed(planned, max_examples)
    limit = host_memory_limit()
    if need <= limit.bytes:
        return
    count = sum(plan.shape[0] for plan in planned.values())
    shape = shapes.describe(shapes.canonical(next(iter(planned.values())).shape[1:]))
    parts = [f"{describe_bytes(values)} as float32 values"]
    if resident:
        parts.append(f"{describe_bytes(resident)} as read")
    parts.append(f"{describe_bytes(temporaries)} of working space")
    fewer = max_examples is None and need - values < limit.bytes
    raise DataError(f"{where} holds {count} images of {shape}: reading them needs about {describe_bytes(need)} "
                    f"({', '.join(parts[:-1])} and {parts[-1]}), more than this process may use, {limit}; use fewer "
                    f"or smaller images" + (" or --max-examples" if fewer else ""))


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


def read_raw(source: DataSource, data_dir=None, download: bool = True,
             max_examples: int | None = None) -> dict[str, np.ndarray]:
    """The source's images as stored: split name ("train", "validation", "test", or "all" for unsplit data) →
    (N, H, W) or (N, H, W, C) array of integers or floats (a memory map for a .npy file or a .npz's stored
    array). Headers first: data that would not fit in memory (holding at most 3 · ``max_examples`` images as
    float32 values, see :func:`load`) are refused before they are decoded or inflated."""
    path = Path(source.location)
    if source.kind == "tfds":
        return read_tfds(source.location, Path(data_dir) if data_dir is not None else default_data_dir(), download)
    if source.kind == "folder":
        planned = _plan_folder(path)
    elif source.kind == "npy":
        planned = _plan_npy(path)
    elif source.kind == "npz":
        planned = _plan_npz(path)
    else:
        raise ValueError(f"unknown source kind {source.kind!r}")
    _check_memory(source.argument, planned, max_examples)
    return {split: plan.read() for split, plan in planned.items()}


# -- from raw arrays to the model's float images, a block of rows at a time ----------------------------------
def _row_blocks(images: np.ndarray, index: np.ndarray | None = None):
    """The values of ``images`` (N, ...) as (n, D) blocks, D = the values of an image, in C order over the rows
    ``index`` (default all, in order): (first row, row after the last, first column, block). A block holds at
    most CHUNK_VALUES values, several rows or one row's columns in pieces; rows are read as they are needed."""
    count = len(images) if index is None else len(index)
    width = math.prod(images.shape[1:])
    rows = max(1, CHUNK_VALUES // width)
    step = width if rows > 1 else CHUNK_VALUES
    for start in range(0, count, rows):
        stop = min(start + rows, count)
        chosen = images[start:stop] if index is None else images[index[start:stop]]
        flat = chosen.reshape(stop - start, width)
        for column in range(0, width, step):
            yield start, stop, column, flat[:, column:column + step]


@dataclasses.dataclass(frozen=True)
class _Values:
    """What one split's values are: the dtype ``kind`` (b, i, u, f), ``binary`` (0 and 1 only, or for integers
    0 and 255 only) and ``zero_one`` (0 and 1 only)."""

    kind: str
    binary: bool
    zero_one: bool


def _scan(images: np.ndarray, where: str) -> _Values:
    """One pass over a split's values: integers must be 0–255, floats finite and in [0, 1] (as float32, the
    values the model sees), else a DataError starting with ``where``."""
    kind = images.dtype.kind
    if kind == "b":
        return _Values(kind, True, True)
    low = high = None
    zero_one, zero_255 = True, kind in "iu"
    for *_, block in _row_blocks(images):
        seen = block.astype(np.float32) if kind == "f" else block
        if kind == "f" and not np.all(np.isfinite(seen)):
            raise DataError(f"{where}: the images contain NaN or infinite values")
        low = seen.min() if low is None else min(low, seen.min())
        high = seen.max() if high is None else max(high, seen.max())
        zero_one = zero_one and bool(np.isin(block, (0, 1)).all())
        zero_255 = zero_255 and bool(np.isin(block, (0, 255)).all())
    if kind in "iu" and (low < 0 or high > 255):
        raise DataError(f"{where}: integer images hold values 0–255 (or 0/1), found {int(low)} to {int(high)}")
    if kind == "f" and (low < 0.0 or high > 1.0):
        raise DataError(f"{where}: float images must lie in [0, 1], found values from {float(low):g} to "
                        f"{float(high):g} (integer images are read as 0–255)")
    return _Values(kind, zero_one or zero_255, zero_one)


def _unit_values(block: np.ndarray, kind: str, levels: bool, centre_bins: bool) -> np.ndarray:
    """A block of raw values as float32 in [0, 1]: integers that are grey ``levels`` 0–255 at their bin's centre
    (k + 0.5)/256 when ``centre_bins`` (the discretized logistic's bins) or k/255, 0/1 integers of binary data,
    bools and floats as they are."""
    values = block.astype(np.float32)
    if kind in "iu" and levels:
        return (values + 0.5) / 256.0 if centre_bins else values / 255.0
    return values


def _split_plan(raw: dict[str, np.ndarray], fractions) -> dict[str, tuple[str, np.ndarray | None]]:
    """train/validation/test as (raw split, its rows in order, None for all): given splits as they are; missing
    ones cut (fixed seed) from the training images in the proportions ``fractions``; unsplit data ("all")
    split in those proportions. The order of the result is the order of the static binarization's seeds."""
    fractions = tuple(float(f) for f in (fractions or DEFAULT_SPLIT))
    rng = np.random.default_rng(SPLIT_SEED)
    if "all" in raw:
        count = len(raw["all"])
        order = rng.permutation(count)
        train_count = int(round(fractions[0] / sum(fractions) * count))
        validation_count = int(round(fractions[1] / sum(fractions) * count))
        if min(train_count, validation_count, count - train_count - validation_count) < 1:
            raise DataError(f"{count} images cannot be split {fractions[0]:g}/{fractions[1]:g}/{fractions[2]:g} "
                            "into non-empty train, validation and test sets")
        return {"train": ("all", order[:train_count]),
                "validation": ("all", order[train_count:train_count + validation_count]),
                "test": ("all", order[train_count + validation_count:])}
    plan = {split: (split, None) for split in raw}
    missing = [split for split in ("validation", "test") if split not in raw]
    if missing:
        count = len(raw["train"])
        order = rng.permutation(count)
        index = {"train": 0, "validation": 1, "test": 2}
        shares = [fractions[index[split]] / (fractions[0] + sum(fractions[index[s]] for s in missing))
                  for split in missing]
        counts = [int(round(share * count)) for share in shares]
        if min(counts) < 1 or sum(counts) >= count:
            raise DataError(f"{count} training images cannot give up a {' and a '.join(missing)} split")
        start = 0
        for split, part in zip(missing, counts):
            plan[split] = ("train", order[start:start + part])
            start += part
        plan["train"] = ("train", np.sort(order[start:]))
    return plan


def _finish_split(images: np.ndarray, index, convert, seed: int | None, keep: int | None, where: str):
    """One split as the model sees it, a block at a time: values from ``convert``, binarized once with ``seed``
    (None: not), checked; returns its first ``keep`` images (all for None) as (n, D) float32, the
    :func:`content_sha256` of the whole split, and its (sum, sum of squares, count) of values.

    Binarizing block by block draws the same numbers as :func:`vampkeras.data.registry.binarize` on the whole
    split: one generator, consumed in C order (tests/data/test_user_data.py compares the two)."""

    count = len(images) if index is None else len(index)
    width = math.prod(images.shape[1:])
    kept = count if keep is None else min(count, keep)
    out = np.empty((kept, width), np.float32)
    digest = content_digest((count, width))
    rng = None if seed is None else np.random.default_rng(seed)
    total = squares = 0.0
    for start, stop, column, block in _row_blocks(images, index):
        values = convert(block)
        if rng is not None:
            values = (rng.uniform(size=values.shape) < values).astype(np.float32)
        check_values([values], where)
        values = np.ascontiguousarray(values)
        digest.update(values.data)
        total += float(values.sum(dtype=np.float64))
        squares += float(np.square(values, dtype=np.float64).sum())
        if start < kept:
            out[start:min(stop, kept), column:column + values.shape[1]] = values[:min(stop, kept) - start]
    return out, digest.hexdigest(), (total, squares, count * width)


def load(source: DataSource, data_dir=None, likelihood: str | None = None, binarization: str | None = None,
         split=None, download: bool = True, max_examples: int | None = None):
    """The source's images as a :class:`vampkeras.data.Dataset` (flattened float32 (N, D) splits) with a spec
    built from the data: image shape, likelihood, binarization, pseudo-input initialisation.

    One decision for the whole dataset: it is binary only if every split is (if any split holds other values
    than 0 and 1, every split is read as grey levels). ``max_examples`` keeps the first N images of every split:
    every value is still read once, a block at a time, for the decisions, the pseudo-input statistics and the
    record (which describes the whole splits, as :func:`vampkeras.data.registry.data_record` does), but only
    the kept images are held as float32 values."""

    raw = read_raw(source, data_dir, download, max_examples)
    where = source.argument
    image_shapes = {split_name: shapes.canonical(images.shape[1:]) for split_name, images in raw.items()}
    if len(set(image_shapes.values())) > 1:
        listed = ", ".join(f"{name} {shapes.describe(shape)}" for name, shape in image_shapes.items())
        raise DataError(f"{where}: the splits hold images of different shapes ({listed})")
    image_shape = next(iter(image_shapes.values()))
    if shapes.channels(image_shape) not in (1, 3):
        raise DataError(f"{where}: images have {shapes.channels(image_shape)} channels; vampkeras models 1 (grey) "
                        "or 3 (colour)")
    found = {name: _scan(images, f"{where} ({name})" if name != "all" else where) for name, images in raw.items()}
    binary = all(values.binary for values in found.values())
    likelihood, binarization = choose_modelling(binary, likelihood, binarization, where)
    if split is not None and {"train", "validation", "test"} <= set(raw):
        raise DataError(f"{where} has its own train, validation and test splits; --split applies to data without "
                        "them")
    plan = _split_plan(raw, split)
    if binary:
        seeds = {}                  # 0/1 already (or, for the discretized logistic, 0 and 255 at bin centres)
    elif binarization == "dynamic":     # registry.dynamic_splits: validation and test once, training batches afresh
        seeds = {"validation": EVAL_BINARIZATION_SEED, "test": EVAL_BINARIZATION_SEED + 1}
    elif binarization == "static":
        seeds = {name: EVAL_BINARIZATION_SEED + offset for offset, name in enumerate(plan)}
    else:
        seeds = {}
    splits, digests, counts = {}, {}, {}
    for name, (origin, rows) in plan.items():
        values = found[origin]
        # integers are grey levels unless the whole dataset is binary and this split holds 0 and 1
        convert = functools.partial(_unit_values, kind=values.kind, levels=not (binary and values.zero_one),
                                    centre_bins=likelihood == "discretized_logistic")
        splits[name], digests[name], moments = _finish_split(raw[origin], rows, convert, seeds.get(name),
                                                             max_examples, where)
        counts[name] = moments[2] // shapes.num_values(image_shape)
        if name == "train":
            total, squares, size = moments
    mean = total / size
    spec = DatasetSpec(name=where, image_shape=image_shape, input_type=input_type(likelihood, image_shape),
                       binarization=binarization, likelihood=likelihood,
                       pseudo_init_mean=round(mean, 6), pseudo_init_std=round(math.sqrt(max(squares / size - mean ** 2,
                                                                                               0.0)), 6),
                       num_components=DEFAULT_COMPONENTS,
                       split_sizes=tuple(counts[name] for name in ("train", "validation", "test")),
                       source=f"{source.kind}: {source.location}")
    dataset = Dataset(spec, splits["train"], splits["validation"], splits["test"])
    # the record of the whole splits, also when only their first images are kept
    empty = np.zeros([0, spec.num_pixels], np.float32)
    dataset.record = {**data_record(Dataset(spec, empty, empty, empty)),
                      "splits": {name: {"count": counts[name], "sha256": digests[name]}
                                 for name in ("train", "validation", "test")}}
    return dataset
