"""Your own data's loaders (vampkeras.data.user_data: .npy, .npz, image folders) against the hostile corpus
(tests/hostile.py): every case placed as a .npy file, as a .npz file, as the train array inside a .npz, and as
an image among real ones in a folder, must be one DataError: its payload never runs, nothing hangs, and what
reading it costs stays small (these loaders read headers before anything else)."""

from __future__ import annotations

import signal
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests import hostile
from vampkeras.data import load_dataset, user_data
from vampkeras.errors import DataError

PEAK_BYTES = 16 << 20       # a header, a zip directory, one image's decoding: never what a case declares
PLACEMENTS = ("as x.npy", "as x.npz", "as the train array of a .npz", "as an image in a folder")
CASES = hostile.corpus("MARKER")        # (the names; each test builds its cases with its own marker)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    monkeypatch.setenv(user_data.OFFLINE_ENV, "1")


def place(case, placement, root):
    """The --dataset argument for ``case`` placed as ``placement`` under ``root``."""
    if placement == "as x.npy":
        return case.place(root / "x.npy")
    if placement == "as x.npz":
        return case.place(root / "x.npz")
    if placement == "as the train array of a .npz":
        with zipfile.ZipFile(root / "x.npz", "w") as archive:
            archive.writestr("train.npy", case.make())
        return root / "x.npz"
    folder = root / "images"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(np.full((8, 8), 40 * index, np.uint8)).save(folder / f"{index}.png")
    case.place(folder / "x.png")
    return folder


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_every_hostile_case_is_one_data_error(tmp_path, name, placement):
    marker = tmp_path / "payload-ran"
    case = next(case for case in hostile.corpus(marker) if case.name == name)
    if placement == "as the train array of a .npz" and case.special is not None:
        pytest.skip("a special file cannot be a zip member")
    path = place(case, placement, tmp_path)

    def blocked(*_):
        raise TimeoutError(f"loading {name} {placement} blocked")
    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(30)
    tracemalloc.start()
    try:
        with pytest.raises(DataError):
            load_dataset(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not marker.exists(), "the payload ran"
    assert peak < PEAK_BYTES, f"reading it took {peak} bytes"
