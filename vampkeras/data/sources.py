"""Readers of the datasets' file formats. Each returns arrays of flattened images, (N, H·W·C).

Every file from outside is hostile until verified, so each reader bounds what it reads before it inflates or
allocates anything: it opens regular files only (:func:`open_regular`), inflates gzip content up to a limit,
checks declared sizes (IDX headers, MATLAB elements, archive members) against the bytes present, and
unpickles through :class:`_ArrayUnpickler`, which builds plain containers and numeric NumPy arrays and nothing
else, whatever the file's checksum. A reader takes the file's ``path`` (for messages) and optionally its
``content``: the bytes :func:`vampkeras.data.download.verified_content` checked, so that what is parsed is
what was verified.

All raise :class:`DataError` with the file's path for missing, truncated, malformed or oversized files.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from vampkeras.errors import DataError

__all__ = ["read_image", "read_npy_header", "read_idx_images", "read_amat", "load_mat", "check_mat", "mat_array", "load_pickle",
           "unpickle_arrays", "read_cifar10", "area_resize", "open_regular", "read_bytes", "IMAGE_FORMATS"]

GZIP_MAGIC = b"\x1f\x8b"
BLOCK = 1 << 20
IDX_IMAGES_MAGIC = 2051
# Upper bounds on what each format may hold, from the largest file of the registry in it: a file (or its
# gzip-inflated content) beyond them is refused before it is read further.
IDX_MAX_BYTES = 64 << 20        # MNIST's train-images: 16 + 60000·28·28 bytes = 47 MB
AMAT_MAX_BYTES = 128 << 20      # static MNIST's train .amat: 78.4 MB of text
MAT_MAX_BYTES = 256 << 20       # Omniglot's chardata.mat: 32415·784 doubles = 203 MB (uncompressed)
MAT_MAX_DEPTH = 16              # nested cells and structs (the registry's files nest two deep)
MAT_MAX_ELEMENTS = 100_000      # data elements in all (Caltech 101's 101 class names take about 600)
PICKLE_MAX_BYTES = 256 << 20    # Histopathology: 10800·784 floats (68 MB as float64; up to 4x as a text pickle)
PICKLE_MAX_OPS = 200_000        # a CIFAR-10 batch takes about 40000 (its labels and file names)


def open_regular(path):
    """``path`` opened for binary reading, if it is a regular file (after symlinks): anything else (a FIFO,
    which would block forever; a device, which never ends; a folder) is a :class:`DataError`."""
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))    # (a FIFO opens at once)
    except OSError as error:
        raise DataError(f"cannot read {path} ({error.strerror or error})") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise DataError(f"{path} is not a regular file (a folder, FIFO, socket or device); a dataset file "
                            "must be one")
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_npy_header(stream, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The (shape, Fortran order, dtype) a .npy header in ``stream`` declares, the stream left at the first byte
    of the data, none of which is read: what every reader of .npy data checks before it allocates anything.
    Formats 1.0 and 2.0 (3.0 exists for records with non-Latin-1 field names only: never images); a header that
    is not one is a :class:`DataError` naming ``where``."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise DataError(f"{where} is a .npy array of format {version[0]}.{version[1]}; arrays of numbers are "
                            "format 1.0 or 2.0")
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read {where} as a .npy array ({error})") from None
    return tuple(int(size) for size in shape), bool(fortran), dtype


def _read_limited(stream, limit: int, path, what: str) -> bytearray:
    """Everything ``stream`` holds, read in blocks into one growing buffer (never twice its size in memory);
    more than ``limit`` bytes is a :class:`DataError` raised as soon as the excess is seen (a gzip bomb costs
    at most ``limit`` bytes)."""
    content = bytearray()
    while True:
        block = stream.read(min(BLOCK, limit + 1 - len(content)))
        if not block:
            return content
        content += block
        if len(content) > limit:
            raise DataError(f"{path}: {what} is larger than {limit} bytes, more than a file of this dataset can "
                            "be; it was not read further")


def read_bytes(path, limit: int) -> bytearray:
    """A file's content, gunzipped if it is gzip-compressed; content beyond ``limit`` bytes is refused."""
    path = Path(path)
    try:
        with open_regular(path) as raw:
            if raw.read(2) != GZIP_MAGIC:
                raw.seek(0)
                size = os.fstat(raw.fileno()).st_size
                if size > limit:
                    raise DataError(f"{path} is {size} bytes, more than a file of this dataset can be ({limit} "
                                    "bytes); it was not read")
                return _read_limited(raw, limit, path, "the file")
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _read_limited(stream, limit, path, "its decompressed content")
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read {path}: the file is truncated or corrupt ({error})") from None


