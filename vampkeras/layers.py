"""Building blocks shared by the encoders and decoders."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = ["GatedDense", "GaussianHead", "GatedConv2D", "MaskedConv2D", "causal_mask", "sublayers",
           "gated_variables", "initialize_as_authors"]


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
        # float32 out whatever the compute precision (mixed precision): the densities are computed in float32
        mean = ops.cast(self.mean(inputs), "float32")
        return mean, ops.clip(ops.cast(self.log_var(inputs), "float32"), self.log_var_min, self.log_var_max)

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim,
                "log_var_min": self.log_var_min, "log_var_max": self.log_var_max}


def _glorot_limit(fan_in: int, fan_out: int) -> float:
    return float(np.sqrt(6.0 / (fan_in + fan_out)))


@keras.saving.register_keras_serializable(package="vampkeras")
class GatedConv2D(keras.layers.Layer):
    """Gated convolution: (x ∗ W_h + b_h) ⊙ sigmoid(x ∗ W_g + b_g), 'same' padding, NHWC.

    Both halves are one convolution with 2·filters outputs, each half Glorot-uniform initialised with its
    own fan-out. Input (N, H, W, C) → (N, ⌈H/stride⌉, ⌈W/stride⌉, filters).
    """

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        area = self.kernel_size ** 2
        limit = _glorot_limit(area * channels, area * self.filters)
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, self.kernel_size, channels,
                                                            2 * self.filters),
                                      initializer=keras.initializers.RandomUniform(-limit, limit))
        self.bias = self.add_weight(name="bias", shape=(2 * self.filters,), initializer="zeros")

    def call(self, inputs):
        pre = ops.conv(inputs, self.kernel, strides=self.strides, padding="same") + self.bias
        value, gate = ops.split(pre, 2, axis=-1)
        return value * ops.sigmoid(gate)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides}


def causal_mask(kernel_size: int, mask_type: str) -> np.ndarray:
    """PixelCNN spatial mask (kernel_size, kernel_size, 1, 1): 1 where the kernel may look.

    Rows above the centre and, in the centre row, columns left of the centre are visible; type "B" also
    sees the centre pixel itself, type "A" does not (van den Oord et al. 2016).
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', not {mask_type!r}")
    centre = kernel_size // 2
    mask = np.zeros((kernel_size, kernel_size, 1, 1), dtype="float32")
    mask[:centre] = 1.0
    mask[centre, :centre + (mask_type == "B")] = 1.0
    return mask


@keras.saving.register_keras_serializable(package="vampkeras")
class MaskedConv2D(keras.layers.Layer):
    """Convolution whose kernel is multiplied by a PixelCNN :func:`causal_mask`, 'same' padding, NHWC.

    The mask is spatial and shared by all input channels: an output at pixel i sees every channel of the
    pixels before i (and, for type "B", of pixel i's hidden features), none of pixel i's own input channels.
    Input (N, H, W, C) → (N, H, W, filters).
    """

    def __init__(self, filters: int, kernel_size: int, mask_type: str, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.mask_type = int(filters), int(kernel_size), mask_type
        self.mask = causal_mask(self.kernel_size, mask_type)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        area = self.kernel_size ** 2
        limit = _glorot_limit(area * channels, area * self.filters)
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, self.kernel_size, channels, self.filters),
                                      initializer=keras.initializers.RandomUniform(-limit, limit))
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs):
        return ops.conv(inputs, self.kernel * ops.cast(self.mask, self.kernel.dtype), padding="same") + self.bias

    def call_unpadded(self, inputs):
        """The same convolution without padding, on the kernel rows the mask keeps (the centre row and the
        rows above it): (N, h, w, C) → (N, h − k//2, w − 2·(k//2), filters), where output (i, j) is the
        'same' output at input row i + k//2, column j + k//2, for a window cut from a zero-padded image."""
        centre = self.kernel_size // 2
        dtype = self.compute_dtype               # called directly, not through __call__, which would cast
        kernel = (ops.cast(self.kernel, dtype) * ops.cast(self.mask, dtype))[:centre + 1]
        return ops.conv(ops.cast(inputs, dtype), kernel, padding="valid") + ops.cast(self.bias, dtype)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "mask_type": self.mask_type}


def sublayers(root: keras.layers.Layer) -> list:
    """Every layer inside ``root`` (not ``root`` itself), each once, in the order Keras tracks them."""
    # (Keras 3 has no public walk over a subclassed layer's tracked sublayers; tests/test_layers.py and
    # tests/test_models.py check that every gated and dense layer of each model is found)
    return list(root._flatten_layers(include_self=False, recursive=True))


def gated_variables(root: keras.layers.Layer) -> list:
    """The kernels and biases of the gated layers inside ``root``: variables whose last axis holds the two
    halves (h, then g) of a :class:`GatedDense` or :class:`GatedConv2D`."""
    return [variable for layer in sublayers(root) if isinstance(layer, (GatedDense, GatedConv2D))
            for variable in (layer.kernel, layer.bias)]


def initialize_as_authors(root: keras.layers.Layer, seed: int) -> None:
    """Draw the weights of every dense and convolutional layer inside ``root`` (a built model) again, as the
    authors' released PyTorch code initialises them (the paper's §5.1 says Glorot, which :mod:`layers` uses).

    Their code applies He-normal, N(0, 2/fan_in), to the weight of every ``nn.Linear`` and leaves the
    bias at PyTorch's default, U(−1/√fan_in, 1/√fan_in); its convolutions keep PyTorch's default for weight
    and bias alike, U(−1/√fan_in, 1/√fan_in) (kaiming-uniform with a = √5). A gated layer's two halves are two
    such layers of the same fan-in there, so one draw over the fused kernel is the same distribution. Priors'
    pseudo-inputs and mixture parameters are not layers of this kind and keep their own initialisation.
    Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    for layer in sublayers(root):
        if isinstance(layer, (GatedDense, keras.layers.Dense)):
            fan_in = int(layer.kernel.shape[0])
            kernel = rng.normal(0.0, np.sqrt(2.0 / fan_in), layer.kernel.shape)
        elif isinstance(layer, (GatedConv2D, MaskedConv2D, keras.layers.Conv2D)):
            height, width, channels, _ = layer.kernel.shape
            fan_in = int(height * width * channels)
            kernel = rng.uniform(-1.0, 1.0, layer.kernel.shape) / np.sqrt(fan_in)
        else:
            continue
        layer.kernel.assign(kernel.astype("float32"))
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign((rng.uniform(-1.0, 1.0, layer.bias.shape) / np.sqrt(fan_in)).astype("float32"))
