"""The VAE: ELBO terms, importance-sampled log-likelihood, sampling, training and β (the optimizers: tests/test_optimizers.py).

Every expected value is computed here in float64 numpy/scipy from the model's own encoder and decoder
outputs (never from the library function under test).
"""

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from scipy.stats import norm

from vampkeras import optimizers
from vampkeras.config import RunConfig
from vampkeras.errors import ConfigError
from vampkeras.models import VAE, as_seed, build_model
from vampkeras.priors import MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from tests.fakes import ImageSpec

IMAGE_SHAPE = (4, 5)
PIXELS = 20
LATENT = 4
K = 5


def config(**overrides):
    values = dict(num_components=K, latent_dim=LATENT, hidden_units=16, pseudo_init_mean=0.05,
                  pseudo_init_std=0.01, seed=3)
    values.update(overrides)
    return RunConfig(**values)


def make_model(prior="vampprior", decoder_scale=1.0, seed=3, **overrides):
    """A tiny built model. The VampPrior's pseudo-inputs are spread over [-0.2, 1.2] (so that the K
    components differ and some weights are clipped); ``decoder_scale`` multiplies the decoder kernels."""
    model = build_model(config(prior=prior, seed=seed, **overrides), ImageSpec(IMAGE_SHAPE),
                        train_images=np.random.default_rng(seed).uniform(size=(12, PIXELS)).astype(np.float32))
    rng = np.random.default_rng(100 + seed)
    if isinstance(model.prior, VampPrior) and model.prior.pseudo_input_weights.trainable:
        model.prior.pseudo_input_weights.assign(rng.uniform(-0.2, 1.2, (K, PIXELS)).astype(np.float32))
    if isinstance(model.prior, MixtureOfGaussiansPrior):
        model.prior.log_vars.assign(rng.uniform(-1.0, 0.5, (K, LATENT)).astype(np.float32))
    if decoder_scale != 1.0:
        for variable in model.decoder.weights:
            if "kernel" in variable.path:
                variable.assign(variable * decoder_scale)
    return model


def binary_batch(n, seed=0, p=0.4):
    return (np.random.default_rng(seed).random((n, PIXELS)) < p).astype(np.float32)


# -- independent numpy references -------------------------------------------------------------------
def np_log_sigmoid(a):
    return -np.logaddexp(0.0, -a)


def np_bernoulli_log_prob(x, logits):
    """Σ_d x log σ(l) + (1 − x) log σ(−l), float64: x (..., D), logits (..., D) → (...)."""
    return np.sum(x * np_log_sigmoid(logits) + (1.0 - x) * np_log_sigmoid(-logits), axis=-1)


def np_diag_normal(z, mean, log_var):
    return norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(-1)


def np_mixture(z, logits, means, log_vars):
    components = norm.logpdf(z[..., None, :], means, np.exp(0.5 * log_vars)).sum(-1)
    return logsumexp(components + logits - logsumexp(logits), axis=-1)


def f64(t):
    return np.asarray(t.numpy() if hasattr(t, "numpy") else t, np.float64)


def np_prior_log_prob(model, z):
    prior = model.prior
    if isinstance(prior, StandardNormalPrior):
        return norm.logpdf(z).sum(-1)
    if isinstance(prior, MixtureOfGaussiansPrior):
        return np_mixture(z, f64(prior.mixture_logits), f64(prior.means), np.clip(f64(prior.log_vars), -6.0, 2.0))
    assert isinstance(prior, VampPrior)
    pseudo = np.clip(prior.pseudo_input_weights.numpy(), 0.0, 1.0)
    means, log_vars = (f64(t) for t in model.encode(pseudo))
    return np_mixture(z, f64(prior.mixture_logits), means, log_vars)


def np_log_terms(model, x, noise):
    """(log p(x|z), log p(z), log q(z|x)), each (S, B), for z = μ(x) + σ(x)·noise, noise (S, B, M)."""
    mean, log_var = (f64(t) for t in model.encode(x))
    z = mean + np.exp(0.5 * log_var) * noise
    logits = f64(model.decoder(z.reshape(-1, LATENT).astype(np.float32))).reshape(*z.shape[:2], PIXELS)
    return np_bernoulli_log_prob(np.asarray(x, np.float64), logits), np_prior_log_prob(model, z), \
        np_diag_normal(z, mean, log_var)


