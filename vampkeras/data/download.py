"""Fetching dataset files and verifying them: a local copy or a download is checked against the sha256 the
registry records before anything parses it, and a download is written atomically.

``$VAMPKERAS_MIRROR`` (a base URL) replaces every file's canonical location by
``$VAMPKERAS_MIRROR/<relative path>``: for local mirrors, and for the tests' local HTTP server.

A file without a published checksum (Histopathology, Omniglot's ``chardata.mat``) is not downloaded unless the
user sets ``$VAMPKERAS_ALLOW_UNVERIFIED=1``. Even then nothing unverified is kept unless it parses: the download
goes to a hidden temporary file beside its destination, the dataset's own parser (for pickles, the arrays-only
unpickler of :mod:`vampkeras.data.sources`) reads it there, and only a file that parses is renamed into place;
anything else is deleted and reported. A local copy the user placed is the user's choice and is read by the
same bounded, code-free parsers.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Callable

from vampkeras.errors import DataError

__all__ = ["RemoteFile", "ensure_file", "download_file", "verified_content", "content_sha256", "allow_unverified",
           "MIRROR_ENV", "ALLOW_UNVERIFIED_ENV"]

logger = logging.getLogger(__name__)

MIRROR_ENV = "VAMPKERAS_MIRROR"
ALLOW_UNVERIFIED_ENV = "VAMPKERAS_ALLOW_UNVERIFIED"    # exactly "1": download files that have no published sha256
TIMEOUT_SECONDS = 60
BLOCK = 1 << 20
# The most a download without a known size may bring (CIFAR-10, the largest file of the registry, is 163 MiB):
# a mirror that streams without end is cut off instead of filling the disk.
DOWNLOAD_MAX_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A file of a dataset: where it lives under the data folder and where it is downloaded from.

    ``sha256`` is the checksum of the file's content and ``size`` its length in bytes; for ``gzip_content``
    files, of the decompressed content (the published MNIST checksums are of the raw IDX bytes; such a file
    may be kept plain or gzip-compressed). ``sha256`` ``None``: nothing published to check against; the file
    is then refused for download unless :func:`allow_unverified`. ``url`` ``None``: not downloadable.
    """

    relative_path: str
    url: str | None
    sha256: str | None = None
    gzip_content: bool = False
    size: int | None = None

    def source_url(self) -> str | None:
        mirror = os.environ.get(MIRROR_ENV)
        return f"{mirror.rstrip('/')}/{self.relative_path}" if mirror and self.url else self.url


def allow_unverified() -> bool:
    """Whether the user allowed downloads without a published checksum (``$VAMPKERAS_ALLOW_UNVERIFIED=1``)."""
    return os.environ.get(ALLOW_UNVERIFIED_ENV, "").strip() == "1"


def _open_content(path, gzip_content: bool):
    """``path`` opened for reading its content: gunzipped when ``gzip_content`` and the file is gzip-compressed.
    Only a regular file is opened (a FIFO would block, a device never ends)."""
    from vampkeras.data.sources import GZIP_MAGIC, open_regular
    stream = open_regular(path)
    if gzip_content:
        head = stream.read(2)
        stream.seek(0)
        if head == GZIP_MAGIC:
            return gzip.GzipFile(fileobj=stream, mode="rb")
    return stream


def content_sha256(path, gzip_content: bool = False, limit: int | None = None) -> tuple[str, int]:
    """(sha256, length) of ``path``'s content (see :class:`RemoteFile`), read in blocks; ``limit``: stop after
    reading more than this many bytes (a gzip bomb) and return the length read so far, which exceeds it."""
    digest, length = hashlib.sha256(), 0
    try:
        with _open_content(path, gzip_content) as stream:
            for block in iter(lambda: stream.read(BLOCK), b""):
                digest.update(block)
                length += len(block)
                if limit is not None and length > limit:
                    break
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path} is not a readable{' gzip' if gzip_content else ''} file ({error})") from None
    return digest.hexdigest(), length


