"""Using a trained model from its run folder or SavedModel: draw images, score new images."""

from __future__ import annotations

import csv
import io
import os
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from vampkeras import figures, shapes
from vampkeras.data import sources
from vampkeras.checkpoints import atomic_write_bytes, atomic_write_text, check_writable_file
from vampkeras.errors import DataError, VampkerasError

__all__ = ["sample_images", "score_file", "read_images", "NPZ_ARRAY_NAMES"]


def sample_images(path, num_samples: int = 64, seed: int = 0, component: int | None = None,
                  out="samples.png", npy=None) -> list[Path]:
    """Draw ``num_samples`` images (from one prior component if ``component`` is given), write them as a
    PNG grid to ``out`` and, if ``npy``, as an (n, H, W) float32 array. Returns the written paths. Output
    files that cannot be written are refused before the model is loaded."""
    from vampkeras.trained_model import TrainedModel

    check_writable_file(out, "--out")
    if npy:
        check_writable_file(npy, "--npy")
        if _same_file(out, npy):
            raise VampkerasError(f"--out and --npy are the same file ({out}); give two names")
    model = TrainedModel.load(path)
    if component is None:
        images = model.sample(num_samples, seed)
    else:
        if not model.has_components:
            raise VampkerasError(f"the model's prior ({model.config.prior}) has no components to choose from; "
                                 "--pseudo-input needs a mixture prior")
        count = model.config.num_components
        if not 0 <= component < count:
            raise VampkerasError(f"--pseudo-input must lie in 0..{count - 1} (the prior has {count} components)")
        images = model.sample_component(component, num_samples, seed)
    written = [figures.save_png(out, figures.image_grid(images))]
    if npy:
        buffer = io.BytesIO()
        np.save(buffer, images.astype(np.float32))
        atomic_write_bytes(npy, buffer.getvalue())
        written.append(Path(npy))
    return written


# How INPUT's file kinds begin (np.load tells .npy from .npz the same way); the content decides, not the suffix.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
# The array of a .npz holding several: the one of these names (exactly one of them must be there).
NPZ_ARRAY_NAMES = ("images", "x")
# What dtype kinds other than real numbers (b, i, u, f) hold, for the message that refuses them
_NOT_NUMBERS = {"c": "complex numbers", "O": "Python objects", "U": "text", "S": "bytes", "V": "records",
                "M": "dates", "m": "time spans"}


def read_images(input_path, image_shape) -> tuple[np.ndarray, list[str]]:
    """Images (N, *image_shape) float32 and their names from ``input_path``, for a model of ``image_shape``
    (H, W) or (H, W, C):

    * a ``.npy`` file of real numbers (bool, integers or floats) of shape (N, H, W[, C]), for grey images also
      (N, H, W, 1), or (N, H·W·C);
    * a ``.npz`` file holding one such array, or several of which exactly one is named ``images`` or ``x``;
    * a PNG file, or a folder of PNGs (sorted by file name): opaque, H×W, grey for a grey model and colour
      (RGB) for a colour one, values / 255 (/ 65535 for 16-bit PNGs).

    Names are the PNGs' file names, else the indices. Anything else is a :class:`DataError` naming the file:
    no images at all, another shape (checked from the .npy header or the PNG header, before the data are
    read), complex or object values (never unpickled), colour PNGs for a grey model, transparent PNGs, damaged
    files. The values
    themselves (finite, in [0, 1]) are left to :func:`vampkeras.evaluation.check_images`."""
    input_path = Path(input_path)
    if input_path.is_dir():
        files = sorted(p for p in input_path.iterdir() if p.suffix.lower() == ".png" and p.is_file())
        if not files:
            raise DataError(f"no images in {input_path}: the folder holds no .png files")
        return np.stack([_read_png(file, image_shape) for file in files]), [f.name for f in files]
    try:
        with sources.open_regular(input_path) as stream:        # (a FIFO or a device would never end)
            start = stream.read(len(_PNG_SIGNATURE))
            if start.startswith(np.lib.format.MAGIC_PREFIX):
                stream.seek(0)
                images = _read_npy(stream, os.fstat(stream.fileno()).st_size, str(input_path), image_shape)
            elif start.startswith(_ZIP_SIGNATURES):
                images = _read_npz(input_path, image_shape)
            elif start.startswith(_PNG_SIGNATURE):
                return _read_png(input_path, image_shape)[np.newaxis], [input_path.name]
            else:
                raise DataError(f"{input_path} is neither a .npy or .npz file nor a PNG image (nor a folder of PNGs)")
    except OSError as error:
        raise DataError(f"cannot read {input_path}: {error.strerror or error}") from None
    return images, [str(i) for i in range(len(images))]


