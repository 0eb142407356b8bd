"""Optimizers: Adam, and Adam with normalized gradients (paper §5.1, Yu et al. 2017)."""

from __future__ import annotations

import keras
from keras import ops

OPTIMIZERS = ("adam-normgrad", "adam")


@keras.saving.register_keras_serializable(package="vampkeras")
class AdamNormGrad(keras.optimizers.Adam):
    """Adam applied to per-tensor normalized gradients g / (‖g‖₂ + ε), as the authors' code does.

    The normalization happens in ``update_step``, i.e. after Keras has summed the gradients over the
    replicas of a ``tf.distribute`` strategy, so distributed training normalizes the global gradient."""

    def __init__(self, *args, epsilon_norm: float = 1e-7, **kwargs):
        super().__init__(*args, **kwargs)
        self.epsilon_norm = float(epsilon_norm)

    def update_step(self, gradient, variable, learning_rate):
        gradient = gradient / (ops.sqrt(ops.sum(ops.square(gradient))) + self.epsilon_norm)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "epsilon_norm": self.epsilon_norm}


def build(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """``"adam-normgrad"`` (the paper's default) or ``"adam"``."""
    if name == "adam-normgrad":
        return AdamNormGrad(learning_rate=learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
