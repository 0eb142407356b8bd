"""Every loader of the registry against the hostile corpus (tests/hostile.py), and the unit rules behind it.

For every named dataset that reads files, each hostile case is placed at every file the dataset needs (under
each name a local copy may have), and loading must be one DataError: the payload never runs, nothing hangs,
memory stays bounded. Each case runs twice where that makes sense: as placed (the registry's checksum refuses
it before any parser sees it) and registered through the test-only seam (tests/known_files.trust), so that the
parsers themselves face it.
"""

from __future__ import annotations

import io
import pickle
import signal
import tarfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from tests import hostile
from tests.data.test_loaders import SHARED
from tests.known_files import trust
from vampkeras.data import load_dataset, registry, sources
from vampkeras.data.download import MIRROR_ENV
from vampkeras.errors import DataError

# what reading one hostile case may cost at most: the largest format limit (256 MiB, reached only by
# inflation bombs) and some room; a naive reader of these files would need gigabytes to terabytes
PEAK_BYTES = 300 << 20


def targets() -> list[tuple[str, dict[str, str]]]:
    """(dataset, {FILES key: relative path}) for every named dataset that reads files, every alternative set of
    files it accepts, and every name a local copy of them may have."""
    found = []
    for name, alternatives in registry.NEEDED_FILES.items():
        for files in alternatives:
            names = {file: (*registry.OTHER_LOCAL_NAMES.get(file, ()), registry.FILES[file].relative_path)
                     for file in files}
            for variant in range(max(len(options) for options in names.values())):
                placed = {file: options[min(variant, len(options) - 1)] for file, options in names.items()}
                if (name, placed) not in found:
                    found.append((name, placed))
    return found


TARGETS = targets()


def test_the_targets_cover_every_named_dataset_that_reads_files():
    assert {name for name, _ in TARGETS} == set(registry.DATASETS) - {"mnist5k"}
    assert ("histopathology", {"histopathology": "histopathology/histopathology.pkl"}) in TARGETS
    assert ("dynamic_mnist", {"mnist_train": "mnist/train-images-idx3-ubyte",
                              "mnist_test": "mnist/t10k-images-idx3-ubyte"}) in TARGETS


@pytest.fixture(autouse=True)
def no_downloads_and_a_private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAMPKERAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VAMPKERAS_OFFLINE", "1")
    monkeypatch.delenv(MIRROR_ENV, raising=False)


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


CASES = hostile.corpus(Path("/nonexistent"))        # the names only; each test builds its own with its marker


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case.name for case in CASES])
def test_every_loader_refuses_every_hostile_file(tmp_path, monkeypatch, index):
    marker = tmp_path / "payload-ran"
    case = hostile.corpus(marker)[index]
    modes = ("as placed",) if case.special or case.heavy else ("as placed", "registered")
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for number, (dataset, files) in enumerate(TARGETS):
            for mode in modes:
                data_dir = tmp_path / f"{number}-{mode.replace(' ', '-')}"
                with monkeypatch.context() as patch:
                    for file, relative in files.items():
                        case.place(data_dir / relative)
                        if mode == "registered":
                            try:
                                trust(patch, file, data_dir / relative)
                            except DataError:           # a corrupt gzip file has no content to register
                                pass
                    tracemalloc.start()
                    signal.alarm(60)
                    try:
                        with pytest.raises(DataError) as refusal:
                            load_dataset(dataset, data_dir, download=False)
                    except Hang:
                        pytest.fail(f"{dataset} {mode}: loading hung")
                    finally:
                        signal.alarm(0)
                        peak = tracemalloc.get_traced_memory()[1]
                        tracemalloc.stop()
                assert not marker.exists(), f"{dataset} {mode}: the payload ran"
                assert peak < PEAK_BYTES, f"{dataset} {mode}: {peak} bytes allocated"
                message = str(refusal.value)
                assert "\n" not in message and "Error:" not in message and len(message) < 2000, message
    finally:
        signal.signal(signal.SIGALRM, previous)


# -- the unpickler --------------------------------------------------------------------------------------------
def test_the_array_unpickler_reads_what_numpy_pickles_under_every_protocol():
    contents = {"a": np.arange(6.0).reshape(2, 3), "b": [np.uint8(3), np.zeros((2, 2), np.int64)],
                b"c": np.float32(2.5), "d": np.ones((3, 2), np.float32, order="F"), "e": ("text", b"bytes", 7, None)}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        read = sources.unpickle_arrays(pickle.dumps(contents, protocol=protocol), "x")
        np.testing.assert_array_equal(read["a"], contents["a"])
        assert read["b"][0] == 3 and read["b"][1].dtype == np.int64 and read[b"c"] == np.float32(2.5)
        np.testing.assert_array_equal(read["d"], contents["d"])
        assert read["e"] == contents["e"]


