"""The model zoo: hierarchical ELBO terms, PixelCNN causality, the discretized logistic, active units."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from vampkeras import likelihoods
from vampkeras.config import RunConfig
from vampkeras.evaluation import active_units
from vampkeras.layers import causal_mask
from vampkeras.models import as_seed, build_model
from tests.fakes import ImageSpec


def small_model(model, prior="vampprior", likelihood="bernoulli", shape=(6, 5), **overrides):
    config = RunConfig(model=model, prior=prior, num_components=3, pseudo_init_mean=0.3, pseudo_init_std=0.2,
                       latent_dim=3, hidden_units=8, seed=5, **overrides)
    return build_model(config, ImageSpec(shape, likelihood))


def gaussian_log_density(z, mean, log_var):
    return stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(-1)


@pytest.mark.parametrize("architecture", ["hvae", "convhvae", "pixelhvae"])
def test_hierarchical_elbo_is_the_sum_of_its_five_terms(architecture):
    model = small_model(architecture)
    x = (np.random.default_rng(0).uniform(size=(4, 30)) < 0.4).astype("float32")
    seed = as_seed(11)
    reconstruction, kl = model.elbo_terms(x, seed)

    # rebuild the same draws by hand: the model splits the seed into (z2, z1) noise streams
    seed_z2, seed_z1 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    noise_z2 = tf.random.stateless_normal([1, 4, 3], seed=seed_z2).numpy()[0]
    noise_z1 = tf.random.stateless_normal([1, 4, 3], seed=seed_z1).numpy()[0]
    mean_z2, log_var_z2 = (t.numpy() for t in model.q_z2(x))
    z2 = mean_z2 + np.exp(0.5 * log_var_z2) * noise_z2
    mean_z1, log_var_z1 = (t.numpy() for t in model.q_z1(x, z2.astype("float32")))
    z1 = mean_z1 + np.exp(0.5 * log_var_z1) * noise_z1
    prior_mean_z1, prior_log_var_z1 = (t.numpy() for t in model.p_z1(z2.astype("float32")))
    logits = model.p_x(z1.astype("float32"), z2.astype("float32"), x).numpy()
    log_px = (x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits)).sum(-1)

    parameters = {k: v.numpy() for k, v in model.prior_parameters().items()}
    log_components = np.stack([gaussian_log_density(z2, parameters["means"][k], parameters["log_vars"][k])
                               for k in range(3)], axis=-1)
    log_p_z2 = special.logsumexp(log_components, axis=-1) - np.log(3)
    log_q = gaussian_log_density(z2, mean_z2, log_var_z2) + gaussian_log_density(z1, mean_z1, log_var_z1)
    log_p = log_p_z2 + gaussian_log_density(z1, prior_mean_z1, prior_log_var_z1)
    np.testing.assert_allclose(reconstruction.numpy(), -log_px, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(kl.numpy(), log_q - log_p, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("architecture", ["hvae", "convhvae", "pixelhvae"])
def test_importance_weights_of_several_draws_equal_one_draw_at_a_time(architecture):
    """The IS estimate computes q(z1|x, z2)'s features of x once per image for all its S draws; drawing
    by drawing, each on the image itself, gives the same densities."""
    model = small_model(architecture)
    x = (np.random.default_rng(1).uniform(size=(4, 30)) < 0.4).astype("float32")
    noise = model.draw_noise(3, 4, as_seed(5))                                          # 3 draws per image
    parameters = model.prior_parameters()
    log_px, log_pz, log_qz = (t.numpy() for t in model.log_density_terms_given_noise(x, noise, parameters))
    assert log_px.shape == log_pz.shape == log_qz.shape == (3, 4)
    for s in range(3):
        one_draw = tuple(n[s:s + 1] for n in noise)
        for together, alone in zip((log_px, log_pz, log_qz),
                                   model.log_density_terms_given_noise(x, one_draw, parameters)):
            np.testing.assert_allclose(together[s], alone.numpy()[0], rtol=1e-5, atol=1e-4)


def test_q_z1_of_several_draws_per_image_equals_one_draw_at_a_time():
    """q(z1|x, z2) with S·B rows of z2 (as the IS estimate and latent_means call it) = S calls of B rows."""
    model = small_model("convhvae")
    x = (np.random.default_rng(2).uniform(size=(4, 30)) < 0.4).astype("float32")
    mean_z2, log_var_z2 = model.q_z2(x)
    noise = tf.random.stateless_normal([5, 4, 3], seed=[7, 0]).numpy()
    z2 = mean_z2.numpy() + np.exp(0.5 * log_var_z2.numpy()) * noise                     # (5, 4, 3)
    by_draw = np.mean([model.q_z1(x, z2[s].astype("float32"))[0].numpy() for s in range(5)], axis=0)
    all_draws = model.q_z1(x, z2.reshape(20, 3).astype("float32"))[0].numpy().reshape(5, 4, 3).mean(0)
    np.testing.assert_allclose(all_draws, by_draw, rtol=1e-5, atol=1e-6)


def test_causal_masks():
    np.testing.assert_array_equal(causal_mask(3, "A")[..., 0, 0], [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(causal_mask(3, "B")[..., 0, 0], [[1, 1, 1], [1, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 3)], ids=["grey", "colour"])
def test_pixelcnn_output_never_depends_on_the_pixel_itself_or_later_pixels(shape):
    """The outputs of pixel i (every channel of it) see x only through pixels < i, all their channels."""
    model = small_model("pixelhvae", shape=shape)
    decoder = model.p_x
    channels = shape[2] if len(shape) == 3 else 1
    positions = shape[0] * shape[1]
    x = tf.constant(np.random.default_rng(1).uniform(size=(1, positions * channels)).astype("float32"))
    z = tf.constant(np.random.default_rng(2).normal(size=(1, 3)).astype("float32"))
    for value in range(positions * channels):        # output index = position·C + channel (flattened H, W, C)
        pixel = value // channels
        with tf.GradientTape() as tape:
            tape.watch(x)
            output = decoder(z, z, x)[0, value]
        gradient = tape.gradient(output, x).numpy()[0].reshape(positions, channels)
        assert np.all(gradient[pixel:] == 0.0), f"value {value} sees pixels {np.nonzero(gradient[pixel:])[0] + pixel}"
        if pixel > 0:
            assert np.all(np.any(gradient[:pixel] != 0.0, axis=0))     # and every channel of the earlier ones


@pytest.mark.parametrize("shape", [(2, 3), (2, 2, 3)], ids=["grey", "colour"])
def test_pixelhvae_probabilities_sum_to_one_over_every_binary_image(shape):
    """p(x|z) of the autoregressive decoder is normalised: summed over all 2^D binary images of a tiny image
    (64 grey 2x3, 4096 colour 2x2x3) for fixed latents, the probabilities give 1. (For the discretized
    logistic, whose 256^D images cannot be enumerated, the same holds by the product of the causality above
    and test_discretized_logistic_sums_to_one_over_the_256_values.)"""
    model = small_model("pixelhvae", shape=shape)
    values = int(np.prod(shape))
    every_image = ((np.arange(2 ** values)[:, None] >> np.arange(values)) & 1).astype("float32")   # (2^D, D)
    for seed in (3, 4):
        z1, z2 = (np.repeat(np.random.default_rng(seed + k).normal(size=(1, 3)), len(every_image), axis=0)
                  .astype("float32") for k in (0, 10))
        log_p = model.observation(z1, z2, every_image).log_prob(every_image).numpy().astype(np.float64)
        np.testing.assert_allclose(np.exp(special.logsumexp(log_p)), 1.0, rtol=1e-5)


def test_pixelhvae_sampling_is_consistent_with_its_teacher_forced_likelihood():
    model = small_model("pixelhvae", shape=(4, 3))
    z = tf.constant(np.random.default_rng(3).normal(size=(2, 3)).astype("float32"))
    means = model.decode(z, z, seed=7).numpy()
    assert means.shape == (2, 12) and np.all((means >= 0) & (means <= 1))
    # the first pixel's conditional mean does not depend on any pixel: it equals a pass on empty pixels
    first = model.observation(z, z, tf.zeros([2, 12])).mean().numpy()[:, 0]
    np.testing.assert_allclose(means[:, 0], first, rtol=1e-5)


@pytest.mark.parametrize("likelihood, channels", [("bernoulli", 1), ("discretized_logistic", 1),
                                                  pytest.param("discretized_logistic", 3, marks=pytest.mark.slow)])
def test_pixelhvae_window_decoding_equals_whole_image_passes(likelihood, channels):
    """Sampling runs the masked stack on the window of pixels a pixel depends on; the reference here runs it
    on the whole image for every pixel (the plain algorithm) with the same random numbers."""
    height, width = 12, 20          # taller than the 8 rows above, wider than the 17 columns around a pixel
    shape = (height, width, channels)
    model = small_model("pixelhvae", likelihood=likelihood, shape=shape)
    decoder, pixels = model.p_x, height * width * channels
    assert decoder.reach == 8
    rng = np.random.default_rng(8)
    z = tf.constant(rng.normal(size=(3, 3)).astype("float32"))
    x = tf.constant(rng.uniform(size=(3, pixels)).astype("float32"))
    whole = tf.reshape(decoder(z, z, x), [3, -1, height, width, channels]).numpy()     # (N, kinds, H, W, C)
    padded_pixels = decoder.pad_for_pixels(tf.reshape(x, [3, height, width, channels]))
    padded_latents = decoder.pad_for_pixels(decoder.latent_channels(z, z))
    pixel_outputs = tf.function(decoder.pixel_outputs)
    for row in range(height):
        for column in range(width):         # every kind of window: cut by the top, the left, the right edge
            window = pixel_outputs(padded_pixels, padded_latents, tf.constant(row), tf.constant(column))
            np.testing.assert_allclose(window.numpy(), whole[:, :, row, column].reshape(3, -1), rtol=1e-5, atol=1e-5)

    @tf.function
    def whole_image_pass(values, step_seed):
        distribution = model.observation(z, z, values)
        return distribution.sample(seed=step_seed), distribution.mean()

    def reference_decode(seed):
        values, means = np.zeros((3, pixels), np.float32), np.zeros((3, pixels), np.float32)
        for index in range(height * width):
            step_seed = tf.random.experimental.stateless_fold_in(as_seed(seed), index)
            sample, mean = whole_image_pass(tf.constant(values), step_seed)
            taken = slice(index * channels, (index + 1) * channels)          # the pixel's C channels
            values[:, taken], means[:, taken] = sample.numpy()[:, taken], mean.numpy()[:, taken]
        return means

    decoded = tf.function(model.decode)(z, z, seed=5)      # compiled, as sampling runs it (eager loops in Python)
    np.testing.assert_allclose(decoded.numpy(), reference_decode(5), rtol=1e-5, atol=1e-5)


def test_discretized_logistic_sums_to_one_over_the_256_values():
    rng = np.random.default_rng(4)
    outputs = tf.constant(rng.normal(scale=3.0, size=(3, 2 * 7)).astype("float32"))
    distribution = likelihoods.build("discretized_logistic", outputs)
    values = ((np.arange(256) + 0.5) / 256).astype("float32")
    grid = np.broadcast_to(values[:, None, None], (256, 3, 7))
    probabilities = np.exp(distribution.pixel_log_probs(grid).numpy())
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)
    # an interior bin equals the logistic CDF difference over it
    loc = distribution.mean().numpy()
    scale = np.exp(np.clip(outputs.numpy()[:, 7:], -4.5, 0.0))
    k = 100
    expected = stats.logistic.cdf((k + 1) / 256, loc, scale) - stats.logistic.cdf(k / 256, loc, scale)
    np.testing.assert_allclose(probabilities[k], expected, rtol=1e-3, atol=1e-7)
    assert np.all((loc >= 1 / 512) & (loc <= 1 - 1 / 512))


def test_active_units_count_only_units_that_vary_with_x():
    rng = np.random.default_rng(5)
    means = np.concatenate([rng.normal(scale=1.0, size=(500, 3)),       # active
                            np.full((500, 2), 0.7),                      # constant: inactive
                            rng.normal(scale=0.05, size=(500, 1))], 1)   # variance 0.0025 < 0.01: inactive
    assert active_units(means) == 3


def test_a_unit_whose_encoder_output_is_constant_is_inactive():
    model = small_model("vae", prior="standard")
    kernel, bias = model.encoder.head.mean.kernel, model.encoder.head.mean.bias
    kernel.assign(tf.concat([kernel[:, :1] * 0.0, kernel[:, 1:] * 50.0], axis=1))
    bias.assign([3.0, 0.0, 0.0])
    x = (np.random.default_rng(6).uniform(size=(400, 30)) < 0.5).astype("float32")
    means = model.latent_means(x)["z1"].numpy()
    assert np.allclose(means[:, 0], 3.0)
    assert active_units(means) == 2


@pytest.mark.parametrize("model", ["vae", pytest.param("hvae", marks=pytest.mark.slow)])    # (the VAE: fast tier)
@pytest.mark.parametrize("prior, weighted", [("standard", False), ("mog", False), ("vampprior", False),
                                             ("vampprior-data", False), ("vampprior", True)])
def test_every_prior_trains_a_step_and_scores_in_the_flat_and_the_hierarchical_model(model, prior, weighted):
    """One step changes every weight, the prior's own included, and the model scores. The hierarchical models
    share one class (vampkeras.models.hvae.HierarchicalVAE), whose prior sits on z2 whatever the networks: the
    HVAE stands for convHVAE and PixelHVAE here. Those two train a step with the VampPrior in the colour test
    below (every weight changes) and with every prior end to end in tests/e2e/test_zoo_cli.py."""
    config = RunConfig(model=model, prior=prior, weighted=weighted, num_components=4, pseudo_init_mean=0.05,
                       pseudo_init_std=0.01, latent_dim=3, hidden_units=8, seed=1)
    x = (np.random.default_rng(7).uniform(size=(8, 30)) < 0.4).astype("float32")
    net = build_model(config, ImageSpec((6, 5)), train_images=x)
    # graph mode: XLA-compiling a conv model's step takes ~15 s on 2 cores, and tests/e2e/test_zoo_cli.py
    # trains every model with every prior through the CLI's default (XLA) step already
    net.train_jit = net.evaluation_jit = False
    from vampkeras import optimizers
    net.compile(optimizer=optimizers.build("adam", 1e-3))
    before = [v.numpy().copy() for v in net.trainable_variables]
    history = net.fit(x, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    changed = [not np.array_equal(a, v.numpy()) for a, v in zip(before, net.trainable_variables)]
    assert all(changed)
    names = [v.path for v in net.trainable_variables]
    assert any("pseudo_inputs" in n for n in names) == (prior == "vampprior")
    assert any("mixture_logits" in n for n in names) == weighted
    ll = net.log_likelihood(x[:2], 6, seed=3, chunk_size=4).numpy()
    assert ll.shape == (2,) and np.all(np.isfinite(ll))


@pytest.mark.parametrize("model", ["vae", *(pytest.param(kind, marks=pytest.mark.slow)
                                            for kind in ("hvae", "convhvae", "pixelhvae"))])
@pytest.mark.parametrize("likelihood", ["bernoulli", "discretized_logistic"])
def test_every_model_trains_a_step_and_scores_colour_images(model, likelihood):
    """(H, W, 3) images: the decoders give every channel of every pixel its parameters, a step changes every
    weight, and the ELBO's reconstruction term is the likelihood of all H·W·3 values."""
    config = RunConfig(model=model, prior="vampprior", num_components=4, pseudo_init_mean=0.4, pseudo_init_std=0.05,
                       latent_dim=3, hidden_units=8, seed=1)
    uniform = np.random.default_rng(7).uniform(size=(8, 6 * 5 * 3)).astype("float32")
    x = (uniform < 0.4).astype("float32") if likelihood == "bernoulli" else uniform
    net = build_model(config, ImageSpec((6, 5, 3), likelihood))
    assert net.image_shape == (6, 5, 3) and net.num_pixels == 90
    assert net.prior.pseudo_inputs().shape == (4, 90)
    net.train_jit = net.evaluation_jit = False
    from vampkeras import optimizers
    net.compile(optimizer=optimizers.build("adam", 1e-3))
    before = [v.numpy().copy() for v in net.trainable_variables]
    history = net.fit(x, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert all(not np.array_equal(a, v.numpy()) for a, v in zip(before, net.trainable_variables))
    ll = net.log_likelihood(x[:2], 6, seed=3, chunk_size=4).numpy()
    assert ll.shape == (2,) and np.all(np.isfinite(ll))
    samples = net.sample(3, as_seed(2)).numpy()
    assert samples.shape == (3, 90) and np.all((samples >= 0) & (samples <= 1))


@pytest.mark.parametrize("model", ["vae", "hvae"])
def test_xla_compiled_elbo_equals_the_eager_reference(model, monkeypatch):
    """The default training path is XLA-compiled: given the same noise it must compute the same ELBO terms
    as plain eager ops. (The models draw their noise outside XLA; here it is fixed outright.)"""
    import vampkeras.models.hvae as hvae_module
    import vampkeras.models.vae as vae_module

    net = small_model(model)                       # built (with its own noise) before the noise is fixed
    fixed = tf.constant(np.random.default_rng(9).normal(size=(1, 16, 3)).astype("float32"))
    for module in (vae_module, hvae_module):
        monkeypatch.setattr(module, "replica_slice_normal", lambda shape, seed: fixed)
    x = (np.random.default_rng(8).uniform(size=(16, 30)) < 0.4).astype("float32")
    seed = tf.constant([3, 4])
    eager = [t.numpy() for t in net.elbo_terms(x, seed)]
    compiled = [t.numpy() for t in tf.function(net.elbo_terms, jit_compile=True)(tf.constant(x), seed)]
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4)
