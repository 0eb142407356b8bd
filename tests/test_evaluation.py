"""vampkeras.evaluation without training: check_images (the accepted batch shapes, refused shapes and values),
bits_per_dim (its closed form), active_units (known per-unit variances around the 0.01 threshold), score
(agreement with the TrainedModel's own functions batch by batch) and evaluate on a tiny model in memory with a
small in-memory Dataset (the summary, the split, bits per dimension, the figures)."""

import math

import numpy as np
import pytest

from vampkeras import shapes
from vampkeras.errors import DataError, VampkerasError
from vampkeras.evaluation import active_units, bits_per_dim, check_images, evaluate

GREY = (4, 5)           # (H, W): one channel
COLOUR = (4, 5, 3)      # (H, W, C)


# -- check_images ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("image_shape", [GREY, COLOUR, (4, 5, 1)])
def test_check_images_accepts_every_batch_shape_as_the_same_images(image_shape):
    canonical = shapes.canonical(image_shape)
    images = np.random.default_rng(0).uniform(size=(3, *canonical))
    accepted = shapes.batch_shapes(image_shape)
    assert (shapes.num_values(canonical),) in accepted and canonical in accepted
    for per_image in accepted:
        checked = check_images(images.reshape(3, *per_image), image_shape)
        assert checked.shape == (3, *canonical) and checked.dtype == np.float32
        np.testing.assert_array_equal(checked, images.astype(np.float32))     # row-major (H, W, C) order


def test_check_images_takes_integer_and_empty_arrays():
    checked = check_images(np.ones((2, 20), np.uint8), GREY)
    assert checked.dtype == np.float32 and checked.shape == (2, 4, 5) and np.all(checked == 1.0)
    assert check_images(np.zeros((0, 4, 5)), GREY).shape == (0, 4, 5)


@pytest.mark.parametrize("image_shape, refused", [
    (GREY, (2, 5, 4)),          # H and W swapped
    (GREY, (2, 19)),            # one value short
    (GREY, (2, 4, 5, 3)),       # colour for a grey model
    (GREY, (2, 4, 5, 1, 1)),
    (GREY, (4, 5)),             # one image without the batch axis: (N=4, 5) is not a batch of (4, 5)
    (COLOUR, (2, 4, 5)),        # grey for a colour model
    (COLOUR, (2, 4, 5, 1)),     # (H, W, 1) is accepted for one channel only
    (COLOUR, (2, 5, 4, 3)),
    (COLOUR, (2, 20)),          # H·W, not H·W·C
])
def test_check_images_refuses_other_shapes_naming_the_accepted_ones(image_shape, refused):
    with pytest.raises(DataError) as caught:
        check_images(np.zeros(refused, np.float32), image_shape)
    message = str(caught.value)
    for shape in shapes.batch_shapes(image_shape):
        assert f"(N, {', '.join(map(str, shape))})" in message
    assert str(tuple(refused)) in message


def test_check_images_refuses_a_scalar():
    with pytest.raises(DataError, match=r"\(N, 4, 5\) or \(N, 20\) or \(N, 4, 5, 1\); got an array of shape \(\)"):
        check_images(np.float32(0.5), GREY)