@pytest.mark.parametrize("name", sorted(hostile.malicious_pickles("m")))
def test_malicious_pickles_are_refused_before_anything_runs(tmp_path, name):
    marker = tmp_path / "payload-ran"
    with pytest.raises(DataError, match="refusing to unpickle"):
        sources.unpickle_arrays(hostile.malicious_pickles(marker)[name], "x")
    assert not marker.exists()


def test_the_marker_payloads_would_run_under_a_plain_unpickler(tmp_path):
    """The corpus's payloads are real (so that their absence above means something): each pickle imports a
    callable that runs code and calls it, by REDUCE, on the command that writes the marker. Read from the
    opcodes (pickletools), never run: no test executes code from a data file."""
    import pickletools

    marker = str(tmp_path / "ran")
    callables = {"system", "eval", "exec", "call"}
    for name, data in hostile.malicious_pickles(marker).items():
        operations = list(pickletools.genops(data))
        strings = [argument for _, argument, _ in operations if isinstance(argument, str)]
        imported = {part for text in strings for part in text.split()}        # GLOBAL's "module name" too
        assert imported & callables, name
        assert any(operation.name == "REDUCE" for operation, _, _ in operations), name
        assert any(marker in text for text in strings), name
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("name", sorted(hostile.pickle_bombs()))
def test_pickle_bombs_are_refused_or_read_as_what_they_are(name):
    """A bomb is refused, or read as the small object it is (a nested list, which no loader accepts as an
    array), in bounded memory."""
    tracemalloc.start()
    try:
        try:
            result = sources.unpickle_arrays(hostile.pickle_bombs()[name], "x")
        except DataError:
            result = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result is None or not isinstance(result, np.ndarray) or result.nbytes < 1 << 20
    assert peak < 200 << 20, peak


# -- bounded reads ----------------------------------------------------------------------------------------------
def test_read_bytes_refuses_a_gzip_bomb_after_its_limit(tmp_path):
    path = tmp_path / "bomb.gz"
    path.write_bytes(hostile.gzip_bomb(40))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="decompressed content is larger than 8388608 bytes"):
            sources.read_bytes(path, 8 << 20)
        assert tracemalloc.get_traced_memory()[1] < 12 << 20        # the limit, and a block
    finally:
        tracemalloc.stop()
    assert sources.read_bytes(path, 40 << 20) == bytes(40 << 20)


def test_read_bytes_refuses_a_plain_file_larger_than_its_limit_unread(tmp_path):
    path = tmp_path / "big"
    with open(path, "wb") as stream:
        stream.truncate(1 << 40)                                   # sparse: 1 TiB declared, nothing stored
    with pytest.raises(DataError, match="1099511627776 bytes, more than"):
        sources.read_bytes(path, 1 << 20)


@pytest.mark.parametrize("special", hostile.SPECIAL_FILES[:2])
def test_only_regular_files_are_opened(tmp_path, special):
    path = hostile.Case("x", special=special).place(tmp_path / "file")
    with pytest.raises(DataError, match="not a regular file"):
        sources.open_regular(path)


def test_idx_headers_are_checked_against_the_bytes_present():
    with pytest.raises(DataError, match=r"declares 2147483648 images of 28x28 pixels \(1683627180048 bytes\), the "
                                        r"file holds 116 bytes"):
        sources.read_idx_images("x", content=struct_idx(1 << 31, 28, 28, bytes(100)))


def struct_idx(count, rows, cols, data):
    return np.array([2051, count, rows, cols], dtype=">u4").tobytes() + data