def np_log_weights(model, x, noise):
    log_px, log_pz, log_qz = np_log_terms(model, x, noise)
    return log_px + log_pz - log_qz


def tf_noise(num_samples, batch, seed):
    return tf.random.stateless_normal([num_samples, batch, LATENT], seed=seed).numpy().astype(np.float64)


def fold_in(seed, index):
    return tf.random.experimental.stateless_fold_in(as_seed(seed), index)


# -- ELBO terms -------------------------------------------------------------------------------------
@pytest.mark.parametrize("prior", ["standard", "mog", "vampprior"])
def test_elbo_terms_match_a_hand_computation(prior):
    model = make_model(prior)
    x = binary_batch(6, seed=1)
    x[3:] = np.random.default_rng(2).uniform(size=(3, PIXELS))            # grey values as soft targets
    reconstruction, kl = (t.numpy() for t in model.elbo_terms(x, seed=123))
    log_px, log_pz, log_qz = np_log_terms(model, x, tf_noise(1, 6, as_seed(123)))
    assert reconstruction.shape == (6,) and kl.shape == (6,)
    np.testing.assert_allclose(reconstruction, -log_px[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(kl, log_qz[0] - log_pz[0], rtol=1e-5, atol=1e-4)


def test_elbo_terms_depend_on_the_seed_only():
    model = make_model()
    x = binary_batch(5, seed=3)
    a = [t.numpy() for t in model.elbo_terms(x, seed=7)]
    b = [t.numpy() for t in model.elbo_terms(x, seed=tf.constant([7, 0]))]
    c = [t.numpy() for t in model.elbo_terms(x, seed=8)]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[1], c[1])


def test_call_is_negative_elbo_with_seed_zero():
    model = make_model("mog")
    x = binary_batch(4, seed=4)
    log_px, log_pz, log_qz = np_log_terms(model, x, tf_noise(1, 4, as_seed(0)))
    np.testing.assert_allclose(model(x).numpy(), -(log_px + log_pz - log_qz)[0], rtol=1e-5, atol=1e-4)


# -- importance-sampled log-likelihood --------------------------------------------------------------
def test_single_sample_log_likelihood_is_the_elbo_of_the_first_chunk_seed():
    model = make_model()
    x = binary_batch(6, seed=5)
    ll = model.log_likelihood(x, num_samples=1, seed=42).numpy()
    # chunk 0 draws its samples with fold_in(seed, 0)
    reconstruction, kl = (t.numpy() for t in model.elbo_terms(x, seed=fold_in(42, 0)))
    np.testing.assert_allclose(ll, -(reconstruction + kl), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ll, np_log_weights(model, x, tf_noise(1, 6, fold_in(42, 0)))[0], rtol=1e-5, atol=1e-4)


def test_log_likelihood_is_deterministic_for_a_fixed_seed():
    model = make_model()
    x = binary_batch(6, seed=6)
    a = model.log_likelihood(x, 20, seed=9, chunk_size=8).numpy()
    b = model.log_likelihood(x, 20, seed=9, chunk_size=8).numpy()
    c = model.log_likelihood(x, 20, seed=10, chunk_size=8).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("num_samples, chunk_size", [(50, 7), (50, 50), (50, 64), (5, 1)])
def test_chunked_log_likelihood_is_logsumexp_over_all_chunk_weights(num_samples, chunk_size):
    model = make_model()
    x = binary_batch(5, seed=7)
    seed = as_seed(31)
    weights = []
    for index in range(-(-num_samples // chunk_size)):
        size = min(chunk_size, num_samples - index * chunk_size)
        weights.append(np_log_weights(model, x, tf_noise(size, 5, fold_in(seed, index))))
    weights = np.concatenate(weights)
    assert weights.shape == (num_samples, 5)
    expected = logsumexp(weights, axis=0) - np.log(num_samples)
    got = model.log_likelihood(x, num_samples, seed=seed, chunk_size=chunk_size).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_chunked_log_likelihood_is_stable_for_very_negative_weights():
    # Log-weights around -1e3: exp() underflows in float32, the running log-sum-exp must not.
    model = make_model(decoder_scale=30.0)
    z_mean = model.encode(binary_batch(3, seed=8))[0]
    x = (model.decoder(z_mean).numpy() < 0).astype(np.float32)            # the pixels the decoder rules out
    seed = as_seed(5)
    weights = np.concatenate([np_log_weights(model, x, tf_noise(min(7, 30 - 7 * i), 3, fold_in(seed, i)))
                              for i in range(5)])
    assert weights.max() < -200
    expected = logsumexp(weights, axis=0) - np.log(30)
    got = model.log_likelihood(x, 30, seed=seed, chunk_size=7).numpy()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.fixture(scope="module")
def sharp_model():
    """A model whose log-weights spread over a few nats (std ≈ 3), so that the IS bound visibly tightens
    with S, and 50000 numpy log-weights per example from numpy's own noise."""
    model = make_model(decoder_scale=2.0)
    x = binary_batch(4, seed=9)
    noise = np.random.default_rng(10).normal(size=(50000, 4, LATENT))
    return model, x, np_log_weights(model, x, noise)                       # (50000, 4)


def test_single_sample_is_estimate_averages_to_the_elbo(sharp_model):
    model, x, weights = sharp_model
    copies = 500                                              # 500 independent single-sample estimates
    ll = model.log_likelihood(np.repeat(x, copies, axis=0), 1, seed=11).numpy().reshape(4, copies)
    elbo = weights.mean(0)                                    # numpy Monte Carlo ELBO
    tolerance = 5.0 * np.sqrt(weights.var(0) / copies + weights.var(0) / len(weights))
    np.testing.assert_array_less(np.abs(ll.mean(1) - elbo), tolerance)


def test_is_estimate_tightens_with_more_samples(sharp_model):
    model, x, weights = sharp_model
    elbo = weights.mean(0)
    ll_10 = model.log_likelihood(np.repeat(x, 400, axis=0), 10, seed=12).numpy().reshape(4, 400)
    ll_1000 = model.log_likelihood(np.repeat(x, 40, axis=0), 1000, seed=13).numpy().reshape(4, 40)

    # numpy: the S=10 estimates from groups of 10 numpy weights, and log p(x) by IS with all 50000
    np_ll_10 = logsumexp(weights.reshape(-1, 10, 4), axis=1) - np.log(10)
    np_log_px = logsumexp(weights, axis=0) - np.log(len(weights))
    tolerance = 5.0 * np.sqrt(ll_10.var(1) / 400 + np_ll_10.var(0) / len(np_ll_10))
    np.testing.assert_array_less(np.abs(ll_10.mean(1) - np_ll_10.mean(0)), tolerance)
    np.testing.assert_allclose(ll_1000.mean(1), np_log_px, atol=0.06)

    assert np.all(np_log_px - elbo > 1.0)                     # the model leaves a visible ELBO gap
    assert np.all(ll_1000 >= elbo[:, None])                   # every S=1000 estimate beats the mean ELBO
    assert ll_1000.mean() > ll_10.mean() + 0.05               # and, on average, the S=10 estimate


# -- encode / reconstruct / sample ------------------------------------------------------------------
@pytest.mark.parametrize("prior", ["standard", "mog", "vampprior"])
def test_sample_shape_range_and_seed(prior):
    model = make_model(prior)
    a = model.sample(7, seed=3).numpy()
    assert a.shape == (7, PIXELS)
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, model.sample(7, seed=3).numpy())
    assert not np.allclose(a, model.sample(7, seed=4).numpy())


def test_sample_is_the_decoder_mean_of_prior_draws():
    model = make_model("standard", decoder_scale=3.0)
    z = model.prior.sample(6, {}, seed=as_seed(21)).numpy()
    expected = 1.0 / (1.0 + np.exp(-f64(model.decoder(z))))
    np.testing.assert_allclose(model.sample(6, seed=21).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_encode_and_reconstruct():
    model = make_model(decoder_scale=3.0)
    x = binary_batch(5, seed=12)
    mean, log_var = (t.numpy() for t in model.encode(x))
    assert mean.shape == (5, LATENT) and log_var.shape == (5, LATENT)
    assert log_var.min() >= -6.0 and log_var.max() <= 2.0
    reconstruction = model.reconstruct(x).numpy()
    assert reconstruction.shape == (5, PIXELS)
    expected = 1.0 / (1.0 + np.exp(-f64(model.decoder(mean))))
    np.testing.assert_allclose(reconstruction, expected, rtol=1e-5, atol=1e-6)


def test_sample_component_draws_from_one_pseudo_input_posterior():
    model = make_model(decoder_scale=3.0)
    images = model.sample_component(2, 6, seed=5).numpy()
    assert images.shape == (6, PIXELS) and images.min() >= 0.0 and images.max() <= 1.0
    pseudo = np.clip(model.prior.pseudo_input_weights.numpy()[2:3], 0.0, 1.0)
    mean, log_var = (f64(t)[0] for t in model.encode(pseudo))
    z = mean + np.exp(0.5 * log_var) * tf.random.stateless_normal([6, LATENT], seed=as_seed(5)).numpy()
    np.testing.assert_allclose(images, 1.0 / (1.0 + np.exp(-f64(model.decoder(z.astype(np.float32))))),
                               rtol=1e-4, atol=1e-5)


# -- building ---------------------------------------------------------------------------------------
def test_build_model_is_deterministic_in_the_seed():
    a = build_model(config(seed=5), ImageSpec(IMAGE_SHAPE))
    b = build_model(config(seed=5), ImageSpec(IMAGE_SHAPE))
    c = build_model(config(seed=6), ImageSpec(IMAGE_SHAPE))
    assert [w.path for w in a.weights] == [w.path for w in b.weights]
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())
    differs = [not np.array_equal(wa.numpy(), wc.numpy()) for wa, wc in zip(a.weights, c.weights)]
    assert sum(differs) >= 5


def test_vampprior_data_uses_distinct_training_images_as_fixed_pseudo_inputs():
    images = np.random.default_rng(13).uniform(size=(12, PIXELS)).astype(np.float32)
    model = build_model(config(prior="vampprior-data"), ImageSpec(IMAGE_SHAPE), train_images=images)
    pseudo = model.prior.pseudo_inputs().numpy()
    rows = [int(np.flatnonzero((images == row).all(1))[0]) for row in pseudo]   # each is a training image
    assert len(set(rows)) == K
    trainable = {id(v) for v in model.trainable_variables}
    assert id(model.prior.pseudo_input_weights) not in trainable


def test_data_initialised_vampprior_keeps_pseudo_inputs_trainable():
    images = np.random.default_rng(14).uniform(size=(12, PIXELS)).astype(np.float32)
    model = build_model(config(pseudo_init="data"), ImageSpec(IMAGE_SHAPE), train_images=images)
    pseudo = model.prior.pseudo_inputs().numpy()
    assert all((images == row).all(1).any() for row in pseudo)
    assert id(model.prior.pseudo_input_weights) in {id(v) for v in model.trainable_variables}


def test_too_few_training_images_for_the_components_is_a_config_error():
    with pytest.raises(ConfigError, match="--components 5"):
        build_model(config(prior="vampprior-data"), ImageSpec(IMAGE_SHAPE), train_images=np.zeros((3, PIXELS), np.float32))


def test_vae_can_be_constructed_directly():
    prior = MixtureOfGaussiansPrior(LATENT, 3, name="prior")
    model = VAE(IMAGE_SHAPE, prior, latent_dim=LATENT, hidden_units=8).build_variables()
    x = binary_batch(2, seed=15)
    log_px, log_pz, log_qz = np_log_terms(model, x, tf_noise(1, 2, as_seed(4)))
    reconstruction, kl = (t.numpy() for t in model.elbo_terms(x, seed=4))
    np.testing.assert_allclose(reconstruction + kl, -(log_px + log_pz - log_qz)[0], rtol=1e-5, atol=1e-4)


# -- training ---------------------------------------------------------------------------------------
def compiled(model, name="adam-normgrad", lr=1e-2):
    model.compile(optimizer=optimizers.build(name, lr))
    return model


def test_a_few_fit_steps_lower_the_loss():
    model = compiled(make_model())
    x = binary_batch(16, seed=16)
    before = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)["loss"]
    pseudo_before = model.prior.pseudo_input_weights.numpy().copy()
    history = model.fit(x, batch_size=16, epochs=30, verbose=0, shuffle=False).history["loss"]
    after = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)["loss"]
    assert np.all(np.isfinite(history))
    assert after < before - 0.3
    assert np.mean(history[-5:]) < np.mean(history[:5]) - 0.3
    assert not np.allclose(model.prior.pseudo_input_weights.numpy(), pseudo_before)   # pseudo-inputs learn