def read_idx_images(path, content: bytes | None = None) -> np.ndarray:
    """MNIST IDX image file (plain or .gz, or its verified ``content``): (N, rows·cols) float32 grey values in
    [0, 1]. The header's dimensions are checked against the bytes present before any array is made."""
    data = content if content is not None else read_bytes(path, IDX_MAX_BYTES)
    if len(data) < 16:
        raise DataError(f"{path} is too short to be an IDX image file")
    magic, count, rows, cols = (int(v) for v in np.frombuffer(data[:16], dtype=">u4"))
    if magic != IDX_IMAGES_MAGIC:
        raise DataError(f"{path} is not an IDX image file (magic number {magic}, expected {IDX_IMAGES_MAGIC})")
    expected = 16 + count * rows * cols
    if len(data) != expected:
        raise DataError(f"{path} is truncated or corrupt: its header declares {count} images of {rows}x{cols} "
                        f"pixels ({expected} bytes), the file holds {len(data)} bytes")
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows * cols)
    return pixels.astype(np.float32) / 255.0


def read_amat(path, width: int = 784, content: bytes | None = None) -> np.ndarray:
    """Larochelle's ``.amat`` text (plain or .gz, or its verified ``content``): one image a line of ``width``
    values in {0, 1}. Read a line at a time, so that memory stays near the size of the result."""
    text = content if content is not None else read_bytes(path, AMAT_MAX_BYTES)
    lines = text.split(b"\n")
    if lines and not lines[-1].strip():
        lines = lines[:-1]
    # a line of `width` values has at least 2·width − 1 characters: a file with more lines than that allows
    # has short lines, refused before the (N, width) array is made
    if not lines or len(lines) * (2 * width - 1) > len(text):
        lengths = sorted({len(line.split()) for line in lines[:1000]})
        raise DataError(f"{path} is not a .amat file of {width} values per line "
                        f"(found lines with {lengths[:5]} values)")
    images = np.empty((len(lines), width), dtype=np.float32)
    for index, line in enumerate(lines):
        if len(line) > 32 * width:           # (a number needs far fewer characters; split() would cost far more)
            raise DataError(f"{path} is not a .amat file of {width} values per line (line {index + 1} is "
                            f"{len(line)} characters long)")
        characters = np.frombuffer(line.strip(), dtype=np.uint8)
        if len(characters) == 2 * width - 1 and np.all(characters[1::2] == 32):    # "0 1 0 ...": digits at once
            images[index] = characters[::2] - 48.0
            if np.all((characters[::2] == 48) | (characters[::2] == 49)):
                continue
        values = line.split()
        if len(values) != width:
            raise DataError(f"{path} is not a .amat file of {width} values per line (line {index + 1} has "
                            f"{len(values)} values)")
        try:
            images[index] = np.array([bytes(value) for value in values], dtype=np.float32)
        except ValueError:
            raise DataError(f"{path}: line {index + 1} holds values that are not numbers") from None
    if not np.isin(images, (0.0, 1.0)).all():
        raise DataError(f"{path} holds values other than 0 and 1; static MNIST must be binary")
    return images


