"""Figures: grid geometry, PNG round trips, plots that decode and are not blank."""

import io

import numpy as np
import pytest
from PIL import Image

from vampkeras import figures


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_grid_geometry_and_cell_contents():
    images = np.stack([np.full((3, 4), k / 4.0) for k in range(5)])
    grid = figures.image_grid(images, columns=2, padding=1)
    assert grid.shape == (3 * (3 + 1) + 1, 2 * (4 + 1) + 1) and grid.dtype == np.uint8
    assert grid[1, 1] == 0 and grid[1, 6] == round(0.25 * 255)          # cells 0 and 1 of row 0
    assert grid[5, 1] == round(0.5 * 255) and grid[9, 1] == 255          # cells 2 and 4
    assert grid[9, 6] == round(figures.PADDING_VALUE * 255)              # the missing sixth cell
    assert grid[0, 0] == round(figures.PADDING_VALUE * 255)              # padding
    assert figures.image_grid(np.zeros((4, 28, 20))).shape == (2 * 29 + 1, 2 * 21 + 1)   # Frey keeps 28x20


def test_png_round_trip(tmp_path):
    grid = figures.image_grid(np.random.default_rng(0).uniform(size=(6, 5, 5)), columns=3)
    path = figures.save_png(tmp_path / "g.png", grid)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), grid)
    assert not list(tmp_path.glob(".*.tmp"))


def test_reconstructions_alternate_rows():
    originals = np.zeros((4, 2, 2))
    reconstructions = np.ones((4, 2, 2))
    grid = figures.reconstructions_figure(originals, reconstructions, columns=2)
    assert grid.shape == (4 * 3 + 1, 2 * 3 + 1)
    assert [grid[1 + 3 * row, 1] for row in range(4)] == [0, 255, 0, 255]


def test_component_figure_puts_the_pseudo_input_first():
    grid = figures.component_generations_figure(np.ones((2, 2)), np.zeros((3, 2, 2)))
    assert grid.shape == (4, 13) and grid[1, 1] == 255 and grid[1, 4] == 0


@pytest.mark.parametrize("png", [
    lambda: figures.log_likelihood_histogram(np.random.default_rng(1).normal(-90, 5, 300)),
    lambda: figures.training_curves([{"epoch": e, "loss": 200 - e, "val_loss": 201 - e, "reconstruction": 150 - e,
                                      "kl": 30 + e, "val_kl": 31 + e, "beta": min(1, e / 3)} for e in range(1, 6)]),
    lambda: figures.active_units_figure({"z1": np.random.default_rng(2).normal(size=(100, 8)) * np.arange(8) / 8}),
])
def test_plots_decode_and_are_not_blank(png):
    image = decode(png())
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 10