def _read_npz(path: Path, image_shape) -> np.ndarray:
    """The images of a .npz file (see :func:`read_images`), (N, *image_shape) float32."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name[:-len(".npy")]: name for name in archive.namelist() if name.endswith(".npy")}
            named = [name for name in NPZ_ARRAY_NAMES if name in members]
            if not members:
                raise DataError(f"no images in {path}: the archive holds no arrays")
            if len(members) > 1 and len(named) != 1:
                raise DataError(f"{path} holds {len(members)} arrays ({', '.join(sorted(members))}); give a .npz "
                                f"of one array, or one named {' or '.join(NPZ_ARRAY_NAMES)} (not both)")
            name = named[0] if len(members) > 1 else next(iter(members))
            info = archive.getinfo(members[name])
            with archive.open(info) as stream:
                return _read_npy(stream, info.file_size, f"{path} (array {name!r})", image_shape)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise DataError(f"cannot read {path} as a .npz archive ({error})") from None


def _read_npy(stream, size: int, where: str, image_shape) -> np.ndarray:
    """The images of the .npy array in ``stream`` (``size`` bytes in all), (N, *image_shape) float32. Its header
    (shape and dtype) is checked before its data are read: nothing is unpickled, and a wrong shape or a
    truncated file is refused without reading the data."""
    try:
        shape, _, dtype = sources.read_npy_header(stream, where)
        if dtype.kind not in "biuf":
            raise DataError(f"{where} holds {_NOT_NUMBERS.get(dtype.kind, 'values')} ({dtype}); images are real "
                            "numbers: bool, integers or floats")
        count = _images_in(shape, where, image_shape)
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if size - stream.tell() < expected:
            raise DataError(f"{where} is truncated: its header declares an array of shape {shape} ({expected} "
                            f"bytes) but it holds {max(size - stream.tell(), 0)} bytes of data")
        stream.seek(0)
        images = np.lib.format.read_array(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read {where} as a .npy array ({error})") from None
    return images.reshape(count, *shapes.canonical(image_shape)).astype(np.float32)


def _images_in(shape: tuple, where: str, image_shape) -> int:
    """N, the number of images in an array of ``shape`` (N, *s) for s one of the model's
    :func:`vampkeras.shapes.batch_shapes`; other shapes and N = 0 are a DataError."""
    accepted = shapes.batch_shapes(image_shape)
    shape = tuple(shape)
    if shape[1:] in accepted:
        if shape[0] == 0:
            raise DataError(f"no images in {where}: it holds an empty array of shape {shape}")
        return shape[0]
    if not shape:
        found = "a single number (a 0-d array)"
    elif shape in accepted:
        found = (f"an array of shape {shape}, one image without its batch axis (save it as shape "
                 f"(1, {', '.join(map(str, accepted[0]))}))")
    else:
        found = f"an array of shape {shape}"
    raise DataError(f"{where} holds {found}; the model takes images of shape "
                    + " or ".join(f"(N, {', '.join(map(str, s))})" for s in accepted))


def _read_png(file: Path, image_shape) -> np.ndarray:
    """A PNG of the model's H×W as (H, W) float32 in [0, 1] for a grey model (grey values / 255, / 65535 if
    16-bit), (H, W, 3) for a colour one (:func:`vampkeras.data.sources.read_image`, which refuses other sizes
    before decoding, transparency and damaged files). A colour image for a grey model is refused (dropping its
    colour would score another image than the one the user sees); a grey image for a colour model is the
    colour image it shows (R = G = B)."""
    channels = shapes.channels(image_shape)
    if channels not in (1, 3):
        raise DataError(f"PNG images hold 1 (grey) or 3 (RGB) channels; the model takes {channels}")
    pixels = sources.read_image(file, formats=("PNG",), size=shapes.height_width(image_shape))
    values = pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels
    if values.ndim == 3 and channels == 1:
        if np.any(values[..., 0] != values[..., 1]) or np.any(values[..., 1] != values[..., 2]):
            raise DataError(f"{file} is a colour image; the model takes grey images (convert it to grey first, "
                            "e.g. with PIL's Image.convert('L'))")
        values = values[..., 0]
    if values.ndim == 2 and channels == 3:
        values = np.repeat(values[..., None], 3, axis=-1)
    return values


def score_file(path, input_path, num_samples: int = 1000, batch_size: int = 100, out="scores.csv",
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Score images from ``input_path`` (see :func:`read_images`) under the model at ``path``; write a CSV
    (index, name, log_likelihood, elbo). An ``out`` that cannot be written (or is the input) is refused before
    the model is loaded; input that holds no images, images of the wrong shape, with NaN/Inf, outside [0, 1],
    or — for a Bernoulli model — not binary are refused before any is scored."""
    from vampkeras.data import DATASETS
    from vampkeras.evaluation import check_images, score
    from vampkeras.trained_model import TrainedModel

    check_writable_file(out, "--out")
    if _same_file(out, input_path):
        raise VampkerasError(f"--out {out} is the input file; writing the scores there would replace the images")
    model = TrainedModel.load(path)
    images, names = read_images(input_path, model.image_shape)
    images = check_images(images, model.image_shape)
    # (configs of older vampkeras versions name no likelihood: their named dataset's)
    likelihood = model.config.likelihood or getattr(DATASETS.get(model.config.dataset), "likelihood", "bernoulli")
    if likelihood == "bernoulli" and not np.isin(images, (0.0, 1.0)).all():
        raise DataError("the model has a Bernoulli likelihood and scores binary images only; "
                        f"{input_path} holds values other than 0 and 1 (binarize them first)")
    values = score(model, images, num_samples, batch_size, progress)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "name", "log_likelihood", "elbo"])
    for index, name in enumerate(names):
        writer.writerow([index, name, f"{values['log_likelihood'][index]:.6f}", f"{values['elbo'][index]:.6f}"])
    atomic_write_text(out, buffer.getvalue())
    return {"count": len(names), "mean_log_likelihood": float(np.mean(values["log_likelihood"])), "out": str(out)}


def _same_file(first, second) -> bool:
    """Whether two paths name the same file (after links and ``..``), one of them perhaps not there yet. Two
    outputs to one stream (/dev/stdout) would be mixed there: the same file too; /dev/null takes any number."""
    from vampkeras.checkpoints import stream_name

    streams = stream_name(first), stream_name(second)
    if streams != (None, None):
        return streams[0] == streams[1] != "/dev/null"
    return Path(first).resolve() == Path(second).resolve()
