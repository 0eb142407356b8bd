"""Figures: grid geometry, PNG round trips, plots that decode and are not blank."""

import io

import numpy as np
import pytest
from PIL import Image

from vampkeras import figures
from vampkeras.run_folder import RunFolder


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


def test_grid_rows_and_columns():
    images = np.stack([np.full((3, 4), k / 4.0) for k in range(5)])
    grid = figures.image_grid(images, rows=2, padding=1)                  # 2 rows → 3 columns
    assert grid.shape == (2 * 4 + 1, 3 * 5 + 1)
    assert grid[5, 1] == round(0.75 * 255) and grid[5, 6] == 255 and grid[5, 11] == round(figures.PADDING_VALUE * 255)
    grid = figures.image_grid(images, rows=3, columns=2, padding=0)        # one blank cell, no padding
    assert grid.shape == (9, 8) and grid[6, 4] == round(figures.PADDING_VALUE * 255) and grid[6, 0] == 255
    with pytest.raises(ValueError, match="2x2 cells cannot hold 5"):
        figures.image_grid(images, rows=2, columns=2)


def test_named_image_figures():
    generations = figures.generations_figure(np.random.default_rng(3).uniform(size=(64, 28, 20)))
    assert generations.shape == (8 * 29 + 1, 8 * 21 + 1) and generations.dtype == np.uint8
    pseudo = np.stack([np.full((28, 28), k / 150) for k in range(150)])
    grid = figures.pseudo_inputs_figure(pseudo)                          # the first 100, 10 per row
    assert grid.shape == (10 * 29 + 1, 10 * 29 + 1)
    assert grid[1 + 9 * 29, 1 + 9 * 29] == round(99 / 150 * 255)
    assert figures.pseudo_inputs_figure(pseudo[:3]).shape == (29 + 1, 3 * 29 + 1)


def test_histogram_written_to_path(tmp_path):
    values = np.random.default_rng(4).normal(-95, 8, 500)
    png = figures.log_likelihood_histogram(values, tmp_path / "figures" / "hist.png")
    assert (tmp_path / "figures" / "hist.png").read_bytes() == png
    with pytest.raises(ValueError):
        figures.log_likelihood_histogram([np.nan, 1.0])


def test_read_history_and_curves(tmp_path):
    columns = ["epoch", "loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl", "beta"]
    lines = [",".join(columns)] + [f"{e},{200 - e},{170 - e},{20 + e},{205 - e},{175 - e},{21 + e},{min(1, e / 4)}"
                                   for e in range(1, 9)]
    (tmp_path / "history.csv").write_text("\n".join(lines) + "\n")
    history = RunFolder(tmp_path).read_history()
    assert len(history) == 8 and history[2] == {"epoch": 3.0, "loss": 197.0, "reconstruction": 167.0, "kl": 23.0,
                                                "val_loss": 202.0, "val_reconstruction": 172.0, "val_kl": 24.0,
                                                "beta": 0.75}
    assert RunFolder(tmp_path / "missing").read_history() == []
    image = decode(figures.training_curves(history))
    assert image.shape[1] > 500 and image[..., :3].std() > 10


class FakeModule:
    """The exported signatures of a VampPrior model on 28x20 images, in numpy: sample k is uniform noise,
    reconstructions are 1 - x, pseudo-input k is the constant (k + 1) / 13, component draws are zeros."""

    def __init__(self):
        import tensorflow as tf
        self.tf = tf

    def sample(self, num_samples, seed):
        noise = np.random.default_rng(int(seed)).uniform(size=(int(num_samples), 28, 20))
        return {"images": self.tf.constant(noise, self.tf.float32)}

    def reconstruct(self, x):
        return {"images": 1.0 - x}

    def pseudo_inputs(self):
        return {"images": self.tf.constant(np.stack([np.full((28, 20), (k + 1) / 13) for k in range(12)]),
                                           self.tf.float32)}

    def sample_component(self, component, num_samples, seed):
        return {"images": self.tf.zeros([int(num_samples), 28, 20])}


def fake_trained_model():
    from vampkeras.config import RunConfig
    from vampkeras.trained_model import TrainedModel
    return TrainedModel(RunConfig(prior="vampprior"), (28, 20), FakeModule())


def test_tensorboard_images_from_exported_functions():
    test_images = np.stack([np.full((28, 20), k / 16) for k in range(16)]).astype(np.float32)
    images = figures.tensorboard_images(fake_trained_model(), test_images, num=64, seed=0)
    assert sorted(images) == ["component_generations", "generations", "pseudo_inputs", "reconstructions"]
    assert all(v.dtype == np.uint8 and v.ndim == 4 and v.shape[0] == v.shape[3] == 1 for v in images.values())
    assert images["generations"].shape == (1, 8 * 29 + 1, 8 * 21 + 1, 1)
    reconstructions = images["reconstructions"][0, :, :, 0]
    assert reconstructions.shape == (4 * 29 + 1, 8 * 21 + 1)
    assert reconstructions[1, 1 + 21] == round(1 / 16 * 255) and reconstructions[30, 1 + 21] == round(15 / 16 * 255)
    assert images["pseudo_inputs"].shape == (1, 2 * 29 + 1, 10 * 21 + 1, 1)
    component = images["component_generations"][0, :, :, 0]
    assert component.shape == (29 + 1, 12 * 21 + 1)                  # pseudo-input 0, then 11 draws
    assert component[1, 1] == round(255 / 13) and component[1, 1 + 21] == 0


def test_write_run_figures(tmp_path):
    from vampkeras.config import RunConfig
    (tmp_path / "history.csv").write_text("epoch,loss,kl,val_loss,beta\n1,190,20,195,0.5\n2,180,25,185,1.0\n")
    test_images = np.random.default_rng(5).uniform(size=(20, 28, 20)).astype(np.float32)
    paths = figures.write_run_figures(tmp_path, fake_trained_model(), test_images=test_images)
    assert sorted(paths) == ["component_generations", "generations", "pseudo_inputs", "reconstructions",
                             "training_curves"]
    for name, path in paths.items():
        assert path == tmp_path / "figures" / f"{name}.png"
        image = np.asarray(Image.open(path))
        assert image.std() > 1.0, name
    assert np.asarray(Image.open(paths["generations"])).shape == (8 * 29 + 1, 8 * 21 + 1)
    assert np.asarray(Image.open(paths["reconstructions"])).shape == (4 * 29 + 1, 8 * 21 + 1)   # 16 of the 20
    few = figures.figure_sizes(RunConfig(model="pixelhvae"))
    assert few == {"num_samples": 16, "component_samples": 5, "num_test_images": 8}
