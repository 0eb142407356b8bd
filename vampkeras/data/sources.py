"""Readers of the datasets' file formats. Each returns arrays of flattened images, (N, H·W·C).

All raise :class:`DataError` with the file's path for missing, truncated or malformed files.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from vampkeras.errors import DataError

IDX_IMAGES_MAGIC = 2051


def _open_maybe_gzip(path: Path):
    with open(path, "rb") as stream:
        head = stream.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def read_bytes(path) -> bytes:
    """A file's content, gunzipped if it is gzip-compressed."""
    path = Path(path)
    try:
        with _open_maybe_gzip(path) as stream:
            return stream.read()
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read {path}: the file is truncated or corrupt ({error})") from None


def read_idx_images(path) -> np.ndarray:
    """MNIST IDX image file (plain or .gz): (N, rows·cols) float32 grey values in [0, 1]."""
    data = read_bytes(path)
    if len(data) < 16:
        raise DataError(f"{path} is too short to be an IDX image file")
    magic, count, rows, cols = np.frombuffer(data[:16], dtype=">u4")
    if magic != IDX_IMAGES_MAGIC:
        raise DataError(f"{path} is not an IDX image file (magic number {magic}, expected {IDX_IMAGES_MAGIC})")
    expected = 16 + int(count) * int(rows) * int(cols)
    if len(data) != expected:
        raise DataError(f"{path} is truncated or corrupt: {len(data)} bytes, the header promises {expected}")
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(int(count), int(rows) * int(cols))
    return pixels.astype(np.float32) / 255.0


def read_amat(path, width: int = 784) -> np.ndarray:
    """Larochelle's ``.amat`` text (plain or .gz): one image a line of ``width`` values in {0, 1}."""
    text = read_bytes(path)
    lines = text.split(b"\n")
    if lines and not lines[-1].strip():
        lines = lines[:-1]
    values = np.array(text.split(), dtype=np.float32) if text.strip() else np.zeros([0], np.float32)
    if len(lines) == 0 or values.size != len(lines) * width:
        lengths = sorted({len(line.split()) for line in lines})
        raise DataError(f"{path} is not a .amat file of {width} values per line "
                        f"(found lines with {lengths[:5]} values)")
    images = values.reshape(len(lines), width)
    if not np.isin(images, (0.0, 1.0)).all():
        raise DataError(f"{path} holds values other than 0 and 1; static MNIST must be binary")
    return images


def load_mat(path) -> dict:
    """A MATLAB file's variables (scipy.io.loadmat)."""
    from scipy.io import loadmat
    try:
        return loadmat(str(path))
    except Exception as error:  # scipy raises several unrelated types for a corrupt file
        raise DataError(f"cannot read {path} as a MATLAB file ({type(error).__name__}: {error})") from None


def mat_array(contents: dict, key: str, path) -> np.ndarray:
    if key not in contents:
        raise DataError(f"{path} has no variable {key!r} (found {sorted(k for k in contents if not k.startswith('_'))})")
    return np.asarray(contents[key])


def load_pickle(path, member_suffix: str | None = None):
    """A (Python 2 compatible) pickle, optionally the member ending in ``member_suffix`` of a .tar.gz."""
    path = Path(path)
    try:
        if member_suffix is not None and tarfile.is_tarfile(path):
            with tarfile.open(path, "r:*") as archive:
                members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(member_suffix)]
                if not members:
                    raise DataError(f"{path} holds no file ending in {member_suffix}")
                payload = archive.extractfile(members[0]).read()
        else:
            payload = read_bytes(path)
        return pickle.load(io.BytesIO(payload), encoding="latin1")
    except DataError:
        raise
    except Exception as error:  # unpickling a corrupt file raises many types
        raise DataError(f"cannot read {path} as a pickle ({type(error).__name__}: {error})") from None


IMAGE_FORMATS = ("PNG", "JPEG", "BMP")


