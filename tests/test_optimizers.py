"""Adam with normalized gradients (paper §5.1), and the fused Adam update with its fallback to Keras' own.

Expected values are Keras' Adam written out in float64 numpy (:func:`np_adam`), never the code under test.
"""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from vampkeras import optimizers


def np_adam(gradients, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Keras' Adam update, step by step, for one variable starting at zero: returns the variable."""
    value = np.zeros_like(gradients[0])
    m = np.zeros_like(value)
    v = np.zeros_like(value)
    for t, g in enumerate(gradients, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        alpha = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        value = value - alpha * m / (np.sqrt(v) + epsilon)
    return value


def run_optimizer(optimizer, gradient_sequences):
    variables = [keras.Variable(np.zeros_like(g[0], np.float32)) for g in gradient_sequences]
    for step in range(len(gradient_sequences[0])):
        optimizer.apply([tf.constant(seq[step], tf.float32) for seq in gradient_sequences], variables)
    return [v.numpy().astype(np.float64) for v in variables]


def test_adam_normgrad_first_step_is_adam_on_the_normalised_gradient():
    rng = np.random.default_rng(21)
    g = rng.normal(0.0, 3.0, (3, 4))
    (value,) = run_optimizer(optimizers.build("adam-normgrad", 0.01), [[g]])
    normalised = g / np.linalg.norm(g)
    m_hat, v_hat = normalised, normalised ** 2                 # bias-corrected moments at t = 1
    # Keras adds ε to sqrt(v) before the bias correction: ε on sqrt(v̂) is ε / sqrt(1 − β₂)
    epsilon_hat = 1e-7 / np.sqrt(1 - 0.999)
    np.testing.assert_allclose(value, -0.01 * m_hat / (np.sqrt(v_hat) + epsilon_hat), rtol=1e-5, atol=1e-8)
    # (≈ −lr·sign(g): the comparison is made meaningful by the multi-step test below)
    np.testing.assert_allclose(value, -0.01 * np.sign(g), rtol=1e-3)


def test_adam_normgrad_normalises_each_gradient_tensor_every_step():
    rng = np.random.default_rng(22)
    scales = [1.0, 20.0, 0.05, 3.0]                            # gradient norms that change a lot
    first = [s * rng.normal(size=(3, 4)) for s in scales]
    second = [s * rng.normal(0.0, 7.0, size=(5,)) for s in reversed(scales)]
    got = run_optimizer(optimizers.build("adam-normgrad", 0.01), [first, second])
    for value, sequence in zip(got, (first, second)):
        expected = np_adam([g / (np.linalg.norm(g) + 1e-7) for g in sequence], 0.01)
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-7)
        # plain Adam on the raw gradients goes elsewhere, so the comparison above can tell them apart
        assert np.abs(np_adam(sequence, 0.01) - expected).max() > 1e-3
    plain = run_optimizer(optimizers.build("adam", 0.01), [first, second])
    for value, sequence in zip(plain, (first, second)):
        np.testing.assert_allclose(value, np_adam(sequence, 0.01), rtol=1e-5, atol=1e-7)


def run_fused(optimizer, gradient_sequences, compiled: bool):
    """:func:`optimizers.apply_gradients` on the same inputs as :func:`run_optimizer`."""
    variables = [keras.Variable(np.zeros_like(g[0], np.float32)) for g in gradient_sequences]
    optimizer.build(variables)
    def update(gradients):
        optimizers.apply_gradients(optimizer, gradients, variables)

    update = tf.function(update) if compiled else update
    for step in range(len(gradient_sequences[0])):
        update([tf.constant(seq[step], tf.float32) for seq in gradient_sequences])
    assert int(optimizer.iterations.numpy()) == len(gradient_sequences[0])
    return [v.numpy().astype(np.float64) for v in variables]


def gradient_pair(seed):
    """Two variables' gradients for two steps, of norms that differ a lot: ([2 × (30, 40)], [2 × (50,)])."""
    rng = np.random.default_rng(seed)
    scales = [1.0, 20.0]
    first = [s * rng.normal(size=(30, 40)) for s in scales]
    second = [s * rng.normal(0.0, 7.0, size=(50,)) for s in reversed(scales)]
    return first, second


def expected_sequence(name, sequence):
    """The gradients Adam sees: normalized per tensor for adam-normgrad."""
    return [g / (np.linalg.norm(g) + 1e-7) for g in sequence] if name == "adam-normgrad" else sequence


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("name", ["adam-normgrad", "adam"])
def test_fused_adam_update_matches_keras_and_the_reference(name, compiled):
    rng = np.random.default_rng(23)
    scales = [1.0, 20.0, 0.05, 3.0, 0.5]
    first = [s * rng.normal(size=(30, 40)) for s in scales]
    second = [s * rng.normal(0.0, 7.0, size=(50,)) for s in reversed(scales)]
    fused = run_fused(optimizers.build(name, 0.01), [first, second], compiled)
    keras_update = run_optimizer(optimizers.build(name, 0.01), [first, second])
    for got, keras_value, sequence in zip(fused, keras_update, (first, second)):
        np.testing.assert_allclose(got, np_adam(expected_sequence(name, sequence), 0.01), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got, keras_value, rtol=1e-5, atol=1e-7)


def test_fused_adam_update_falls_back_to_keras_for_other_settings():
    rng = np.random.default_rng(24)
    sequence = [rng.normal(size=(6,)) * 100 for _ in range(3)]
    clipped = keras.optimizers.Adam(learning_rate=0.01, clipvalue=0.5)
    assert not optimizers._fusable(clipped, [keras.Variable(np.zeros(6, np.float32))])
    got = run_fused(clipped, [sequence], compiled=False)[0]
    np.testing.assert_allclose(got, np_adam([np.clip(g, -0.5, 0.5) for g in sequence], 0.01), rtol=1e-5, atol=1e-7)
    assert not optimizers._fusable(optimizers.build("adam-normgrad", 0.01), [])        # not built yet
    # a variable the loss does not reach (no gradient) is left alone, as Keras' apply does
    optimizer = optimizers.build("adam", 0.01)
    used, unused = keras.Variable(np.zeros(6, np.float32)), keras.Variable(np.ones(3, np.float32))
    optimizer.build([used, unused])
    optimizers.apply_gradients(optimizer, [tf.constant(sequence[0], tf.float32), None], [used, unused])
    np.testing.assert_allclose(used.numpy(), np_adam(sequence[:1], 0.01), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(unused.numpy(), np.ones(3))


def test_optimizer_factory():
    assert isinstance(optimizers.build("adam-normgrad", 1e-3), optimizers.AdamNormGrad)
    adam = optimizers.build("adam", 2e-3)
    assert type(adam) is keras.optimizers.Adam
    np.testing.assert_allclose(float(adam.learning_rate.numpy()), 2e-3, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.build("sgd", 1e-3)
    config_ = optimizers.AdamNormGrad(learning_rate=1e-3, epsilon_norm=1e-5).get_config()
    assert optimizers.AdamNormGrad.from_config(config_).epsilon_norm == 1e-5


# -- Keras' private Adam state ------------------------------------------------------------------------
class UpdateSpy:
    """Counts the fused kernel's calls and Keras' ``apply`` calls, passing both through."""

    def __init__(self, monkeypatch):
        self.kernel_calls, self.keras_applies = 0, 0
        kernel, keras_apply = tf.raw_ops.ResourceApplyAdam, keras.optimizers.Optimizer.apply

        def counting_kernel(**kwargs):
            self.kernel_calls += 1
            return kernel(**kwargs)

        def counting_apply(optimizer, *args, **kwargs):
            self.keras_applies += 1
            return keras_apply(optimizer, *args, **kwargs)

        monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam", counting_kernel)
        monkeypatch.setattr(keras.optimizers.Optimizer, "apply", counting_apply)


def without_private_adam_state(monkeypatch):
    """Make Keras' Adam look like a future version that keeps its moments elsewhere: no
    ``_get_variable_index``, ``_momentums`` or ``_velocities``, and an ``update_step`` with Keras 3's
    arithmetic that reads the moments from a dict keyed by the backend's variable key."""

    def build(self, var_list):
        if self.built:
            return
        keras.optimizers.Optimizer.build(self, var_list)
        first, second = self.add_optimizer_variables(var_list, ["momentum", "velocity"])
        self._moments_by_key = {self._var_key(variable): (m, v) for variable, m, v in zip(var_list, first, second)}

    def update_step(self, gradient, variable, learning_rate):
        m, v = self._moments_by_key[self._var_key(variable)]
        learning_rate, gradient = ops.cast(learning_rate, variable.dtype), ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        alpha = (learning_rate * ops.sqrt(1 - ops.power(ops.cast(self.beta_2, variable.dtype), step))
                 / (1 - ops.power(ops.cast(self.beta_1, variable.dtype), step)))
        self.assign_add(m, (gradient - m) * (1 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1 - self.beta_2))
        self.assign_sub(variable, m * alpha / (ops.sqrt(v) + self.epsilon))

    monkeypatch.setattr(keras.optimizers.Adam, "build", build)
    monkeypatch.setattr(keras.optimizers.Adam, "update_step", update_step)
    for owner in keras.optimizers.Adam.__mro__:            # the Keras class that defines it
        if "_get_variable_index" in vars(owner):
            monkeypatch.delattr(owner, "_get_variable_index")


@pytest.fixture
def fresh_warning_state(monkeypatch):
    monkeypatch.setattr(optimizers, "_warned_about_missing_state", False)


@pytest.mark.parametrize("name", ["adam-normgrad", "adam"])
def test_the_fused_kernel_is_used_where_keras_has_the_private_state(name, monkeypatch, fresh_warning_state,
                                                                   caplog):
    first, second = gradient_pair(25)
    spy = UpdateSpy(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="vampkeras.optimizers"):
        fused = run_fused(optimizers.build(name, 0.01), [first, second], compiled=False)
    assert spy.kernel_calls == 2 * 2 and spy.keras_applies == 0         # 2 steps × 2 variables, no fallback
    assert not caplog.records
    for got, sequence in zip(fused, (first, second)):
        np.testing.assert_allclose(got, np_adam(expected_sequence(name, sequence), 0.01), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("name", ["adam-normgrad", "adam"])
def test_without_the_private_state_the_update_is_keras_own_with_one_warning(name, compiled, monkeypatch,
                                                                            fresh_warning_state, caplog):
    first, second = gradient_pair(26)
    keras_today = run_optimizer(optimizers.build(name, 0.01), [first, second])
    without_private_adam_state(monkeypatch)
    spy = UpdateSpy(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="vampkeras.optimizers"):
        optimizer = optimizers.build(name, 0.01)
        fallback = run_fused(optimizer, [first, second], compiled)
        run_fused(optimizers.build(name, 0.01), [first, second], compiled)  # a second optimizer: no new warning
    assert not any(hasattr(optimizer, attribute) for attribute in optimizers.PRIVATE_ADAM_STATE)
    assert spy.kernel_calls == 0 and spy.keras_applies >= 1
    warnings = [record for record in caplog.records if record.name == "vampkeras.optimizers"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    for name_ in optimizers.PRIVATE_ADAM_STATE:
        assert name_ in warnings[0].getMessage()
    for got, keras_value, sequence in zip(fallback, keras_today, (first, second)):
        np.testing.assert_allclose(got, keras_value, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got, np_adam(expected_sequence(name, sequence), 0.01), rtol=1e-5, atol=1e-7)


# -- --gated-normgrad per-half: a gated layer's fused halves normalized as two tensors --------------------------
def halved_sequences(seed):
    """Gradients for two steps of a fused gated kernel (30, 2·20) and bias (40,), whose h and g halves have
    norms that differ a lot (so that normalizing jointly or per half gives different updates), and of a
    plain (7,) tensor."""
    rng = np.random.default_rng(seed)
    kernel = [np.concatenate([s * rng.normal(size=(30, 20)), rng.normal(size=(30, 20)) / s], axis=-1)
              for s in (30.0, 0.1)]
    bias = [np.concatenate([rng.normal(size=20) / s, s * rng.normal(size=20)]) for s in (5.0, 0.2)]
    plain = [rng.normal(size=7) * s for s in (3.0, 0.01)]
    return kernel, bias, plain


def per_half(gradient):
    value, gate = np.split(gradient, 2, axis=-1)
    return np.concatenate([value / (np.linalg.norm(value) + 1e-7), gate / (np.linalg.norm(gate) + 1e-7)], axis=-1)


@pytest.mark.parametrize("update", ["keras", "fused-eager", "fused-compiled"])
def test_per_half_normgrad_normalizes_each_half_of_a_fused_variable_alone(update):
    kernel, bias, plain = halved_sequences(31)
    variables = [keras.Variable(np.zeros_like(seq[0], np.float32), name=name)
                 for seq, name in zip((kernel, bias, plain), ("kernel", "bias", "plain"))]
    optimizer = optimizers.build("adam-normgrad", 0.01, halved_variables=variables[:2])
    assert optimizer.halved_paths == tuple(sorted(v.path for v in variables[:2]))
    step = (lambda g: optimizer.apply(g, variables)) if update == "keras" else (
        lambda g: optimizers.apply_gradients(optimizer, g, variables))
    if update == "fused-compiled":
        optimizer.build(variables)
        step = tf.function(step)
    for t in range(2):
        step([tf.constant(seq[t], tf.float32) for seq in (kernel, bias, plain)])
    got = [v.numpy().astype(np.float64) for v in variables]
    np.testing.assert_allclose(got[0], np_adam([per_half(g) for g in kernel], 0.01), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[1], np_adam([per_half(g) for g in bias], 0.01), rtol=1e-5, atol=1e-7)
    # the plain tensor is normalized as a whole, as before
    np.testing.assert_allclose(got[2], np_adam(expected_sequence("adam-normgrad", plain), 0.01), rtol=1e-5, atol=1e-7)
    # and the joint normalization would have gone elsewhere: the test can tell the two apart
    joint = np_adam(expected_sequence("adam-normgrad", kernel), 0.01)
    assert np.abs(joint - got[0]).max() > 1e-3


def test_per_half_fused_update_equals_two_separate_layers_as_in_the_authors_code():
    """The reference: h and g as two separate tensors (two nn.Linear in the authors' code), each normalized as
    a whole by the per-tensor AdamNormGrad, equal the fused kernel's per-half update."""
    kernel, _, _ = halved_sequences(32)
    fused = keras.Variable(np.zeros_like(kernel[0], np.float32), name="fused")
    optimizer = optimizers.build("adam-normgrad", 0.01, halved_variables=[fused])
    halves = [keras.Variable(np.zeros((30, 20), np.float32), name=name) for name in ("h", "g")]
    separate = optimizers.build("adam-normgrad", 0.01)
    for g in kernel:
        optimizer.apply([tf.constant(g, tf.float32)], [fused])
        separate.apply([tf.constant(half, tf.float32) for half in np.split(g, 2, axis=-1)], halves)
    np.testing.assert_allclose(fused.numpy(), np.concatenate([h.numpy() for h in halves], axis=-1),
                               rtol=1e-6, atol=1e-8)


def test_halved_variables_need_adam_normgrad_and_survive_the_config_round_trip():
    variable = keras.Variable(np.zeros(4, np.float32), name="gated_kernel")
    with pytest.raises(ValueError, match="adam-normgrad only"):
        optimizers.build("adam", 0.01, halved_variables=[variable])
    optimizer = optimizers.build("adam-normgrad", 0.01, halved_variables=[variable])
    again = optimizers.AdamNormGrad.from_config(optimizer.get_config())
    assert again.halved_paths == optimizer.halved_paths == (variable.path,)