# -- MATLAB files: every element's declared size checked against the bytes present before scipy reads ------
_MI_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8, 16: 1, 17: 2, 18: 4}   # mi type: bytes
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MX_CHAR, _MX_NUMERIC = 4, range(6, 16)      # mxCHAR_CLASS; mxDOUBLE_CLASS .. mxUINT64_CLASS
_MAT4_SIZES = {0: 8, 1: 4, 2: 4, 3: 2, 4: 2, 5: 1}                                              # precision: bytes
_MI_KINDS = {*_MI_SIZES, _MI_MATRIX, _MI_COMPRESSED}


def _mat_elements(data, start: int, end: int, order: str, path, budget: list) -> list[tuple[int, int, int]]:
    """The (type, offset, length) of each MATLAB v5 data element between ``start`` and ``end``; an element of
    no MATLAB type, one that declares more bytes than follow, or more than :data:`MAT_MAX_ELEMENTS` in all
    (``budget[1]`` counts down) is a :class:`DataError`."""
    elements, position = [], start
    while end - position >= 8:
        budget[1] -= 1
        if budget[1] < 0:
            raise DataError(f"{path} holds more than {MAT_MAX_ELEMENTS} MATLAB data elements; not read")
        kind, length = struct.unpack_from(order + "II", data, position)
        if kind >> 16:                      # small element: length in the upper half, data in the tag's last 4 bytes
            kind, length = kind & 0xFFFF, kind >> 16
            if length > 4:
                raise DataError(f"{path} is not a valid MATLAB file (a small element at byte {position} declares "
                                f"{length} bytes)")
            if kind not in _MI_KINDS:
                raise DataError(f"{path} is not a valid MATLAB file (an element of type {kind} at byte {position})")
            elements.append((kind, position + 4, length))
            position += 8
            continue
        if kind not in _MI_KINDS:
            raise DataError(f"{path} is not a valid MATLAB file (an element of type {kind} at byte {position})")
        body = position + 8
        if length > end - body:
            raise DataError(f"{path} is truncated or its header lies: a MATLAB element at byte {position} declares "
                            f"{length} bytes, only {end - body} follow")
        elements.append((kind, body, length))
        position = body + length if kind == _MI_COMPRESSED else min(end, body + ((length + 7) & ~7))
    return elements


def _check_mat_matrix(data, body, length, order, path, budget, depth):
    """Check one miMATRIX element: its dimensions against the values it holds, its children recursively."""
    if depth > MAT_MAX_DEPTH:
        raise DataError(f"{path}: MATLAB arrays nested more than {MAT_MAX_DEPTH} deep; not read")
    parts = _mat_elements(data, body, body + length, order, path, budget)
    if not parts:
        return
    if len(parts) < 3 or parts[0][2] < 4 or parts[1][0] != 5 or parts[1][2] % 4:
        raise DataError(f"{path} is not a valid MATLAB file (an array at byte {body} lacks its flags or "
                        "dimensions)")
    array_class = data[parts[0][1]] if order == "<" else data[parts[0][1] + 3]
    dims = struct.unpack_from(f"{order}{parts[1][2] // 4}i", data, parts[1][1])
    if any(d < 0 for d in dims):
        raise DataError(f"{path}: a MATLAB array declares negative dimensions {dims}")
    count = int(np.prod(dims, dtype=object)) if dims else 0
    if array_class in _MX_NUMERIC or array_class == _MX_CHAR:
        if count * 8 > budget[0]:
            raise DataError(f"{path}: a MATLAB array declares {'x'.join(map(str, dims))} values, more than the "
                            f"file can hold; not read")
        kind, _, size = parts[3] if len(parts) > 3 else (2, 0, 0)
        variable_width = kind in (16, 17)      # UTF-8/16 characters
        held = size // _MI_SIZES[kind] if kind in _MI_SIZES else -1
        if held < 0 or (held < count if variable_width else held != count):
            raise DataError(f"{path} is truncated or its header lies: a MATLAB array declares "
                            f"{'x'.join(map(str, dims))} values and holds {max(held, 0)}")
    for kind, child, size in parts[2:]:
        if kind == _MI_MATRIX:
            _check_mat_matrix(data, child, size, order, path, budget, depth + 1)


