"""Building blocks shared by the encoders and decoders."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="vampkeras")
class GatedDense(keras.layers.Layer):
    """Gated dense layer (Dauphin et al.), the paper's element-wise non-linearity (§5.1).

    `y = (x W_h + b_h) ⊙ sigmoid(x W_g + b_g)`. Both halves live in one (D_in, 2·units) kernel so that a
    call is a single matrix product; each half is Glorot-uniform initialised with its own fan-out, exactly
    as two separate dense layers would be.

    Input (..., D_in) → output (..., units).
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        limit = float(np.sqrt(6.0 / (fan_in + self.units)))  # Glorot & Bengio (2010), per half
        self.kernel = self.add_weight(
            name="kernel", shape=(fan_in, 2 * self.units),
            initializer=keras.initializers.RandomUniform(-limit, limit),
        )
        self.bias = self.add_weight(name="bias", shape=(2 * self.units,), initializer="zeros")

    def call(self, inputs):
        pre = ops.matmul(inputs, self.kernel) + self.bias
        value, gate = ops.split(pre, 2, axis=-1)
        return value * ops.sigmoid(gate)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="vampkeras")
class GaussianHead(keras.layers.Layer):
    """Mean and log-variance of a diagonal Gaussian from a hidden representation.

    Both are linear in the input; the log-variance is clipped to [log_var_min, log_var_max]
    ([-6, 2] in the authors' models, a hardtanh). Input (..., D) → (mean, log_var), each (..., latent_dim).
    """

    def __init__(self, latent_dim: int, log_var_min: float = -6.0, log_var_max: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)
        self.log_var_min = float(log_var_min)
        self.log_var_max = float(log_var_max)
        self.mean = keras.layers.Dense(self.latent_dim, name="mean")
        self.log_var = keras.layers.Dense(self.latent_dim, name="log_var")

    def call(self, inputs):
        return self.mean(inputs), ops.clip(self.log_var(inputs), self.log_var_min, self.log_var_max)

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim,
                "log_var_min": self.log_var_min, "log_var_max": self.log_var_max}
