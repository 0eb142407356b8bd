"""Optimizers: Adam, and Adam with normalized gradients (paper §5.1, Yu et al. 2017)."""

from __future__ import annotations

import logging

import keras
import tensorflow as tf

from vampkeras.config import OPTIMIZERS

__all__ = ["AdamNormGrad", "apply_gradients", "build", "PRIVATE_ADAM_STATE"]

logger = logging.getLogger(__name__)

# Keras' private Adam state that the fused update reads (Keras 3.x: the moments are lists in variable order).
# Keras does not promise them: when a version lacks one, apply_gradients uses Keras' own update.
PRIVATE_ADAM_STATE = ("_get_variable_index", "_momentums", "_velocities")
_warned_about_missing_state = False


@keras.saving.register_keras_serializable(package="vampkeras")
class AdamNormGrad(keras.optimizers.Adam):
    """Adam applied to per-tensor normalized gradients g / (‖g‖₂ + ε) (paper §5.1; Yu et al. 2017).

    Each weight tensor is normalized as a whole, as the authors' code does per PyTorch parameter. Where it has
    two linear layers per gated layer (h and g), :class:`vampkeras.layers.GatedDense` and GatedConv2D hold
    both halves in one fused kernel and one bias (h, then g, along the last axis). By default those halves
    are normalized together; the variables whose paths are in ``halved_paths`` (``--gated-normgrad
    per-half``: :func:`vampkeras.layers.gated_variables`) have each half normalized alone, as the authors'
    code does. docs/RESULTS.md measures the two at equal epochs.

    The normalization happens in ``update_step``, i.e. after Keras has summed the gradients over the
    replicas of a ``tf.distribute`` strategy, so distributed training normalizes the global gradient."""

    def __init__(self, *args, epsilon_norm: float = 1e-7, halved_paths=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.epsilon_norm = float(epsilon_norm)
        self.halved_paths = tuple(sorted(halved_paths))

    def build(self, variables):
        super().build(variables)
        paths = [variable.path for variable in variables]
        missing = sorted(set(self.halved_paths) - set(paths))
        if missing:
            raise ValueError(f"halved_paths not among the optimizer's variables: {', '.join(missing)}")
        # Keras hands update_step its backend's variable (no path), which _get_variable_index maps to the index
        self._halved_indices = frozenset(index for index, path in enumerate(paths) if path in self.halved_paths)

    def _normalized_tensor(self, gradient):
        return gradient / (tf.sqrt(2.0 * tf.nn.l2_loss(gradient)) + self.epsilon_norm)

    def normalized(self, gradient, variable=None):
        """``gradient / (‖gradient‖₂ + epsilon_norm)``, same shape; for a ``variable`` in ``halved_paths``,
        each half of the last axis divided by its own norm."""
        if (variable is not None and self.halved_paths
                and self._get_variable_index(variable) in self._halved_indices):
            value_half, gate_half = tf.split(gradient, 2, axis=-1)
            return tf.concat([self._normalized_tensor(value_half), self._normalized_tensor(gate_half)], axis=-1)
        return self._normalized_tensor(gradient)

    def update_step(self, gradient, variable, learning_rate):
        return super().update_step(self.normalized(gradient, variable), variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "epsilon_norm": self.epsilon_norm, "halved_paths": list(self.halved_paths)}


def _has_private_adam_state(optimizer: keras.optimizers.Optimizer) -> bool:
    """Whether ``optimizer`` (a built Adam) has the private attributes the fused update reads; if not, warn
    once per process (the training still works, with Keras' slower update)."""
    global _warned_about_missing_state
    missing = [name for name in PRIVATE_ADAM_STATE if not hasattr(optimizer, name)]
    if missing and not _warned_about_missing_state:
        _warned_about_missing_state = True
        logger.warning("Keras %s's Adam has no %s: using Keras' own optimizer update instead of the fused "
                       "Adam kernel (same result, slower)", keras.__version__, ", ".join(missing))
    return not missing


def _fusable(optimizer: keras.optimizers.Optimizer, variables) -> bool:
    """Whether :func:`apply_gradients` can use the fused kernel: a plain Adam (or AdamNormGrad) with none of
    the options that Keras' ``apply`` adds around the update, on float32 variables without constraints, from
    a Keras whose Adam keeps its moments where the kernel looks for them (:data:`PRIVATE_ADAM_STATE`)."""
    return (type(optimizer) in (keras.optimizers.Adam, AdamNormGrad) and optimizer.built
            and not optimizer.amsgrad and not optimizer.use_ema and optimizer.weight_decay is None
            and optimizer.clipnorm is None and optimizer.clipvalue is None and optimizer.global_clipnorm is None
            and optimizer.loss_scale_factor is None and optimizer.gradient_accumulation_steps is None
            and all(v.dtype == "float32" and v.constraint is None and not v.overwrite_with_gradient
                    for v in variables)
            and _has_private_adam_state(optimizer))


def apply_gradients(optimizer: keras.optimizers.Optimizer, gradients, variables) -> None:
    """The update ``optimizer.apply(gradients, variables)`` makes, done with TensorFlow's fused Adam kernel
    when the optimizer allows it (:func:`_fusable`), else by ``optimizer.apply``.

    Keras' Adam makes about five element-wise passes over every variable, and under XLA each runs on one core;
    ``ResourceApplyAdam`` updates the moments and the variable in one pass spread over the CPU's threads
    (faster: benchmarks/README.md measures it). The arithmetic is Keras' own:
    m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − lr·√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε). AdamNormGrad's
    gradients are normalized first. Call it in graph mode, outside an XLA cluster (inside one, XLA would
    compile the kernel back into separate passes).

    The kernel reads Keras' private moment variables (:data:`PRIVATE_ADAM_STATE`); a Keras without them gets
    ``optimizer.apply`` and one logged warning."""
    variables, gradients = list(variables), list(gradients)
    if not _fusable(optimizer, variables) or any(gradient is None for gradient in gradients):
        # Keras' apply also handles a variable the loss does not reach (no gradient): it skips it, with a warning
        optimizer.apply(gradients, variables)
        return
    if isinstance(optimizer, AdamNormGrad):
        gradients = [optimizer.normalized(gradient, variable) for gradient, variable in zip(gradients, variables)]
    step = tf.cast(optimizer.iterations + 1, tf.float32)
    beta_1 = tf.constant(optimizer.beta_1, tf.float32)
    beta_2 = tf.constant(optimizer.beta_2, tf.float32)
    beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
    learning_rate = tf.cast(optimizer.learning_rate, tf.float32)
    epsilon = tf.constant(optimizer.epsilon, tf.float32)
    for gradient, variable in zip(gradients, variables):
        index = optimizer._get_variable_index(variable)        # Keras keeps the moments in variable order
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=optimizer._momentums[index].handle, v=optimizer._velocities[index].handle,
            beta1_power=beta_1_power, beta2_power=beta_2_power, lr=learning_rate, beta1=beta_1, beta2=beta_2,
            epsilon=epsilon, grad=tf.cast(gradient, tf.float32))
    optimizer.iterations.assign_add(1)


def build(name: str, learning_rate: float, loss_scaling: bool = False,
          halved_variables=()) -> keras.optimizers.Optimizer:
    """``"adam-normgrad"`` (the paper's default) or ``"adam"``; with ``loss_scaling`` (float16 training),
    wrapped in Keras' dynamic ``LossScaleOptimizer``: the train step multiplies the loss by the scale, the
    update divides the gradients by it and skips a step whose gradients overflowed (then halves the scale).
    ``halved_variables``: variables whose two halves adam-normgrad normalizes separately (see AdamNormGrad)."""
    if halved_variables and name != "adam-normgrad":
        raise ValueError("halved_variables applies to adam-normgrad only")
    if name == "adam-normgrad":
        optimizer = AdamNormGrad(learning_rate=learning_rate, halved_paths=[v.path for v in halved_variables])
    elif name == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    else:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scaling else optimizer
