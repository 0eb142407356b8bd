"""Mixed precision: float16 layers with float32 weights and densities, and loss scaling."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vampkeras import optimizers
from vampkeras.config import RunConfig
from vampkeras.models import build_model
from tests.fakes import ImageSpec


def config(model="vae", **overrides):
    return RunConfig(model=model, num_components=4, latent_dim=3, hidden_units=12, pseudo_init_mean=0.3,
                     pseudo_init_std=0.2, seed=7, **overrides)


def binary(n, seed=0):
    return (np.random.default_rng(seed).uniform(size=(n, 30)) < 0.4).astype(np.float32)


@pytest.mark.parametrize("model", ["vae", "hvae", *(pytest.param(kind, marks=pytest.mark.slow)
                                                    for kind in ("convhvae", "pixelhvae"))])
def test_a_mixed_precision_model_computes_in_float16_and_agrees_with_float32(model):
    mixed = build_model(config(model, mixed_precision=True), ImageSpec((6, 5)))
    plain = build_model(config(model), ImageSpec((6, 5)))
    assert keras.config.dtype_policy().name == "float32"            # the global policy is left as it was
    layers = [layer for layer in mixed._flatten_layers() if layer.weights]
    assert layers and all(layer.compute_dtype == "float16" for layer in layers)
    assert all(weight.dtype == "float32" for weight in mixed.weights)
    assert all(layer.compute_dtype == "float32" for layer in plain._flatten_layers())
    plain.set_weights(mixed.get_weights())                          # the same float32 weights load into both
    x = binary(6)
    mixed_terms = [t.numpy() for t in mixed.elbo_terms(x, seed=3)]
    plain_terms = [t.numpy() for t in plain.elbo_terms(x, seed=3)]
    for got, expected in zip(mixed_terms, plain_terms):
        assert got.dtype == np.float32 and np.all(np.isfinite(got))
        np.testing.assert_allclose(got, expected, rtol=2e-2, atol=5e-2)
    mixed_ll = mixed.log_likelihood(x, 40, seed=1, chunk_size=10).numpy()
    plain_ll = plain.log_likelihood(x, 40, seed=1, chunk_size=10).numpy()
    assert np.max(np.abs(mixed_ll - plain_ll)) < 0.1


@pytest.mark.slow
def test_mixed_precision_training_scales_the_loss_and_learns():
    model = build_model(config(mixed_precision=True), ImageSpec((6, 5)))
    model.compile(optimizer=optimizers.build("adam-normgrad", 3e-3, loss_scaling=True))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.optimizer.inner_optimizer, optimizers.AdamNormGrad)
    model.optimizer.build(model.trainable_variables)
    x = tf.constant(binary(20, seed=2))
    noise = model.draw_noise(1, 20, tf.constant([1, 2]))
    loss, _, _, gradients = model.loss_and_gradients(x, noise)
    plain = build_model(config(), ImageSpec((6, 5)))
    plain.set_weights(model.get_weights())
    plain_loss, _, _, plain_gradients = plain.loss_and_gradients(x, noise)
    scale = float(model.optimizer.dynamic_scale.numpy())
    assert scale > 1.0 and float(loss) == pytest.approx(float(plain_loss), rel=1e-2)
    for got, expected in zip(gradients, plain_gradients):      # the gradients of scale × loss
        np.testing.assert_allclose(got.numpy() / scale, expected.numpy(), rtol=0.1, atol=1e-2 * np.abs(expected).max())
    # from the same weights, float16 training follows the float32 run (same noise, the scale divided out)
    plain.compile(optimizer=optimizers.build("adam-normgrad", 3e-3))
    data = binary(200, seed=3)
    losses = model.fit(data, batch_size=20, epochs=4, verbose=0, shuffle=False).history["loss"]
    plain_losses = plain.fit(data, batch_size=20, epochs=4, verbose=0, shuffle=False).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    np.testing.assert_allclose(losses, plain_losses, rtol=5e-3)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


@pytest.mark.slow
def test_mixed_precision_pixelhvae_samples_with_a_float16_stack():
    mixed = build_model(config("pixelhvae", mixed_precision=True), ImageSpec((6, 5)))
    plain = build_model(config("pixelhvae"), ImageSpec((6, 5)))
    plain.set_weights(mixed.get_weights())
    rng = np.random.default_rng(5)
    z = tf.constant(rng.normal(size=(4, 3)).astype(np.float32))
    images = tf.function(mixed.decode)(z, z, seed=2)               # one pixel at a time
    assert images.dtype == tf.float32 and images.shape == (4, 30)
    assert np.all((images.numpy() >= 0) & (images.numpy() <= 1))
    window = tf.zeros([4, 9, 17, 3])                                # pixels and latents, float32
    assert mixed.p_x.masked[0].call_unpadded(window).dtype == tf.float16
    assert plain.p_x.masked[0].call_unpadded(window).dtype == tf.float32
    # each pixel's window runs in float16: float16's rounding away from the float32 outputs, no further
    x = tf.reshape(tf.constant(binary(4, seed=6)), [4, 6, 5, 1])
    outputs = [[model.p_x.pixel_outputs(model.p_x.pad_for_pixels(x),
                                        model.p_x.pad_for_pixels(model.p_x.latent_channels(z, z)),
                                        tf.constant(index // 5), tf.constant(index % 5)).numpy()
                for index in range(30)] for model in (mixed, plain)]
    np.testing.assert_allclose(outputs[0], outputs[1], atol=5e-3)
    assert not np.array_equal(outputs[0], outputs[1])