def test_vampprior_data_pseudo_inputs_stay_fixed_during_training():
    images = np.random.default_rng(17).uniform(size=(12, PIXELS)).astype(np.float32)
    model = compiled(build_model(config(prior="vampprior-data"), ImageSpec(IMAGE_SHAPE), train_images=images))
    pseudo_before = model.prior.pseudo_input_weights.numpy().copy()
    kernel_before = model.decoder.weights[0].numpy().copy()
    model.fit(binary_batch(8, seed=17), batch_size=8, epochs=3, verbose=0)
    np.testing.assert_array_equal(model.prior.pseudo_input_weights.numpy(), pseudo_before)
    assert not np.allclose(model.decoder.weights[0].numpy(), kernel_before)


@pytest.mark.parametrize("prior", ["vampprior", "standard"])
def test_training_loss_is_mean_of_reconstruction_plus_beta_kl(prior):
    model = compiled(make_model(prior), name="adam", lr=1e-3)
    x = binary_batch(8, seed=18)
    for beta in (1.0, 0.0, 0.5, 2.5):
        model.beta.assign(beta)
        step = int(model.optimizer.iterations.numpy())
        # the step's seed is (run seed, optimizer step)
        log_px, log_pz, log_qz = np_log_terms(model, x, tf_noise(1, 8, tf.constant([model.run_seed, step])))
        reconstruction, kl = -log_px[0], (log_qz - log_pz)[0]
        logs = model.fit(x, batch_size=8, epochs=1, verbose=0, shuffle=False).history
        np.testing.assert_allclose(logs["loss"][0], np.mean(reconstruction + beta * kl), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(logs["reconstruction"][0], reconstruction.mean(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(logs["kl"][0], kl.mean(), rtol=1e-5, atol=1e-4)
        assert int(model.optimizer.iterations.numpy()) == step + 1


def test_validation_loss_ignores_beta():
    model = compiled(make_model("mog"))
    model.beta.assign(0.25)
    x = binary_batch(8, seed=19)
    log_px, log_pz, log_qz = np_log_terms(model, x, tf_noise(1, 8, tf.constant([model.run_seed, -1])))
    logs = model.evaluate(x, batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], np.mean(-(log_px + log_pz - log_qz)[0]), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(logs["kl"], np.mean((log_qz - log_pz)[0]), rtol=1e-5, atol=1e-4)


def test_train_on_batch_and_test_on_batch_work():
    model = compiled(make_model(), name="adam", lr=1e-3)
    x = binary_batch(8, seed=20)
    log_px, log_pz, log_qz = np_log_terms(model, x, tf_noise(1, 8, tf.constant([model.run_seed, -1])))
    logs = model.test_on_batch(x, return_dict=True)
    np.testing.assert_allclose(logs["loss"], np.mean(-(log_px + log_pz - log_qz)[0]), rtol=1e-5, atol=1e-4)
    model.train_on_batch(x)
    assert int(model.optimizer.iterations.numpy()) == 1


@pytest.mark.parametrize("model_kind", ["vae", "hvae"])
def test_xla_and_graph_log_likelihood_agree_for_the_same_seed(model_kind):
    """The optimised path (XLA-compiled densities, the default) and plain graph mode draw the same noise
    and give the same estimate; both equal the float64 numpy reference for the VAE (tests above)."""
    model = make_model(model=model_kind)
    x = binary_batch(6, seed=11)
    model.evaluation_jit = True
    compiled = model.log_likelihood(x, 40, seed=4, chunk_size=16).numpy()
    model.evaluation_jit = False
    plain = model.log_likelihood(x, 40, seed=4, chunk_size=16).numpy()
    assert np.all(np.isfinite(plain))
    np.testing.assert_allclose(compiled, plain, rtol=1e-5, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("model_kind, prior", [("vae", "vampprior"), ("hvae", "standard")])
def test_xla_train_steps_equal_graph_mode_steps_and_repeat_exactly(model_kind, prior):
    """The default step (forward and backward XLA-compiled, then the fused Adam-normgrad kernel), the plain
    graph-mode step and a reference step with Keras' own optimizer update draw the same noise: same losses
    and weights after a few steps, to float rounding; and two XLA runs from the same start are identical
    (op determinism)."""
    x = tf.constant(binary_batch(16, seed=23))

    def reference_step(model, x):
        noise = model.draw_noise(1, tf.shape(x)[0], model._step_seed())
        loss, reconstruction, kl, gradients = model.loss_and_gradients(x, noise)
        model.optimizer.apply(gradients, model.trainable_variables)
        return model._update_trackers(loss, reconstruction, kl)        # running means, as train_step's

    def run(jit, reference=False):
        model = compiled(make_model(prior, model=model_kind))
        model.optimizer.build(model.trainable_variables)
        assert optimizers._fusable(model.optimizer, model.trainable_variables)   # train_step takes the fused path
        model.train_jit = jit
        step = tf.function(lambda x: reference_step(model, x)) if reference else tf.function(model.train_step)
        losses = [float(step(x)["loss"]) for _ in range(4)]
        return losses, [w.numpy() for w in model.trainable_weights]

    reference_losses, reference_weights = run(False, reference=True)
    graph_losses, graph_weights = run(False)
    xla_losses, xla_weights = run(True)
    again_losses, again_weights = run(True)
    assert np.all(np.isfinite(graph_losses)) and graph_losses[-1] < graph_losses[0]
    np.testing.assert_allclose(graph_losses, reference_losses, rtol=1e-5)
    np.testing.assert_allclose(xla_losses, graph_losses, rtol=1e-4)
    for a, b, c in zip(xla_weights, graph_weights, reference_weights):
        np.testing.assert_allclose(b, c, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    assert again_losses == xla_losses
    for a, b in zip(again_weights, xla_weights):
        np.testing.assert_array_equal(a, b)


def test_noisy_data_pseudo_inputs_are_the_same_training_images_plus_small_noise():
    """--pseudo-init noisy-data (the authors' use_training_data_init): the images --pseudo-init data picks,
    plus N(0, 0.01²) noise, still trainable."""
    from vampkeras.config import NOISY_DATA_STD

    images = np.random.default_rng(15).uniform(0.1, 0.9, size=(40, 400)).astype(np.float32)
    clean = build_model(config(pseudo_init="data", num_components=20), ImageSpec((20, 20)), train_images=images)
    noisy = build_model(config(pseudo_init="noisy-data", num_components=20), ImageSpec((20, 20)), train_images=images)
    noise = noisy.prior.pseudo_input_weights.numpy() - clean.prior.pseudo_input_weights.numpy()
    assert noise.std() == pytest.approx(NOISY_DATA_STD, rel=0.05) and NOISY_DATA_STD == 0.01   # 8000 draws
    assert abs(noise.mean()) < 0.001
    assert id(noisy.prior.pseudo_input_weights) in {id(v) for v in noisy.trainable_variables}


def test_authors_init_draws_every_network_weight_again_and_leaves_the_prior_alone():
    from vampkeras.layers import gated_variables

    images = np.random.default_rng(16).uniform(size=(12, PIXELS)).astype(np.float32)
    for model_kind in ("vae", "hvae"):
        paper = build_model(config(model=model_kind), ImageSpec(IMAGE_SHAPE), train_images=images)
        authors = build_model(config(model=model_kind, init="authors"), ImageSpec(IMAGE_SHAPE), train_images=images)
        for before, after in zip(paper.weights, authors.weights):
            assert before.path == after.path
            if "pseudo_inputs" in before.path or "mixture_logits" in before.path or before.path.endswith("beta"):
                np.testing.assert_array_equal(before.numpy(), after.numpy())
            else:                                 # every kernel and bias, biases no longer zero
                assert not np.array_equal(before.numpy(), after.numpy()), before.path
        gated = gated_variables(authors)
        assert len(gated) == len({v.path for v in gated}) == 2 * (4 if model_kind == "vae" else 10)   # hvae: q(z2|x) 2, q(z1|x,z2) 3, p(z1|z2) 2, p(x|z1,z2) 3


def test_own_networks_refuse_the_authors_init():
    from vampkeras.models import check_networks

    with pytest.raises(ConfigError, match="--init authors"):
        check_networks(config(init="authors"), lambda spec, config: None)