def read_image(path, formats=IMAGE_FORMATS, size: tuple[int, int] | None = None) -> np.ndarray:
    """One image file (Pillow; ``formats`` the ones accepted) as (H, W) for grey modes or (H, W, 3) for every
    other mode: uint8, or float32 in [0, 1] for 16-bit grey images. With ``size`` (H, W), an image of another
    size is refused from its header, before any pixel is decoded, so that a huge image (a decompression bomb,
    tiny on disk) costs nothing. Transparent pixels and damaged files are a DataError naming the file."""
    from PIL import Image
    import warnings

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # PIL warns of images over its pixel limit at open(); the size check refuses them undecoded
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path, formats=list(formats))
        with image:
            if size is not None and image.size != (size[1], size[0]):
                raise DataError(f"{path} is {image.height} pixels high and {image.width} wide; the model takes "
                                f"images {size[0]} high and {size[1]} wide")
            image.load()
            if image.mode.startswith("I"):                         # 16-bit grey ("I;16", "I")
                values = np.asarray(image, dtype=np.float64)
                key = image.info.get("transparency")               # a tRNS chunk: this grey value is transparent
                if key is not None and np.any(values == key):
                    raise DataError(f"{path} has transparent pixels; vampkeras models opaque images")
                return (values / 65535.0).astype(np.float32)
            grey = image.mode in ("1", "L", "LA")
            if image.mode in ("LA", "RGBA", "PA") or "transparency" in image.info:
                pixels = np.asarray(image.convert("LA" if grey else "RGBA"))
                if np.any(pixels[..., -1] != 255):
                    raise DataError(f"{path} has transparent pixels (alpha below 255); vampkeras models opaque "
                                    "images (flatten it onto a background first)")
                return pixels[..., 0] if grey else pixels[..., :3]
            return np.asarray(image.convert("L" if grey else "RGB"))
    except DataError:
        raise
    except Image.DecompressionBombError as error:
        raise DataError(f"{path} is far larger than the model's images and was not decoded ({error})") from None
    except Exception as error:      # PIL raises many types for damaged files (OSError, SyntaxError, ...)
        raise DataError(f"cannot read {path} as an image ({error or type(error).__name__})") from None


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only: a pickle that asks for anything else (the way a
    malicious one runs code) is refused."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only arrays are read")
        return super().find_class(module, name)


CIFAR10_TRAIN_MEMBERS = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_MEMBER = "cifar-10-batches-py/test_batch"
CIFAR10_SHAPE = (32, 32, 3)


def read_cifar10(path) -> tuple[np.ndarray, np.ndarray]:
    """The canonical ``cifar-10-python.tar.gz`` (its five training batches and its test batch, Python pickles
    of ``{b"data": (10000, 3072) uint8 in channel-major (3, 32, 32) order, ...}``): (train, test) uint8 arrays
    of (N, 32·32·3) in (H, W, C) order, the training batches in the order 1–5."""
    path = Path(path)
    arrays = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for name in (*CIFAR10_TRAIN_MEMBERS, CIFAR10_TEST_MEMBER):
                try:
                    member = archive.getmember(name)
                except KeyError:
                    raise DataError(f"{path} has no {name}: it is not the CIFAR-10 python archive") from None
                batch = _ArrayUnpickler(io.BytesIO(archive.extractfile(member).read()), encoding="bytes").load()
                data = np.asarray(batch.get(b"data") if isinstance(batch, dict) else None)
                if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
                    raise DataError(f"{path}: {name} holds no (N, 3072) uint8 'data' array")
                arrays[name] = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(-1, 3072)
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as error:
        raise DataError(f"cannot read {path} as the CIFAR-10 python archive ({error or type(error).__name__})") \
            from None
    train = np.concatenate([arrays[name] for name in CIFAR10_TRAIN_MEMBERS])
    return train, arrays[CIFAR10_TEST_MEMBER]


def area_resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average (N, H, W) float images in [0, 1] to (N, h, w) (PIL's box filter; antialiased)."""
    from PIL import Image
    height, width = size
    out = np.empty((len(images), height, width), dtype=np.float32)
    for index, image in enumerate(images):
        out[index] = np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize(
            (width, height), resample=Image.BOX))
    return np.clip(out, 0.0, 1.0)