def _inflate_bounded(compressed: bytes, limit: int, path) -> bytearray:
    """A zlib stream inflated a block at a time, refused as soon as it passes ``limit`` bytes (memory stays
    near ``limit``, never twice it)."""
    inflater, inner, pending = zlib.decompressobj(), bytearray(), compressed
    try:
        while pending and not inflater.eof:
            inner += inflater.decompress(pending, BLOCK)
            pending = inflater.unconsumed_tail
            if len(inner) > limit:
                raise DataError(f"{path}: its compressed MATLAB elements inflate to more than {MAT_MAX_BYTES} "
                                "bytes; not read")
        inner += inflater.flush()
    except zlib.error as error:
        raise DataError(f"{path}: a compressed MATLAB element is corrupt ({error})") from None
    return inner


def _check_mat_elements(data, start, end, order, path, budget, depth=0):
    for kind, body, length in _mat_elements(data, start, end, order, path, budget):
        if kind == _MI_MATRIX:
            _check_mat_matrix(data, body, length, order, path, budget, depth)
        elif kind == _MI_COMPRESSED:
            inner = _inflate_bounded(data[body:body + length], budget[0], path)
            budget[0] -= len(inner)
            if depth >= MAT_MAX_DEPTH:
                raise DataError(f"{path}: MATLAB elements nested more than {MAT_MAX_DEPTH} deep; not read")
            _check_mat_elements(inner, 0, len(inner), order, path, budget, depth + 1)


