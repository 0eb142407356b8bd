"""The test-only seam for stand-in dataset files.

vampkeras verifies every file its registry knows against the sha256 it records before parsing it, so a small
file a test writes at a known file's path is refused as "not the file vampkeras knows". A test that wants the
parser to see such a file registers the file's own checksum here, through pytest's ``monkeypatch`` (undone when
the test ends): there is no switch a user could flip to the same effect.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vampkeras.data import registry
from vampkeras.data.download import content_sha256


def trust(monkeypatch, file: str, path) -> Path:
    """Record ``path``'s content checksum and size as those of the registry's FILES entry ``file`` for this
    test; returns ``path``."""
    remote = registry.FILES[file]
    checksum, size = content_sha256(path, remote.gzip_content)
    monkeypatch.setitem(registry.FILES, file, dataclasses.replace(remote, sha256=checksum, size=size))
    return Path(path)


def trust_dataset(monkeypatch, data_dir, name: str) -> None:
    """:func:`trust` every local copy under ``data_dir`` of the files the named dataset ``name`` reads."""
    for alternative in registry.NEEDED_FILES[name]:
        for file in alternative:
            path = registry.local_copy(Path(data_dir), file)
            if path is not None:
                trust(monkeypatch, file, path)
