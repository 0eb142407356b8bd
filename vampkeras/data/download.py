"""Fetching dataset files: local first, else a download verified by sha256 and written atomically.

``$VAMPKERAS_MIRROR`` (a base URL) replaces every file's canonical location by
``$VAMPKERAS_MIRROR/<relative path>``: for local mirrors, and for the tests' local HTTP server.
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
from pathlib import Path

from vampkeras.errors import DataError

logger = logging.getLogger(__name__)

MIRROR_ENV = "VAMPKERAS_MIRROR"
TIMEOUT_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A file of a dataset: where it lives under the data folder and where it is downloaded from.

    ``sha256`` is the checksum of the file's content; for ``gzip_content`` files, of the decompressed
    content (the published MNIST checksums are of the raw IDX bytes). ``None``: nothing published to
    check against; the file is then validated by parsing it, and its checksum is logged.
    """

    relative_path: str
    url: str
    sha256: str | None = None
    gzip_content: bool = False

    def source_url(self) -> str:
        mirror = os.environ.get(MIRROR_ENV)
        return f"{mirror.rstrip('/')}/{self.relative_path}" if mirror else self.url


def content_sha256(path, gzip_content: bool = False) -> str:
    digest = hashlib.sha256()
    opener = gzip.open if gzip_content else open
    try:
        with opener(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except (OSError, EOFError) as error:
        raise DataError(f"{path} is not a readable{' gzip' if gzip_content else ''} file ({error})") from None
    return digest.hexdigest()


def ensure_file(data_dir, remote: RemoteFile, download: bool = True) -> Path:
    """The local path of ``remote`` under ``data_dir``, downloading it first if it is missing."""
    path = Path(data_dir) / remote.relative_path
    if path.is_file():
        return path
    url = remote.source_url()
    if not download:
        raise DataError(f"missing dataset file {path}; download it from {url} and place it there")
    return download_file(url, path, remote.sha256, remote.gzip_content)


def download_file(url: str, path: Path, sha256: str | None, gzip_content: bool = False) -> Path:
    """Download ``url`` to ``path`` atomically; a checksum mismatch leaves nothing behind."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise DataError(f"cannot write {path} ({error.strerror or error}); choose a writable --data-dir, or "
                        f"download {url} there yourself") from None
    logger.info("downloading %s to %s", url, path)
    try:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response, os.fdopen(handle, "wb") as out:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise DataError(f"missing dataset file {path}, and downloading it from {url} failed ({reason}); "
                            "without network access, download it elsewhere and place it there") from None
        actual = content_sha256(temporary, gzip_content)
        if sha256 is not None and actual != sha256:
            raise DataError(f"the file downloaded from {url} has sha256 {actual}, expected {sha256}; it was "
                            f"not saved. Retry, or place a correct copy at {path}")
        if sha256 is None:
            logger.warning("no published checksum for %s; downloaded content has sha256 %s", url, actual)
        os.replace(temporary, path)
        return path
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