def _check_mat4(data: bytes, path) -> None:
    """A MATLAB v4 file: each variable's header (type, rows, columns) against the bytes that follow it, at most
    :data:`MAT_MAX_ELEMENTS` variables."""
    position, count = 0, 0
    while position < len(data):
        count += 1
        if count > MAT_MAX_ELEMENTS:
            raise DataError(f"{path} holds more than {MAT_MAX_ELEMENTS} MATLAB variables; not read")
        if len(data) - position < 20:
            raise DataError(f"{path} is not a valid MATLAB file (a v4 header is cut short)")
        for order in "<>":
            kind, rows, cols, imaginary, name_length = struct.unpack_from(order + "5i", data, position)
            if 0 <= kind < 2000 and (kind % 1000) // 100 == 0 and (kind % 100) // 10 in _MAT4_SIZES:
                break
        else:
            raise DataError(f"{path} is not a MATLAB file")
        if min(rows, cols) < 0 or name_length < 1 or imaginary not in (0, 1):    # (the name ends in a NUL)
            raise DataError(f"{path} is not a valid MATLAB file (a v4 header declares {rows}x{cols} values)")
        size = 20 + name_length + rows * cols * _MAT4_SIZES[(kind % 100) // 10] * (1 + imaginary)
        if size > len(data) - position:
            raise DataError(f"{path} is truncated or its header lies: a MATLAB v4 variable declares {rows}x{cols} "
                            f"values, only {len(data) - position} bytes follow")
        position += size


def check_mat(data: bytes, path) -> None:
    """Refuse (:class:`DataError`) MATLAB file content whose declared sizes exceed what it holds: element
    lengths, array dimensions against their values, compressed elements inflated beyond
    :data:`MAT_MAX_BYTES`, nesting beyond :data:`MAT_MAX_DEPTH`; and v7.3 (HDF5) files, which scipy cannot
    read. What passes, scipy reads without allocating more than the file declares."""
    if b"\0" in data[:4]:                                   # scipy's rule: a v4 file starts with a zero byte
        return _check_mat4(data, path)
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI"):
        raise DataError(f"{path} is not a MATLAB file")
    order = "<" if data[126:128] == b"IM" else ">"
    major = data[125] if order == "<" else data[124]
    if major == 2:
        raise DataError(f"{path} is a MATLAB v7.3 (HDF5) file, which vampkeras does not read; save it with -v7")
    if major != 1:
        raise DataError(f"{path} is not a MATLAB file (version {major})")
    _check_mat_elements(data, 128, len(data), order, path, [MAT_MAX_BYTES, MAT_MAX_ELEMENTS])


def load_mat(path, content: bytes | None = None) -> dict:
    """A MATLAB file's variables (scipy.io.loadmat), from ``content`` when given, after :func:`check_mat`."""
    from scipy.io import loadmat
    data = content if content is not None else read_bytes(path, MAT_MAX_BYTES)
    check_mat(data, path)
    try:
        return loadmat(io.BytesIO(data))
    except Exception as error:  # scipy raises several unrelated types for a corrupt file
        raise DataError(f"cannot read {path} as a MATLAB file ({str(error)[:200] or type(error).__name__})") from None


def mat_array(contents: dict, key: str, path) -> np.ndarray:
    if key not in contents:
        raise DataError(f"{path} has no variable {key!r} (found {sorted(k for k in contents if not k.startswith('_'))})")
    return np.asarray(contents[key])


# -- pickles and archives ------------------------------------------------------------------------------------
def _arrays_dtype(spec, align=False, copy=False):
    """numpy.dtype for the unpickler: numeric types only (bool, integers, floats)."""
    dtype = np.dtype(spec, align, copy) if isinstance(spec, str) and len(spec) <= 4 else None
    if dtype is None or dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise pickle.UnpicklingError(f"refusing to unpickle numpy.dtype({spec!r:.40}): only numeric arrays are read")
    return dtype


def _arrays_reconstruct(kind, shape, typecode):
    """numpy's _reconstruct as pickles call it (an empty array that BUILD then fills), and nothing else."""
    if kind is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise pickle.UnpicklingError("refusing to unpickle an array built other than numpy builds it")
    return np.ndarray.__new__(np.ndarray, (0,), "b")


def _arrays_frombuffer(buffer, dtype, shape, order):
    """numpy's _frombuffer (protocol 5 pickles): a buffer of exactly the declared shape."""
    if not isinstance(buffer, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" \
            or not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape) \
            or int(np.prod(shape, dtype=object)) * dtype.itemsize != len(buffer) or order not in ("C", "F"):
        raise pickle.UnpicklingError("refusing to unpickle an array whose buffer does not match its shape")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


def _latin1(text, encoding="latin1"):
    """_codecs.encode as Python 2 pickles call it (byte strings decoded as latin-1), and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refusing to unpickle _codecs.encode other than of text to latin-1")
    return text.encode("latin1")


def _scalar(dtype, data=None):
    """numpy's scalar(dtype, bytes) for numeric types."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or not isinstance(data, (bytes, str)):
        raise pickle.UnpicklingError("refusing to unpickle a scalar that is not a number")
    raw = data.encode("latin1") if isinstance(data, str) else data
    if len(raw) != dtype.itemsize:
        raise pickle.UnpicklingError("a pickled scalar of the wrong size")
    return np.frombuffer(raw, dtype=dtype)[0]


class _NdarrayType:
    """What the unpickler gives for numpy.ndarray: a token only _reconstruct accepts, so that a pickle cannot
    call the class to allocate an array of any shape."""


_NDARRAY = _NdarrayType()


class _ArrayUnpickler(pickle._Unpickler):
    """Unpickles plain containers and numeric NumPy arrays only: a pickle that asks for anything else (the way
    a malicious one runs code) is refused. It is Python's own pure-Python unpickler (whose memo is a dict: a
    forged memo index cannot make it allocate an array of that size, as the C one does), restricted:

    * :meth:`find_class` gives only numpy's array-building functions, each checking its arguments, and a
      token for numpy.ndarray (calling the class could allocate any shape);
    * at most :data:`PICKLE_MAX_OPS` opcodes (each object costs ~60 bytes of memory however small its opcode)
      and no BYTEARRAY8 longer than the pickle itself (it allocates before it reads).
    """

    ALLOWED = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _arrays_dtype,
               ("numpy.core.multiarray", "_reconstruct"): _arrays_reconstruct,
               ("numpy._core.multiarray", "_reconstruct"): _arrays_reconstruct,
               ("numpy.core.multiarray", "scalar"): None, ("numpy._core.multiarray", "scalar"): None,
               ("numpy.core.numeric", "_frombuffer"): _arrays_frombuffer,
               ("numpy._core.numeric", "_frombuffer"): _arrays_frombuffer,
               ("_codecs", "encode"): _latin1}

    def __init__(self, payload: bytes, encoding: str):
        super().__init__(io.BytesIO(payload), encoding=encoding)
        self._size, self._ops = len(payload), 0

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only arrays are read")
        allowed = self.ALLOWED[module, name]
        return allowed if allowed is not None else _scalar

    def _count(self):
        self._ops += 1
        if self._ops > PICKLE_MAX_OPS:
            raise pickle.UnpicklingError(f"more than {PICKLE_MAX_OPS} pickle opcodes: not a dataset's arrays")

    def _bytearray8(self):
        length, = struct.unpack("<Q", self.read(8))
        if length > self._size:
            raise pickle.UnpicklingError(f"a byte array of {length} bytes declared in a pickle of {self._size}")
        buffer = bytearray(length)
        self.readinto(buffer)
        self.append(buffer)

    dispatch = {}
    for _code, _load in pickle._Unpickler.dispatch.items():
        def _counted(self, _load=_load):
            self._count()
            _load(self)
        dispatch[_code] = _counted
    dispatch[pickle.BYTEARRAY8[0]] = lambda self: (self._count(), self._bytearray8())
    del _code, _load, _counted


def unpickle_arrays(payload: bytes, path, encoding: str = "latin1"):
    """``payload`` unpickled by :class:`_ArrayUnpickler` (``encoding`` for Python 2 strings: "latin1" for
    arrays, "bytes" to keep them bytes); anything it refuses or cannot read is a :class:`DataError`."""
    try:
        return _ArrayUnpickler(payload, encoding=encoding).load()
    except Exception as error:  # unpickling a corrupt file raises many types (RecursionError, MemoryError too)
        # (the type's name in words: "UnpicklingError:" would read as a second "Error:" line's start)
        raise DataError(f"cannot read {path} as a pickle of arrays ({str(error)[:200] or type(error).__name__})") \
            from None


class _BoundedStream:
    """A seekable read stream (an archive's inflated bytes) that refuses, before doing them, a single read
    larger than ``read_limit`` (a tar header declaring a huge long name or pax record) and any position beyond
    ``total_limit`` (a gzip bomb skipped through), with a :class:`DataError` naming ``path``."""

    def __init__(self, stream, path, total_limit: int, read_limit: int):
        self._stream, self._path, self._total, self._read = stream, path, total_limit, read_limit

    def _refuse_beyond(self, position: int):
        if position > self._total:
            raise DataError(f"{self._path} inflates to more than {self._total} bytes, more than this dataset's "
                            "archive holds; it was not read further")

    def read(self, size=-1):
        if size is None or size < 0 or size > self._read:
            raise DataError(f"{self._path}: a read of {size} bytes at once, more than a member of this archive "
                            f"can hold ({self._read} bytes); a header lies")
        data = self._stream.read(size)
        self._refuse_beyond(self._stream.tell())
        return data

    def seek(self, offset, whence=0):
        target = offset if whence == 0 else self._stream.tell() + offset if whence == 1 else None
        if target is None:
            raise DataError(f"{self._path}: cannot seek from the end of a compressed archive")
        self._refuse_beyond(target)
        return self._stream.seek(target)

    def tell(self):
        return self._stream.tell()


@contextlib.contextmanager
def _inflated(path, content: bytes | None, total_limit: int, read_limit: int):
    """The file's bytes (``content``, or the regular file at ``path``), gunzipped when gzip-compressed, as a
    :class:`_BoundedStream`."""
    raw = io.BytesIO(content) if content is not None else open_regular(path)
    with raw:
        head = raw.read(2)
        raw.seek(0)
        if head == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as inner:
                yield _BoundedStream(inner, path, total_limit, read_limit)
        else:
            yield _BoundedStream(raw, path, total_limit, read_limit)


def _is_tar(stream) -> bool:
    head = stream.read(512)
    stream.seek(0)
    return len(head) == 512 and head[257:262] == b"ustar"


_MEMBER_KINDS = ((tarfile.TarInfo.issym, "symbolic link"), (tarfile.TarInfo.islnk, "hard link"),
                 (tarfile.TarInfo.isdir, "folder"), (tarfile.TarInfo.isfifo, "FIFO"),
                 (tarfile.TarInfo.isdev, "device"))


def _regular_members(stream, path, wanted, member_limit: int, what: str):
    """(name, bytes) of each member of the tar archive in ``stream`` for which ``wanted(name)``, in the
    archive's order. Such a member must be a regular file (a link, folder, FIFO or device of that name is a
    :class:`DataError`, never followed) that declares at most ``member_limit`` bytes; no more bytes than it
    declares are read, and fewer is a truncated archive."""
    with tarfile.open(fileobj=stream, mode="r:") as archive:
        while (member := archive.next()) is not None:
            if not wanted(member.name):
                continue
            if not member.isreg():
                kind = next((name for test, name in _MEMBER_KINDS if test(member)), f"member of type {member.type!r}")
                raise DataError(f"{path}: {member.name} is a {kind}, not a regular file; the archive is refused")
            if member.size > member_limit:
                raise DataError(f"{path}: {member.name} declares {member.size} bytes, more than {what} can hold "
                                f"({member_limit} bytes); it was not inflated")
            data = archive.extractfile(member).read(member.size)
            if len(data) != member.size:
                raise DataError(f"{path} is truncated: {member.name} holds {len(data)} of its {member.size} bytes")
            yield member.name, data


def load_pickle(path, member_suffix: str | None = None, content: bytes | None = None,
                limit: int = PICKLE_MAX_BYTES):
    """The arrays a (Python 2 compatible) pickle holds (:func:`unpickle_arrays`): the file (plain or .gz, or
    its verified ``content``), or with ``member_suffix`` the first member ending in it when the file is a
    (gzip-compressed) tar archive. At most ``limit`` bytes of pickle are read."""
    path = Path(path)
    if member_suffix is None:
        return unpickle_arrays(content if content is not None else read_bytes(path, limit), path)
    try:
        with _inflated(path, content, total_limit=limit + BLOCK, read_limit=limit) as stream:
            if _is_tar(stream):
                found = _regular_members(stream, path, lambda name: name.endswith(member_suffix), limit,
                                         "a pickle of this dataset")
                payload = next((data for _, data in found), None)
                found.close()
                if payload is None:
                    raise DataError(f"{path} holds no file ending in {member_suffix}")
            else:
                payload = _read_limited(stream, limit, path, "the pickle")
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as error:
        raise DataError(f"cannot read {path} as a pickle or an archive holding one "
                        f"({error or type(error).__name__})") from None
    return unpickle_arrays(payload, path)


IMAGE_FORMATS = ("PNG", "JPEG", "BMP")


def read_image(path, formats=IMAGE_FORMATS, size: tuple[int, int] | None = None, header_only: bool = False):
    """One image file (Pillow; ``formats`` the ones accepted) as (H, W) for grey modes or (H, W, 3) for every
    other mode: uint8, or float32 in [0, 1] for 16-bit grey images. With ``size`` (H, W), an image of another
    size is refused from its header, before any pixel is decoded, so that a huge image (a decompression bomb,
    tiny on disk) costs nothing. With ``header_only``, the (shape, dtype) of the array it would return, read
    from the header alone: nothing is decoded. Only a regular file is opened (:func:`open_regular`: a FIFO
    would block forever). Transparent pixels and damaged files are a DataError naming the file."""
    from PIL import Image
    import warnings

    path = Path(path)
    with open_regular(path) as stream:
        try:
            with warnings.catch_warnings():
                # PIL warns of images over its pixel limit at open(); the size check refuses them undecoded
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(stream, formats=list(formats))
            with image:
                if size is not None and image.size != (size[1], size[0]):
                    raise DataError(f"{path} is {image.height} pixels high and {image.width} wide; the model takes "
                                    f"images {size[0]} high and {size[1]} wide")
                sixteen_bit = image.mode.startswith("I")               # 16-bit grey ("I;16", "I")
                grey = sixteen_bit or image.mode in ("1", "L", "LA")
                if header_only:
                    return ((image.height, image.width) if grey else (image.height, image.width, 3),
                            np.dtype(np.float32 if sixteen_bit else np.uint8))
                image.load()
                if sixteen_bit:
                    values = np.asarray(image, dtype=np.float64)
                    key = image.info.get("transparency")               # a tRNS chunk: this grey value is transparent
                    if key is not None and np.any(values == key):
                        raise DataError(f"{path} has transparent pixels; vampkeras models opaque images")
                    return (values / 65535.0).astype(np.float32)
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


CIFAR10_TRAIN_MEMBERS = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_MEMBER = "cifar-10-batches-py/test_batch"
CIFAR10_SHAPE = (32, 32, 3)
CIFAR10_BATCH_ROWS = 10000
# A batch's pickle: 10000 images of 3072 bytes, plus its labels, file names and label (about 0.3 MB); the
# archive: six batches, batches.meta and readme.html, about 178 MiB inflated.
CIFAR10_BATCH_MAX_BYTES = CIFAR10_BATCH_ROWS * 3072 + (1 << 20)
CIFAR10_ARCHIVE_MAX_BYTES = 256 << 20


def _cifar10_batch(payload: bytes, path, name: str) -> np.ndarray:
    """One batch's pickle → (n, 3072) uint8 in (H, W, C) order."""
    batch = unpickle_arrays(payload, f"{path} ({name})", encoding="bytes")
    data = batch.get(b"data") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: {name} holds no (N, 3072) uint8 'data' array")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(-1, 3072)


def read_cifar10(path, content: bytes | None = None) -> list[np.ndarray]:
    """The canonical ``cifar-10-python.tar.gz`` (or its verified ``content``): its six batches, Python pickles
    of ``{b"data": (10000, 3072) uint8 in channel-major (3, 32, 32) order, ...}``, as uint8 arrays of
    (N, 32·32·3) in (H, W, C) order: data_batch_1 to data_batch_5, then test_batch. Each batch must be a
    regular member declaring at most :data:`CIFAR10_BATCH_MAX_BYTES` (checked before it is inflated), and the
    archive inflates to at most :data:`CIFAR10_ARCHIVE_MAX_BYTES`; reading stops once the six are found."""
    path = Path(path)
    names = (*CIFAR10_TRAIN_MEMBERS, CIFAR10_TEST_MEMBER)
    batches: dict[str, np.ndarray] = {}
    try:
        with _inflated(path, content, CIFAR10_ARCHIVE_MAX_BYTES, CIFAR10_BATCH_MAX_BYTES) as stream:
            members = _regular_members(stream, path, lambda name: name in names and name not in batches,
                                       CIFAR10_BATCH_MAX_BYTES, "a CIFAR-10 batch (10000 images and their labels)")
            for name, payload in members:
                batches[name] = _cifar10_batch(payload, path, name)
                if len(batches) == len(names):
                    members.close()
                    break
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as error:
        raise DataError(f"cannot read {path} as the CIFAR-10 python archive ({error or type(error).__name__})") \
            from None
    missing = [name for name in names if name not in batches]
    if missing:
        raise DataError(f"{path} has no {missing[0]}: it is not the CIFAR-10 python archive")
    return [batches[name] for name in names]


def area_resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average (N, H, W) float images in [0, 1] to (N, h, w) (PIL's box filter; antialiased)."""
    from PIL import Image
    height, width = size
    out = np.empty((len(images), height, width), dtype=np.float32)
    for index, image in enumerate(images):
        out[index] = np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize(
            (width, height), resample=Image.BOX))
    return np.clip(out, 0.0, 1.0)