@pytest.mark.parametrize("name, message", [
    ("MATLAB array declaring 100000x100000 doubles", "declares 100000x100000 values, more than the file can hold"),
    ("MATLAB element declaring 2 GiB", "declares 2147483648 bytes, only 64 follow"),
    ("MATLAB compressed element inflating to 300 MiB", "inflate to more than"),
    ("MATLAB cells nested 1000 deep", "nested more than 16 deep"),
    ("MATLAB v7.3 (HDF5) header", "v7.3"),
    ("MATLAB v4 declaring 10^6 x 10^6 doubles", "declares 1000000x1000000 values"),
])
def test_matlab_headers_are_checked_against_the_bytes_present(name, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sources.load_mat("x.mat", content=hostile.lying_headers()[name]())


def test_matlab_files_that_scipy_writes_pass_the_header_check():
    from scipy.io import savemat
    for options in ({}, {"do_compression": True}, {"format": "4"}):
        buffer = io.BytesIO()
        contents = {"data": np.arange(12.0).reshape(3, 4), "names": np.array(["ab", "cd"]),
                    "cells": np.array([np.zeros(2), np.ones(3)], dtype=object), "flags": np.ones((2, 2), np.uint8)}
        if options.get("format") == "4":
            contents = {"data": contents["data"], "flags": contents["flags"]}
        savemat(buffer, contents, **options)
        read = sources.load_mat("x.mat", content=buffer.getvalue())
        np.testing.assert_array_equal(read["data"], contents["data"])


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared data")
def test_the_real_caltech_file_passes_the_matlab_header_check():
    path = SHARED / "caltech101_silhouettes" / "caltech101_silhouettes_28_split1.mat"
    sources.check_mat(path.read_bytes(), path)


def test_amat_short_lines_are_refused_before_the_array_is_made():
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="784 values per line"):
            sources.read_amat("x.amat", content=b"\n" * 10_000_000 + b"0 1\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20          # (the naive (10^7, 784) float32 array would be 31 GB)


def cifar_like(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("kind, message", [
    (tarfile.SYMTYPE, "is a symbolic link, not a regular file"),
    (tarfile.LNKTYPE, "is a hard link, not a regular file"),
    (tarfile.DIRTYPE, "is a folder, not a regular file"), (tarfile.FIFOTYPE, "is a FIFO, not a regular file"),
    (tarfile.CHRTYPE, "is a device, not a regular file"),
])
def test_a_cifar_batch_that_is_not_a_regular_member_is_one_data_error(kind, message):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(sources.CIFAR10_TRAIN_MEMBERS[0])
        info.type, info.linkname = kind, sources.CIFAR10_TRAIN_MEMBERS[0]      # (a link to itself, for links)
        archive.addfile(info)
    with pytest.raises(DataError, match=message):
        sources.read_cifar10("c.tar.gz", content=buffer.getvalue())


def test_a_cifar_batch_declaring_more_than_a_batch_holds_is_refused_before_it_is_inflated():
    content = hostile.archives("m")["archive whose first member declares 2 GiB"]()
    with pytest.raises(DataError, match=r"data_batch_1 declares 2147483648 bytes, more than a CIFAR-10 batch"):
        sources.read_cifar10("c.tar.gz", content=content)


def test_the_cifar_reader_stops_at_the_archives_limit():
    content = hostile.tar_with_filler(300, [])
    with pytest.raises(DataError, match="inflates to more than 268435456 bytes"):
        sources.read_cifar10("c.tar.gz", content=content)


def test_cifar10_with_max_examples_keeps_the_whole_datasets_record(tmp_path, monkeypatch):
    from tests.data.test_user_data import cifar_archive
    from vampkeras.data.user_data import content_sha256
    trust(monkeypatch, "cifar10", cifar_archive(tmp_path / "cifar10" / "cifar-10-python.tar.gz", per_batch=7))
    full = load_dataset("cifar10", tmp_path, download=False)
    cut = load_dataset("cifar10", tmp_path, download=False, max_examples=3)
    assert [len(s) for s in (cut.train, cut.validation, cut.test)] == [3, 3, 3]
    assert cut.record == full.record and full.record["splits"]["train"] == {
        "count": 28, "sha256": content_sha256(full.train)}
    np.testing.assert_array_equal(cut.validation, full.validation[:3])
    big = load_dataset("cifar10", tmp_path, download=False, max_examples=10)        # across batches
    np.testing.assert_array_equal(big.train, full.train[:10])


def test_a_huge_sparse_file_at_a_known_path_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "freyfaces" / "freyfaces.pkl"
    path.parent.mkdir()
    with open(path, "wb") as stream:
        stream.truncate(1 << 40)                                   # 1 TiB declared, nothing stored
    with pytest.raises(DataError, match=r"its content is more than 3568521 bytes, expected sha256 3b69410c"):
        load_dataset("freyfaces", tmp_path, download=False)
