"""`vampkeras score`'s input is opened as what it claims to be: a FIFO or a device named like an image or an
array is refused unopened (reading one would block forever or never end)."""

import os
import signal

import pytest

from vampkeras.errors import DataError
from vampkeras.inspection import read_images


@pytest.mark.parametrize("name", ["images.npy", "images.npz", "digit.png"])
def test_a_fifo_given_to_score_is_refused_without_blocking(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("reading the FIFO blocked"))
    signal.alarm(20)
    try:
        with pytest.raises(DataError, match="not a regular file"):
            read_images(fifo, (28, 28))
    finally:
        signal.alarm(0)


def test_a_device_given_to_score_is_refused():
    with pytest.raises(DataError, match="not a regular file"):
        read_images("/dev/zero", (28, 28))