@pytest.mark.parametrize("value, match", [
    (np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (-0.25, r"\[0, 1\].*-0\.25"), (1.5, r"\[0, 1\].*1\.5")])
def test_check_images_refuses_values_outside_the_unit_interval(value, match):
    images = np.full((2, 4, 5), 0.5, np.float32)
    images[1, 2, 3] = value
    with pytest.raises(DataError, match=match):
        check_images(images, GREY)
    check_images(np.clip(np.nan_to_num(images, nan=0.0, posinf=1.0), 0, 1), GREY)      # the rest is fine


def test_check_images_refuses_uint8_pixels_in_0_255():
    with pytest.raises(DataError, match=r"must lie in \[0, 1\], found \[0, 255\]"):
        check_images(np.array([[0, 255] * 10], np.uint8), GREY)


# -- bits_per_dim and active_units ---------------------------------------------------------------------------
@pytest.mark.parametrize("log_likelihood, image_shape", [
    (-100.0, (28, 28)), (-1234.5, (28, 20)), (-6000.0, (32, 32, 3)), (0.0, (2, 2)), (12.0, (4, 5, 1))])
def test_bits_per_dim_is_minus_the_log_likelihood_over_d_ln2(log_likelihood, image_shape):
    height, width = image_shape[:2]
    channels = image_shape[2] if len(image_shape) == 3 else 1
    expected = -log_likelihood / (height * width * channels * math.log(2.0))
    result = bits_per_dim(log_likelihood, image_shape)
    assert isinstance(result, float)
    assert result == pytest.approx(expected, rel=1e-12)


def test_bits_per_dim_of_a_uniform_model_over_256_bins_is_8():
    # p(x) = 256^-D: log p = -D ln 256, which is 8 bits per value
    assert bits_per_dim(-32 * 32 * 3 * math.log(256.0), (32, 32, 3)) == pytest.approx(8.0, rel=1e-12)


def test_active_units_counts_the_units_whose_variance_exceeds_the_threshold():
    # columns of +-a alternating over an even number of rows: population variance exactly a²
    signs = np.tile([1.0, -1.0], 50)[:, None]                                       # (100, 1)
    scales = np.sqrt(np.array([0.0, 0.005, 0.0099, 0.0101, 0.02, 1.0, 4.0]))       # variances a² per unit
    means = signs * scales[None, :] + np.arange(7)[None, :]                        # (offsets do not count)
    np.testing.assert_allclose(np.var(means, axis=0), scales ** 2, atol=1e-12)
    assert active_units(means) == 4                                   # 0.0101, 0.02, 1, 4
    assert active_units(means, threshold=0.006) == 5
    assert active_units(means, threshold=1.0) == 1                    # strictly above: 1.0 itself is not active
    assert active_units(means, threshold=10.0) == 0
    assert active_units(means.astype(np.float32)) == 4                # float32 means: variance in float64
    assert active_units(np.zeros((1, 3))) == 0                        # one example: no variance


# -- score and evaluate on a tiny model --------------------------------------------------------------------
def tiny_model(likelihood="bernoulli", image_shape=GREY, prior="vampprior"):
    from tests.fakes import ImageSpec
    from vampkeras.config import RunConfig
    from vampkeras.models import build_model
    from vampkeras.trained_model import TrainedModel

    config = RunConfig(dataset="tiny", prior=prior, likelihood=likelihood,
                       binarization="static" if likelihood == "bernoulli" else "none", num_components=3,
                       latent_dim=2, hidden_units=8, pseudo_init_mean=0.3, pseudo_init_std=0.2, seed=4, jit=False)
    return TrainedModel.from_keras(build_model(config, ImageSpec(image_shape, likelihood)), config)


def tiny_dataset(likelihood="bernoulli", image_shape=GREY, sizes=(6, 5, 7), binarization=None):
    from vampkeras.data.registry import Dataset, DatasetSpec

    binarization = binarization or ("static" if likelihood == "bernoulli" else "none")
    spec = DatasetSpec(name="tiny", image_shape=image_shape, input_type="binary" if likelihood == "bernoulli"
                       else "grey", binarization=binarization, likelihood=likelihood, pseudo_init_mean=0.3,
                       pseudo_init_std=0.2, num_components=3, split_sizes=sizes, source="tests")
    rng = np.random.default_rng(7)
    splits = []
    for size in sizes:
        if likelihood == "bernoulli" and binarization != "dynamic":
            splits.append((rng.uniform(size=(size, shapes.num_values(image_shape))) < 0.4).astype(np.float32))
        else:               # grey values at the centres of the 256 bins
            pixels = rng.integers(0, 256, size=(size, shapes.num_values(image_shape)))
            splits.append(((pixels + 0.5) / 256.0).astype(np.float32))
    return Dataset(spec, *splits)


@pytest.fixture(scope="module")
def bernoulli_model():
    return tiny_model()


@pytest.fixture(scope="module")
def logistic_model():
    return tiny_model("discretized_logistic")


def binary_images(n, seed=0):
    return (np.random.default_rng(seed).uniform(size=(n, *GREY)) < 0.4).astype(np.float32)


def test_score_agrees_with_the_models_own_functions_batch_by_batch(bernoulli_model):
    from vampkeras.evaluation import score

    images = binary_images(7)
    calls = []
    values = score(bernoulli_model, images.reshape(7, 20), num_samples=20, batch_size=3,
                   progress=lambda done, total: calls.append((done, total)))
    assert calls == [(3, 7), (6, 7), (7, 7)]              # batch_size 3 does not divide N = 7
    assert set(values) == {"log_likelihood", "elbo", "reconstruction", "kl", "latent_means/z1"}
    expected = {name: [] for name in values}
    for start in (0, 3, 6):
        batch = images[start:start + 3]
        expected["log_likelihood"].append(bernoulli_model.log_prob(batch, 20))
        for name, value in bernoulli_model.elbo(batch).items():
            expected[name].append(value)
        expected["latent_means/z1"].append(bernoulli_model.latent_means(batch)["z1"])
    for name, parts in expected.items():
        np.testing.assert_array_equal(values[name], np.concatenate(parts), err_msg=name)
    assert values["log_likelihood"].shape == (7,) and values["latent_means/z1"].shape == (7, 2)
    np.testing.assert_allclose(values["elbo"], -(values["reconstruction"] + values["kl"]), rtol=1e-5)
    assert np.all(np.isfinite(values["log_likelihood"])) and np.all(values["log_likelihood"] < 0)


def test_score_in_one_batch_equals_the_models_log_prob_of_all_images(bernoulli_model):
    from vampkeras.evaluation import score

    images = binary_images(5, seed=1)
    calls = []
    values = score(bernoulli_model, images, num_samples=10, batch_size=100,
                   progress=lambda done, total: calls.append((done, total)))
    assert calls == [(5, 5)]
    np.testing.assert_array_equal(values["log_likelihood"], bernoulli_model.log_prob(images, 10))
    np.testing.assert_array_equal(values["latent_means/z1"], bernoulli_model.latent_means(images)["z1"])
    # the posterior means do not depend on the batching, whatever the batch size
    np.testing.assert_allclose(score(bernoulli_model, images, 10, batch_size=2)["latent_means/z1"],
                               values["latent_means/z1"], rtol=1e-6, atol=1e-7)


def test_score_of_no_images_gives_empty_arrays(bernoulli_model):
    from vampkeras.evaluation import score

    calls = []
    values = score(bernoulli_model, np.zeros((0, 4, 5), np.float32), 5, progress=lambda *a: calls.append(a))
    assert calls == [] and set(values) == {"log_likelihood", "elbo", "reconstruction", "kl"}
    assert all(v.shape == (0,) for v in values.values())


@pytest.mark.parametrize("num_samples, batch_size, match", [
    (0, 100, "--samples must be at least 1"), (-3, 100, "--samples must be at least 1"),
    (5, 0, "--batch-size must be at least 1")])
def test_score_refuses_counts_below_one(bernoulli_model, num_samples, batch_size, match):
    from vampkeras.evaluation import score

    with pytest.raises(VampkerasError, match=match):
        score(bernoulli_model, binary_images(2), num_samples, batch_size)


def test_score_refuses_images_of_the_wrong_shape_before_scoring(bernoulli_model):
    from vampkeras.evaluation import score

    calls = []
    with pytest.raises(DataError, match=r"\(N, 4, 5\) or \(N, 20\) or \(N, 4, 5, 1\)"):
        score(bernoulli_model, np.zeros((2, 5, 4), np.float32), 5, progress=lambda *a: calls.append(a))
    assert calls == []


SUMMARY_KEYS = {"dataset", "split", "num_examples", "num_samples", "precision", "log_likelihood", "elbo",
                "reconstruction", "kl", "active_units", "seconds"}


@pytest.mark.parametrize("split", ["validation", "test"])
def test_evaluate_summarises_the_chosen_split_of_the_given_data(bernoulli_model, split):
    from vampkeras.evaluation import evaluate, score

    data = tiny_dataset()
    summary, values = evaluate(bernoulli_model, data=data, split=split, num_samples=8, batch_size=4)
    assert set(summary) == SUMMARY_KEYS                                  # no bits_per_dim for binary data
    expected_count = len(data.split(split))                              # 5 validation, 7 test images
    assert summary["dataset"] == "tiny" and summary["split"] == split and summary["num_samples"] == 8
    assert summary["num_examples"] == expected_count and values["log_likelihood"].shape == (expected_count,)
    assert summary["precision"] == "float32" and summary["seconds"] >= 0
    for name in ("log_likelihood", "elbo", "reconstruction", "kl"):
        assert summary[name] == pytest.approx(float(np.mean(values[name])), rel=1e-12)
    assert summary["active_units"] == {"z1": active_units(values["latent_means/z1"])}
    # the same numbers as scoring that split directly
    direct = score(bernoulli_model, data.split(split), 8, batch_size=4)
    for name in values:
        np.testing.assert_array_equal(values[name], direct[name], err_msg=name)


def test_evaluate_scores_validation_and_test_differently(bernoulli_model):
    from vampkeras.evaluation import evaluate

    data = tiny_dataset()
    validation, _ = evaluate(bernoulli_model, data=data, split="validation", num_samples=4)
    test, _ = evaluate(bernoulli_model, data=data, split="test", num_samples=4)
    assert (validation["num_examples"], test["num_examples"]) == (5, 7)
    assert validation["log_likelihood"] != test["log_likelihood"]


def test_evaluate_binarizes_a_dynamic_training_split_with_the_fixed_seed(bernoulli_model):
    from vampkeras.data.registry import binarize
    from vampkeras.evaluation import TRAIN_SCORING_BINARIZATION_SEED, evaluate, score

    data = tiny_dataset(binarization="dynamic")          # grey training images
    summary, values = evaluate(bernoulli_model, data=data, split="train", num_samples=4)
    assert summary["num_examples"] == 6
    expected = score(bernoulli_model, binarize(data.train, TRAIN_SCORING_BINARIZATION_SEED), 4)
    np.testing.assert_array_equal(values["log_likelihood"], expected["log_likelihood"])


def test_evaluate_gives_bits_per_dim_for_a_discretized_logistic_model(logistic_model):
    from vampkeras.evaluation import evaluate

    summary, values = evaluate(logistic_model, data=tiny_dataset("discretized_logistic"), split="test",
                               num_samples=6)
    assert set(summary) == SUMMARY_KEYS | {"bits_per_dim"}
    assert summary["log_likelihood"] == pytest.approx(float(np.mean(values["log_likelihood"])), rel=1e-12)
    assert summary["bits_per_dim"] == bits_per_dim(summary["log_likelihood"], GREY)
    assert summary["bits_per_dim"] == pytest.approx(-summary["log_likelihood"] / (20 * math.log(2.0)), rel=1e-12)
    assert summary["bits_per_dim"] > 0                    # a density over 256 bins per value: p(x) < 1


def test_evaluate_refuses_an_unknown_split(bernoulli_model, tmp_path):
    from vampkeras.evaluation import evaluate

    for split in ("valid", "training", "Test", ""):
        with pytest.raises(VampkerasError, match=f"unknown split {split!r}; choose train, validation or test"):
            evaluate(bernoulli_model, data=tiny_dataset(), split=split, num_samples=2, figures_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_writes_the_two_figures_to_figures_dir(bernoulli_model, tmp_path):
    from vampkeras import figures
    from vampkeras.evaluation import evaluate

    folder = tmp_path / "figures"
    evaluate(bernoulli_model, data=tiny_dataset(), split="test", num_samples=4, figures_dir=folder)
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted([f"{figures.HISTOGRAM}.png", f"{figures.ACTIVE_UNITS}.png"])
    for name in names:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_of_a_model_in_memory_writes_nothing_without_figures_dir(bernoulli_model, tmp_path,
                                                                            monkeypatch):
    from vampkeras.evaluation import evaluate

    monkeypatch.chdir(tmp_path)
    evaluate(bernoulli_model, data=tiny_dataset(), split="test", num_samples=2)
    assert list(tmp_path.iterdir()) == []


def test_a_model_of_one_named_dataset_is_scored_on_another_as_the_paper_models_it():
    """A static-MNIST-shaped model scored on mnist5k (dynamic binarization): the other dataset is loaded as
    the paper treats it, not with the model's own binarization (which only applies to your own data)."""
    from tests.fakes import ImageSpec
    from vampkeras.config import RunConfig
    from vampkeras.models import build_model
    from vampkeras.trained_model import TrainedModel

    config = RunConfig(dataset="static_mnist", likelihood="bernoulli", binarization="static", num_components=3,
                       latent_dim=2, hidden_units=8, pseudo_init_mean=0.05, pseudo_init_std=0.01, seed=4, jit=False)
    model = TrainedModel.from_keras(build_model(config, ImageSpec((28, 28))), config)
    summary, values = evaluate(model, dataset="mnist5k", num_samples=2, max_examples=6)
    assert summary["dataset"] == "mnist5k" and summary["num_examples"] == 6
    assert np.all(np.isfinite(values["log_likelihood"]))


def test_your_own_networks_with_outputs_of_the_wrong_shape_are_a_config_error():
    import keras

    from tests.fakes import ImageSpec
    from vampkeras.config import RunConfig
    from vampkeras.errors import ConfigError
    from vampkeras.models import build_model

    config = RunConfig(prior="standard", latent_dim=2, seed=1)

    def wrong_decoder(spec, config):
        return (keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4)]),
                keras.Sequential([keras.layers.Dense(7)]))                 # 7 outputs for a 4x5 image

    with pytest.raises(ConfigError, match=r"your decoder returned shape \(1, 7\); the likelihood needs \(N, 20\)"):
        build_model(config, ImageSpec((4, 5)), networks=wrong_decoder)
    with pytest.raises(ConfigError, match="must return \\(encoder, decoder\\)"):
        build_model(config, ImageSpec((4, 5)), networks=lambda spec, config: keras.layers.Dense(3))
