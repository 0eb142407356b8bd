"""TrainedModel on a tiny model in memory: what each prior offers, NumPy in and out, refused inputs as one
VampkerasError, and agreement with the model's own log-likelihood."""

import re

import numpy as np
import pytest
import tensorflow as tf

from tests.fakes import ImageSpec
from vampkeras import export
from vampkeras.config import RunConfig
from vampkeras.errors import VampkerasError
from vampkeras.models import build_model
from vampkeras.trained_model import TrainedModel


def tiny(prior):
    config = RunConfig(prior=prior, num_components=3, latent_dim=2, hidden_units=8, pseudo_init_mean=0.3,
                       pseudo_init_std=0.2, seed=4)
    return TrainedModel.from_keras(build_model(config, ImageSpec((4, 5))), config), config


def binary_images(n=3, seed=0):
    return (np.random.default_rng(seed).uniform(size=(n, 4, 5)) < 0.4).astype(np.float32)


@pytest.mark.parametrize("prior, components, pseudo_inputs", [
    ("standard", False, False), ("mog", True, False), ("vampprior", True, True)])
def test_what_each_prior_offers(prior, components, pseudo_inputs):
    model, _ = tiny(prior)
    assert (model.has_components, model.has_pseudo_inputs) == (components, pseudo_inputs)
    assert model.image_shape == (4, 5) and model.source is None
    samples = model.sample(6, seed=1)
    assert samples.shape == (6, 4, 5) and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, model.sample(6, seed=1))       # seeded
    assert model.reconstruct(binary_images()).shape == (3, 4, 5)
    if components:
        assert model.sample_component(2, 5, seed=0).shape == (5, 4, 5)
    else:
        with pytest.raises(VampkerasError, match="has no components"):
            model.sample_component(0, 5, seed=0)
    if pseudo_inputs:
        assert model.pseudo_inputs().shape == (3, 4, 5)
    else:
        with pytest.raises(VampkerasError, match="has no pseudo-inputs"):
            model.pseudo_inputs()


def test_scores_agree_with_the_model_and_refuse_bad_input_as_one_error():
    model, _ = tiny("vampprior")
    keras_model = model._functions.model
    x = binary_images(4)
    log_p = model.log_prob(x, 50)
    # the IS estimate (paper §5.2) computed by the Keras model itself with the export's seed for batch 0
    seed = tf.random.experimental.stateless_fold_in(tf.constant([export.LOG_PROB_SEED, 0], tf.int32), 0)
    expected = keras_model.log_likelihood(tf.constant(x.reshape(4, 20)), 50, seed,
                                          chunk_size=max(1, keras_model.evaluation_rows // 100)).numpy()
    assert log_p.shape == (4,) and np.all(np.isfinite(log_p))
    np.testing.assert_allclose(log_p, expected, rtol=1e-5)
    terms = model.elbo(x)
    np.testing.assert_allclose(terms["elbo"], -(terms["reconstruction"] + terms["kl"]), rtol=1e-5)
    assert log_p.mean() > terms["elbo"].mean() - 1.0
    assert model.latent_means(x)["z1"].shape == (4, 2)
    with pytest.raises(VampkerasError, match="the model refuses its input"):
        model.log_prob(np.full((2, 4, 5), 0.5, np.float32), 10)         # grey images, Bernoulli model
    with pytest.raises(VampkerasError, match="the model refuses its input"):
        model.elbo(np.full((2, 4, 5), np.nan, np.float32))
    with pytest.raises(VampkerasError, match="the model refuses its input"):
        model.sample_component(3, 2, seed=0)                              # K = 3: components 0..2


def test_load_refuses_a_folder_that_is_neither_run_nor_model(tmp_path):
    with pytest.raises(VampkerasError, match="neither a run folder"):
        TrainedModel.load(tmp_path)


def test_an_empty_batch_gives_empty_results_and_another_rank_is_refused_naming_x():
    """Issue 33 item 17: N = 0 gave a TensorFlow error from log_prob (its per-batch results were an empty list
    that could not be concatenated); a batch of another rank must be refused naming x and the shape expected."""
    model, _ = tiny("vampprior")
    empty = np.zeros([0, 4, 5], np.float32)
    assert model.log_prob(empty, 5).shape == (0,)
    assert {name: value.shape for name, value in model.elbo(empty).items()} == {
        "elbo": (0,), "reconstruction": (0,), "kl": (0,)}
    assert model.latent_means(empty)["z1"].shape == (0, 2) and model.reconstruct(empty).shape == (0, 4, 5)
    for shape in [(2, 4, 5, 1), (2, 20), (4, 5), (1, 2, 4, 5)]:
        expected = re.escape(f"the model refuses its input: x must be a batch of images of shape (N, 4, 5); "
                             f"got shape {shape}")
        for call in (lambda x: model.log_prob(x, 5), model.elbo, model.latent_means, model.reconstruct):
            with pytest.raises(VampkerasError, match=expected):
                call(np.zeros(shape, np.float32))