def verified_content(path, remote: RemoteFile) -> bytearray:
    """``path``'s content (gunzipped for ``gzip_content`` files), read once and returned only if its sha256 and
    size are those the registry records for ``remote``, so that the bytes parsed are the bytes checked. A
    mismatch is one :class:`DataError` naming the file, both checksums and what to do; nothing is parsed."""
    path = Path(path)
    limit = remote.size if remote.size is not None else DOWNLOAD_MAX_BYTES
    content, digest = bytearray(), hashlib.sha256()
    try:
        with _open_content(path, remote.gzip_content) as stream:
            while len(content) <= limit:
                block = stream.read(min(BLOCK, limit + 1 - len(content)))
                if not block:
                    break
                content += block
                digest.update(block)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read {path}: the file is truncated or corrupt ({error}); replace it with a "
                        f"correct copy of {remote.relative_path}") from None
    actual, length = digest.hexdigest(), len(content)
    if actual == remote.sha256 and (remote.size is None or length == remote.size):
        return content
    what = "decompressed content" if remote.gzip_content else "content"
    if length > limit:
        found = f"its {what} is more than {limit} bytes"
        if not remote.gzip_content and path.stat().st_size <= DOWNLOAD_MAX_BYTES:    # (a sparse 1 TiB file: not)
            actual, length = content_sha256(path)
            found = f"it has sha256 {actual} ({length} bytes)"
    else:
        found = f"it has sha256 {actual} ({length} bytes{' of ' + what if remote.gzip_content else ''})"
    size = f", {remote.size} bytes" if remote.size is not None else ""
    fetch = f"download it again from {remote.url}" if remote.url else "copy it again from its source"
    raise DataError(f"{path} is not the file vampkeras knows as {remote.relative_path}: {found}, expected sha256 "
                    f"{remote.sha256}{size}. It is damaged or another file, and was not read; delete it and "
                    f"{fetch}, or place a correct copy there")


def ensure_file(data_dir, remote: RemoteFile, download: bool = True,
                validate: Callable[[Path], object] | None = None) -> Path:
    """The local path of ``remote`` under ``data_dir``, downloading it first if it is missing. A file without
    a published checksum is downloaded only when :func:`allow_unverified`, and kept only if ``validate`` (the
    dataset's parser, given the temporary file) accepts it. The caller verifies what it reads
    (:func:`verified_content`)."""
    path = Path(data_dir) / remote.relative_path
    if path.is_file():
        return path
    url = remote.source_url()
    if url is None:
        raise DataError(f"missing dataset file {path}; it cannot be downloaded: place a copy there")
    if not download:
        raise DataError(f"missing dataset file {path}; download it from {url} and place it there")
    if remote.sha256 is None and not allow_unverified():
        raise DataError(f"missing dataset file {path}; {url} has no published sha256, so vampkeras does not "
                        f"download it unverified. Download it yourself from a source you trust and place it there, "
                        f"or set {ALLOW_UNVERIFIED_ENV}=1 to download it anyway (it is then read as arrays only, "
                        "and kept only if it parses)")
    return download_file(url, path, remote.sha256, remote.gzip_content, remote.size, validate)


def download_file(url: str, path: Path, sha256: str | None, gzip_content: bool = False, size: int | None = None,
                  validate: Callable[[Path], object] | None = None) -> Path:
    """Download ``url`` to ``path`` atomically: a checksum mismatch, a download larger than ``size`` (or than
    :data:`DOWNLOAD_MAX_BYTES`) or, without ``sha256``, a file ``validate`` refuses leaves nothing behind."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise DataError(f"cannot write {path} ({error.strerror or error}); choose a writable --data-dir, or "
                        f"download {url} there yourself") from None
    limit = size if size is not None and not gzip_content else DOWNLOAD_MAX_BYTES
    logger.info("downloading %s to %s", url, path)
    try:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response, os.fdopen(handle, "wb") as out:
                written = 0
                for block in iter(lambda: response.read(BLOCK), b""):
                    written += len(block)
                    if written > limit:
                        raise DataError(f"the file downloaded from {url} is larger than {limit} bytes, more than "
                                        f"{path.name} can be; it was not saved")
                    out.write(block)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise DataError(f"missing dataset file {path}, and downloading it from {url} failed ({reason}); "
                            "without network access, download it elsewhere and place it there") from None
        actual, length = content_sha256(temporary, gzip_content, limit=size)
        if sha256 is not None and (actual != sha256 or (size is not None and length != size)):
            raise DataError(f"the file downloaded from {url} has sha256 {actual}, expected {sha256}; it was "
                            f"not saved. Retry, or place a correct copy at {path}")
        if sha256 is None:
            logger.warning("no published checksum for %s (allowed by %s=1): its content has sha256 %s; it is kept "
                           "only if it parses as %s", url, ALLOW_UNVERIFIED_ENV, actual, path.name)
            if validate is not None:
                try:
                    validate(Path(temporary))
                except DataError as error:
                    raise DataError(f"the file downloaded from {url} (sha256 {actual}, unverified) is not a valid "
                                    f"{path.name} and was not saved: {error}") from None
        os.replace(temporary, path)
        return path
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
